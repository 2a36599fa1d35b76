"""Live queries over the websocket: the protocol, per-subscriber events, access, and bad messages.

Waits use websocket receives with timeouts; "nothing arrives" is asserted with a short receive timeout
after a later event that must arrive has arrived on another subscription (ordering, not sleeping).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dashboard import fast_paths
from tests.api.conftest import APP_ID

TIMEOUT = 5


class Client:
    def __init__(self, ws):
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def nothing(self, timeout: float = 0.3) -> None:
        try:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")

    async def closed(self, timeout: float = TIMEOUT) -> None:
        """The server closes the socket (nothing more arrives before the close)."""
        try:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            return
        raise AssertionError(f"expected the socket to close, got: {message}")


async def open_client(url: str, token: str | None) -> Client:
    ws = await connect(url)
    client = Client(ws)
    message: dict[str, Any] = {"op": "connect", "applicationId": APP_ID, "installationId": "i-1"}
    if token:
        message["sessionToken"] = token
    await client.send(message)
    answer = await client.recv()
    assert answer["op"] == "connected" and answer["clientId"], answer
    return client


async def subscribe(client: Client, request_id: int, class_name: str, where: dict, **extra: Any) -> None:
    await client.send({"op": "subscribe", "requestId": request_id,
                       "query": {"className": class_name, "where": where, **extra}})
    answer = await client.recv()
    assert answer == {"op": "subscribed", "clientId": answer["clientId"], "requestId": request_id}, answer


def patient_where(world) -> dict:
    return {"patient": {"__type": "Pointer", "className": "Patient", "objectId": world.patient.id}}


async def test_create_update_enter_leave(api, lq_url):
    w = api.world
    owner = await open_client(lq_url, api.tokens["owner"])
    await subscribe(owner, 1, "MobilityScore", {**patient_where(w), "scoreValue": {"$gte": 50}})
    low = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=40)
    high = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=70)
    event = await owner.recv()
    assert event["op"] == "create" and event["requestId"] == 1 and event["object"]["objectId"] == high.id
    assert event["object"]["className"] == "MobilityScore" and event["object"]["createdAt"].endswith("Z")
    assert event["object"]["scoreDate"]["__type"] == "Date"
    # update: both before and after match; leave: only before; enter: only after (marking errors)
    await api.store.mark_score_in_error(principal=w.lead, score_id=high.id, reason="typo")
    event = await owner.recv()
    assert event["op"] == "update" and event["object"]["enteredInError"] is True
    assert event["original"]["enteredInError"] is False
    await owner.send({"op": "update", "requestId": 1, "query": {
        "className": "MobilityScore", "where": {**patient_where(w), "enteredInError": False}}})
    assert (await owner.recv())["op"] == "subscribed"
    await api.store.mark_score_in_error(principal=w.lead, score_id=low.id, reason="typo")
    event = await owner.recv()
    assert event["op"] == "leave" and event["object"]["objectId"] == low.id
    await owner.send({"op": "update", "requestId": 1, "query": {
        "className": "MobilityScore", "where": {**patient_where(w), "enteredInError": True, "scoreValue": {"$lt": 1000}}}})
    assert (await owner.recv())["op"] == "subscribed"
    await owner.send({"op": "unsubscribe", "requestId": 1})
    assert (await owner.recv())["op"] == "unsubscribed"
    await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=90)
    await owner.nothing()
    await owner.ws.close()


async def test_enter_on_patient_reassignment_and_leave_on_loss(api, lq_url):
    w = api.world
    owner = await open_client(lq_url, api.tokens["owner"])
    other = await open_client(lq_url, api.tokens["other_therapist"])
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=30)
    await subscribe(owner, 1, "Patient", {})
    await subscribe(owner, 2, "MobilityScore", patient_where(w))
    await subscribe(other, 7, "Patient", {"mobilityStatus": {"$exists": True}})
    await subscribe(other, 8, "MobilityScore", patient_where(w))
    await api.store.assign_therapist(principal=w.lead, patient_id=w.patient.id, therapist_id=w.other_therapist.user_id)
    events = sorted([(e["requestId"], e["op"], e["object"]["objectId"]) for e in [await owner.recv(), await owner.recv()]])
    assert events == [(1, "leave", w.patient.id), (2, "leave", score.id)]
    event = await other.recv()
    assert (event["requestId"], event["op"], event["object"]["objectId"]) == (7, "enter", w.patient.id)
    assert event["object"]["primaryTherapist"]["objectId"] == w.other_therapist.user_id
    # The patient-pinned subscription of the new therapist now receives the patient's scores.
    new = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=31)
    event = await other.recv()
    assert (event["requestId"], event["op"], event["object"]["objectId"]) == (8, "create", new.id)
    await owner.nothing()


async def test_unauthorized_subscriber_receives_nothing_and_viewer_gets_no_private_fields(api, lq_url):
    w = api.world
    outsider = await open_client(lq_url, api.tokens["outsider"])
    viewer = await open_client(lq_url, api.tokens["viewer"])
    lead = await open_client(lq_url, api.tokens["lead"])
    await subscribe(outsider, 1, "MobilityScore", {})
    await subscribe(outsider, 2, "Patient", {})
    await subscribe(viewer, 1, "MobilityScore", patient_where(w))
    await subscribe(viewer, 2, "SessionNote", {})
    await subscribe(viewer, 3, "Patient", {}, keys=["mobilityStatus"])
    await subscribe(lead, 1, "SessionNote", {})
    await api.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel", value=55,
                                 notes="private note")
    await api.store.add_note(principal=w.owner, patient_id=w.patient.id, session_type="review", text="secret text")
    await api.store.change_status(principal=w.owner, patient_id=w.patient.id, status="independent", reason=None)
    event = await viewer.recv()
    assert event["requestId"] == 1 and "notes" not in event["object"]
    event = await viewer.recv()
    assert event["requestId"] == 3 and event["op"] == "update"
    assert set(event["object"]) == {"className", "objectId", "createdAt", "updatedAt", "mobilityStatus"}
    assert (await lead.recv())["object"]["noteText"] == "secret text"
    await outsider.nothing()
    await viewer.nothing()


async def test_the_same_query_on_many_sockets_and_a_narrower_one_each_get_their_own_events(api, lq_url):
    """Subscribers with the same query share the matching of each event: each still gets every match,
    shaped for its own role, and a narrower filter on the same patient gets only its matches."""
    w = api.world
    where = patient_where(w)
    owner = await open_client(lq_url, api.tokens["owner"])
    viewer = await open_client(lq_url, api.tokens["viewer"])
    high = await open_client(lq_url, api.tokens["lead"])
    await subscribe(owner, 1, "MobilityScore", where)
    await subscribe(viewer, 1, "MobilityScore", dict(where))
    await subscribe(high, 1, "MobilityScore", {**where, "scoreValue": {"$gt": 50}})
    low_score = await api.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel",
                                             value=30, notes="private note")
    high_score = await api.store.record_score(principal=w.owner, patient_id=w.patient.id,
                                              score_type="barthel", value=70, notes="private note")
    for client in (owner, viewer):
        events = [await client.recv(), await client.recv()]
        assert [(e["op"], e["object"]["objectId"]) for e in events] == [
            ("create", low_score.id), ("create", high_score.id)]
        assert all(("notes" in e["object"]) == (client is owner) for e in events)
    event = await high.recv()
    assert (event["op"], event["object"]["objectId"], event["object"]["scoreValue"]) == ("create", high_score.id, 70)
    await high.nothing()


async def test_logout_ends_subscriptions_with_209(api, lq_url):
    w = api.world
    contributor = await open_client(lq_url, api.tokens["team_contributor"])
    await subscribe(contributor, 3, "MobilityScore", patient_where(w))
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=20)
    assert (await contributor.recv())["object"]["objectId"] == score.id
    r = await api.call("POST", "logout", "team_contributor")
    assert r.status_code == 200
    event = await contributor.recv()
    assert event["op"] == "leave" and event["object"]["objectId"] == score.id
    error = await contributor.recv()
    assert error["op"] == "error" and error["code"] == 209 and error["requestId"] == 3
    # The session is over, so is the socket: one 209 for the connection, then it closes.
    error = await contributor.recv()
    assert error["op"] == "error" and error["code"] == 209 and "requestId" not in error
    await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=21)
    await contributor.closed()


async def test_protocol_errors_never_drop_the_socket(api, lq_url):
    ws = await connect(lq_url)
    client = Client(ws)
    await client.send({"op": "subscribe", "requestId": 1, "query": {"className": "Patient"}})
    assert (await client.recv())["code"] == 2  # not connected
    for bad in ["not json", "[1,2]", '"x"', "{\"op\": 5}", "NaN", "x" * 70_000, "{" * 10_000]:
        await client.send(bad)
        answer = await client.recv()
        assert answer["op"] == "error" and answer["code"] in (1, 3), (bad[:20], answer)
    await client.send({"op": "dance"})
    assert (await client.recv())["code"] == 3
    await ws.send(b"\xff\xfe")
    assert (await client.recv())["code"] == 1
    await client.send({"op": "connect", "applicationId": APP_ID, "sessionToken": api.tokens["owner"]})
    assert (await client.recv())["op"] == "connected"
    await client.send({"op": "connect", "applicationId": APP_ID})
    assert (await client.recv())["code"] == 1
    bad_subscribes = [
        ({"requestId": "a", "query": {"className": "Patient"}}, 1),
        ({"requestId": 2, "query": {"className": "Patient", "fields": ["displayName"]}}, 1),
        ({"requestId": 2, "query": {"className": "Patient", "where": {"x": {"$nope": 1}}}}, 102),
        ({"requestId": 2, "query": {"className": "Patient", "where": {"displayName": {"$regex": 5}}}}, 102),
        ({"requestId": 2, "query": {"className": "Patient", "where": "x"}}, 1),
        ({"requestId": 2, "query": {"className": "Secret"}}, 119),
        ({"requestId": 2, "query": {"className": "Patient", "keys": ["nothing"]}}, 1),
        ({"requestId": 2, "query": "Patient"}, 1),
        ({"requestId": 2, "query": {"className": "Patient"}, "sessionToken": "r:bad"}, 209),
        ({"requestId": 2, "query": {"className": "Patient"}, "extra": 1}, 1),
    ]
    for body, code in bad_subscribes:
        await client.send({"op": "subscribe", **body})
        answer = await client.recv()
        assert answer["op"] == "error" and answer["code"] == code, (body, answer)
    await client.send({"op": "unsubscribe", "requestId": 99})
    assert (await client.recv())["code"] == 2
    await client.send({"op": "update", "requestId": 99, "query": {"className": "Patient"}})
    assert (await client.recv())["code"] == 2
    # Still serving: a good subscription works on the same socket.
    await subscribe(client, 5, "Patient", {})
    await api.store.change_status(principal=api.world.owner, patient_id=api.world.patient.id, status="dependent", reason=None)
    assert (await client.recv())["op"] == "update"
    await ws.close()


async def test_bad_session_and_bad_application_id_are_refused(api, lq_url):
    client = Client(await connect(lq_url))
    await client.send({"op": "connect", "applicationId": APP_ID, "sessionToken": "r:nope"})
    answer = await client.recv()
    assert answer["op"] == "error" and answer["code"] == 209 and answer["reconnect"] is False
    client = Client(await connect(lq_url))
    await client.send({"op": "connect", "applicationId": "wrong"})
    answer = await client.recv()
    assert answer["op"] == "error" and answer["code"] == 4
    anonymous = await open_client(lq_url, None)
    await anonymous.send({"op": "subscribe", "requestId": 1, "query": {"className": "Patient"}})
    assert (await anonymous.recv())["code"] == 209


async def test_a_slow_socket_does_not_hold_back_the_others(api, lq_url):
    """One client never reads; another still gets every event promptly."""
    w = api.world
    stuck = await connect(lq_url, max_queue=1)
    await stuck.send(json.dumps({"op": "connect", "applicationId": APP_ID, "sessionToken": api.tokens["lead"]}))
    await stuck.send(json.dumps({"op": "subscribe", "requestId": 1, "query": {"className": "MobilityScore"}}))
    reader = await open_client(lq_url, api.tokens["owner"])
    await subscribe(reader, 1, "MobilityScore", patient_where(w))
    long_notes = "n" * 15_000  # large events fill the stuck socket's buffers quickly
    for i in range(120):
        await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                     value=i % 100, notes=long_notes)
        event = await reader.recv(timeout=2)
        assert event["op"] == "create"
    await stuck.close()


async def test_a_socket_that_falls_behind_catches_up_with_every_object_once(api, lq_url, monkeypatch):
    """Past its send queue, a socket's unsent events are dropped and its view re-read: once its client
    reads again it has every new score, each exactly once, and the other sockets were never held back."""
    from starlette.websockets import WebSocket

    from dashboard.api import live_query

    monkeypatch.setattr(live_query, "SEND_QUEUE", 4)
    w = api.world
    behind = await open_client(lq_url, api.tokens["owner"])
    await subscribe(behind, 1, "MobilityScore", {})
    # From here the server cannot write to this socket (as when its client stops reading and the
    # buffers are full) until `reading` is set.
    port = behind.ws.local_address[1]
    reading = asyncio.Event()
    send_text = WebSocket.send_text

    async def stalled(self: WebSocket, data: str) -> None:
        if self.client is not None and self.client.port == port:
            await reading.wait()
        await send_text(self, data)

    monkeypatch.setattr(WebSocket, "send_text", stalled)
    watcher = await open_client(lq_url, api.tokens["lead"])
    await subscribe(watcher, 1, "MobilityScore", {})
    created = []
    for i in range(12):
        score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                             value=i)
        created.append(score.id)
        assert (await watcher.recv())["object"]["objectId"] == score.id  # the others are not held back
    reading.set()
    received: dict[str, list[str]] = {}
    while sum(len(ops) for ops in received.values()) < len(created):
        message = await behind.recv()
        received.setdefault(message["object"]["objectId"], []).append(message["op"])
    ops = [received.get(oid) for oid in created]
    assert all(o is not None and len(o) == 1 and o[0] in ("create", "enter") for o in ops), ops
    assert any(o == ["enter"] for o in ops)  # some came through the re-read, not as their own event
    await behind.nothing()


async def test_a_pinned_subscription_is_not_visited_by_another_class_of_its_patient(api, lq_url, monkeypatch):
    """A live query on one patient's scores is routed by patient and class: that patient's notes
    never reach its handler (zero calls), its scores do."""
    from dashboard.api import live_query

    calls: list[str] = []
    on_delivery = live_query.Connection._on_delivery

    def counting(self, sub, delivery):
        calls.append(delivery.class_name)
        return on_delivery(self, sub, delivery)

    monkeypatch.setattr(live_query.Connection, "_on_delivery", counting)
    w = api.world
    owner = await open_client(lq_url, api.tokens["owner"])
    await subscribe(owner, 1, "MobilityScore", patient_where(w))
    await api.store.add_note(principal=w.lead, patient_id=w.patient.id, session_type="review", text="Calm.")
    assert calls == []
    score = await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel", value=50)
    event = await owner.recv()
    assert (event["op"], event["object"]["objectId"]) == ("create", score.id)
    assert calls == ["MobilityScore"]
    await owner.ws.close()


# -- the socket write in the delivering step (a fenced fast path) ---------------------------------
def test_the_socket_write_fast_path_in_use_is_the_one_for_this_python():
    """3.12+: the public eager task; CPython 3.11: the hand-stepped coroutine, which passed its check
    at import. Only if that check fails is every write a plain task (slower, still correct)."""
    import sys

    from dashboard.api import live_query

    expected = live_query.EAGER_TASK if sys.version_info >= (3, 12) else live_query.HAND_STEPPED
    assert live_query.SEND_PATH == expected
    assert live_query._hand_stepping_works() is (sys.version_info[:2] == (3, 11))
    assert fast_paths.active()[live_query.FAST_PATH] == expected  # what the start-up log said


def test_the_socket_write_fast_path_can_be_switched_off(monkeypatch):
    from dashboard.api import live_query

    monkeypatch.setenv(fast_paths.ENV, live_query.FAST_PATH)
    assert live_query._choose_send_path() == live_query.PLAIN_TASK
    monkeypatch.delenv(fast_paths.ENV)
    assert live_query._choose_send_path() == live_query.SEND_PATH


async def test_every_write_path_sends_in_order_and_reports_a_failure():
    from dashboard.api import live_query

    paths = [live_query.PLAIN_TASK, live_query.SEND_PATH]
    for path in dict.fromkeys(paths):
        sent: list[str] = []
        gate = asyncio.Event()

        async def write(text: str, wait: bool = False) -> None:
            if wait:
                await gate.wait()
            sent.append(text)

        first = live_query.start_now(write("now"), path)
        if path == live_query.PLAIN_TASK:
            assert first is not None
            await first
        else:
            assert first is None  # written in this step: no task at all
        assert sent == ["now"]
        stalled = live_query.start_now(write("later", wait=True), path)
        assert stalled is not None and not stalled.done() and sent == ["now"]
        gate.set()
        await stalled
        assert sent == ["now", "later"]

        async def broken() -> None:
            raise ConnectionError("gone")

        try:
            task = live_query.start_now(broken(), path)
            if task is not None:
                await task
        except ConnectionError:
            pass
        else:
            raise AssertionError(f"{path}: a failed write went unnoticed")


async def test_live_queries_work_on_the_plain_task_fallback(api, lq_url, monkeypatch):
    from dashboard.api import live_query

    monkeypatch.setattr(live_query, "SEND_PATH", live_query.PLAIN_TASK)
    w = api.world
    owner = await open_client(lq_url, api.tokens["owner"])
    await subscribe(owner, 1, "MobilityScore", patient_where(w))
    ids = [(await api.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="barthel",
                                         value=v)).id for v in range(5)]
    assert [(await owner.recv())["object"]["objectId"] for _ in ids] == ids
    await owner.ws.close()
