"""PostgreSQL group commit: the `transact` jobs queued meanwhile, committed in one transaction.

A job that raises is undone alone and the others still commit, as on SQLite's writer
(dashboard/sqlite_writer.py), but without a SAVEPOINT per job (two round trips each, a third of a
score's): the batch is rolled back and run again without the job that raised. Refusals are rare (most
are decided before the job), and a job touches nothing but its arguments and its connection, so it
may run more than once. Rows nothing reads back in the transaction (audit rows, new scores and notes)
are inserted together at the end (`WriteConn.append`), then each distinct recomputation the jobs
ask for (`WriteConn.after`: a score's summary) runs once, and a row lock the batch's jobs ask for again
is taken once. A new score then costs its batch nothing but its share of a few statements.

The jobs' change_log rows are not inserted where each job asks for them but all together, as the
batch's last statement before COMMIT. The row's numbering trigger takes the change_log advisory lock
(SCALE-OUT.md §3); taken at the end, it is taken after every row lock the batch's jobs took, the same
order as every other write transaction (row locks, then the change_log row). Taken after the first job,
it would be held while later jobs wait for row locks, and a transaction holding one of those rows and
waiting for the advisory lock would deadlock with the batch. Numbers follow job order within the batch
(one multi-row INSERT; the rows are numbered in VALUES order), and the batch's commit makes them visible
together. A job that deadlocks anyway (another instance's batch took the same patients in the other
order) is left out and retried in the next batch.

Public API only: `Connection.begin()` once per attempt, statements through `Connection.execute`, run
inside `AsyncConnection.run_sync`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

DEADLOCK = "40P01"


class Retry:
    """A job's outcome when the database chose it as a deadlock's victim: queue it again."""

    def __init__(self, error: BaseException):
        self.error = error  # the caller's answer if it deadlocks every time


def deadlocked(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return code == DEADLOCK


def insert_change_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Inserts change_log rows in one statement; their numbers in the rows' order."""
    from dashboard.changes import INSERT_CHANGE

    if len(rows) == 1:
        return [int(conn.execute(INSERT_CHANGE, dict(rows[0])).scalar_one())]
    # An executemany with RETURNING: SQLAlchemy sends it as one multi-row INSERT ("insertmanyvalues")
    # from the statement compiled once (`.values([...])` compiled every batch anew: 5% of a create).
    # The trigger numbers rows as they are inserted, in VALUES order: the smallest number is the first row's.
    return sorted(int(seq) for seq in conn.execute(INSERT_CHANGE, [dict(r) for r in rows]).scalars())


@functools.lru_cache(maxsize=64)
def _statement_text(statement: Any) -> str:
    return str(statement)  # statements hash by identity: each lock statement compiled once


def lock_order(lock: tuple[Any, Mapping[str, Any]]) -> tuple:
    """Every instance takes row locks in this order: by the lock statement's text, then parameters."""
    statement, params = lock
    return _statement_text(statement), tuple(sorted((k, str(v)) for k, v in params.items()))


def run_batch(conn: Connection, jobs: Sequence[Callable[[Any], Any]],
              make_writer: Callable[[Connection, bool], Any],
              locks: Sequence[Sequence[tuple[Any, Mapping[str, Any]]]] = ()) -> list[tuple[bool, Any]]:
    """One transaction for the batch; the appended rows, the `after` statements and the change_log
    rows last. Outcomes in job order: (True, (result, seq)), (False, exception) or (False, Retry).
    A job that raises is answered with its exception, the transaction is rolled back and the batch
    runs again without it. If the end of the batch fails (an appended row refused), the batch runs
    again with every row inserted where its job asks, so the job it belongs to is the one refused.
    Runs inside `run_sync`; raises (nothing committed) if the transaction itself fails."""
    failed: dict[int, Any] = {}
    appending = True
    while True:
        live = [i for i in range(len(jobs)) if i not in failed]
        if not live:
            return [(False, failed[i]) for i in range(len(jobs))]
        writer = make_writer(conn, appending)
        results: dict[int, Any] = {}
        # The live jobs' declared row locks first, in lock_order: a job's own `lock` of one is then free.
        wanted = {lock_order(lock): lock for i in live if i < len(locks) for lock in locks[i]}
        with conn.begin() as transaction:
            try:
                for key in sorted(wanted):
                    writer.lock(*wanted[key])
            except Exception as exc:  # noqa: BLE001 - a deadlock (with an ORM transaction): all again
                if not deadlocked(exc):
                    raise
                transaction.rollback()
                failed.update((i, Retry(exc)) for i in live)
                continue
            for i in live:
                writer.start_job()
                try:
                    results[i] = jobs[i](writer)
                except Exception as exc:  # noqa: BLE001 - this job's answer; the others run again
                    failed[i] = Retry(exc) if deadlocked(exc) else exc
                    transaction.rollback()
                    break
            else:
                try:
                    writer.finish()
                except Exception:
                    if not appending:
                        raise  # nothing was left to the end but rows the jobs' own statements made
                    transaction.rollback()
                    appending = False
                    continue
                change_rows = writer.change_rows
                seqs = insert_change_rows(conn, [row for _, row in change_rows]) if change_rows else []
        if len(results) == len(live):  # committed as the block ended
            numbered = {live[job]: seq for (job, _), seq in zip(change_rows, seqs)}
            return [(True, (results[i], numbered.get(i))) if i in results else (False, failed[i])
                    for i in range(len(jobs))]
