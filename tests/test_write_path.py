"""The fast write path: creates committed together (group commit) stay separate changes.

One bad create among concurrent ones is refused alone; every other is stored, audited once and
published once; nothing is published before the commit that made it; a failed commit stores and
publishes nothing and the next write works.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import make_url

from dashboard import db as db_module
from dashboard import pg_writer
from dashboard.errors import NotFound
from dashboard.hub import Event, class_topic
from dashboard.serialize import to_parse
from tests.support import domain_snapshot, mailbox

TABLES = {"MobilityScore": "mobility_scores", "SessionNote": "session_notes", "EquipmentLog": "equipment_logs",
          "StatusHistory": "status_history", "PatientActivity": "patient_activity", "Patient": "patients"}


def _batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records how many jobs each group-commit transaction was given (to know the test grouped them)."""
    sizes: list[int] = []
    real, real_pg = db_module._run_batch, pg_writer.run_batch

    def recording(conn, batch):
        sizes.append(len(batch))
        return real(conn, batch)

    def recording_pg(conn, jobs, make_writer, locks=()):
        sizes.append(len(jobs))
        return real_pg(conn, jobs, make_writer, locks)

    monkeypatch.setattr(db_module, "_run_batch", recording)
    monkeypatch.setattr(pg_writer, "run_batch", recording_pg)
    return sizes


async def test_one_bad_create_among_concurrent_ones_is_refused_alone(world, monkeypatch):
    store, p = world.store, world.patient.id
    note_on_q = await store.add_note(principal=world.lead, patient_id=world.other_patient.id,
                                     session_type="review", text="Stable.")
    sizes = _batch_sizes(monkeypatch)
    sub = mailbox(store.hub, world.lead, [class_topic("MobilityScore"), class_topic("SessionNote")])
    trail_before = len(await store.audit_trail(principal=world.lead, limit=1000))
    start = datetime.now(timezone.utc) - timedelta(hours=1)

    def score(i: int):
        return store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=10 + i,
                                  score_date=start + timedelta(minutes=i))

    # The note amends a note of another patient: refused inside the transaction, after validation.
    bad = store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Amended.",
                         amends=note_on_q.id)
    results = await asyncio.gather(*(score(i) for i in range(4)), bad, *(score(i) for i in range(4, 8)),
                                   return_exceptions=True)

    refused = results.pop(4)
    assert isinstance(refused, NotFound)
    assert not any(isinstance(r, BaseException) for r in results), results
    assert max(sizes) >= 5, sizes  # the bad create was committed beside good ones
    ids = [r.id for r in results]
    stored = await store.find(principal=world.lead, class_name="MobilityScore", where={"patient": p}, limit=100)
    assert {r.id for r in stored} == set(ids)
    notes = await store.find(principal=world.lead, class_name="SessionNote", where={"patient": p}, limit=100)
    assert notes == []

    deliveries = sub.drain()
    assert sorted(d.object_id for d in deliveries) == sorted(ids)  # each published once, the bad one never
    assert all(d.kind == "create" and d.class_name == "MobilityScore" for d in deliveries)

    trail = await store.audit_trail(principal=world.lead, limit=1000)
    new = trail[:len(trail) - trail_before]  # newest first
    creates = [e.object_id for e in new if e.action == "create" and e.outcome == "ok"]
    assert sorted(creates) == sorted(ids)
    assert [(e.class_name, e.outcome) for e in new if e.outcome != "ok"] == [("SessionNote", "not_found")]

    [row] = await store.caseload(principal=world.owner, patient_id=p)
    assert (row.latest["barthel"].value, row.latest["barthel"].previous) == (17, 16)


