"""A real OT Tracker server as a separate process, on a free loopback port, with its own data dir.

`Server` is the one launcher, used by the benchmarks (`BenchServer`, `Workspace`, bench/live_pages.py)
and by the tests (tests/support.py `make_live_server`).
"""
from __future__ import annotations

import asyncio
import os
import re
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
from typing import ClassVar

from sqlalchemy.engine import make_url

from dashboard.cluster import stop_processes

ROOT = Path(__file__).resolve().parent.parent
# The tree whose server is measured: another checkout for a before/after run with one bench
# (`OT_BENCH_SERVER_ROOT=/tmp/before python -m bench ...`); by default this one.
SERVER_ROOT = Path(os.environ.get("OT_BENCH_SERVER_ROOT") or ROOT)
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


# ---------------------------------------------------------------------------------------------- the server
# The server writes its log through one root handler that names each record's level and logger, as the
# test suite's own capture does, so an ERROR from an ot_tracker logger can be told from anything else
# (Python's last-resort handler, which the server otherwise falls back to, writes the message alone).
# The privacy filter still goes on that handler: `python -m dashboard` installs it on every handler.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_SETUP = f"import logging; logging.basicConfig(format={LOG_FORMAT!r})"
_SERVE = (f"{LOG_SETUP}; import runpy, sys; sys.argv[1:] = ['serve']; "
          "runpy.run_module('dashboard', run_name='__main__', alter_sys=True)")
# The first line of a record in that format; the lines after it, up to the next one, are its traceback.
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+): ")


def error_records(text: str, prefix: str = "ot_tracker") -> list[tuple[str, str]]:
    """(logger, text) of each ERROR or CRITICAL record of a logger under `prefix` in a server log:
    its first line, and the traceback's last line when it has one."""
    out: list[tuple[str, str]] = []
    ours = in_traceback = False
    first = ""
    for line in text.splitlines():
        match = _RECORD.match(line)
        if match:
            logger = match["logger"]
            ours = match["level"] in ("ERROR", "CRITICAL") and (logger == prefix or logger.startswith(prefix + "."))
            in_traceback = False
            if ours:
                first = line
                out.append((logger, line))
        elif ours and line.startswith("Traceback"):
            in_traceback = True
        elif ours and in_traceback and line.strip() and not line.startswith((" ", "\t")):
            out[-1] = (out[-1][0], f"{first}  [{line.strip()[:300]}]")  # the exception raised
            in_traceback = False
    return out


@dataclass
class Server:
    """`python -m dashboard serve` in a subprocess on a free loopback port, with its own data dir; what it
    prints and logs goes to data_dir/server.log. The one launcher of the benchmarks and the tests.

    Data is in place before `start` (the access index is loaded when the server starts). `database_url`
    None is the server's own default, SQLite in the data dir. `settings` are OT_* variables laid over
    `DEFAULTS` and the inherited environment (PYTEST_* and NICEGUI_* variables are never passed on)."""

    data_dir: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    process: "subprocess.Popen[bytes] | None" = None
    # Python run in the server process before it starts (a test's fault injection); empty in the bench.
    preamble: str = ""

    DEFAULTS: ClassVar[dict[str, str]] = {"OT_SECRET_KEY": "test-secret-not-for-production"}

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

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
        database = {"OT_DATABASE_URL": self.database_url} if self.database_url else {}
        return {**inherited, **self.DEFAULTS, "OT_DATA_DIR": str(self.data_dir), "OT_PORT": str(self.port),
                "OT_HOST": "127.0.0.1", **database, "PYTHONUNBUFFERED": "1", **self.settings}

    def load_demo(self) -> "Server":
        """The catalogue files and the demo data (data/demo.json logins) in the data dir, migrated first;
        the command's output goes to data_dir/demo.log, beside the server's log."""
        for name in (*DATA_FILES, "demo.json"):
            shutil.copy(ROOT / "data" / name, self.data_dir / name)
        with open(self.data_dir / "demo.log", "ab") as log:
            subprocess.run([sys.executable, "-m", "dashboard", "demo"], env=self.env(), cwd=SERVER_ROOT, check=True,
                           stdout=log, stderr=subprocess.STDOUT)
        return self

    def start(self, timeout: float = 60) -> None:
        raise_fd_limit()
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            code = f"{self.preamble}\n{_SERVE}" if self.preamble else _SERVE
            self.process = subprocess.Popen([sys.executable, "-c", code], env=self.env(), cwd=SERVER_ROOT,
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/status", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # the port is not open yet: there is no event to wait on
        raise TimeoutError(f"server not ready in {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], grace=15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self, start: int = 0) -> str:
        """The server's log from character `start` on ('' before the first start)."""
        try:
            return self.log_path.read_text(errors="replace")[start:]
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def logged_errors(self, start: int = 0) -> list[tuple[str, str]]:
        """(logger, line) of the ERROR and CRITICAL records of ot_tracker loggers in the log, from `start`."""
        return error_records(self.log_text(start))

    def rss_kib(self) -> int:
        return rss_kib(self.pid)


class BenchServer(Server):
    """The launcher with the benchmarks' limits: sign-in and socket caps out of the way of a crowd."""

    DEFAULTS: ClassVar[dict[str, str]] = {
        "OT_SECRET_KEY": "bench-secret-not-for-production", "OT_LOCKOUT_ATTEMPTS": "100000",
        "OT_LOGIN_RATE_PER_MINUTE": "1000000", "OT_LOGIN_ADDRESS_RATE_PER_MINUTE": "1000000",
        "OT_SOCKETS_PER_ADDRESS": "100000"}


class Workspace:
    """A temp data dir with the catalogue files, a database, and (once started) a server. With BENCH_LOG_DIR
    set (the suite's smoke tests set it), the server's log is copied there on leaving, as
    <data dir name>-server.log, so the caller can read it after the data dir is gone."""

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
        keep = os.environ.get("BENCH_LOG_DIR")
        if keep and (self.data_dir / "server.log").exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.data_dir / "server.log", Path(keep) / f"{self.data_dir.name}-server.log")
        if exc[0] is None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
