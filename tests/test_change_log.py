"""Committed changes as data: every write's changes are one change_log row of its own transaction,
applied in commit order by the change feed (access index, then hub).

What a user would notice: a refused or failed save pushes nothing to anyone; a save whose push was
lost on the way (the writer died between its commit and its push) still reaches every open screen;
changes reach screens in the order they were committed; another process on the same database
learns of a reassignment and shows the write.
"""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from dashboard.access import Principal
from dashboard.changes import INSERT_CHANGE, change_row, decode
from dashboard.db import Database
from dashboard.errors import InvalidInput
from dashboard.hub import Event, class_topic, patient_topic
from dashboard.models import ChangeLog
from dashboard.store import Store
from dashboard.store.core import StoreCore
from tests.support import World, eventually, mailbox, settings_for


async def log_rows(store: Store) -> list[int]:
    async with store.db.read() as session:
        return list(await session.scalars(select(ChangeLog.seq).order_by(ChangeLog.seq)))


async def test_a_committed_write_is_one_row_holding_its_events_in_order(world: World):
    store, p = world.store, world.patient.id
    before = await log_rows(store)
    await store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="Fell")
    after = await log_rows(store)
    assert len(after) == len(before) + 1 and after[-1] == store.feed.applied
    async with store.db.read() as session:
        body = await session.scalar(select(ChangeLog.body).where(ChangeLog.seq == after[-1]))
    changes = decode(body)
    assert [(c.kind, c.class_name) for c in changes if isinstance(c, Event)] == [
        ("create", "StatusHistory"), ("update", "Patient")]


@pytest.mark.parametrize("path", ["orm", "job"])
async def test_a_write_that_fails_after_its_change_row_leaves_no_row_and_pushes_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch, path: str):
    store, p = world.store, world.patient.id
    rows = await log_rows(store)
    with mailbox(store.hub, world.team_therapist, [patient_topic(p), class_topic("MobilityScore")]) as box:
        if path == "orm":
            original = StoreCore.log_changes

            async def then_fail(session, changes):  # the row is in; the commit never comes
                await original(session, changes)
                raise RuntimeError("the database went away before COMMIT")

            monkeypatch.setattr(StoreCore, "log_changes", staticmethod(then_fail))
            with pytest.raises(RuntimeError):
                await store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="x")
        else:
            original_job = StoreCore.log_changes_in_job

            def then_fail_job(w, changes):
                original_job(w, changes)
                raise RuntimeError("the job failed after its change row")

            monkeypatch.setattr(StoreCore, "log_changes_in_job", staticmethod(then_fail_job))
            with pytest.raises(RuntimeError):
                await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=40)
        monkeypatch.undo()
        assert await log_rows(store) == rows
        assert box.drain() == []
        # The next write works, is numbered next, and is pushed.
        made = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=41)
        assert [d.object_id for d in box.drain() if d.class_name == "MobilityScore"] == [made.id]
    assert (await log_rows(store))[-1] == store.feed.applied


async def test_a_push_lost_between_commit_and_hand_off_is_delivered_from_the_log(
        world: World, monkeypatch: pytest.MonkeyPatch):
    """The writer's task ends right after its commit (a cancelled request, a crash of the step that
    pushes): nothing in memory carries the change, yet every open screen still gets it, in order."""
    store, p = world.store, world.patient.id
    committed = store.feed.committed
    dropped: list[int | None] = []

    async def lost(seq, changes):
        dropped.append(seq)  # the hand-off never happens

    with mailbox(store.hub, world.team_therapist, [patient_topic(p, "MobilityScore")]) as box:
        monkeypatch.setattr(store.feed, "committed", lost)
        first = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=42)
        monkeypatch.setattr(store.feed, "committed", committed)
        assert dropped and box.drain() == []
        second = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=43)
        # The second hand-off finds a gap and fills it from the log first: both arrive, in order.
        assert [d.object_id for d in box.drain()] == [first.id, second.id]
    assert store.feed.caught_up_from_log >= 1


async def test_a_lost_push_is_delivered_by_the_heartbeat_without_another_write(
        world: World, monkeypatch: pytest.MonkeyPatch):
    store, p = world.store, world.patient.id

    async def lost(seq, changes):
        return None

    with mailbox(store.hub, world.team_therapist, [patient_topic(p, "SessionNote")]) as box:
        monkeypatch.setattr(store.feed, "committed", lost)
        note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.")
        got: list[str] = []
        await eventually(lambda: got.extend(d.object_id for d in box.drain()) or note.id in got, timeout=5)


