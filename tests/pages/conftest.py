"""Page tests with NiceGUI's simulated users, against the real pages and a real store (SQLite)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nicegui import app, core
from nicegui.testing import user_simulation
from nicegui.testing.user import User

from dashboard import runtime
from dashboard.db import Database
from tests.support import PASSWORD, World, build_world, settings_for

# NiceGUI's public `user` and `create_user` fixtures (nicegui/testing/user_plugin.py) and its
# `user_simulation` build the app from a main file run with runpy, or from one root page, and enter the
# app's lifespan before the test's own fixtures run. These pages need a store started with the test's
# settings (runtime.start) and their routers and shutdown hook registered (pages.register) after the
# globals are reset and before the lifespan starts. So this does what `user_simulation` does, with the
# same two helpers from nicegui.testing.general, which NiceGUI does not export: the check below stops
# the run with this reason if an upgrade moves them, or if `user_simulation` stops using them.
try:
    from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
except ImportError as exc:  # pragma: no cover - only on a NiceGUI without them
    raise ImportError("tests/pages relies on nicegui.testing.general.nicegui_reset_globals and "
                      "prepare_simulation, what nicegui.testing.user_simulation uses; this NiceGUI has "
                      "moved them: follow user_simulation in the new version") from exc
_simulation = sys.modules[user_simulation.__module__]
assert (_simulation.nicegui_reset_globals, _simulation.prepare_simulation) == (
    nicegui_reset_globals, prepare_simulation), (
    "nicegui.testing.user_simulation no longer resets and prepares the app with nicegui.testing.general's "
    "helpers: follow what it does now in tests/pages/conftest.py")


@dataclass
class PagesApp:
    world: World

    def new_user(self) -> User:
        return User(httpx.AsyncClient(transport=httpx.ASGITransport(core.app), base_url="http://test"))

    async def signed_in(self, username: str) -> User:
        user = self.new_user()
        response = await user.http_client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 303, response.text
        return user


@pytest.fixture
async def pages_app(tmp_path: Path):
    """The pages on NiceGUI's app in simulation, a store on a fresh SQLite file, and the access world."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pages.sqlite3'}"
    settings = settings_for(url, lockout_attempts=3)
    database = Database(url)
    await database.create_all()
    await database.dispose()
    with nicegui_reset_globals():
        os.environ["NICEGUI_USER_SIMULATION"] = "true"
        try:
            prepare_simulation()
            store = await runtime.start(settings)
            world = await build_world(store)
            import pages

            pages.register(settings)
            app.on_shutdown(runtime.stop)
            async with core.app.router.lifespan_context(core.app):
                yield PagesApp(world)
        finally:
            os.environ.pop("NICEGUI_USER_SIMULATION", None)
            await runtime.stop()
