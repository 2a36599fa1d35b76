"""Assembles the web app: the store's lifecycle, the health page, the API and the pages.

The Parse API and /status live on a bare FastAPI app; NiceGUI's pages are mounted beneath it. An
API call or a live-query push then passes through no page middleware (sessions, gzip, cache
headers): each push to a thousand sockets would otherwise pay for them a thousand times. The one
layer around everything is dashboard.security_headers (HTTP responses only; websockets pass
straight through).
"""
from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from nicegui import app, core, ui
from sqlalchemy import text

from dashboard import runtime
from dashboard.api.live_query import MAX_MESSAGE_CHARS
from dashboard.api.rest import Endpoint, ParseLane
from dashboard.config import Settings
from dashboard.db import claim_sqlite_file
from dashboard.fail_closed import FailClosed
from dashboard.security_headers import SecurityHeaders, not_found

log = logging.getLogger("ot_tracker")
# uvicorn's maintained sans-I/O binding of `websockets` (NiceGUI's own ui.run picks wsproto).
WEBSOCKETS = "websockets-sansio"
# The largest websocket message the server reads, in bytes, for every socket it serves (live queries
# at /parse and NiceGUI's socket.io alike). A larger frame, or fragments adding up to more, is
# refused from its header, before its payload is read (close 1009); uvicorn's default is 16 MiB.
# It is the transport's bound, so it lives with the transport here, derived from the largest
# message the live-query protocol accepts: MAX_MESSAGE_CHARS characters are at most 4 UTF-8 bytes
# each, so the transport never refuses a message the protocol would take (which then gets the
# protocol's own error), and never holds more than 256,000 bytes per socket. NiceGUI's messages
# from the browser are far below it: the largest is a text field's whole value, and the longest
# field (the session note, maxlength 10,000) is at most 60,000 bytes as JSON (6 bytes for an
# escaped control character); engine.io's own cap, also applied over HTTP long-polling, is set to
# the same figure (its default, 1,000,000 bytes, is checked only after a message was read whole).
WS_MAX_SIZE = 4 * MAX_MESSAGE_CHARS


def _current() -> bool:
    try:
        return runtime.store().feed.current
    except RuntimeError:  # not started yet: nothing is served before the lifespan starts it
        return True


class RootApp(FastAPI):
    """The root app, with the security headers outermost: around FastAPI's own error middleware,
    so its plain "Internal Server Error" answers carry them too. Inside them, requests fail closed
    while the change feed cannot confirm it is current (dashboard/fail_closed.py)."""

    def __init__(self, *, hsts: bool, **kwargs: object) -> None:
        self.hsts = hsts
        self.parse_endpoint: Endpoint | None = None  # set by build(); REST then bypasses the stack
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def build_middleware_stack(self):  # noqa: ANN201 - Starlette's ASGIApp
        inner = super().build_middleware_stack()
        if self.parse_endpoint is not None:
            inner = ParseLane(inner, self.parse_endpoint)
        return SecurityHeaders(FailClosed(inner, _current), hsts=self.hsts)


async def status() -> JSONResponse:
    """Health: the database answers and this instance holds the whole change log (else 503, and
    the balancer drains it). No patient data."""
    try:
        current = runtime.store()
        async with current.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    # The change log position this process has applied (dashboard/changes.py); numbers only.
    changes = current.feed.status()
    body = {"status": "ok", "database": current.db.dialect, "instance": current.settings.instance_id,
            "subscriptions": current.hub.subscription_count, "changes": changes}
    if not changes["current"]:
        return JSONResponse({**body, "status": "unavailable", "reason": "catching up with the change log"},
                            status_code=503)
    return JSONResponse(body)


def build(settings: Settings) -> FastAPI:
    """The whole ASGI app: /status and /parse first, then NiceGUI's pages at /."""
    import pages
    from dashboard import api

    # HSTS only where the app is served over HTTPS, which is what secure cookies say.
    root = RootApp(hsts=settings.secure_cookies, openapi_url=None, docs_url=None, redoc_url=None)
    root.add_api_route("/status", status, methods=["GET", "HEAD"])  # HEAD: load balancers probe with it
    root.parse_endpoint = api.mount(root, settings, runtime.store)

    app.on_startup(lambda: runtime.start(settings))
    app.on_startup(runtime.settle_garbage_collector)  # the serving process only, not test harnesses
    app.on_shutdown(runtime.stop)
    pages.register(settings)
    ui.run_with(
        root, title="OT Tracker", storage_secret=settings.secret_key, favicon="🩺",
        show_welcome_message=False, language="en-GB",  # <html lang>, for screen readers (WCAG 3.1.1)
        # NiceGUI's own session cookie: Secure with secure cookies, and gone with the browser session.
        session_middleware_kwargs={"https_only": settings.secure_cookies, "same_site": "lax", "max_age": None},
    )
    # One not-found answer for every page path (missing route, non-lead /admin, unreadable patient),
    # replacing NiceGUI's per-request error page; /parse keeps its Parse-style 404 (code 101).
    app.add_exception_handler(404, not_found)
    core.sio.eio.max_http_buffer_size = WS_MAX_SIZE
    return root


def serve(settings: Settings) -> None:
    held = claim_sqlite_file(settings.database_url)  # noqa: F841 - kept: the lock lives while we serve
    # X-Forwarded-For is believed only from the configured proxies (uvicorn's default trusts
    # 127.0.0.1: anything on the host could choose its address for the per-address limits).
    uvicorn.run(build(settings), host=settings.host, port=settings.port, ws=WEBSOCKETS,
                ws_max_size=WS_MAX_SIZE, server_header=False, log_level="warning", access_log=False,
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=",".join(settings.trusted_proxies) or "",
                # A stuck long-poll (engine.io) must not hold a stop for ever.
                timeout_graceful_shutdown=10)
