"""503 for access-checked requests while this instance cannot confirm it holds the whole change log.

On PostgreSQL every instance applies the others' commits from the change log (dashboard/changes.py).
An instance cut off from the database, or whose reads of the log stall, would otherwise go on
answering from a stale access index: a session logged out elsewhere, or a therapist removed from a
care team elsewhere, would keep access here. So, while `ChangeFeed.current` is false, every page,
/parse, /graphql and websocket request answers 503 (with Retry-After), and /status answers 503 too,
which makes the load balancer drain the instance (deploy/haproxy.cfg). NiceGUI's static assets hold
nothing private and pass. SQLite is one process and always current: the check costs one attribute
read and one clock call per request.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from dashboard.security_headers import ASGIApp, Receive, Scope, Send

RETRY_AFTER_SECONDS = 5
PASSING_PREFIXES = ("/_nicegui/", "/favicon.ico", "/status")  # /status answers 503 itself, with detail
API_PREFIXES = ("/parse", "/graphql", "/fhir")
API_BODY = json.dumps({"code": 1, "error": "This server is catching up with the others; try again shortly."}).encode()
PAGE_BODY = (b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>OT Tracker</title></head>"
             b"<body><main><h1>OT Tracker is catching up</h1><p>This server is reconnecting. "
             b"Try again in a few seconds.</p></main></body></html>")
# An application-level close before the handshake completes: uvicorn answers the upgrade with 403.
TRY_AGAIN_LATER = 1013


class FailClosed:
    """ASGI middleware: `is_current()` false → 503 for everything access-checked."""

    __slots__ = ("app", "is_current")

    def __init__(self, app: ASGIApp, is_current: Callable[[], bool]) -> None:
        self.app = app
        self.is_current = is_current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" or self.is_current() or scope["path"].startswith(PASSING_PREFIXES):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})
            return
        api = scope["path"].startswith(API_PREFIXES)
        body = API_BODY if api else PAGE_BODY
        content_type = b"application/json" if api else b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]})
        await send({"type": "http.response.body", "body": body})
