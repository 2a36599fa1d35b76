"""The fast paths (dashboard/FAST-PATHS.md): which one is active on the installed dependencies, and
that the public fallback gives the same result when it is not.

The first tests fail after an upgrade on purpose: re-check the fast path against the new internals,
then widen its range and the pin in pyproject.toml. (The app still works without it, slower.)
"""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dashboard import db as db_module
from dashboard import fast_paths, sqlite_writer
from dashboard.db import Database
from dashboard.errors import NotFound
from dashboard.store import Store
from tests.support import build_world, settings_for


def test_the_group_commit_fast_path_is_active_on_the_installed_aiosqlite_and_sqlalchemy():
    assert sqlite_writer.fast_path_problem() is None
    assert fast_paths.active()[sqlite_writer.NAME] == sqlite_writer.FAST


def _world(tmp_path: Path):
    async def build():
        url = f"sqlite+aiosqlite:///{tmp_path / 'fast-paths.sqlite3'}"
        db = Database(url)
        await db.create_all()
        store = Store(db, settings=settings_for(url))
        await store.start()
        return await build_world(store)
    return build()


async def test_on_the_installed_versions_a_batch_runs_on_the_drivers_thread(tmp_path, monkeypatch):
    world = await _world(tmp_path)
    store = world.store
    threads: list[tuple[int, str]] = []
    real = db_module._run_batch

    def recording(conn, batch):
        threads.append((len(batch), threading.current_thread().name))
        return real(conn, batch)

    monkeypatch.setattr(db_module, "_run_batch", recording)
    try:
        assert store.db.batch_path == sqlite_writer.FAST
        scores = await asyncio.gather(*(store.record_score(principal=world.owner, patient_id=world.patient.id,
                                                           score_type="barthel", value=v) for v in (20, 30)))
        stored = await store.find(principal=world.lead, class_name="MobilityScore",
                                  where={"patient": world.patient.id}, limit=10)
        assert {s.id for s in stored} == {s.id for s in scores}
        assert threads and all(name != threading.main_thread().name for _, name in threads), threads
        assert max(size for size, _ in threads) == 2  # both scores in one batch, off the event loop's thread
    finally:
        await store.flush_audit()
        await store.db.dispose()


async def test_with_the_fast_path_off_a_batch_still_commits_every_job_but_the_one_that_fails(tmp_path, monkeypatch):
    monkeypatch.setenv(fast_paths.ENV, sqlite_writer.NAME)
    world = await _world(tmp_path)
    store, p = world.store, world.patient.id
    sizes: list[int] = []
    real = db_module._run_batch_public

    def recording(conn, batch):
        sizes.append(len(batch))
        return real(conn, batch)

    monkeypatch.setattr(db_module, "_run_batch_public", recording)
    monkeypatch.setattr(db_module, "_run_batch", None)  # the fast path must not run at all
    try:
        assert store.db.batch_path == sqlite_writer.FALLBACK
        assert fast_paths.active()[sqlite_writer.NAME] == sqlite_writer.FALLBACK
        note_on_q = await store.add_note(principal=world.lead, patient_id=world.other_patient.id,
                                         session_type="review", text="Stable.")
        start = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)

        def score(i: int):
            return store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=10 + i,
                                      score_date=start + timedelta(minutes=i))

        # The note amends a note of another patient: refused inside the transaction, after validation.
        bad = store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Amended.",
                             amends=note_on_q.id)
        results = await asyncio.gather(score(0), score(1), bad, score(2), return_exceptions=True)

        assert isinstance(results.pop(2), NotFound)
        assert not any(isinstance(r, BaseException) for r in results), results
        assert max(sizes) >= 4, sizes  # the refused note was in the same transaction as the scores
        stored = await store.find(principal=world.lead, class_name="MobilityScore", where={"patient": p}, limit=10)
        assert sorted((s.score_value, s.score_date.replace(tzinfo=timezone.utc)) for s in stored) == [
            (10 + i, start + timedelta(minutes=i)) for i in range(3)]  # a datetime reads back as written
        assert await store.find(principal=world.lead, class_name="SessionNote", where={"patient": p}, limit=10) == []
        [row] = await store.caseload(principal=world.owner, patient_id=p)
        assert (row.latest["barthel"].value, row.latest["barthel"].previous) == (12, 11)
        trail = await store.audit_trail(principal=world.lead, limit=1000)
        assert sorted(e.object_id for e in trail if e.class_name == "MobilityScore" and e.action == "create"
                      and e.outcome == "ok") == \
            sorted(r.id for r in results)
    finally:
        await store.flush_audit()
        await store.db.dispose()
    fast_paths.report(sqlite_writer.NAME, None, fast=sqlite_writer.FAST, fallback=sqlite_writer.FALLBACK)


def test_a_switched_off_fast_path_says_so(monkeypatch):
    monkeypatch.setenv(fast_paths.ENV, "outbox, sqlite-batch")
    assert fast_paths.switched_off("sqlite-batch") and fast_paths.switched_off("outbox")
    assert not fast_paths.switched_off("score-list")
    monkeypatch.setenv(fast_paths.ENV, "all")
    assert fast_paths.switched_off("score-list")


@pytest.mark.parametrize("text, expected", [("0.22.1", (0, 22, 1)), ("2.1.0b1", (2, 1, 0)), ("3.18.0", (3, 18, 0))])
def test_versions_compare_by_their_numbers(monkeypatch, text, expected):
    monkeypatch.setattr(fast_paths.importlib.metadata, "version", lambda _name: text)
    assert fast_paths.version_tuple("anything") == expected
