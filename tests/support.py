"""Helpers shared by the tests: the world of principals, a live server process, write snapshots.

Plain functions and classes, imported as `tests.support` (fixtures live in conftest.py).
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
    # Its output is kept beside the server's log, so the suite's log grep reads it too.
    with open(data_dir / "demo.log", "ab") as log:
        subprocess.run([sys.executable, "-m", "dashboard", "demo"], env=env, check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    return LiveServer(url=f"http://127.0.0.1:{port}", port=port, data_dir=data_dir, env=env)


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


def mailbox(hub, principal: Principal, topics, *, maxsize: int | None = None):
    """A hub subscription as a page holds one: a `Mailbox` (dashboard.hub) as its sink. Returns the
    mailbox (`drain()`, `get()`, `close()`, `.subscription`); a context manager that closes both."""
    from dashboard.hub import Mailbox

    box = Mailbox(maxsize or hub.queue_size)
    hub.subscribe(principal, topics, sink=box)
    return box