async def test_an_access_change_whose_hand_off_was_lost_still_ends_access(
        world: World, monkeypatch: pytest.MonkeyPatch):
    """A care-team removal committed without its in-memory hand-off: the member loses the patient
    as soon as the feed catches up, on every screen."""
    store, p = world.store, world.patient.id
    member = world.team_contributor

    async def lost(seq, changes):
        return None

    monkeypatch.setattr(store.feed, "committed", lost)
    await store.remove_care_team_member(principal=world.lead, patient_id=p, user_id=member.user_id)
    monkeypatch.undo()
    await store.feed.catch_up()  # or the heartbeat did already: either way, from the log
    assert store.feed.applied == (await log_rows(store))[-1]
    assert not store.access.sees_patient(member, p)


async def test_a_second_store_on_the_same_database_applies_the_first_ones_changes(
        world: World, database_url: str):
    """What a restarted process (or a second instance) sees: the index rebuilt from committed state,
    then every change committed elsewhere afterwards, from the log."""
    store, p = world.store, world.patient.id
    db2 = Database(database_url)
    other = Store(db2, settings=settings_for(database_url))
    await other.start()
    try:
        assert other.feed.applied == store.feed.applied
        # The other process knows these users but not their sessions: ask as the users themselves.
        member, colleague = (Principal(world.team_contributor.user_id), Principal(world.team_therapist.user_id))
        assert other.access.sees_patient(member, p)
        with mailbox(other.hub, colleague, [patient_topic(p, "MobilityScore")]) as box:
            await store.remove_care_team_member(principal=world.lead, patient_id=p, user_id=member.user_id)
            made = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=44)
            # On PostgreSQL a NOTIFY wakes the other; on SQLite (tests only: one process) its heartbeat.
            await eventually(lambda: not other.access.sees_patient(member, p), timeout=5)
            got: list[str] = []
            await eventually(lambda: got.extend(d.object_id for d in box.drain()) or made.id in got, timeout=5)
    finally:
        await other.stop()
        await db2.dispose()


async def test_transactions_are_applied_in_commit_order_not_start_order(world: World, monkeypatch: pytest.MonkeyPatch):
    """Two transactions: the first to start commits last. Numbers, and the order the feed applies
    them in, follow the commits (an identity value taken at INSERT would not, SCALE-OUT.md §3)."""
    store = world.store
    if store.db.is_sqlite:
        pytest.skip("SQLite has one writer: transactions cannot interleave")
    p = world.patient.id
    early = Event("update", "PatientActivity", p, p, {"className": "PatientActivity", "objectId": p, "n": "early"})
    late = Event("update", "PatientActivity", p, p, {"className": "PatientActivity", "objectId": p, "n": "late"})
    applied: list[str] = []
    original = store.hub.dispatch

    def seen(item) -> None:
        if isinstance(item, Event) and item.data and "n" in item.data:
            applied.append(item.data["n"])
        original(item)

    # Whatever applies them (the NOTIFY wake-up or this catch-up), the order is the commits'.
    monkeypatch.setattr(store.hub, "dispatch", seen)
    async with store.db.write_engine.connect() as first, store.db.write_engine.connect() as second:
        await first.begin()
        await first.execute(select(func.now()))  # started first; writes its row last
        await second.begin()
        second_seq = (await second.execute(INSERT_CHANGE, change_row([late]))).scalar_one()
        await second.commit()
        first_seq = (await first.execute(INSERT_CHANGE, change_row([early]))).scalar_one()
        await first.commit()
    assert second_seq < first_seq
    await store.feed.catch_up()
    assert applied == ["late", "early"]


async def test_a_change_row_waits_for_the_one_before_it_to_commit(world: World):
    """On PostgreSQL, a transaction numbering its row holds the numbering until it ends: a second
    one cannot take a number meanwhile, so what readers see is always a prefix of the log."""
    store = world.store
    if store.db.is_sqlite:
        pytest.skip("SQLite has one writer")
    p = world.patient.id
    event = Event("update", "PatientActivity", p, p, {"className": "PatientActivity", "objectId": p})
    async with store.db.write_engine.connect() as first, store.db.write_engine.connect() as second:
        await first.begin()
        first_seq = (await first.execute(INSERT_CHANGE, change_row([event]))).scalar_one()
        await second.begin()
        waiting = asyncio.ensure_future(second.execute(INSERT_CHANGE, change_row([event])))
        done, _ = await asyncio.wait({waiting}, timeout=0.3)
        assert not done  # blocked on the numbering lock, not failed
        await first.commit()
        second_seq = (await waiting).scalar_one()
        await second.commit()
    assert second_seq > first_seq


