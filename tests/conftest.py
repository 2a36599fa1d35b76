"""Shared fixtures. Store and hub tests run on SQLite always, and on PostgreSQL when one answers.

Set OT_TEST_POSTGRES_URL to point elsewhere; the default is the local server's `ot_tracker_test`
database, created on first use.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from dashboard.db import Database
from dashboard.store import Store
from tests.support import World, build_world, make_live_server, settings_for

# One database per pytest process, so parallel runs on one machine never truncate each other's rows.
PG_URL = os.environ.get(
    "OT_TEST_POSTGRES_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/ot_tracker_test_{os.getpid()}")


async def _prepare_postgres(url: str) -> str | None:
    """Creates the test database and tables; returns why PostgreSQL cannot be used, or None."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(
            host=parsed.host, port=parsed.port or 5432, user=parsed.username,
            password=parsed.password, database="postgres"), 3)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        return f"PostgreSQL not answering at {parsed.host}:{parsed.port or 5432} ({type(exc).__name__})"
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await conn.close()
    db = Database(url)
    try:
        from dashboard.models import Base

        async with db.write_engine.begin() as c:
            await c.run_sync(Base.metadata.drop_all)
            await c.run_sync(Base.metadata.create_all)
    finally:
        await db.dispose()
    return None


async def _drop_postgres(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                 password=parsed.password, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url():
    reason = asyncio.run(_prepare_postgres(PG_URL))
    if reason:
        pytest.skip(reason)
    yield PG_URL
    if "OT_TEST_POSTGRES_URL" not in os.environ:
        asyncio.run(_drop_postgres(PG_URL))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(database_url: str):
    database = Database(database_url)
    if database.is_sqlite:
        await database.create_all()
    else:
        await database.truncate_all()
    yield database
    await database.dispose()


@pytest.fixture
async def store(db: Database, database_url: str):
    store = Store(db, settings=settings_for(database_url))
    await store.start()
    yield store
    await store.flush_audit()


@pytest.fixture
async def world(store: Store) -> World:
    return await build_world(store)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the session, with the demo data; tests make their own changes through it."""
    server = make_live_server(tmp_path_factory.mktemp("live"))
    server.start()
    yield server
    server.stop()




def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread
    for the rest of the session, and asyncio tests after it could not start their own."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
