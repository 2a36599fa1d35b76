"""Assembles the web app: the store's lifecycle, the health page, the pages and the API."""
from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from nicegui import app, ui
from sqlalchemy import text

from dashboard import runtime
from dashboard.config import Settings

log = logging.getLogger("ot_tracker")
_configured = False


def configure(settings: Settings) -> None:
    """Registers everything on NiceGUI's app once; `ui.run` (or a test harness) then serves it."""
    global _configured
    if _configured:
        return
    _configured = True
    app.on_startup(lambda: runtime.start(settings))
    app.on_shutdown(runtime.stop)

    @app.get("/status")
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

    import pages
    from dashboard import api

    pages.register(settings)
    api.register(settings)


def serve(settings: Settings) -> None:
    configure(settings)
    app.on_startup(runtime.settle_garbage_collector)  # the serving process only, not test harnesses
    ui.run(
        host=settings.host, port=settings.port, title="OT Tracker", reload=False, show=False,
        storage_secret=settings.secret_key, show_welcome_message=False, favicon="🩺",
        uvicorn_logging_level="warning",
    )
