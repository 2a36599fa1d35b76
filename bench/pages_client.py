"""A headless NiceGUI page client: loads a page over HTTP, then speaks NiceGUI's socket.io protocol.

What a browser does, minus rendering: GET the page (with the sign-in cookie), read the client id and
socket query from the HTML, connect to /_nicegui_ws/socket.io over websocket with that query
(implicit handshake), and receive `update` messages. Real Chromium pages are used beside these to
check that the headless clients see the same updates at about the same time.
"""
from __future__ import annotations

import ast
import asyncio
import json
import re
import time
import uuid
from urllib.parse import urlencode

import aiohttp
import socketio

from bench.seed import PASSWORD

# NiceGUI's index.html: `prefix: "...",` then `query: {...},` (page content may say "query:" too).
QUERY_RE = re.compile(r'prefix: "[^"]*",\s*query:\s*(\{.*?\}),\s*\n')
LOGIN_PATHS = ("/login",)


async def login_cookies(session: aiohttp.ClientSession, url: str, username: str) -> dict[str, str] | None:
    """Signs in through the pages' POST route; the session's cookie jar keeps the cookie.
    None when no sign-in route answers with a cookie (the pages are not there yet)."""
    for path in LOGIN_PATHS:
        try:
            async with session.post(url + path, data={"username": username, "password": PASSWORD},
                                    allow_redirects=False) as response:
                await response.read()
                if response.status in (200, 302, 303, 307) and response.cookies:
                    return {k: v.value for k, v in response.cookies.items()}
        except aiohttp.ClientError:
            continue
    return None


class PageClient:
    """One open page. `updates` records (perf_counter, raw text) of each message after `arm()`."""

    def __init__(self, url: str, path: str, cookies: dict[str, str], marker_log: "MarkerLog"):
        self.url = url
        self.path = path
        self.cookies = cookies
        self.log = marker_log
        self.sio: socketio.AsyncClient | None = None
        self.ws_http: aiohttp.ClientSession | None = None
        self.client_id = ""
        self.messages = 0
        self.disconnect_reason = ""
        self.disconnected_at: float | None = None  # the socket dropped (no reconnection here, unlike a browser)

    async def open(self, http: aiohttp.ClientSession, timeout: float = 30) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        async with http.get(self.url + self.path, headers={"Cookie": cookie}, allow_redirects=False) as response:
            html = await response.text()
            if response.status != 200:
                raise RuntimeError(f"page {self.path}: HTTP {response.status}")
        match = QUERY_RE.search(html)
        if not match:
            raise RuntimeError(f"page {self.path}: no socket query in the HTML")
        # Rendered as a Python dict literal (single quotes, True), not JSON.
        query = ast.literal_eval(match.group(1))
        self.client_id = query["client_id"]
        query.update(document_id=str(uuid.uuid4()), tab_id=str(uuid.uuid4()), old_tab_id="",
                     implicit_handshake="true")
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query.items()}
        # Its own session: engine.io moves the Cookie header into the session's jar, so clients
        # sharing one would connect their sockets with whichever member's cookie came last.
        self.ws_http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self.ws_http)
        for name in ("update", "notify", "run_javascript"):
            self.sio.on(name, self._handler(name))
        self.sio.on("disconnect", self._on_disconnect)
        await asyncio.wait_for(self.sio.connect(
            f"{self.url}?{urlencode(query)}", socketio_path="/_nicegui_ws/socket.io",
            transports=["websocket"], headers={"Cookie": cookie}, wait_timeout=timeout), timeout)

    def _handler(self, name: str):
        async def handle(data=None) -> None:  # noqa: ANN001
            at = time.perf_counter()
            self.messages += 1
            self.log.seen(self, json.dumps(data, default=str) if data is not None else "", at)
        return handle

    async def _on_disconnect(self, reason=None) -> None:  # noqa: ANN001
        if self.disconnected_at is None:
            self.disconnected_at = time.perf_counter()
            ws = getattr(getattr(self.sio, "eio", None), "ws", None)
            code = getattr(ws, "close_code", None)
            error = ws.exception() if ws is not None else None
            self.disconnect_reason = f"{reason} (websocket close code {code}{f', {error!r}' if error else ''})"

    async def close(self) -> None:
        if self.sio is not None:
            try:
                await asyncio.wait_for(self.sio.disconnect(), 5)
            except Exception:  # noqa: BLE001 - closing a benchmark client
                pass
        if self.ws_http is not None:
            await self.ws_http.close()


class MarkerLog:
    """First time each client received a message containing each marker armed so far.

    Earlier markers stay watched after their wait window, so an update that arrives late is told
    apart from one that never arrives."""

    def __init__(self) -> None:
        self.marker: str | None = None
        self.arrivals: dict[str, dict[int, float]] = {}  # marker -> client -> first arrival
        self.expected = 0
        self.done = asyncio.Event()
        self.changed = asyncio.Event()

    @property
    def first(self) -> dict[int, float]:
        """The current marker's arrivals."""
        return self.arrivals.get(self.marker or "", {})

    def arm(self, marker: str, expected: int) -> None:
        self.marker, self.expected = marker, expected
        self.arrivals[marker] = {}
        self.done.clear()

    def seen(self, client: PageClient, text: str, at: float) -> None:
        for marker, got in self.arrivals.items():
            if marker in text and id(client) not in got:
                got[id(client)] = at
                self.changed.set()
                if marker == self.marker and len(got) >= self.expected:
                    self.done.set()

    async def settle(self, markers: list[str], expected: int, timeout: float) -> None:
        """Waits until every marker reached `expected` clients, or `timeout` passes."""
        deadline = time.perf_counter() + timeout
        while any(len(self.arrivals[m]) < expected for m in markers):
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return
