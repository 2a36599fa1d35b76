"""Shared fixtures. Store and hub tests run on SQLite always, and on PostgreSQL when one answers.

Set OT_TEST_POSTGRES_URL to point elsewhere; the default is the local server's `ot_tracker_test`
database, created on first use.
"""
from __future__ import annotations

import asyncio
import subprocess
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.models import Patient, User
from dashboard.store import Store

# One database per pytest process, so parallel runs on one machine never truncate each other's rows.
PG_URL = os.environ.get(
    "OT_TEST_POSTGRES_URL", f"postgresql+asyncpg://postgres@127.0.0.1:5432/ot_tracker_test_{os.getpid()}")
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


# -- a real server process, for browser tests, the Parse SDK script and the benchmarks ---------------
@dataclass
class LiveServer:
    url: str
    port: int
    data_dir: Path
    env: dict[str, str]
    process: "subprocess.Popen[bytes] | None" = None

    def start(self) -> None:
        import subprocess
        import sys

        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        env = {k: v for k, v in self.env.items() if not k.startswith("PYTEST_")}
        self.process = subprocess.Popen([sys.executable, "-m", "dashboard", "serve"], env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(self.data_dir / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # polling a port that is not open yet: there is no event to wait on
        raise TimeoutError(f"server not ready: {(self.data_dir / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_live_server(data_dir: Path, **env_overrides: str) -> LiveServer:
    """Migrated SQLite and demo data (data/demo.json logins) in `data_dir`, not yet started."""
    import subprocess
    import sys

    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env = {**inherited, "OT_DATA_DIR": str(data_dir), "OT_PORT": str(port), "OT_HOST": "127.0.0.1",
           "OT_SECRET_KEY": "live-test-secret", "OT_LOCKOUT_ATTEMPTS": "1000",
           "OT_LOGIN_RATE_PER_MINUTE": "10000", **env_overrides}
    for name in ("measures.json", "vocabulary.json", "demo.json"):
        (data_dir / name).write_bytes((Path(__file__).parent.parent / "data" / name).read_bytes())
    subprocess.run([sys.executable, "-m", "dashboard", "demo"], env=env, check=True, capture_output=True)
    return LiveServer(url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir, env=env)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the session, with the demo data; tests make their own changes through it."""
    server = make_live_server(tmp_path_factory.mktemp("live"))
    server.start()
    yield server
    server.stop()


# -- helpers for tests that check what a refused call left behind ------------------------------------
# Tables that a refused call may legitimately touch: the audit trail records the refusal, and the
# sign-in bookkeeping is not domain data.
NOT_DOMAIN_TABLES = frozenset({"audit_log", "auth_sessions", "login_throttle"})


async def domain_snapshot(db: Database) -> dict[str, list[tuple]]:
    """Every row, every column, of every domain table: equal snapshots mean nothing was written."""
    from sqlalchemy import select

    from dashboard.models import Base

    out: dict[str, list[tuple]] = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in NOT_DOMAIN_TABLES:
                continue
            rows = (await session.execute(select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


async def refusal_count(db: Database) -> int:
    """Audit rows whose outcome is anything but "ok"."""
    from sqlalchemy import func, select

    from dashboard.models import AuditEvent

    async with db.read() as session:
        return int(await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome != "ok")) or 0)


async def outcome_of(awaitable) -> tuple[str, object]:
    """("ok", result) or the HTTP-style code of the store's refusal: 400, 401, 403, 404, 409."""
    from dashboard.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied

    try:
        result = await awaitable
    except NotAuthenticated as exc:
        return "401", exc
    except NotFound as exc:
        return "404", exc
    except PermissionDenied as exc:
        return "403", exc
    except Conflict as exc:
        return "409", exc
    except InvalidInput as exc:
        return "400", exc
    return "ok", result
