"""The SQLite group commit's fast path, and the check that decides whether it may run.

Fast path ("driver-thread"): a whole batch of `transact` jobs is one call on the write connection's
own aiosqlite thread, against the raw `sqlite3` connection, with SQL text and bind processors that
SQLAlchemy compiled once. One hop to that thread and back per batch instead of one per statement.
It borrows, from aiosqlite, `Connection._execute(fn, *args)` (queue a function on the connection's
thread) and `Connection._conn` (the sqlite3 connection); from SQLAlchemy, `SQLCompiler.positiontup`
and `.binds` (which parameter sits at which `?`) and the bind processors of a privately built
`SQLiteDialect_aiosqlite()` (so raw inserts store values exactly as the ORM does).

Fallback ("run_sync"): the same batch through public API only, `AsyncConnection.run_sync` with one
`Connection.begin()` for the batch and a `begin_nested()` savepoint per job (db.py runs it). Same
semantics, one thread hop per statement.

`fast_path_problem()` is the start-up check: the installed versions are in the checked ranges
(also the pins in pyproject.toml), the borrowed attributes exist with the expected shape, and a
probe statement compiles as expected. `driver_problem()` checks the live driver connection at the
first batch. `OT_FAST_PATHS_OFF=sqlite-batch` turns the fast path off.
"""
from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from dashboard import fast_paths

NAME = "sqlite-batch"
FAST = "driver-thread"
FALLBACK = "run_sync"
# [lower, upper): the ranges this was checked against, and pinned to in pyproject.toml.
AIOSQLITE_RANGE = ((0, 20), (0, 23))
SQLALCHEMY_RANGE = ((2, 0, 30), (2, 2))


def _outside(distribution: str, bounds: tuple[tuple[int, ...], tuple[int, ...]]) -> str | None:
    version = fast_paths.version_tuple(distribution)
    low, high = bounds
    if not low <= version < high:
        shown = ".".join(map(str, version))
        return f"{distribution} {shown} is outside {'.'.join(map(str, low))} to <{'.'.join(map(str, high))}"
    return None


def _aiosqlite_problem() -> str | None:
    try:
        import aiosqlite
    except ImportError:
        return "aiosqlite is not installed"
    if problem := _outside("aiosqlite", AIOSQLITE_RANGE):
        return problem
    execute = getattr(aiosqlite.Connection, "_execute", None)
    if execute is None or not inspect.iscoroutinefunction(execute):
        return "aiosqlite.Connection._execute is not a coroutine function"
    parameters = list(inspect.signature(execute).parameters.values())
    kinds = [p.kind for p in parameters]
    if kinds != [inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]:
        return f"aiosqlite.Connection._execute{inspect.signature(execute)} is not (self, fn, *args, **kwargs)"
    if not isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn", None), property):
        return "aiosqlite.Connection._conn is not a property"
    return None


def _sqlalchemy_problem() -> str | None:
    if problem := _outside("sqlalchemy", SQLALCHEMY_RANGE):
        return problem
    try:
        from sqlalchemy import Column, DateTime, MetaData, String, Table, select

        probe = Table("probe", MetaData(), Column("id", String), Column("at", DateTime(timezone=True)))
        compiled, sql, binds = _compile(select(probe.c.id).where(probe.c.at > 0, probe.c.id == "x"))
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        values = compiled.construct_params({})
        if sql.count("?") != 2 or [n for n, _ in binds] != list(compiled.positiontup):
            return "SQLCompiler.positiontup does not name each ? in order"
        insert_sql, processors = insert_statement(probe, ("id", "at"))
        stored = processors[1](when) if processors[1] else when
        if not isinstance(stored, str) or "2024-01-02" not in stored or insert_sql.count("?") != 2:
            return "the dialect's DateTime bind processor does not store text"
        if len(values) != 2:
            return "construct_params does not cover positiontup"
    except Exception as exc:  # noqa: BLE001 - any surprise means: use the public path
        return f"SQLAlchemy's compiler is not as checked ({type(exc).__name__}: {exc})"
    return None


@functools.cache
def _static_problem() -> str | None:
    return _aiosqlite_problem() or _sqlalchemy_problem()


def fast_path_problem() -> str | None:
    """Why the fast path cannot run in this process (None: it can). Logged once, as it is decided."""
    problem = f"{fast_paths.ENV} names it" if fast_paths.switched_off(NAME) else _static_problem()
    fast_paths.report(NAME, problem, fast=FAST, fallback=FALLBACK)
    return problem


def driver_problem(driver: Any) -> str | None:
    """Why this live driver connection cannot take the fast path (None: it can)."""
    import aiosqlite

    if not isinstance(driver, aiosqlite.Connection):
        return f"the write engine's driver connection is a {type(driver).__name__}, not aiosqlite's"
    try:
        if not isinstance(driver._conn, sqlite3.Connection):  # noqa: SLF001
            return "aiosqlite.Connection._conn is not a sqlite3 connection"
    except ValueError as exc:  # closed
        return str(exc)
    return None


def on_driver_thread(driver: Any, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Runs fn(sqlite3_connection, *args) on the driver connection's own thread."""
    return driver._execute(fn, driver._conn, *args)  # noqa: SLF001


# ------------------------------------------------------------------- SQL text for the raw connection
@functools.cache
def _dialect() -> Any:
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    return SQLiteDialect_aiosqlite()  # the write engine's dialect, so values are processed as the ORM does


def _processor(type_: Any) -> Callable[[Any], Any] | None:
    dialect = _dialect()
    return type_.dialect_impl(dialect).bind_processor(dialect)


@functools.cache
def insert_statement(table: Any, keys: tuple[str, ...]) -> tuple[str, tuple[Callable[[Any], Any] | None, ...]]:
    """INSERT text for these columns, with each column type's own bind processor, so values are
    stored exactly as the ORM stores them (UTC datetimes as text, booleans as 0/1)."""
    quote = _dialect().identifier_preparer.quote
    columns = [table.c[k] for k in keys]
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) "
           f"VALUES ({', '.join('?' for _ in columns)})")
    return sql, tuple(_processor(c.type) for c in columns)


def _compile(statement: Any) -> tuple[Any, str, tuple[tuple[str, Callable[[Any], Any] | None], ...]]:
    compiled = statement.compile(dialect=_dialect())
    names = tuple(compiled.positiontup or ())
    return compiled, compiled.string, tuple((n, _processor(compiled.binds[n].type)) for n in names)


compiled_statement = functools.cache(_compile)
compiled_statement.__doc__ = "Compiled once: the SQL text and, per positional parameter, its name and bind processor."


class SqliteWriteConn:
    """A WriteConn over the raw sqlite3 connection, on the writer connection's own thread."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def insert(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        keys = tuple(rows[0])
        sql, processors = insert_statement(table, keys)
        params = [tuple(v if p is None else p(v) for p, v in zip(processors, (row[k] for k in keys)))
                  for row in rows]
        if len(params) == 1:
            self.conn.execute(sql, params[0])
        else:
            self.conn.executemany(sql, params)

    def fetch(self, statement: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        compiled, sql, binds = compiled_statement(statement)
        values = compiled.construct_params(dict(params))
        return self.conn.execute(sql, tuple(values[n] if p is None else p(values[n]) for n, p in binds)).fetchall()
