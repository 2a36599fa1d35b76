"""The NiceGUI pages. `register(settings)` is called by dashboard.server.build."""
from __future__ import annotations

from dashboard.config import Settings


def register(settings: Settings) -> None:
    from nicegui import app

    from pages import admin, auth, caseload, equipment, outbox, patient, sign_in, socket_guard, ward
    from pages.frame import install_theme

    outbox.install()
    socket_guard.install()
    auth.configure(settings)
    install_theme()
    app.include_router(auth.router)
    for module in (sign_in, caseload, patient, equipment, ward, admin):
        app.include_router(module.router)
