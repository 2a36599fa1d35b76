"""Engines and sessions. SQLite: WAL, foreign keys, busy timeout, and one writer connection.

SQLite allows one writer at a time. Writes go through a single pooled connection that opens
its transactions with BEGIN IMMEDIATE, so concurrent writers queue in the pool instead of failing
with "database is locked" when a read transaction tries to upgrade. Reads use their own pool and
run concurrently under WAL. PostgreSQL uses one engine for both.

`transact` is the fast write path (record creates, audit rows): a job is a plain synchronous
function of a `WriteConn`. Jobs queued meanwhile are committed together (group commit); a job that
raises is undone alone and the others still commit; every job is answered before the connection goes
back to the pool, in queue order (so the change feed's hand-offs come in number order). On SQLite the
whole batch runs as one call on the writer connection's own thread, each job inside its own SAVEPOINT.
On PostgreSQL it runs as one `run_sync` on one pooled connection, without savepoints (a batch runs
again without a job that raised), with the rows nothing reads back, the read-model recomputations and
the change_log rows left to the batch's end (dashboard/pg_writer.py says why and how).
`transact_logged` answers a job's change_log number as well (`WriteConn.log_change`).

That one call borrows aiosqlite's and SQLAlchemy's internals (dashboard/sqlite_writer.py checks them
at start-up). When the check fails, or OT_FAST_PATHS_OFF=sqlite-batch, the same batch, with the same
savepoints and answers, runs through `AsyncConnection.run_sync` and public API instead (slower: one
hop to the driver's thread per statement). `Database.batch_path` says which; dashboard/FAST-PATHS.md.

SQLite's WAL is moved into the database file by a background checkpoint once a second, from a read
connection. By default the committing writer does it every 1,000 pages, which stalled that one
write (and every push waiting on it) by several milliseconds; the default stays only as a backstop
at a larger size.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Table, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Executable

from dashboard import patterns, pg_writer, sqlite_writer
from dashboard.loop_tasks import cancel, ensure_running
from dashboard.models import Base
from dashboard.sqlite_writer import SqliteWriteConn

T = TypeVar("T")
log = logging.getLogger("ot_tracker.db")

CHECKPOINT_SECONDS = 1.0
WAL_BACKSTOP_PAGES = 10_000  # about 40 MB: the writer checkpoints itself only if the background stops
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}",
)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60,
                                 hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
        # Take transaction control away from the driver so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        # REGEXP through RE2 (linear time) instead of the dialect's Python `re` (backtracking).
        dbapi_connection.create_function("regexp", 2, patterns.sqlite_regexp, deterministic=True)
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        conn.exec_driver_sql(begin)

    return engine


# ============================================================================ the fast write path
class WriteConn(Protocol):
    """What a `transact` job may do inside its transaction. Runs synchronously, off the event loop
    on SQLite: a job touches nothing but its arguments and this connection. On PostgreSQL a job may
    run more than once (its batch runs again without a job that raised): same arguments, same result."""

    dialect: str

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts rows that all have the same keys (a Core INSERT, no ORM unit of work)."""

    def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Runs a Core statement; its rows as tuples of raw column values (read plain columns only:
        on SQLite's fast path no result processing is applied, so a datetime column comes back as text)."""

    def log_change(self, row: Mapping[str, Any]) -> None:
        """The job's change_log row (`changes.change_row`), at most one per job: call it as the job's
        last step. `transact_logged` answers its number once committed. On SQLite it is inserted
        here; on PostgreSQL's group commit, with the batch's other rows just before COMMIT."""

    def append(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """`insert` for rows nothing in the transaction reads back (audit rows): PostgreSQL's group
        commit inserts the batch's together, before COMMIT."""

    def after(self, statement: Executable, params: Mapping[str, Any]) -> None:
        """A statement that recomputes from the tables (a read model's upsert), run after this job's
        appended rows; its result is not returned. PostgreSQL's group commit runs each distinct one
        (statement and parameters) once, after the batch's appended rows."""

    def lock(self, statement: Executable, params: Mapping[str, Any]) -> None:
        """A row lock (a SELECT ... FOR ...) held to the end of the transaction; taken once per
        transaction however many of a batch's jobs ask. SQLite has one writer: nothing to take."""


class WriteState:
    """What the write connections share: the change row, appended rows and locks, done at once, or
    (`batched`, PostgreSQL's group commit) kept for the batch's end."""

    batched = False  # the change rows kept for the batch's end
    appending = False  # appended rows and `after` statements kept for the batch's end too
    seq: int | None = None  # the number of the change row inserted at once
    fetch: Callable[[Executable, Mapping[str, Any]], list[tuple[Any, ...]]]  # the connection's own
    insert: Callable[[Table, Sequence[Mapping[str, Any]]], None]
    dialect: str

    def start_transaction(self) -> None:
        self.change_rows: list[tuple[int, Mapping[str, Any]]] = []  # (job index, row), batched
        # Appended rows by table and keys (an executemany needs the same keys in every row), in order.
        self.appended: dict[tuple[Table, tuple[str, ...]], list[Mapping[str, Any]]] = {}
        self.afters: dict[tuple[int, tuple[tuple[str, Any], ...]], tuple[Executable, Mapping[str, Any]]] = {}
        self.locked: set[tuple[int, tuple[tuple[str, Any], ...]]] = set()
        self.job = -1

    def finish(self) -> None:
        """The batch's appended rows, then its `after` statements (`appending` only)."""
        for (table, _), rows in self.appended.items():
            self.insert(table, rows)
        for statement, params in self.afters.values():
            self.fetch(statement, params)

    def start_job(self) -> None:
        if not hasattr(self, "locked"):
            self.start_transaction()
        self.seq = None
        self.job += 1

    def log_change(self, row: Mapping[str, Any]) -> None:
        from dashboard.changes import INSERT_CHANGE

        if self.batched:
            self.change_rows.append((self.job, row))
        else:
            [(seq,)] = self.fetch(INSERT_CHANGE, row)
            self.seq = int(seq)

    def append(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not self.appending:
            self.insert(table, rows)
            return
        for row in rows:
            self.appended.setdefault((table, tuple(row)), []).append(row)

    def after(self, statement: Executable, params: Mapping[str, Any]) -> None:
        if not self.appending:
            self.fetch(statement, params)
            return
        key = (id(statement), tuple(sorted(params.items())))
        self.afters.pop(key, None)  # the latest place in the order: after every row appended so far
        self.afters[key] = (statement, params)

    def lock(self, statement: Executable, params: Mapping[str, Any]) -> None:
        if self.dialect == "sqlite":
            return
        if not hasattr(self, "locked"):
            self.start_transaction()
        key = (id(statement), tuple(sorted(params.items())))
        if key not in self.locked:
            self.fetch(statement, params)
            self.locked.add(key)


class CoreWriteConn(WriteState):
    """A WriteConn over a SQLAlchemy Connection, through `run_sync` (PostgreSQL, and SQLite's public
    fallback batch path)."""

    def __init__(self, conn: Connection, *, batched: bool = False, appending: bool = False):
        self.conn = conn
        self.dialect = conn.dialect.name
        self.batched, self.appending = batched, appending
        self.start_transaction()

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(table), list(rows))

    def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        result = self.conn.execute(statement, dict(params))
        return [tuple(r) for r in result] if result.returns_rows else []


# SQLSTATE classes of a database that is gone or not (yet) taking work: 08 connection exception,
# 57P admin shutdown / crash shutdown / cannot connect now (PostgreSQL restarting).
_UNAVAILABLE_SQLSTATES = ("08", "57P")


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or dropped the connection (a restart,
    a cut network), not that the statement was wrong: the caller answers 503 and may try again. The
    pool has already discarded the dead connections (SQLAlchemy invalidates it on a disconnect)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False) or isinstance(current, (ConnectionError, TimeoutError)):
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError):
            return True
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str) and code.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def claim_sqlite_file(url: str) -> Any:
    """The serving process's hold on its SQLite file (an exclusive lock on `<file>-server.lock`, kept
    while the process lives); None for PostgreSQL. SQLite is one process: its group commit, change
    feed and caches are this process's own, so a second server on the same file is refused."""
    import fcntl

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    held = open(f"{parsed.database}-server.lock", "a")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        held.close()
        raise SystemExit(f"another OT Tracker server is running on {parsed.database}: SQLite serves one "
                         "process; stop that one, or run several instances on PostgreSQL") from None
    return held