async def test_a_create_reads_back_as_it_was_returned(world):
    store, p = world.store, world.patient.id
    when = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=45,
                                     score_date=when, notes="Walked to the door.")
    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.",
                                session_date=when)
    amendment = await store.add_note(principal=world.owner, patient_id=p, session_type="review",
                                     text="Seen twice.", amends=note.id)
    log = await store.check_out_equipment(principal=world.owner, patient_id=p, name="Frame", serial_number="F-1")
    for created in (score, note, amendment, log):
        again = await store.get(principal=world.lead, class_name=created.class_name, object_id=created.id)
        assert to_parse(again) == to_parse(created)
        assert again.version == created.version == 1
    found = await store.find(principal=world.lead, class_name="MobilityScore",
                             where={"scoreDate": {"$gte": {"__type": "Date", "iso": "2026-01-02T03:04:05.006Z"}}})
    assert [r.id for r in found] == [score.id]  # stored dates compare as the ORM's do
    chain = await store.find(principal=world.lead, class_name="StatusHistory", where={"patient": p}, limit=100)
    [history] = [h for h in chain if h.equipment_log_id == log.id]
    assert (history.from_value, history.to_value) == (None, "checked_out")
    assert sorted(h.sequence for h in chain) == list(range(1, len(chain) + 1))  # next in the patient's chain
    assert history.sequence == len(chain)


async def test_nothing_is_published_before_its_commit(world, database_url, monkeypatch):
    if not world.store.db.is_sqlite:
        pytest.skip("looks at the database file from a second connection")
    store, p = world.store, world.patient.id
    other = sqlite3.connect(make_url(database_url).database)
    seen: list[tuple[str, bool]] = []
    dispatch = store.hub.dispatch

    def checking(item) -> None:
        if isinstance(item, Event) and item.class_name in TABLES:
            key = "patient_id" if item.class_name == "PatientActivity" else "id"
            found = other.execute(f"SELECT count(*) FROM {TABLES[item.class_name]} WHERE {key} = ?",
                                  (item.object_id,)).fetchone()[0]
            seen.append((item.class_name, found == 1))
        dispatch(item)

    monkeypatch.setattr(store.hub, "dispatch", checking)
    try:
        await asyncio.gather(
            *(store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=i) for i in range(3)),
            store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.", follow_up=True),
            store.check_out_equipment(principal=world.owner, patient_id=p, name="Frame"),
            store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="Fell"))
    finally:
        other.close()
    assert {name for name, _ in seen} == {"MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory",
                                          "PatientActivity", "Patient"}
    assert all(visible for _, visible in seen), seen


class _CommitFails:
    """The writer's sqlite3 connection, except that COMMIT fails (as on a full disk)."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


async def test_a_failed_commit_stores_and_publishes_nothing_and_the_next_write_works(world, monkeypatch):
    store, p = world.store, world.patient.id
    if not store.db.is_sqlite:
        pytest.skip("group commit is SQLite's")
    real = db_module._run_batch
    monkeypatch.setattr(db_module, "_run_batch", lambda conn, batch: real(_CommitFails(conn), batch))
    sub = mailbox(store.hub, world.lead, [class_topic("MobilityScore"), class_topic("SessionNote")])
    before = await domain_snapshot(store.db)
    results = await asyncio.gather(
        *(store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=i) for i in range(3)),
        store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen."),
        return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
    assert await domain_snapshot(store.db) == before
    assert sub.drain() == []

    monkeypatch.setattr(db_module, "_run_batch", real)
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=5)
    assert [d.object_id for d in sub.drain()] == [score.id]


async def test_sqlite_moves_its_write_ahead_log_into_the_database_file_in_the_background(world, database_url):
    """Writes never stop to checkpoint: the log reaches the database file from a background checkpoint."""
    if not world.store.db.is_sqlite:
        pytest.skip("SQLite's write-ahead log")
    main_file = make_url(database_url).database
    before = os.path.getsize(main_file)
    for value in range(60):
        await world.store.record_score(principal=world.lead, patient_id=world.patient.id, score_type="barthel",
                                       value=value)
    # Far below the writer's own threshold (db_module.WAL_BACKSTOP_PAGES): only the background can grow it.
    deadline = asyncio.get_running_loop().time() + 10 * db_module.CHECKPOINT_SECONDS
    while os.path.getsize(main_file) <= before:
        assert asyncio.get_running_loop().time() < deadline, "no checkpoint moved the log into the file"
        await asyncio.sleep(0.05)  # polling the file: the checkpoint has no event to wait on
