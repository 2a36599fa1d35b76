"""Shared fixtures. Store and hub tests run on SQLite always, and on PostgreSQL when one answers.

Set OT_TEST_POSTGRES_URL to point elsewhere; the default is the local server's `ot_tracker_test`
database, created on first use.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from dashboard.db import Database
from dashboard.store import Store
from tests import support
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
    await store.stop()  # the change feed's heartbeat, then the queued audit rows


@pytest.fixture
async def world(store: Store) -> World:
    return await build_world(store)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    """One server for the session, with the demo data; tests make their own changes through it.
    The browser tests use it too (their `e2e_server`)."""
    server = make_live_server(tmp_path_factory.mktemp("live"))
    server.start()
    yield server
    server.stop()


# ==== ERROR records fail the test (as NiceGUI's `user` fixture does, nicegui/testing/user_plugin.py) =====
# Our code logs and carries on where a failure must not stop the others (a page's refresh, a subscriber's
# sink, a socket's send); in a test, such a record is a failure. Every ERROR or CRITICAL record of a logger
# under `ot_tracker` logged in this process from the test's setup to its teardown fails it, and so does
# every such line in the log of a server process (tests.support.LiveServer) that was running meanwhile.
# A test that provokes one on purpose names the loggers: @pytest.mark.allow_errors("ot_tracker.hub").
ERROR_LOGGERS = "ot_tracker"


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def describe_error(record: logging.LogRecord) -> str:
    """The logger and message of a record, and the exception it carries."""
    text = f"{record.name}: {record.getMessage()}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f"  [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
    return text


@pytest.fixture(autouse=True)
def fail_on_logged_errors(request: pytest.FixtureRequest):
    allowed = tuple(name for marker in request.node.iter_markers("allow_errors") for name in marker.args)
    handler = _ErrorRecords()
    logger = logging.getLogger(ERROR_LOGGERS)
    logger.addHandler(handler)
    support.allowed_error_loggers = allowed  # for a server that stops during this test
    for server in list(support.RUNNING):  # lines from before this test were judged after the one before
        server.new_errors(allowed)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        support.allowed_error_loggers = ()
    errors = [describe_error(r) for r in handler.records if not support.is_allowed(r.name, allowed)]
    for server in list(support.RUNNING):
        errors += [f"[{server.data_dir / 'server.log'}] {line}" for line in server.new_errors(allowed)]
    if errors:
        pytest.fail(f"{len(errors)} ERROR records from {ERROR_LOGGERS} loggers (mark the test "
                    f"allow_errors(logger) if it provokes them on purpose):\n" + "\n".join(errors), pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread
    for the rest of the session, and asyncio tests after it could not start their own."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


# ==== BEGIN log capture for the PHI grep (tests/test_logs_have_no_phi.py) ===========================
# Every log record of this pytest process, from configure to unconfigure, goes to one root handler
# that formats it as a production handler does (standard Formatter, exception text included) and has
# the privacy filter a production handler gets from runtime.start(). The test marked `runs_last`
# (moved after everything, browser tests included) greps these lines and the server subprocesses'
# logs; after the session's fixtures are torn down (servers stopped), whatever was logged since is
# grepped again, so shutdown lines count too.
import logging as _logging  # noqa: E402 - kept inside this block
from dataclasses import dataclass as _dataclass, field as _field  # noqa: E402


@_dataclass(frozen=True)
class CapturedLog:
    text: str  # the formatted record, exception text included
    logger: str
    where: str  # pathname:lineno (funcName)
    withheld: tuple[str, ...]  # what the privacy filter took out (kinds, never values)


@_dataclass
class SessionLogs:
    """What the session logged; the grep test reads it through the `session_logs` fixture."""

    records: list[CapturedLog] = _field(default_factory=list, repr=False)
    # Set by the grep test: its finder, and how far it looked (records, characters of each file).
    finder: object = None
    checked_records: int = 0
    checked_files: dict[str, int] = _field(default_factory=dict, repr=False)
    basetemp: Path | None = None
    handler: "_SessionLogHandler | None" = None

    def server_logs(self) -> list[Path]:
        """The stdout/stderr files of the server subprocesses (bench.server.Server, the launcher behind
        tests.support.LiveServer, writes data_dir/server.log; every data_dir is under this session's basetemp)."""
        return sorted(self.basetemp.rglob("*.log")) if self.basetemp is not None else []


class _SessionLogHandler(_logging.Handler):
    FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

    def __init__(self, logs: SessionLogs) -> None:
        super().__init__(_logging.NOTSET)
        self.logs = logs
        self.setFormatter(_logging.Formatter(self.FORMAT))

    def emit(self, record: _logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - as any handler does
            self.handleError(record)
            return
        self.logs.records.append(CapturedLog(
            text, record.name, f"{record.pathname}:{record.lineno} ({record.funcName})",
            tuple(getattr(record, "ot_privacy_withheld", ()))))


_SESSION_LOGS = pytest.StashKey[SessionLogs]()


class _RunsLast:
    @pytest.hookimpl(trylast=True)  # after the browser-tests-last sort above
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


def pytest_configure(config: pytest.Config) -> None:
    from dashboard import log_privacy

    config.addinivalue_line("markers", "runs_last: run after every other test (the whole-suite log grep)")
    config.addinivalue_line("markers", "allow_errors(*loggers): the test provokes ERROR records from these "
                                       "loggers (and their children) on purpose; others still fail it")
    if config.stash.get(_SESSION_LOGS, None) is not None:
        return
    logs = SessionLogs()
    logs.handler = _SessionLogHandler(logs)
    _logging.getLogger().addHandler(logs.handler)
    log_privacy.install()  # what runtime.start() does in the server: the handler gets the filter
    # The app's own loggers at every level (stricter than the server's WARNING); libraries as they are.
    if _logging.getLogger("ot_tracker").level == _logging.NOTSET:
        _logging.getLogger("ot_tracker").setLevel(_logging.DEBUG)
    config.stash[_SESSION_LOGS] = logs
    config.pluginmanager.register(_RunsLast(), "ot-runs-last")


@pytest.fixture(scope="session")
def session_logs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SessionLogs:
    logs = request.config.stash[_SESSION_LOGS]
    logs.basetemp = tmp_path_factory.getbasetemp()
    return logs


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Lines logged after the grep test (fixture teardown: servers stopping) are grepped too."""
    logs = session.config.stash.get(_SESSION_LOGS, None)
    if logs is None or not callable(logs.finder):
        return
    late = [r.text for r in logs.records[logs.checked_records:]]
    for path in logs.server_logs():
        text = path.read_text(errors="replace")
        late.append(text[logs.checked_files.get(str(path), 0):])
    offending = logs.finder("\n".join(late))
    if offending:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_sep("=", "FAILED: patient data logged after the log grep ran (during teardown)", red=True)
            for line in offending:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    """Once the grep ran: what it read, and where the privacy filter had to take data out (the
    sources to fix). Lists kinds and code locations only, never values."""
    logs = config.stash.get(_SESSION_LOGS, None)
    if logs is None or not callable(logs.finder):
        return
    from collections import Counter

    withheld = Counter((r.logger, r.where, ", ".join(r.withheld)) for r in logs.records if r.withheld)
    server_lines = Counter()
    for path in logs.server_logs():
        for line in path.read_text(errors="replace").splitlines():
            if "withheld" in line:
                server_lines[f"{path.parent.name}/{path.name}: {line.strip()[:200]}"] += 1
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", "log grep for patient data")
    write(f"{len(logs.records)} records of this process, {len(logs.server_logs())} server log files; "
          f"the privacy filter withheld data from {sum(withheld.values())} records "
          f"and {sum(server_lines.values())} server log lines")
    for (logger, where, kinds), count in withheld.most_common(30):
        write(f"  {count:>4} x {logger} at {where}: {kinds}")
    for line, count in server_lines.most_common(30):
        write(f"  {count:>4} x {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    logs = config.stash.get(_SESSION_LOGS, None)
    if logs is not None and logs.handler is not None:
        _logging.getLogger().removeHandler(logs.handler)
# ==== END log capture for the PHI grep ===============================================================
