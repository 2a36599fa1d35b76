"""PostgreSQL's group commit (dashboard/pg_writer.py): creates that arrive together are committed in one
transaction, and each is still its own change: stored, numbered, audited and pushed once, in order; one
refused job is refused alone, wherever in the batch it is refused; a failed batch stores nothing.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from dashboard import pg_writer
from dashboard.changes import decode
from dashboard.hub import class_topic, patient_topic
from dashboard.models import AuditEvent, ChangeLog
from tests.support import PASSWORD, domain_snapshot, eventually, mailbox

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
AUDIT = AuditEvent.__table__


def _batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many jobs each group-commit batch was given."""
    sizes: list[int] = []
    real = pg_writer.run_batch

    def recording(conn, jobs, make_writer, locks=()):
        sizes.append(len(jobs))
        return real(conn, jobs, make_writer, locks)

    monkeypatch.setattr(pg_writer, "run_batch", recording)
    return sizes


async def _log(store) -> list[tuple[int, str]]:
    async with store.db.read() as session:
        return list((await session.execute(select(ChangeLog.seq, ChangeLog.body).order_by(ChangeLog.seq))).all())


def _audit_row(class_name: str) -> dict:
    return dict(at=datetime.now(timezone.utc), actor_id=None, action="read", class_name=class_name, object_id=None,
                patient_ref=None, outcome="ok", detail=None, address=None)


async def test_creates_sent_together_commit_together_and_each_is_numbered_audited_and_pushed_once(world, monkeypatch):
    store, p, q = world.store, world.patient.id, world.other_patient.id
    sizes = _batches(monkeypatch)
    log_before = await _log(store)
    from_log_before = store.feed.caught_up_from_log
    box = mailbox(store.hub, world.lead, [class_topic("MobilityScore"), class_topic("SessionNote")])
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    made = await asyncio.gather(
        *(store.record_score(principal=world.lead, patient_id=(p, q)[i % 2], score_type="berg", value=20 + i,
                             score_date=start + timedelta(minutes=i)) for i in range(10)),
        *(store.add_note(principal=world.lead, patient_id=p, session_type="review", text=f"Seen {i}.",
                         follow_up=True) for i in range(6)))

    assert max(sizes) >= 8, sizes  # they were committed together
    new = (await _log(store))[len(log_before):]
    # One row per create, numbered in the order the creates were answered and pushed.
    bodies = [[c.object_id for c in decode(body) if getattr(c, "kind", None) == "create"] for _, body in new]
    assert [b[-1] for b in bodies] == [r.id for r in made]
    assert [seq for seq, _ in new] == list(range(new[0][0], new[0][0] + len(made)))
    assert [d.object_id for d in box.drain()] == [r.id for r in made]
    assert store.feed.applied == new[-1][0]
    assert store.feed.caught_up_from_log == from_log_before  # every hand-off applied from memory, in order

    trail = await store.audit_trail(principal=world.lead, limit=1000)
    created = [e.object_id for e in trail if e.action == "create" and e.outcome == "ok"
               and e.class_name in ("MobilityScore", "SessionNote")]
    assert sorted(created) == sorted(r.id for r in made)
    rows = {r.object_id: r for r in await store.caseload(principal=world.lead)}
    # The summaries, recomputed once per batch, say what one recomputation per score said.
    assert (rows[p].latest["berg"].value, rows[p].latest["berg"].previous) == (28, 26)
    assert (rows[q].latest["berg"].value, rows[q].latest["berg"].previous) == (29, 27)
    assert rows[p].open_follow_ups == 6


async def test_a_row_refused_at_the_end_of_the_batch_refuses_only_the_job_that_appended_it(world, monkeypatch):
    store = world.store
    sizes = _batches(monkeypatch)
    async with store.db.read() as session:
        before = await session.scalar(select(func.count()).select_from(AUDIT))
    names = ["Ward", "Ward", "W" * 40, "Ward", "Ward"]  # class_name holds 32 characters
    results = await asyncio.gather(
        *(store.db.transact(lambda w, n=n: w.append(AUDIT, [_audit_row(n)])) for n in names),
        return_exceptions=True)

    assert sizes[0] == len(names)
    refused = results.pop(2)
    assert isinstance(refused, DBAPIError) and refused.orig.sqlstate == "22001"  # value too long
    assert results == [None] * 4
    async with store.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AUDIT)) == before + 4


