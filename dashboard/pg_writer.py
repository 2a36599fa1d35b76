"""PostgreSQL group commit: the `transact` jobs queued meanwhile, committed in one transaction.

Each job runs inside its own SAVEPOINT, so a job that raises is undone alone and the others still
commit (as on SQLite's writer, dashboard/sqlite_writer.py). A batch of one job needs no savepoint: if it
raises, the transaction is rolled back.

The jobs' change_log rows are not inserted where each job asks for them but all together, as the
batch's last statement before COMMIT. The row's numbering trigger takes the change_log advisory lock
(SCALE-OUT.md §3); taken at the end, it is taken after every row lock the batch's jobs took, the same
order as every other write transaction (row locks, then the change_log row). Taken after the first job,
it would be held while later jobs wait for row locks, and a transaction holding one of those rows and
waiting for the advisory lock would deadlock with the batch. Numbers follow job order within the batch
(one multi-row INSERT; the rows are numbered in VALUES order), and the batch's commit makes them visible
together. A job that deadlocks anyway (another instance's batch took the same patients in the other
order) is undone alone and retried in the next batch.

Public API only: `Connection.begin()` once per batch, `begin_nested()` per job, statements through
`Connection.execute`, run inside `AsyncConnection.run_sync`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert
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
    from dashboard.changes import CHANGE_LOG, INSERT_CHANGE

    if len(rows) == 1:
        return [int(conn.execute(INSERT_CHANGE, dict(rows[0])).scalar_one())]
    statement = insert(CHANGE_LOG).values([dict(r) for r in rows]).returning(CHANGE_LOG.c.seq)
    # The trigger numbers rows as they are inserted, in VALUES order: the smallest number is the first row's.
    return sorted(int(seq) for seq in conn.execute(statement).scalars())


def run_batch(conn: Connection, jobs: Sequence[Callable[[Any], Any]], make_writer: Callable[[Connection], Any],
              ) -> list[tuple[bool, Any]]:
    """One transaction for the batch; each job in a savepoint (none for a batch of one); the change_log
    rows last. Outcomes in job order: (True, (result, seq)), (False, exception) or (False, Retry).
    Runs inside `run_sync`; raises (nothing committed) if the transaction itself fails."""
    writer = make_writer(conn)
    outcomes: list[tuple[bool, Any]] = []
    pending: list[tuple[int, Mapping[str, Any]]] = []  # (job index, change row)
    alone = len(jobs) == 1
    with conn.begin():
        for index, job in enumerate(jobs):
            writer.start_job()
            if alone:
                outcomes.append((True, job(writer)))  # raises: the transaction rolls back, the caller is told
            else:
                try:
                    with conn.begin_nested():
                        result = job(writer)
                except Exception as exc:  # noqa: BLE001 - this job's answer; the others go on
                    outcomes.append((False, Retry(exc) if deadlocked(exc) else exc))
                    continue
                outcomes.append((True, result))
            if writer.deferred is not None:
                pending.append((index, writer.deferred))
        seqs = insert_change_rows(conn, [row for _, row in pending]) if pending else []
    numbered = {index: seq for (index, _), seq in zip(pending, seqs)}
    return [(True, (value, numbered.get(i))) if ok else (ok, value) for i, (ok, value) in enumerate(outcomes)]
