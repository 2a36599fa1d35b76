"""Security review, live-query socket: H1 (sessions end on sockets too), H4 (idle and crowded sockets),
C1 (a hostile `$regex` in the matcher), M2 (bad messages are answered, never "could not be handled").

Time is the store's clock, moved by the test; the hub's sweep is called instead of waiting for it.
"""
from __future__ import annotations

import asyncio
import socket
import time
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dashboard.access import Principal
from dashboard.api import live_query
from dashboard.models import utcnow
from tests.api.conftest import make_app
from tests.api.test_live_query import Client, open_client, patient_where, subscribe


def writer(world) -> Principal:
    """The lead without a session (as the command line acts): the moved clock ends sessions, not it."""
    return Principal(world.lead.user_id)


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self):
        return utcnow() + self.offset


@pytest.fixture
def clock(api) -> MovableClock:
    moving = MovableClock()
    api.store.clock = moving
    return moving


@asynccontextmanager
async def served(app, **config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn offers no event for "listening"
    try:
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/parse"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def _ends_with_209_and_closes(client: Client, request_id: int) -> None:
    seen = []
    while True:
        message = await client.recv()
        seen.append(message)
        if message.get("op") == "error" and "requestId" not in message:
            break
    assert [m["code"] for m in seen if m["op"] == "error"] == [209, 209], seen
    assert any(m["op"] == "error" and m.get("requestId") == request_id for m in seen)
    await client.closed()


async def test_h1_idle_timeout_ends_a_live_query_socket(api, lq_url, clock):
    w = api.world
    client = await open_client(lq_url, api.tokens["team_contributor"])
    await subscribe(client, 1, "SessionNote", patient_where(w))
    clock.offset = api.store.settings.session_idle_timeout + timedelta(seconds=1)
    # Past the idle limit, before any sweep: the push is dropped at delivery.
    await api.store.add_note(principal=writer(w), patient_id=w.patient.id, session_type="assessment",
                             text="written after the idle limit")
    assert api.store.hub.sweep() >= 1
    await _ends_with_209_and_closes(client, 1)
    r = await api.call("GET", "users/me", "team_contributor")
    assert r.status_code in (400, 401) and r.json()["code"] == 209


async def test_h1_absolute_lifetime_ends_a_socket_however_active(api, lq_url, clock):
    w = api.world
    client = await open_client(lq_url, api.tokens["team_therapist"])
    await subscribe(client, 7, "MobilityScore", patient_where(w))
    lifetime = api.store.settings.session_lifetime
    step = api.store.settings.session_idle_timeout / 2
    while clock.offset + step < lifetime:  # active all along: a message every half idle period
        clock.offset += step
        await client.send({"op": "unsubscribe", "requestId": 999})
        assert (await client.recv())["code"] == 2
    clock.offset = lifetime + timedelta(seconds=1)
    await api.store.record_score(principal=writer(w), patient_id=w.patient.id, score_type="berg", value=30)
    api.store.hub.sweep()
    await _ends_with_209_and_closes(client, 7)


async def test_h1_a_message_on_an_idle_socket_does_not_revive_it(api, lq_url, clock):
    client = await open_client(lq_url, api.tokens["team_contributor"])
    clock.offset = api.store.settings.session_idle_timeout + timedelta(seconds=1)
    await client.send({"op": "subscribe", "requestId": 2, "query": {"className": "MobilityScore"}})
    message = await client.recv()
    assert message["op"] == "error" and message["code"] == 209
    await client.closed()


async def test_h1_viewer_may_be_exempt_and_only_the_viewer(api, lq_url, clock):
    assert api.store.access.viewer_exempt  # the default: a ward screen stays on
    w = api.world
    viewer = await open_client(lq_url, api.tokens["viewer"])
    await subscribe(viewer, 1, "MobilityScore", patient_where(w))
    contributor = await open_client(lq_url, api.tokens["team_contributor"])
    await subscribe(contributor, 1, "MobilityScore", patient_where(w))
    clock.offset = api.store.settings.session_lifetime + timedelta(minutes=1)
    api.store.hub.sweep()
    await _ends_with_209_and_closes(contributor, 1)
    score = await api.store.record_score(principal=writer(w), patient_id=w.patient.id, score_type="berg", value=41)
    assert (await viewer.recv())["object"]["objectId"] == score.id
    api.store.access.viewer_exempt = False  # configured off: the viewer's session ends like any other
    api.store.hub.sweep()
    await _ends_with_209_and_closes(viewer, 1)


async def test_h4_a_socket_that_never_connects_is_closed(api, monkeypatch):
    monkeypatch.setattr(live_query, "CONNECT_TIMEOUT_SECONDS", 0.5)
    async with served(make_app(api.store)) as url:
        started = time.monotonic()
        client = Client(await connect(url))
        message = await client.recv()
        assert message["op"] == "error" and "connect" in message["error"]
        await client.closed()
        assert time.monotonic() - started < 5
        # Chatter without `connect` does not hold it open: the deadline counts from the opening.
        started = time.monotonic()
        chatty = Client(await connect(url))
        with pytest.raises(ConnectionClosed):
            while True:
                await chatty.send({"op": "unsubscribe", "requestId": 1})
                message = await chatty.recv()
                assert message["op"] == "error"
                assert time.monotonic() - started < 3, "still open past the connect deadline"
                await asyncio.sleep(0.1)


async def test_h4_sockets_per_address_are_capped(api):
    async with served(make_app(api.store, sockets_per_address=3)) as url:
        held = [await connect(url) for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 403
        await held[0].close()
        # A closed socket frees its place.
        deadline = time.monotonic() + 5
        while True:
            try:
                held[0] = await connect(url)
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        for ws in held:
            await ws.close()


async def test_c1_hostile_regex_in_a_subscription_never_stalls_the_server(api, lq_url):
    """A stored value meets a subscriber's pattern on every write: the event loop keeps turning."""
    w = api.world
    client = await open_client(lq_url, api.tokens["team_contributor"])
    await subscribe(client, 1, "EquipmentLog", {"equipmentName": {"$regex": "^(a+)+$"}})
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:  # what /status needs: the loop free to answer within 100 ms
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    beat = asyncio.create_task(heartbeat())
    for _ in range(10):
        await api.store.check_out_equipment(principal=writer(w), patient_id=w.patient.id, name="a" * 40 + "!")
    await api.store.check_out_equipment(principal=writer(w), patient_id=w.patient.id, name="a" * 60)
    message = await client.recv()
    stop.set()
    await beat
    assert message["op"] == "create" and message["object"]["equipmentName"] == "a" * 60
    assert max(gaps) < 0.1, max(gaps)  # Python's re took minutes on the first name


@pytest.mark.parametrize("message", [
    {"op": "update", "requestId": {}, "query": {"className": "Patient"}},
    {"op": "update", "requestId": [1], "query": {"className": "Patient"}},
    {"op": "subscribe", "requestId": 1, "query": {"className": "Patient", "where": {"displayName": {"$regex": "("}}}},
    {"op": "subscribe", "requestId": 1, "query": {"className": "Patient", "where": {"displayName": {"$regex": "(a)\\1"}}}},
])
async def test_m2_bad_live_query_messages_get_a_code_not_a_fault(api, lq_url, message, caplog):
    client = await open_client(lq_url, api.tokens["lead"])
    await client.send(message)
    answer = await client.recv()
    assert answer["op"] == "error" and "could not be handled" not in answer["error"], answer
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name.startswith("ot_tracker")]