async def test_a_deadlock_victim_is_run_again_and_answered_once_it_commits(world):
    store = world.store

    class Deadlock(Exception):
        sqlstate = pg_writer.DEADLOCK

    attempts: list[int] = []

    def job(w):
        attempts.append(1)
        if len(attempts) == 1:
            raise DBAPIError("SELECT ...", {}, Deadlock("deadlock detected"))
        w.append(AUDIT, [_audit_row("Ward")])
        return "stored"

    assert await store.db.transact(job) == "stored"
    assert len(attempts) == 2


async def test_a_failed_batch_stores_and_publishes_nothing_and_the_next_write_works(world, monkeypatch):
    store, p = world.store, world.patient.id
    real = pg_writer.insert_change_rows

    def then_fail(conn, rows):  # the rows are in; the commit never comes
        real(conn, rows)
        raise ConnectionResetError("the database went away before COMMIT")

    monkeypatch.setattr(pg_writer, "insert_change_rows", then_fail)
    sub = mailbox(store.hub, world.lead, [patient_topic(p)])
    before = await domain_snapshot(store.db)
    log_before = await _log(store)
    results = await asyncio.gather(
        *(store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=i) for i in range(3)),
        store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen."),
        return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results), results
    assert await domain_snapshot(store.db) == before
    assert await _log(store) == log_before
    assert sub.drain() == []

    monkeypatch.setattr(pg_writer, "insert_change_rows", real)
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=5)
    assert [d.object_id for d in sub.drain() if d.class_name == "MobilityScore"] == [score.id]


async def test_two_instances_batches_on_the_same_patients_never_deadlock(world, monkeypatch, database_url):
    """Instances A and B each batch creates for P and Q, in opposite orders. Each batch takes its
    patients' row locks first, in one order everywhere, so neither waits on the other in a cycle
    (PostgreSQL would break it after deadlock_timeout, a second, by undoing one batch)."""
    import dataclasses

    from dashboard.db import Database
    from dashboard.store import Store

    a, p, q = world.store, world.patient.id, world.other_patient.id
    db_b = Database(database_url)
    b = Store(db_b, settings=dataclasses.replace(a.settings, instance_id="b:2"))
    await b.start()
    leads = {a: world.lead, b: (await b.log_in(username="lead", password=PASSWORD)).principal}
    victims: list[BaseException] = []
    real = pg_writer.deadlocked

    def counting(exc: BaseException) -> bool:
        if real(exc):
            victims.append(exc)
            return True
        return False

    monkeypatch.setattr(pg_writer, "deadlocked", counting)
    sizes = _batches(monkeypatch)
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    try:
        for round_ in range(4):
            orders = {a: (p, q), b: (q, p)}
            made = await asyncio.gather(*(
                store.record_score(principal=leads[store], patient_id=order[i % 2], score_type="berg", value=10 + i,
                                   score_date=start + timedelta(minutes=round_ * 100 + i))
                for store, order in orders.items() for i in range(12)))
            assert len(made) == 24
    finally:
        await b.stop()
        await db_b.dispose()
    assert max(sizes) >= 6, sizes  # batched on both, with both patients in a batch
    assert victims == []
    async with a.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(ChangeLog))
    assert count >= 96


async def test_the_notifications_of_an_instance_s_own_commits_cause_no_reads_of_the_log(world):
    """Each commit NOTIFYs every instance, this one too, often before its commit is answered here;
    the feed waits for the batch to hand its changes off, so its own rows are never read back."""
    store, p = world.store, world.patient.id
    await eventually(lambda: store.feed.listening, timeout=5)
    before = store.feed.woken_reads
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    for round_ in range(5):
        await asyncio.gather(*(store.record_score(principal=world.lead, patient_id=p, score_type="berg",
                                                  value=10 + i, score_date=start + timedelta(minutes=10 * round_ + i))
                               for i in range(8)))
    last = store.feed.applied
    await eventually(lambda: store.feed.notified_up_to >= last, timeout=5)  # every NOTIFY has come in
    assert store.feed.woken_reads == before
