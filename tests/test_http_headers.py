"""Browser hardening on a real server (REVIEW-SECURITY M4, L9, H4's frame size): the headers on every
kind of answer, HSTS only with secure cookies, no banners, one not-found answer, bounded frames."""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import uuid

import httpx
import pytest
from nicegui.version import __version__ as NICEGUI_VERSION

from dashboard.security_headers import CONTENT_SECURITY_POLICY, HSTS, NOT_FOUND_HTML
from dashboard.server import WS_MAX_SIZE
from tests.support import make_live_server

APP_ID = "ot-tracker"  # the live server's default OT_PARSE_APP_ID
DEMO_PASSWORD = "demo-password-2026"
ASSET = f"/_nicegui/{NICEGUI_VERSION}/static/nicegui.js"
ANSWERS = {  # one of each kind the root app serves
    "page": "/login",
    "asset": ASSET,
    "parse": "/parse/health",
    "status": "/status",
    "404": "/no-such-page",
}


def get(server, path: str, **kwargs) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"X-Parse-Application-Id": APP_ID}, **kwargs)


def signed_in(server, username: str) -> httpx.Client:
    """A client holding the page session cookie of `username`."""
    client = httpx.Client(base_url=server.url)
    r = client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 303 and "error" not in r.headers["location"], r.headers
    return client


def api_token(server, username: str) -> str:
    r = httpx.post(f"{server.url}/parse/login", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": username, "password": DEMO_PASSWORD})
    r.raise_for_status()
    return r.json()["sessionToken"]


def patient_object_id(server, patient_number: str) -> str:
    import sqlite3

    with sqlite3.connect(server.data_dir / "ot-tracker.sqlite3") as db:
        return db.execute("SELECT id FROM patients WHERE patient_id = ?", (patient_number,)).fetchone()[0]


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory):
    server = make_live_server(tmp_path_factory.mktemp("secure"), OT_SECURE_COOKIES="1")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ANSWERS)
def test_m4_every_kind_of_answer_carries_the_hardening_headers(live_server, kind):
    r = get(live_server, ANSWERS[kind])
    assert r.status_code == {"404": 404}.get(kind, 200), r.text[:200]
    h = r.headers
    assert h["content-security-policy"] == CONTENT_SECURITY_POLICY
    directives = dict(part.split(" ", 1) for part in h["content-security-policy"].split("; "))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin"
    assert {"camera=()", "microphone=()", "geolocation=()", "payment=()"} <= set(h["permissions-policy"].split(", "))
    assert "strict-transport-security" not in h  # plain HTTP: secure cookies are off
    assert "server" not in h
    assert [name for name, _ in r.headers.raw if name.lower() == b"content-security-policy"] == \
        [b"content-security-policy"]  # one of each, never two


