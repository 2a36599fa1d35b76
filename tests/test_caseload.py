"""The caseload: one row per visible patient, with what a therapist scans for, in a bounded number of queries."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import event

from tests.support import World
from dashboard.store import CaseloadRow

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


async def _fill_p(world: World) -> None:
    store, p, owner = world.store, world.patient.id, world.owner
    await store.record_score(principal=owner, patient_id=p, score_type="barthel", value=40, score_date=days_ago(3))
    await store.record_score(principal=owner, patient_id=p, score_type="barthel", value=60, score_date=days_ago(2))
    await store.record_score(principal=owner, patient_id=p, score_type="tug", value=20, score_date=days_ago(3))
    await store.record_score(principal=owner, patient_id=p, score_type="tug", value=15, score_date=days_ago(2))
    await store.record_score(principal=owner, patient_id=p, score_type="tug", value=18, score_date=days_ago(1))
    wrong_tug = await store.record_score(principal=owner, patient_id=p, score_type="tug", value=9, score_date=days_ago(0.5))
    await store.mark_score_in_error(principal=owner, score_id=wrong_tug.id, reason="Wrong patient")
    await store.record_score(principal=owner, patient_id=p, score_type="berg", value=30, score_date=days_ago(2))
    wrong_berg = await store.record_score(principal=owner, patient_id=p, score_type="berg", value=45, score_date=days_ago(1))
    await store.mark_score_in_error(principal=owner, score_id=wrong_berg.id, reason="Typo")
    await store.record_score(principal=owner, patient_id=p, score_type="six_minute_walk", value=120, score_date=days_ago(4))
    await store.record_score(principal=owner, patient_id=p, score_type="six_minute_walk", value=95, score_date=days_ago(1))
    older = await store.add_note(principal=owner, patient_id=p, session_type="assessment", text="First visit.",
                                 follow_up=True, session_date=days_ago(3))
    await store.add_note(principal=owner, patient_id=p, session_type="treatment", text="Stairs practice.",
                         follow_up=True, session_date=days_ago(1))
    await store.add_note(principal=owner, patient_id=p, session_type="review", text="Reviewed.",
                         follow_up=False, session_date=days_ago(2))
    await store.clear_follow_up(principal=owner, note_id=older.id)
    walker = await store.check_out_equipment(principal=owner, patient_id=p, name="Walker")
    await store.check_out_equipment(principal=owner, patient_id=p, name="Shower chair")
    await store.check_out_equipment(principal=owner, patient_id=p, name="Reacher")
    await store.return_equipment(principal=owner, log_id=walker.id)
    await store.change_status(principal=owner, patient_id=p, status="minimal_assist", reason="After fall")


def _row(rows: list[CaseloadRow], object_id: str) -> CaseloadRow:
    return next(r for r in rows if r.object_id == object_id)


async def test_caseload_row_shows_status_scores_sessions_follow_ups_and_equipment(world: World):
    await _fill_p(world)
    rows = await world.store.caseload(principal=world.owner)
    assert [r.object_id for r in rows] == [world.patient.id]  # the owner sees P only
    row = rows[0]
    assert row.mobility_status == "minimal_assist"
    assert row.patient_number == "DEMO-P" and row.display_name == "Pat Example"
    assert row.primary_therapist == "owner"
    assert set(row.latest) == {"barthel", "tug", "berg", "six_minute_walk"}

    barthel = row.latest["barthel"]
    assert (barthel.value, barthel.previous, barthel.trend) == (60, 40, "better")
    assert barthel.score_date == days_ago(2)
    tug = row.latest["tug"]  # lower is better: 15 s then 18 s is worse; the 9 s entered in error is ignored
    assert (tug.value, tug.previous, tug.trend) == (18, 15, "worse")
    berg = row.latest["berg"]  # the 45 was entered in error: 30 is the latest and has nothing before it
    assert (berg.value, berg.previous, berg.trend) == (30, None, "")
    walk = row.latest["six_minute_walk"]  # higher is better: fewer metres is worse
    assert (walk.value, walk.previous, walk.trend) == (95, 120, "worse")

    assert row.last_session == days_ago(1)
    assert row.open_follow_ups == 1
    assert row.equipment_out == 2


async def test_tug_improving_means_going_down(world: World):
    store, p = world.store, world.patient.id
    await store.record_score(principal=world.owner, patient_id=p, score_type="tug", value=22.5, score_date=days_ago(2))
    await store.record_score(principal=world.owner, patient_id=p, score_type="tug", value=14.0, score_date=days_ago(1))
    await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=70, score_date=days_ago(2))
    await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=70, score_date=days_ago(1))
    row = (await store.caseload(principal=world.owner))[0]
    assert (row.latest["tug"].trend, row.latest["barthel"].trend) == ("better", "same")


async def test_each_principal_gets_rows_for_the_patients_it_sees(world: World):
    await _fill_p(world)
    store, p, q = world.store, world.patient.id, world.other_patient.id
    lead_rows = await store.caseload(principal=world.lead)
    assert {r.object_id for r in lead_rows} == {p, q}
    q_row = _row(lead_rows, q)
    assert (q_row.latest, q_row.last_session, q_row.open_follow_ups, q_row.equipment_out) == ({}, None, 0, 0)
    assert [r.object_id for r in await store.caseload(principal=world.other_therapist)] == [q]
    assert [r.object_id for r in await store.caseload(principal=world.team_contributor)] == [p]
    assert await store.caseload(principal=world.outsider) == []


async def test_viewer_rows_carry_no_hospital_number_and_only_initials(world: World):
    await _fill_p(world)
    store = world.store
    row = (await store.caseload(principal=world.viewer))[0]
    assert row.object_id == world.patient.id
    assert row.patient_number is None
    assert row.display_name == "P.E."
    assert row.mobility_status == "minimal_assist" and row.latest["barthel"].value == 60
    # The ward screen shows how many follow-ups are open (issue 3), never a note or its date.
    assert (row.last_session, row.open_follow_ups) == (None, 1)
    # A lead may turn full names on for this screen; the hospital number stays hidden.
    await store.update_user(principal=world.lead, user_id=world.users["viewer"].id, changes={"showFullNames": True})
    row = (await store.caseload(principal=world.viewer))[0]
    assert (row.display_name, row.patient_number) == ("Pat Example", None)


async def test_entered_in_error_scores_never_count(world: World):
    store, p = world.store, world.patient.id
    only = await store.record_score(principal=world.owner, patient_id=p, score_type="fac", value=2, score_date=days_ago(1))
    await store.mark_score_in_error(principal=world.owner, score_id=only.id, reason="Wrong measure")
    row = (await store.caseload(principal=world.owner))[0]
    assert "fac" not in row.latest


# -- a bounded number of statements ---------------------------------------------------------------
@contextmanager
def count_statements(world: World):
    db = world.store.db
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ARG001
        # The change feed's once-a-second read of the log runs in the background: not the caseload's work.
        if "FROM change_log" not in statement:
            seen.append(statement)

    engines = {id(e.sync_engine): e.sync_engine for e in (db.read_engine, db.write_engine)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def _add_patients(world: World, how_many: int, start: int) -> None:
    store, owner = world.store, world.owner
    for i in range(start, start + how_many):
        patient = await store.create(principal=world.lead, class_name="Patient", fields={
            "patientId": f"BULK-{i}", "displayName": f"Bulk Patient {i}", "primaryTherapist": world.users["owner"].id,
            "mobilityStatus": "supervision"})
        await store.record_score(principal=owner, patient_id=patient.id, score_type="barthel", value=i % 100,
                                 score_date=days_ago(2))
        await store.record_score(principal=owner, patient_id=patient.id, score_type="barthel", value=(i + 7) % 100,
                                 score_date=days_ago(1))
        await store.add_note(principal=owner, patient_id=patient.id, session_type="review", text="Seen.",
                             follow_up=i % 2 == 0, session_date=days_ago(1))
        await store.check_out_equipment(principal=owner, patient_id=patient.id, name="Frame")


async def test_caseload_takes_the_same_few_statements_for_3_and_for_30_patients(world: World):
    store = world.store
    await _add_patients(world, 1, 0)  # P, Q and one more
    counts = {}
    for size, grow in ((3, 0), (30, 27)):
        await _add_patients(world, grow, 100)
        for who in ("lead", "owner"):
            await store.flush_audit()  # the previous call's queued read audit is not this call's work
            with count_statements(world) as seen:
                rows = await store.caseload(principal=getattr(world, who))
            assert len(rows) == (size if who == "lead" else size - 1)  # the owner does not see Q
            counts[(size, who)] = len(seen)
    assert counts[(3, "lead")] >= 2, counts  # patients with activity, score summaries: the listener sees them
    assert counts[(3, "lead")] == counts[(30, "lead")] <= 10, counts
    assert counts[(3, "owner")] == counts[(30, "owner")] <= 10, counts
    bulk = [r for r in rows if r.patient_number and r.patient_number.startswith("BULK-")]
    assert all(r.latest["barthel"].previous is not None and r.equipment_out == 1 for r in bulk)
