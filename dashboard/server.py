"""Assembles the web app: the store's lifecycle, the health page, the API and the pages.

The Parse API and /status live on a bare FastAPI app; NiceGUI's pages are mounted beneath it. An
API call or a live-query push then passes through no page middleware (sessions, gzip, cache
headers): each push to a thousand sockets would otherwise pay for them a thousand times.
"""
from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from nicegui import app, ui
from sqlalchemy import text

from dashboard import runtime
from dashboard.config import Settings

log = logging.getLogger("ot_tracker")
# uvicorn's maintained sans-I/O binding of `websockets` (NiceGUI's own ui.run picks wsproto).
WEBSOCKETS = "websockets-sansio"


async def status() -> JSONResponse:
    """Health: the database answers and the hub is up. No patient data."""
    try:
        current = runtime.store()
        async with current.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
    return JSONResponse({
        "status": "ok",
        "database": current.db.dialect,
        "subscriptions": current.hub.subscription_count,
    })


def build(settings: Settings) -> FastAPI:
    """The whole ASGI app: /status and /parse first, then NiceGUI's pages at /."""
    import pages
    from dashboard import api

    root = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    root.add_api_route("/status", status, methods=["GET"])
    api.mount(root, settings, runtime.store)

    app.on_startup(lambda: runtime.start(settings))
    app.on_startup(runtime.settle_garbage_collector)  # the serving process only, not test harnesses
    app.on_shutdown(runtime.stop)
    pages.register(settings)
    ui.run_with(
        root, title="OT Tracker", storage_secret=settings.secret_key, favicon="🩺",
        show_welcome_message=False,
    )
    return root


def serve(settings: Settings) -> None:
    uvicorn.run(build(settings), host=settings.host, port=settings.port, ws=WEBSOCKETS,
                log_level="warning")