Lock = tuple[Executable, Mapping[str, Any]]  # a row lock a job takes (`WriteConn.lock`)


@dataclass
class _Queued:
    job: Callable[[WriteConn], Any]
    future: asyncio.Future[Any]  # answered (result, change_log number or None)
    retries: int = 0
    locks: Sequence[Lock] = ()  # taken for the whole batch first, in one global order (PostgreSQL)


class _SqliteWriter(WriteState, SqliteWriteConn):
    """SQLite's fast-path WriteConn, inserting change rows at once (one writer: its order is commit order)."""


def _run_batch(conn: sqlite3.Connection, batch: Sequence[_Queued]) -> list[tuple[bool, Any]]:
    """One transaction for the batch; each job in a savepoint. Runs on the writer's thread."""
    writer = _SqliteWriter(conn)
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for item in batch:
            conn.execute("SAVEPOINT job")
            writer.start_job()
            try:
                result = item.job(writer)
            except Exception as exc:  # noqa: BLE001 - this job's answer; the others go on
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((True, (result, writer.seq)))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _run_batch_public(conn: Connection, batch: Sequence[_Queued]) -> list[tuple[bool, Any]]:
    """`_run_batch` through SQLAlchemy's public API (the fallback): one transaction for the batch,
    each job in a savepoint, statements through `Connection.execute`. Runs inside `run_sync`."""
    writer = CoreWriteConn(conn)
    outcomes: list[tuple[bool, Any]] = []
    with conn.begin():  # the engine's begin hook makes it BEGIN IMMEDIATE; a failed COMMIT rolls back
        for item in batch:
            writer.start_job()
            try:
                with conn.begin_nested():
                    result = item.job(writer)
            except Exception as exc:  # noqa: BLE001 - this job's answer; the others go on
                outcomes.append((False, exc))
            else:
                outcomes.append((True, (result, writer.seq)))
    return outcomes


