"""Engines and sessions. SQLite: WAL, foreign keys, busy timeout, and one writer connection.

SQLite allows one writer at a time. Writes go through a single pooled connection that opens
its transactions with BEGIN IMMEDIATE, so concurrent writers queue in the pool instead of failing
with "database is locked" when a read transaction tries to upgrade. Reads use their own pool and
run concurrently under WAL. PostgreSQL uses one engine for both.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from dashboard.models import Base

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
)


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
        # Take transaction control away from the driver so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # pragma: no cover - driver hook
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """Owns the engines; hands out read and write sessions."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=8)
        else:
            self.write_engine = create_async_engine(url, pool_size=10, max_overflow=10, echo=echo)
            self.read_engine = self.write_engine
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction the caller commits; rolled back on any exception."""
        async with self._write() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

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
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
