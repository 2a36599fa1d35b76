"""The NiceGUI pages. `register(settings)` is called by dashboard.server.build."""
from __future__ import annotations

from dashboard.config import Settings


def _release(client) -> None:  # noqa: ANN001 - nicegui.Client
    """A deleted page's own delete handlers are closures over it (its last cycle): dropped, the
    page and the records it showed are freed at once instead of at a full collection. NiceGUI runs
    the app's delete handlers after the client's own."""
    client.delete_handlers.clear()


def register(settings: Settings) -> None:
    from nicegui import app

    from pages import (account, admin, audit, auth, caseload, downloads, drafts, equipment, outbox, patient, report, sign_in,
                       socket_guard, ward)
    from pages.frame import install_theme

    outbox.install()
    socket_guard.install()
    app.on_delete(_release)
    auth.configure(settings)
    install_theme()
    drafts.install()
    # The pages' routers have no lifespan of their own, yet FastAPI nests the app's once more per
    # include_router; tests/pages registers the pages again for every test on the one app, and the
    # nesting ran past Python's recursion limit after about 60 tests. The app's own is kept.
    lifespan = app.router.lifespan_context
    app.include_router(auth.router)
    for module in (sign_in, caseload, patient, equipment, ward, admin, audit, report, downloads, account):
        app.include_router(module.router)
    app.router.lifespan_context = lifespan
