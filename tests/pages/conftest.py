"""Page tests with NiceGUI's simulated users, against the real pages and a real store (SQLite)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nicegui import app, core
from nicegui.testing.general import nicegui_reset_globals, prepare_simulation
from nicegui.testing.user import User

from dashboard import runtime
from dashboard.db import Database
from tests.support import PASSWORD, World, build_world, settings_for


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


async def eventually(check, timeout: float = 3.0) -> None:
    """Waits for a background handler's effect (a click runs as a task in the simulation)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
