"""Security review on a real server process: L10 (X-Forwarded-For only from configured proxies) and
L8 (a page's socket is bound to the session that loaded the page)."""
from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import socketio

from tests.support import make_live_server

APP_ID = "ot-tracker"
DEMO_PASSWORD = "demo-password-2026"


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """Three sign-ins per account per minute, so fifteen per address."""
    server = make_live_server(tmp_path_factory.mktemp("limited"), OT_LOGIN_RATE_PER_MINUTE="3")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory):
    server = make_live_server(tmp_path_factory.mktemp("proxied"), OT_LOGIN_RATE_PER_MINUTE="3",
                              OT_TRUSTED_PROXIES="127.0.0.1")
    server.start()
    yield server
    server.stop()


def _guesses(server, count: int) -> list[int]:
    statuses = []
    with httpx.Client(base_url=server.url, headers={"X-Parse-Application-Id": APP_ID}) as client:
        for i in range(count):
            r = client.post("/parse/login", json={"username": f"nobody{i}", "password": "wrong password here"},
                            headers={"X-Forwarded-For": f"198.51.100.{i}"})
            statuses.append(r.status_code)
    return statuses


def test_l10_forwarded_for_is_not_believed_by_default(limited_server):
    statuses = _guesses(limited_server, 20)
    assert statuses[:15] == [404] * 15 and set(statuses[15:]) == {429}


def test_l10_forwarded_for_is_believed_from_a_configured_proxy(proxied_server):
    assert _guesses(proxied_server, 20) == [404] * 20  # twenty addresses, one guess each


def _page(server, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url)
    r = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 303 and "error" not in r.headers["location"]
    html = client.get("/equipment").text
    client_id = re.search(r"'client_id': '([^']+)'", html)
    assert client_id, html[:500]
    return client, client_id.group(1)


async def _handshake(server, client_id: str, cookie: str | None) -> bool:
    sio = socketio.AsyncClient(reconnection=False)
    query = f"client_id={client_id}&tab_id=tab-1&document_id=doc-1&implicit_handshake=true&next_message_id=0"
    try:
        await sio.connect(f"{server.url}?{query}", socketio_path="/_nicegui_ws/socket.io",
                          headers={"Cookie": cookie} if cookie else {}, transports=["websocket"],
                          wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return False
    await sio.disconnect()
    return True


def test_l8_a_stolen_client_id_alone_drives_nothing(proxied_server):
    server = proxied_server  # its own address bucket is untouched by the guesses above
    owner, client_id = _page(server, "therapist")
    other, _ = _page(server, "assistant")
    cookie_of = lambda c: "; ".join(f"{k}={v}" for k, v in c.cookies.items())  # noqa: E731
    assert not asyncio.run(_handshake(server, client_id, None))  # no cookie
    assert not asyncio.run(_handshake(server, client_id, cookie_of(other)))  # another session
    assert asyncio.run(_handshake(server, client_id, cookie_of(owner)))  # the page's own session


def test_status_answers_head_for_load_balancers(limited_server):
    r = httpx.head(f"{limited_server.url}/status")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