async def test_old_rows_are_pruned(world: World, monkeypatch: pytest.MonkeyPatch):
    from datetime import timedelta

    import dashboard.changes as changes

    store = world.store
    rows = await log_rows(store)
    assert rows
    monkeypatch.setattr(store.feed, "retention", timedelta(seconds=-1))
    assert await store.feed.prune() == rows[-1]
    # The newest pruned row stays as the mark: an instance that had not applied it resyncs.
    assert await log_rows(store) == [rows[-1]]
    async with store.db.read() as session:
        assert changes.is_pruned_mark(await session.scalar(select(ChangeLog.body)))
    # Pruning never rewinds the numbering: the next write is numbered after what was applied.
    applied = store.feed.applied
    await store.record_score(principal=world.owner, patient_id=world.patient.id, score_type="berg", value=45)
    assert (await log_rows(store)) == [rows[-1], store.feed.applied] and store.feed.applied > applied


async def test_an_import_of_an_existing_patient_id_answers_137_and_writes_nothing(world: World):
    store = world.store
    rows = await log_rows(store)
    with pytest.raises(InvalidInput) as refused:
        await store.import_patients(principal=world.lead, rows=[{
            "patientId": "DEMO-P", "displayName": "Someone Else", "primaryTherapist": world.users["owner"].id,
            "mobilityStatus": "independent"}])
    assert refused.value.parse_code == 137 and refused.value.field == "patientId"
    assert await log_rows(store) == rows


async def test_a_stale_write_is_a_conflict_with_the_current_version_and_writes_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch):
    """The row's version moved between the write's read and its UPDATE (the ORM's version check):
    the store answers Conflict (409 on the API), not a driver error, and nothing is written."""
    from sqlalchemy import text

    from dashboard.errors import Conflict

    store, p = world.store, world.patient.id
    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.",
                                follow_up=True)
    rows = await log_rows(store)
    load_row = store.reads.load_row
    bumped: list[str] = []

    async def behind_its_back(principal, class_name, object_id, session, *, for_update=False):
        row = await load_row(principal, class_name, object_id, session, for_update=for_update)
        if for_update and not bumped:  # another writer's UPDATE lands after this read
            bumped.append(object_id)
            await session.execute(text("UPDATE session_notes SET version = version + 1 WHERE id = :id"),
                                  {"id": object_id})
        return row

    monkeypatch.setattr(store.reads, "load_row", behind_its_back)
    with pytest.raises(Conflict) as refused:
        await store.clear_follow_up(principal=world.owner, note_id=note.id)
    assert bumped and refused.value.current_version == 1 and refused.value.parse_code == 137
    assert await log_rows(store) == rows
    monkeypatch.undo()
    stored = await store.get(principal=world.owner, class_name="SessionNote", object_id=note.id)
    assert stored.follow_up_needed is True and stored.version == 1


async def test_two_imports_racing_for_one_patient_id_end_as_one_patient_and_one_137(world: World):
    """Whichever way the race goes (the check sees the winner, or the unique key refuses the insert),
    the loser is told 137 on patientId, not a driver error."""
    store = world.store
    row = {"patientId": "RACE-1", "displayName": "Rae Race", "primaryTherapist": world.users["owner"].id,
           "mobilityStatus": "independent"}
    outcomes = await asyncio.gather(*(store.import_patients(principal=world.lead, rows=[row]) for _ in range(2)),
                                    return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], InvalidInput), outcomes
    assert refused[0].parse_code == 137 and refused[0].field == "patientId"
    found = await store.find(principal=world.lead, class_name="Patient", where={"patientId": "RACE-1"})
    assert len(found) == 1


async def test_another_instance_is_woken_by_notify_well_before_its_heartbeat(
        world: World, database_url: str, monkeypatch: pytest.MonkeyPatch):
    if world.store.db.is_sqlite:
        pytest.skip("SQLite is one process: nothing to wake")
    from dashboard import changes

    monkeypatch.setattr(changes, "HEARTBEAT_SECONDS", 30.0)  # only the wake-up can be in time
    store, p = world.store, world.patient.id
    db2 = Database(database_url)
    other = Store(db2, settings=settings_for(database_url))
    await other.start()
    try:
        await eventually(lambda: other.feed.listening, timeout=5)
        colleague = Principal(world.team_therapist.user_id)
        with mailbox(other.hub, colleague, [patient_topic(p, "MobilityScore")]) as box:
            made = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=45)
            got: list[str] = []
            await eventually(lambda: got.extend(d.object_id for d in box.drain()) or made.id in got, timeout=1.0)
        assert other.feed.applied == store.feed.applied
    finally:
        await other.stop()
        await db2.dispose()
    assert not other.feed.listening
