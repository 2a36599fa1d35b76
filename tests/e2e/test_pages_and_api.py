"""Pages and the Parse API share one store and one hub: a change through either reaches the other live.

Real Chromium on the real patient page; the API side speaks the wire protocol of PARSE-API.md.
"""
from __future__ import annotations

import asyncio
import json
import threading
import uuid

import httpx
import pytest
import websockets
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, just_now, patient_object_id, sign_in

pytestmark = pytest.mark.browser
APP_ID = "ot-tracker"
PUSH = 5_000  # ms: only the failure bound


def api_login(server, username: str) -> str:
    r = httpx.post(f"{server.url}/parse/login", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": username, "password": DEMO_PASSWORD})
    r.raise_for_status()
    return r.json()["sessionToken"]


def create_score(server, pid: str, value: int, notes: str, iso: str) -> None:
    """A Berg score saved by the demo therapist through the Parse REST API."""
    token = api_login(server, "therapist")
    r = httpx.post(f"{server.url}/parse/classes/MobilityScore",
                   headers={"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token},
                   json={"patient": {"__type": "Pointer", "className": "Patient", "objectId": pid},
                         "scoreType": "berg", "scoreValue": value, "notes": notes,
                         "scoreDate": {"__type": "Date", "iso": iso}})
    assert r.status_code == 201, r.text


def test_a_score_created_through_the_api_appears_on_an_open_patient_page(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0004")
    lead = sign_in(browser, e2e_server, "lead", f"/patient/{pid}")
    marker = f"api-{uuid.uuid4().hex[:8]}"
    create_score(e2e_server, pid, 44, marker, just_now())
    expect(lead.locator("[data-testid=score-list]")).to_contain_text(marker, timeout=PUSH)
    lead.context.close()


async def _await_create(url: str, token: str, pid: str, ready: threading.Event) -> dict:
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"op": "connect", "applicationId": APP_ID, "sessionToken": token}))
        assert json.loads(await ws.recv())["op"] == "connected"
        await ws.send(json.dumps({"op": "subscribe", "requestId": 1, "query": {
            "className": "MobilityScore",
            "where": {"patient": {"__type": "Pointer", "className": "Patient", "objectId": pid}}}}))
        assert json.loads(await ws.recv())["op"] == "subscribed"
        ready.set()
        return json.loads(await asyncio.wait_for(ws.recv(), PUSH / 1000 * 3))


def test_a_score_saved_on_a_page_reaches_an_api_live_query_subscriber(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0004")
    token = api_login(e2e_server, "lead")
    therapist = sign_in(browser, e2e_server, "therapist", f"/patient/{pid}")
    ready, received = threading.Event(), {}
    url = e2e_server.url.replace("http", "ws") + "/parse"

    def listen() -> None:  # Playwright's sync API owns this thread's event loop: listen in another
        try:
            received["event"] = asyncio.run(_await_create(url, token, pid, ready))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            received["error"] = exc
            ready.set()

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(10) and "error" not in received, received
    therapist.locator("input[data-testid=score-value]").fill("71")
    therapist.locator("[data-testid=score-save]").click()
    listener.join(PUSH / 1000 * 3)
    event = received.get("event")
    assert event is not None, received
    assert event["op"] == "create" and event["requestId"] == 1
    assert event["object"]["className"] == "MobilityScore" and event["object"]["scoreValue"] == 71
    assert event["object"]["patient"]["objectId"] == pid
    therapist.context.close()


def _scores_shown(page) -> tuple[list[str], list[float]]:
    """The score rows' text and the Berg chart's values, as the page shows them."""
    rows = page.locator("[data-testid=score-list] .pt-list-row").all_inner_texts()
    values = page.evaluate("""() => {
        const el = document.querySelector('.chart-berg');
        return el ? getElement(el.id.slice(1)).chart.getOption().series[0].data.map(p => p[1]) : [];
    }""")
    return rows, values


def test_a_score_saved_while_the_pages_socket_is_down_shows_once_it_reconnects(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0004")
    lead = sign_in(browser, e2e_server, "lead", f"/patient/{pid}")
    expect(lead.locator("body[data-live=live]")).to_have_count(1, timeout=PUSH)
    # A network blip: the socket drops and socket.io reconnects by itself 1.5 s later.
    lead.evaluate("""() => { const m = window.socket.io;
        m.reconnectionDelay(1500); m.reconnectionDelayMax(1500); m.engine.close(); }""")
    expect(lead.locator("body[data-live=reconnecting]")).to_have_count(1, timeout=PUSH)
    marker = f"blip-{uuid.uuid4().hex[:8]}"
    create_score(e2e_server, pid, 47, marker, just_now())
    expect(lead.locator("body[data-live=live]")).to_have_count(1, timeout=PUSH * 2)
    expect(lead.locator("[data-testid=score-list]")).to_contain_text(marker, timeout=PUSH)
    live = _scores_shown(lead)
    assert 47 in live[1]
    lead.reload()
    expect(lead.locator("[data-testid=score-list]")).to_contain_text(marker, timeout=PUSH)
    assert _scores_shown(lead) == live
    lead.context.close()