def test_m4_patient_data_and_pages_are_never_stored_but_assets_stay_cacheable(live_server):
    token = api_token(live_server, "lead")
    api = httpx.get(f"{live_server.url}/parse/classes/Patient",
                    headers={"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token})
    assert api.status_code == 200 and api.json()["results"]
    assert api.headers["cache-control"] == "no-store"
    lead = signed_in(live_server, "lead")
    page = lead.get("/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert get(live_server, "/status").headers["cache-control"] == "no-store"
    asset = get(live_server, ASSET).headers["cache-control"]
    assert "immutable" in asset and "no-store" not in asset  # NiceGUI's year-long asset caching stays


def test_m4_hsts_only_with_secure_cookies(secure_server, live_server):
    for path in ("/status", "/login", "/no-such-page", "/parse/health", ASSET):
        assert get(secure_server, path).headers["strict-transport-security"] == HSTS, path
        assert "strict-transport-security" not in get(live_server, path).headers, path
    assert HSTS == "max-age=31536000; includeSubDomains"


def test_l9_no_server_or_version_banner(live_server):
    therapist = signed_in(live_server, "therapist")
    answers = [get(live_server, p) for p in ANSWERS.values()] + [therapist.get("/"), therapist.get("/admin")]
    for r in answers:
        assert "server" not in r.headers, r.url
        banner = " ".join(f"{k}: {v}" for k, v in r.headers.items()).lower()
        assert "uvicorn" not in banner and NICEGUI_VERSION not in banner, r.url


def test_l9_every_not_found_is_one_and_the_same_answer(live_server):
    """Missing routes, /admin for a non-lead, a patient that does not exist and one that may not be
    read: the same status and the same bytes, with nothing of NiceGUI's debug text, and no log line."""
    therapist = signed_in(live_server, "therapist")
    unreadable = patient_object_id(live_server, "DEMO-0005")  # therapist2's; the demo therapist is not on its team
    marker = f"probe-{uuid.uuid4().hex[:8]}"
    answers = {
        "missing route": httpx.get(f"{live_server.url}/no-such-page-{marker}?where=DEMO-0002"),
        "missing route, signed in": therapist.get(f"/{marker}"),
        "non-lead /admin": therapist.get("/admin"),
        "unknown patient": therapist.get("/patient/NoSuchId00"),
        "unreadable patient": therapist.get(f"/patient/{unreadable}"),
        "unknown NiceGUI asset": httpx.get(f"{live_server.url}/_nicegui/{NICEGUI_VERSION}/libraries/{marker}"),
        "preflight": httpx.options(f"{live_server.url}/parse/classes/Patient?where=DEMO-0002-{marker}"),
    }
    assert {name: r.status_code for name, r in answers.items()} == {name: 404 for name in answers}
    assert {name: r.text for name, r in answers.items()} == {name: NOT_FOUND_HTML for name in answers}
    assert "HTTPException" not in NOT_FOUND_HTML
    assert therapist.get(f"/patient/{patient_object_id(live_server, 'DEMO-0002')}").status_code == 200
    log = (live_server.data_dir / "server.log").read_text()
    assert marker not in log


# -- websocket frames --------------------------------------------------------------------------------
def _open_websocket(server, path: str) -> socket.socket:
    """A raw websocket handshake, so a test can send a frame header without its payload."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, response
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def _close_code(sock: socket.socket) -> int | None:
    """Reads frames until a close frame; returns its code (None if the socket just ends)."""
    buffer = b""
    while True:
        while len(buffer) < 2 or len(buffer) < 2 + (buffer[1] & 0x7F):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
        assert length < 126, "the server's frames here are small"
        payload, buffer = buffer[2:2 + length], buffer[2 + length:]
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


@pytest.mark.parametrize("path", ["/parse", "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"])
def test_h4_a_frame_over_the_limit_is_refused_from_its_header(live_server, path):
    """Live queries and NiceGUI's socket.io alike: a text frame that declares one byte more than
    WS_MAX_SIZE is refused with 1009 (message too big) although none of its payload was sent."""
    sock = _open_websocket(live_server, path)
    try:
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", WS_MAX_SIZE + 1) + os.urandom(4)
        sock.sendall(header + b"x" * 16)  # a few payload bytes, never the rest
        assert _close_code(sock) == 1009
    finally:
        sock.close()


async def test_h4_the_limit_sits_between_the_protocols_longest_message_and_one_byte_more(live_server):
    """The transport never refuses what the live-query protocol would judge: its longest message
    (64,000 characters) of 4-byte characters is WS_MAX_SIZE bytes, arrives and is answered in the
    protocol; one character more gets the protocol's own size error; one byte more than WS_MAX_SIZE
    is a transport close (1009)."""
    import websockets

    from dashboard.api.live_query import MAX_MESSAGE_CHARS

    envelope = json.dumps({"op": "connect", "applicationId": APP_ID, "sessionToken": ""})
    longest = envelope[:-2] + "\U0001F600" * (MAX_MESSAGE_CHARS - len(envelope)) + '"}'
    assert len(longest) == MAX_MESSAGE_CHARS and len(longest.encode()) <= WS_MAX_SIZE
    url = live_server.url.replace("http", "ws") + "/parse"
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(longest + " ")
        answer = json.loads(await ws.recv())
        assert answer["op"] == "error" and str(MAX_MESSAGE_CHARS) in answer["error"], answer
        await ws.send(longest)
        answer = json.loads(await ws.recv())
        assert answer["op"] == "error" and answer["code"] != 1, answer  # judged: not a valid session
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("x" * (WS_MAX_SIZE + 1))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_h4_engineio_takes_the_same_limit_for_long_polling(live_server):
    """engine.io checks a polling POST's Content-Length against the same figure, and tells the
    socket.io client, which splits its batches by it."""
    r = httpx.get(f"{live_server.url}/_nicegui_ws/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert r.status_code == 200 and r.text.startswith("0"), r.text[:200]
    assert json.loads(r.text[1:])["maxPayload"] == WS_MAX_SIZE
