"""Helpers shared by the tests: the world of principals, a live server process, waiting, write snapshots.

Plain functions and classes, imported as `tests.support` (fixtures live in conftest.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.server import Server, error_records
from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.models import Patient, User
from dashboard.store import Store

PASSWORD = "correct horse battery"


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        database_url=database_url, secret_key="test-secret", argon2_memory_kib=256, argon2_time_cost=1)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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


# -- a real server process, for browser tests, the Parse SDK script and the HTTP checks ----------------
# The launcher is bench.server.Server (the benchmarks' too); this adds the tests' settings, the demo
# data, and the check that fails a test when the server logged an ERROR from an ot_tracker logger.
TEST_SETTINGS = {"OT_SECRET_KEY": "live-test-secret", "OT_LOCKOUT_ATTEMPTS": "1000",
                 "OT_LOGIN_RATE_PER_MINUTE": "10000"}
RUNNING: "set[LiveServer]" = set()  # started and not yet stopped, for the per-test check in conftest.py
# Loggers whose ERROR records the running test expects (its `allow_errors` marker); set by conftest.py.
allowed_error_loggers: tuple[str, ...] = ()


def is_allowed(logger: str, allowed: tuple[str, ...]) -> bool:
    return any(logger == name or logger.startswith(name + ".") for name in allowed)


class LiveServer:
    """A `bench.server.Server` as the tests use it: `url`, `port`, `data_dir`, `env` (the environment
    it runs with), `start`, `stop`, `restart`. Its log is read for ot_tracker ERROR records after each
    test (conftest.py) and when it stops; each line is judged once."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.checked = 0  # characters of server.log already judged

    url = property(lambda self: self.server.url)
    port = property(lambda self: self.server.port)
    data_dir = property(lambda self: self.server.data_dir)
    process = property(lambda self: self.server.process)
    env = property(lambda self: self.server.env())

    def start(self) -> None:
        self.server.start()
        RUNNING.add(self)

    def wait_ready(self, timeout: float = 30) -> None:
        self.server.wait_ready(timeout)

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        """Stops the process; raises if its log holds ERROR records from ot_tracker (shutdown's included)
        that no check has seen and the running test does not allow."""
        RUNNING.discard(self)
        self.server.stop()
        errors = self.new_errors(allowed_error_loggers)
        if errors:
            raise AssertionError(f"the server at {self.data_dir} logged ERROR records:\n" + "\n".join(errors))

    def new_errors(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """The ERROR lines from ot_tracker loggers logged since the last call, but those of `allowed` loggers."""
        text = self.server.log_text()
        found = error_records(text[self.checked:])
        self.checked = len(text)
        return [line for logger, line in found if not is_allowed(logger, allowed)]


def assert_no_logged_errors(log_dir: Path) -> None:
    """No ERROR records from ot_tracker loggers in the server logs (*server.log) kept in `log_dir`:
    for servers the tests do not start themselves (the benchmarks' Workspace keeps its logs there)."""
    logs = sorted(log_dir.glob("*server.log"))
    assert logs, f"no server logs in {log_dir}"
    errors = [f"[{path.name}] {line}" for path in logs for _, line in error_records(path.read_text(errors="replace"))]
    assert not errors, f"{len(errors)} ERROR records from ot_tracker loggers:\n" + "\n".join(errors)


def make_live_server(data_dir: Path, **env_overrides: str) -> LiveServer:
    """Migrated SQLite and demo data (data/demo.json logins) in `data_dir`, not yet started."""
    return LiveServer(Server(data_dir, settings={**TEST_SETTINGS, **env_overrides}).load_demo())


# -- waiting for a background effect ----------------------------------------------------------------------
async def eventually(check, timeout: float = 3.0) -> None:
    """Waits until `check()` (or the coroutine it returns) is true: for effects of background work, such as
    a click's handler (a task in NiceGUI's simulation). Polls every 20 ms: there is no event to wait on."""
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


# -- helpers for tests that check what a refused call left behind ------------------------------------
# Tables that a refused call may legitimately touch: the audit trail records the refusal, and the
# sign-in bookkeeping is not domain data.
NOT_DOMAIN_TABLES = frozenset({"audit_log", "auth_sessions", "login_throttle", "login_attempts"})


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


def mailbox(hub, principal: Principal, topics, *, maxsize: int | None = None):
    """A hub subscription as a page holds one: a `Mailbox` (dashboard.hub) as its sink. Returns the
    mailbox (`drain()`, `get()`, `close()`, `.subscription`); a context manager that closes both."""
    from dashboard.hub import Mailbox

    box = Mailbox(maxsize or hub.queue_size)
    hub.subscribe(principal, topics, sink=box)
    return box
