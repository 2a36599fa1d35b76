"""Exports through the store (SQLite and PostgreSQL): the caseload as CSV and the progress report
(its data and its PDF), each as the caller may read it and each one audit row without PHI."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pypdf
import pytest
from sqlalchemy import func, select

from dashboard.errors import NotFound
from dashboard.exports.caseload_csv import caseload_csv
from dashboard.exports.progress_report import build_report
from dashboard.exports.report_pdf import report_pdf
from dashboard.models import AuditEvent
from tests.support import World

PHI = ("DEMO-P", "1944", "Lives alone, dog Rex", "Held the rail", "Correction: two rails", "fell on the stairs")


async def chart(w: World) -> None:
    """P with a birth date, scores of two measures (one in error), a note and its addendum,
    equipment and a status change with a reason."""
    store, pid = w.store, w.patient.id
    await store.update(principal=w.lead, class_name="Patient", object_id=pid,
                       changes={"dateOfBirth": datetime(1944, 2, 29, tzinfo=timezone.utc)})
    for day, value in ((1, 30), (8, 38), (15, 47)):
        await store.record_score(principal=w.owner, patient_id=pid, score_type="berg", value=value,
                                 score_date=datetime(2026, 11, day, 10, tzinfo=timezone.utc),
                                 notes="Held the rail at item 12." if day == 8 else None)
    await store.record_score(principal=w.owner, patient_id=pid, score_type="tug", value=16.5,
                             score_date=datetime(2026, 11, 2, tzinfo=timezone.utc))
    await store.record_score(principal=w.team_contributor, patient_id=pid, score_type="tug", value=12.1,
                             score_date=datetime(2026, 11, 16, tzinfo=timezone.utc))
    wrong = await store.record_score(principal=w.team_contributor, patient_id=pid, score_type="tug", value=99,
                                     score_date=datetime(2026, 11, 17, tzinfo=timezone.utc))
    await store.mark_score_in_error(principal=w.lead, score_id=wrong.id, reason="wrong patient")
    note = await store.add_note(principal=w.owner, patient_id=pid, session_type="review",
                                text="Lives alone, dog Rex.", follow_up=True)
    await store.add_note(principal=w.team_therapist, patient_id=pid, session_type="review",
                         text="Correction: two rails.", amends=note.id)
    await store.check_out_equipment(principal=w.team_contributor, patient_id=pid, name="Walker", serial_number="EQ-77")
    await store.change_status(principal=w.owner, patient_id=pid, status="minimal_assist", reason="fell on the stairs")


async def new_audit_rows(w: World, after: int) -> list[AuditEvent]:
    await w.store.flush_audit()
    async with w.store.db.read() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)))


async def last_audit_id(w: World) -> int:
    await w.store.flush_audit()
    async with w.store.db.read() as session:
        return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


async def report_for(w: World, who: str):
    principal = w.principal(who)
    everything = await w.store.patient_everything(principal=principal, patient_id=w.patient.id, kind="report-pdf")
    perms = w.store.permissions(principal=principal, patient_id=w.patient.id)
    return build_report(everything, w.store.catalogue, reads_notes=perms.reads_notes, now=w.store.clock(),
                        reader=principal.username)


# -- the caseload ---------------------------------------------------------------------------------
async def test_the_caseload_export_is_the_picked_rows_in_order_and_one_audit_row(world: World):
    await chart(world)
    before = await last_audit_id(world)
    rows = await world.store.exports.caseload_export(
        principal=world.lead, pick=lambda rows: sorted(rows, key=lambda r: r.display_name, reverse=True))
    assert [r.display_name for r in rows] == ["Quinn Sample", "Pat Example"]
    [row] = await new_audit_rows(world, before)
    assert (row.actor_id, row.action, row.class_name, row.outcome, row.detail) == (
        world.lead.user_id, "read", "Patient", "ok", "export:caseload:2")

    header, *lines = list(csv.reader(io.StringIO(caseload_csv(rows, world.store.catalogue, private_columns=True))))
    assert header[:5] == ["Patient", "Identifier", "Primary therapist", "Mobility status", "Barthel Index"]
    pat = dict(zip(header, lines[1]))
    assert (pat["Patient"], pat["Identifier"], pat["Primary therapist"], pat["Mobility status"]) == (
        "Pat Example", "DEMO-P", "owner", "Minimal assist")
    assert (pat["Berg Balance Scale"], pat["Timed Up and Go (s)"], pat["Open follow-ups"], pat["Equipment out"]) == (
        "47", "12.1", "1", "1")
    assert pat["Last session"] == datetime.now().astimezone().strftime("%Y-%m-%d")


async def test_a_viewers_caseload_csv_has_only_its_patients_and_no_identifier(world: World):
    await chart(world)
    rows = await world.store.exports.caseload_export(principal=world.viewer)
    text = caseload_csv(rows, world.store.catalogue, private_columns=False)
    header, *lines = list(csv.reader(io.StringIO(text)))
    assert "Identifier" not in header and "Last session" not in header
    assert [line[0] for line in lines] == ["P.E."]  # initials: a lead did not turn names on
    for phi in (*PHI, "Pat Example", "Quinn"):
        assert phi not in text
    assert await world.store.exports.caseload_export(principal=world.outsider) == []


async def test_a_spreadsheet_formula_in_a_name_is_not_run(world: World):
    await world.store.update(principal=world.lead, class_name="Patient", object_id=world.patient.id,
                             changes={"displayName": "=HYPERLINK(\"x\")"})
    rows = await world.store.exports.caseload_export(principal=world.lead)
    lines = list(csv.reader(io.StringIO(caseload_csv(rows, world.store.catalogue, private_columns=True))))
    assert ["'=HYPERLINK(\"x\")"] == [line[0] for line in lines if "HYPERLINK" in line[0]]


# -- the progress report --------------------------------------------------------------------------
async def test_the_report_holds_profile_history_measures_notes_and_equipment(world: World):
    await chart(world)
    report = await report_for(world, "owner")
    assert dict(report.profile)["Identifier"] == "DEMO-P" and dict(report.profile)["Date of birth"] == "29 Feb 1944"
    assert "Bed" not in dict(report.profile)  # none set yet
    await world.store.update(principal=world.owner, class_name="Patient", object_id=world.patient.id,
                             changes={"bed": "Bay 3 bed 2"})
    assert dict((await report_for(world, "owner")).profile)["Bed"] == "Bay 3 bed 2"
    assert [m.score_type for m in report.measures] == ["tug", "berg"]  # the catalogue's order
    tug, berg = report.measures
    assert (tug.better, berg.better) == ("lower", "higher")
    assert [line.value for line in berg.lines] == ["30", "38", "47"]  # oldest first
    assert [v for _, v in tug.points] == [16.5, 12.1]  # the entry in error is listed, not charted
    assert tug.lines[-1].in_error and tug.lines[-1].comment == "Entered in error: wrong patient"
    assert "better" in tug.summary and "lower is better" in tug.summary
    assert (berg.low, berg.high) == (0, 56)
    [note] = report.notes
    assert note.text == "Lives alone, dog Rex." and note.follow_up
    assert [a.text for a in note.addenda] == ["Correction: two rails."]
    assert [(e.name, e.serial, e.status) for e in report.equipment] == [("Walker", "EQ-77", "Checked out")]
    assert [h.what for h in report.history][-1] == "Supervision → Minimal assist"
    assert report.history[-1].reason == "fell on the stairs"


async def test_the_pdf_has_the_name_and_every_measure(world: World):
    await chart(world)
    pages, text = pdf_text(report_pdf(await report_for(world, "owner")))
    assert pages >= 1
    for expected in ("Pat Example", "Timed Up and Go", "Berg Balance Scale", "Lower is better", "Higher is better",
                     "Lives alone, dog Rex.", "Correction: two rails.", "Walker", "DEMO-P", "Minimal assist"):
        assert expected in text, expected
    assert pypdf.PdfReader(io.BytesIO(report_pdf(await report_for(world, "owner")))).metadata.title \
        == "OT Tracker progress report"  # a viewer's tab shows the title: never the name


async def test_a_viewers_report_has_no_note_text_birth_date_or_identifier(world: World):
    await chart(world)
    report = await report_for(world, "viewer")
    assert report.notes is None
    assert [label for label, _ in report.profile] == ["Name", "Primary therapist", "Mobility status"]
    pages, text = pdf_text(report_pdf(report))
    assert pages >= 1 and "Berg Balance Scale" in text and "Timed Up and Go" in text
    for phi in (*PHI, "Pat Example", "29 Feb"):
        assert phi not in text, phi


@pytest.mark.parametrize("who", ["outsider", "other_therapist"])
async def test_a_non_reader_gets_not_found_as_for_an_unknown_patient(world: World, who: str):
    await chart(world)
    before = await last_audit_id(world)
    with pytest.raises(NotFound):
        await world.store.patient_everything(principal=world.principal(who), patient_id=world.patient.id,
                                             kind="report")
    with pytest.raises(NotFound):
        await world.store.patient_everything(principal=world.lead, patient_id="NoSuchPat1", kind="report")
    refused = await new_audit_rows(world, before)
    assert [r.outcome for r in refused] == ["not_found", "not_found"]


async def test_each_report_export_is_one_audit_row_without_patient_data(world: World):
    await chart(world)
    before = await last_audit_id(world)
    await report_for(world, "team_therapist")
    [row] = await new_audit_rows(world, before)
    assert (row.actor_id, row.action, row.class_name, row.object_id, row.outcome) == (
        world.team_therapist.user_id, "read", "Patient", world.patient.id, "ok")
    assert row.detail.startswith("export:report-pdf:")
    for phi in (*PHI, "Pat Example"):
        assert phi not in (row.detail or "")


async def test_without_a_unicode_font_the_pdf_still_builds(world: World, monkeypatch: pytest.MonkeyPatch):
    """On a machine without DejaVu or Liberation: core Helvetica, Latin-1 kept, the rest as "?"."""
    from dashboard.exports import report_pdf as module

    await world.store.update(principal=world.lead, class_name="Patient", object_id=world.patient.id,
                             changes={"displayName": "Zoë Łukasik"})
    await chart(world)
    monkeypatch.setattr(module, "_unicode_font", lambda: None)
    pages, text = pdf_text(module.report_pdf(await report_for(world, "owner")))
    assert pages >= 1 and "Zoë ?ukasik" in text and "Supervision -> Minimal assist" in text
