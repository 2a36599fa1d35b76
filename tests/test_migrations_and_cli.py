"""The Alembic migrations build exactly the models' schema; the command line makes the first lead."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dashboard.migrate import upgrade
from dashboard.models import Base

ROOT = Path(__file__).resolve().parent.parent


async def _schema_diff(url: str) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()


async def _reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url)
    assert asyncio.run(_schema_diff(url)) == []


def test_migrations_match_models_on_postgresql(postgres_url: str) -> None:
    asyncio.run(_reset_postgres(postgres_url))
    try:
        upgrade(postgres_url)
        assert asyncio.run(_schema_diff(postgres_url)) == []
    finally:  # leave the shared test database as the other tests expect it
        asyncio.run(_reset_postgres(postgres_url))
        engine_url = postgres_url

        async def recreate() -> None:
            engine = create_async_engine(engine_url)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            await engine.dispose()

        asyncio.run(recreate())


def _cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(OT_DATA_DIR=str(tmp_path), OT_SECRET_KEY="cli-test")
    done = subprocess.run([sys.executable, "-m", "dashboard", *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, input=stdin, timeout=120)
    with open(tmp_path / "cli.log", "a") as log:  # read by the suite's log grep
        log.write(done.stdout + done.stderr)
    return done


def test_create_user_makes_the_first_lead_who_can_sign_in(tmp_path: Path) -> None:
    made = _cli(tmp_path, "create-user", "--username", "first-lead", "--email", "lead@example.org",
                "--password", "a long enough secret")
    assert made.returncode == 0, made.stderr
    assert "created lead first-lead" in made.stdout

    from dashboard.config import Settings
    from dashboard.db import Database
    from dashboard.store import Store

    async def sign_in() -> str | None:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ot-tracker.sqlite3'}",
                            secret_key="cli-test")
        store = Store(Database(settings.database_url), settings=settings)
        await store.start()
        try:
            signed = await store.log_in(username="first-lead", password="a long enough secret")
            return store.access.role(signed.principal)
        finally:
            await store.stop()
            await store.db.dispose()

    assert asyncio.run(sign_in()) == "lead"


def test_create_user_refuses_a_short_password_and_names_the_rule(tmp_path: Path) -> None:
    made = _cli(tmp_path, "create-user", "--username", "first-lead", "--email", "lead@example.org",
                "--password", "short")
    assert made.returncode == 2
    assert "password: must be at least 12 characters" in made.stderr


def test_demo_prints_one_login_per_role_and_is_idempotent(tmp_path: Path) -> None:
    first = _cli(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    roles = {line.split()[0] for line in first.stdout.splitlines()[1:] if line.strip()}
    assert roles == {"lead", "therapist", "contributor", "viewer"}
    again = _cli(tmp_path, "demo")
    assert again.returncode == 0 and again.stdout == first.stdout
