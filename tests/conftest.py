"""Shared fixtures. Store and hub tests run on SQLite always, and on PostgreSQL when one answers.

Set OT_TEST_POSTGRES_URL to point elsewhere; the default is the local server's `ot_tracker_test`
database, created on first use.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.models import Patient, User
from dashboard.store import Store

PG_URL = os.environ.get(
    "OT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/ot_tracker_test")
PASSWORD = "correct horse battery"


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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = asyncio.run(_prepare_postgres(PG_URL))
    if reason:
        pytest.skip(reason)
    return PG_URL


def test_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        database_url=database_url, secret_key="test-secret", argon2_memory_kib=256, argon2_time_cost=1)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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
async def store(db: Database, database_url: str) -> Store:
    store = Store(db, settings=test_settings(database_url))
    await store.start()
    return store


@dataclass
class World:
    """Every principal kind of the access matrix, around patient P (and Q, not P's team's)."""

    store: Store
    lead: Principal
    owner: Principal  # therapist, P's primaryTherapist
    other_therapist: Principal  # Q's primaryTherapist, not on P's team
    team_therapist: Principal  # therapist on P's care team
    team_contributor: Principal
    outsider: Principal  # contributor on no team
    viewer: Principal  # ward screen on P's team
    patient: Patient  # P
    other_patient: Patient  # Q
    users: dict[str, User]

    def principal(self, kind: str) -> Principal | None:
        return None if kind == "anonymous" else getattr(self, kind)


async def build_world(store: Store) -> World:
    await store.bootstrap_lead(username="lead", email="lead@example.org", password=PASSWORD)
    lead = (await store.log_in(username="lead", password=PASSWORD)).principal
    users: dict[str, User] = {}
    for name, role in [("owner", "therapist"), ("other_therapist", "therapist"),
                       ("team_therapist", "therapist"), ("team_contributor", "contributor"),
                       ("outsider", "contributor"), ("viewer", "viewer")]:
        users[name] = await store.create_user(principal=lead, username=name.replace("_", "-"),
                                              email=f"{name}@example.org", password=PASSWORD, role=role)
    principals = {name: (await store.log_in(username=u.username, password=PASSWORD)).principal
                  for name, u in users.items()}
    patient = await store.create(principal=lead, class_name="Patient", fields={
        "patientId": "DEMO-P", "displayName": "Pat Example", "primaryTherapist": users["owner"].id,
        "mobilityStatus": "supervision"})
    other = await store.create(principal=lead, class_name="Patient", fields={
        "patientId": "DEMO-Q", "displayName": "Quinn Sample", "primaryTherapist": users["other_therapist"].id,
        "mobilityStatus": "independent"})
    for member in ("team_therapist", "team_contributor", "viewer"):
        await store.add_care_team_member(principal=lead, patient_id=patient.id, user_id=users[member].id)
    return World(store=store, lead=lead, patient=patient, other_patient=other, users=users,  # type: ignore[arg-type]
                 **principals)


@pytest.fixture
async def world(store: Store) -> World:
    return await build_world(store)