def _settle(batch: Sequence[_Queued], outcomes: Sequence[tuple[bool, Any]]) -> None:
    for item, (ok, value) in zip(batch, outcomes):
        if item.future.done():  # the caller was cancelled; its write stands
            continue
        if ok:
            item.future.set_result(value)
        else:
            item.future.set_exception(value)


class Database:
    """Owns the engines; hands out read and write sessions, and runs `transact` jobs."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=8)
        else:
            # hide_parameters: a failing statement's error never carries its values (patient data).
            self.write_engine = create_async_engine(url, pool_size=10, max_overflow=10, echo=echo,
                                                    hide_parameters=True)
            self.read_engine = self.write_engine
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Future[None] | None = None  # the batch being committed, done once answered
        # How each group-commit batch runs: on aiosqlite's thread (fast) or through run_sync (public API).
        self.batch_path = "group-commit" if self.dialect != "sqlite" else \
            sqlite_writer.FALLBACK if sqlite_writer.fast_path_problem() else sqlite_writer.FAST
        self._checkpointer: asyncio.Task[None] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self, *, timeout_seconds: float | None = None) -> AsyncIterator[AsyncSession]:
        """A read session. With `timeout_seconds`, PostgreSQL cancels any statement that runs
        longer (a caller's query is bounded); SQLite's reads run off the event loop already."""
        async with self._read() as session:
            if timeout_seconds is not None and not self.is_sqlite:
                await session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_seconds * 1000)}"))
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction the caller commits; rolled back on any exception."""
        self._checkpoint_in_background()
        async with self._write() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def transact(self, job: Callable[[WriteConn], T]) -> T:
        """Runs `job` in a committed transaction; returns its result or raises its exception.

        When this returns, the job's writes are committed (what to publish goes out after this).
        A job that raises has written nothing; the jobs batched with it are unaffected.
        """
        return (await self.transact_logged(job))[0]

    async def transact_logged(self, job: Callable[[WriteConn], T], *,
                              locks: Sequence[Lock] = ()) -> tuple[T, int | None]:
        """`transact`, answering (result, the number of the change_log row the job logged, or None).
        `locks`: the row locks the job will take; on PostgreSQL a batch takes all its jobs' locks
        first, ordered by their parameters, so two instances' batches never wait on each other in a
        cycle (a deadlock costs both a second: PostgreSQL's deadlock_timeout)."""
        self._checkpoint_in_background()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[T, int | None]] = loop.create_future()
        self._queue.append(_Queued(job, future, locks=locks))
        # A drain task of a loop that has since closed never finishes: start one on this loop.
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Commits everything queued, a batch at a time: what queues during one commit is the next."""
        while self._queue:
            batch, self._queue = self._queue, []
            self._in_flight = asyncio.get_running_loop().create_future()
            try:
                # SQLite: the pool's one write connection (ORM write sessions and batches take turns).
                async with self.write_engine.connect() as conn:
                    if not self.is_sqlite:
                        outcomes = await conn.run_sync(
                            pg_writer.run_batch, [item.job for item in batch],
                            lambda c, appending: CoreWriteConn(c, batched=True, appending=appending),
                            [item.locks for item in batch])
                        batch, outcomes = self._requeue_deadlocked(batch, outcomes)
                        _settle(batch, outcomes)
                        continue
                    driver = (await conn.get_raw_connection()).driver_connection
                    if self.batch_path == sqlite_writer.FAST and (problem := sqlite_writer.driver_problem(driver)):
                        self.batch_path = sqlite_writer.FALLBACK
                        log.warning("group commit: %s; batches go through run_sync from now on", problem)
                    if self.batch_path == sqlite_writer.FAST:
                        # The whole batch is one hop to the connection's thread and back instead of one
                        # per statement (the fast path: dashboard/sqlite_writer.py).
                        outcomes = await sqlite_writer.on_driver_thread(driver, _run_batch, batch)
                    else:
                        outcomes = await conn.run_sync(_run_batch_public, batch)
                    # Answer before the pool's check-in (its reset is one more hop to that thread).
                    _settle(batch, outcomes)
            except BaseException as exc:  # noqa: BLE001 - nothing committed: every job gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                # After the callers' futures: their hand-offs (ChangeFeed.committed) run before
                # anything waiting in batch_settled.
                self._in_flight.set_result(None)
                self._in_flight = None

    async def batch_settled(self) -> None:
        """Returns once the group-commit batch being committed now, if any, has answered its callers
        (not the batches after it: under steady writes there is always a next one)."""
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight)

    def _requeue_deadlocked(self, batch: list[_Queued], outcomes: list[tuple[bool, Any]],
                            ) -> tuple[list[_Queued], list[tuple[bool, Any]]]:
        """PostgreSQL: a job undone as a deadlock's victim goes to the front of the next batch (twice at
        most; then its caller gets the error)."""
        answered: list[_Queued] = []
        kept: list[tuple[bool, Any]] = []
        again: list[_Queued] = []
        for item, outcome in zip(batch, outcomes):
            if isinstance(outcome[1], pg_writer.Retry):
                if item.retries < 2:
                    item.retries += 1
                    again.append(item)
                    continue
                outcome = (False, outcome[1].error)
            answered.append(item)
            kept.append(outcome)
        self._queue[:0] = again
        return answered, kept

    def _checkpoint_in_background(self) -> None:
        """Starts the checkpointer with the first write on this loop (SQLite only)."""
        if self.is_sqlite:
            self._checkpointer = ensure_running(self._checkpointer, self._checkpoints, "sqlite-checkpoint")

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                async with self.read_engine.connect() as conn:
                    # On the driver connection, outside any transaction; PASSIVE never waits for
                    # readers or the writer, it copies what it can now and the rest next time.
                    driver = (await conn.get_raw_connection()).driver_connection
                    await driver.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the writer's own checkpoint is the backstop
                log.warning("background WAL checkpoint failed", exc_info=True)

    async def create_all(self) -> None:
        """For tests and benchmarks; production uses the Alembic migrations."""
        async with self.write_engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def truncate_all(self) -> None:
        async with self.write_engine.begin() as conn:
            if self.is_sqlite:
                for table in reversed(Base.metadata.sorted_tables):
                    await conn.execute(table.delete())
            else:
                names = ", ".join(t.name for t in Base.metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    async def dispose(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        await cancel(checkpointer)
        writer = self._writer
        if writer is not None and not writer.done() and writer.get_loop() is asyncio.get_running_loop():
            await writer
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
