"""A real OT Tracker server as a separate process, on a free loopback port, with its own data dir."""
from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = ("measures.json", "vocabulary.json")


def raise_fd_limit() -> None:
    """A thousand sockets on each side need more than the usual 1024 descriptors; children inherit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (kB), from /proc."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class BenchDatabase:
    """SQLite in the scenario's data dir, or a fresh PostgreSQL database beside the one given."""

    url: str
    admin_url: str | None = None  # PostgreSQL: where to CREATE/DROP the database

    @classmethod
    async def create(cls, data_dir: Path, base_url: str | None, name: str) -> "BenchDatabase":
        if not base_url or make_url(base_url).get_backend_name() == "sqlite":
            return cls(f"sqlite+aiosqlite:///{data_dir / 'ot-tracker.sqlite3'}")
        import asyncpg

        parsed = make_url(base_url)
        db_name = f"{parsed.database or 'ot'}_bench_{name}_{os.getpid()}"[:60]
        conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                     password=parsed.password, database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{db_name}"')
        finally:
            await conn.close()
        return cls(parsed.set(database=db_name).render_as_string(hide_password=False), admin_url=base_url)

    async def drop(self) -> None:
        if self.admin_url is None:
            return
        import asyncpg

        parsed = make_url(self.admin_url)
        conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                     password=parsed.password, database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(self.url).database}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class BenchServer:
    """`python -m dashboard serve` in a subprocess. Data is seeded before `start` (the access index
    is loaded when the server starts)."""

    data_dir: Path
    database_url: str
    port: int = field(default_factory=free_port)
    process: "subprocess.Popen[bytes] | None" = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/parse"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
        return {**inherited, "OT_DATA_DIR": str(self.data_dir), "OT_PORT": str(self.port),
                "OT_HOST": "127.0.0.1", "OT_DATABASE_URL": self.database_url,
                "OT_SECRET_KEY": "bench-secret-not-for-production", "OT_LOCKOUT_ATTEMPTS": "100000",
                "OT_LOGIN_RATE_PER_MINUTE": "1000000", "OT_LOGIN_ADDRESS_RATE_PER_MINUTE": "1000000",
                "OT_SOCKETS_PER_ADDRESS": "100000",
                "PYTHONUNBUFFERED": "1"}

    def start(self, timeout: float = 60) -> None:
        raise_fd_limit()
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen([sys.executable, "-m", "dashboard", "serve"], env=self.env(),
                                        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # the port is not open yet: there is no event to wait on
        raise TimeoutError(f"server not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.data_dir / "server.log").read_text()[-chars:]
        except OSError:
            return ""

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


class Workspace:
    """A temp data dir with the catalogue files, a database, and (once started) a server."""

    def __init__(self, name: str, database_url: str | None):
        self.name = name
        self.base_url = database_url
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"ot-bench-{name}-"))
        for file in DATA_FILES:
            shutil.copy(ROOT / "data" / file, self.data_dir / file)
        self.db: BenchDatabase | None = None
        self.server: BenchServer | None = None

    async def __aenter__(self) -> "Workspace":
        self.db = await BenchDatabase.create(self.data_dir, self.base_url, self.name)
        from dashboard.migrate import upgrade

        await asyncio.to_thread(upgrade, self.db.url)
        return self

    def start_server(self) -> BenchServer:
        assert self.db is not None
        self.server = BenchServer(self.data_dir, self.db.url)
        self.server.start()
        return self.server

    async def __aexit__(self, *exc: object) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        if self.db is not None:
            await self.db.drop()
        if exc[0] is None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
