"""The lead's audit view in the store (dashboard/store/audit.py): filters, keyset pages, the access
report, the CSV export, and that only a lead reads it, audited, without PHI. SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from dashboard.errors import InvalidInput, NotFound
from dashboard.models import AuditEvent, utcnow
from dashboard.store.audit import AUDIT_CLASS

PHI = ("Pat Example", "DEMO-P", "Quinn Sample", "DEMO-Q", "Fell on the ward")


async def _activity(world) -> None:
    """The owner opens P and changes its status; the outsider is refused P; the lead opens Q."""
    store = world.store
    await store.get(principal=world.owner, class_name="Patient", object_id=world.patient.id)
    await store.change_status(principal=world.owner, patient_id=world.patient.id, status="dependent",
                              reason="Fell on the ward overnight")
    with pytest.raises(NotFound):
        await store.get(principal=world.outsider, class_name="Patient", object_id=world.patient.id)
    await store.get(principal=world.lead, class_name="Patient", object_id=world.other_patient.id)


async def _all_pages(store, principal, limit: int, **filters) -> list[list]:
    pages, page = [], await store.audit_page(principal=principal, limit=limit, **filters)
    pages.append(page.rows)
    while page.older is not None:
        page = await store.audit_page(principal=principal, limit=limit, after=page.older, **filters)
        pages.append(page.rows)
    return pages


async def test_filters_find_the_owner_s_view_and_the_outsider_s_denied_attempt(world):
    store = world.store
    await _activity(world)
    p = world.patient.id
    page = await store.audit_page(principal=world.lead, patient_id=p, action="read")
    reads = {(r.username, r.outcome) for r in page.rows}
    assert ("owner", "ok") in reads and ("outsider", "not_found") in reads
    denied = await store.audit_page(principal=world.lead, action="denied")
    assert [(r.username, r.patient_ref) for r in denied.rows] == [("outsider", p)]
    mine = await store.audit_page(principal=world.lead, user_id=world.owner.user_id, class_name="Patient")
    assert mine.rows and all(r.user_id == world.owner.user_id and r.class_name == "Patient" for r in mine.rows)
    assert {r.action for r in mine.rows} >= {"read", "update"}
    updates = await store.audit_page(principal=world.lead, action="update", outcome="ok", patient_id=p)
    assert [(r.username, r.class_name) for r in updates.rows] == [("owner", "Patient")]
    assert (await store.audit_page(principal=world.lead, patient_id=world.other_patient.id, user_id=world.owner.user_id)).rows == []
    # A date range: everything above is from the last minute; nothing before it.
    now = utcnow()
    recent = await store.audit_page(principal=world.lead, since=now - timedelta(minutes=5), until=now + timedelta(minutes=1),
                                    patient_id=p)
    assert len(recent.rows) == len((await store.audit_page(principal=world.lead, patient_id=p)).rows) > 0
    assert (await store.audit_page(principal=world.lead, until=now - timedelta(days=1))).rows == []


async def test_keyset_pages_cover_the_log_once_newest_first_and_previous_goes_back(world):
    store = world.store
    for _ in range(7):
        await store.get(principal=world.owner, class_name="Patient", object_id=world.patient.id)
    pages = await _all_pages(store, world.lead, 4)
    ids = [r.id for rows in pages for r in rows]
    assert len(pages) > 3 and all(len(rows) == 4 for rows in pages[:-1])
    # No overlap and no gap: together the pages are the listing as it was at the first page (each read
    # of a page adds a newer row of its own, which the older pages never show).
    top = pages[0][0].cursor
    whole = (await store.audit_page(principal=world.lead, limit=500)).rows
    assert ids == [r.id for r in whole if (r.at, r.id) <= (top.at, top.id)]
    keys = [(r.at, r.id) for rows in pages for r in rows]
    assert keys == sorted(keys, reverse=True)
    # Previous from the third page is the second page again, and from the second the first.
    second = await store.audit_page(principal=world.lead, limit=4, after=pages[0][-1].cursor)
    third = await store.audit_page(principal=world.lead, limit=4, after=second.older)
    back = await store.audit_page(principal=world.lead, limit=4, before=third.newer)
    assert [r.id for r in back.rows] == [r.id for r in second.rows]
    assert back.older == second.older and back.newer is not None
    front = await store.audit_page(principal=world.lead, limit=4, before=back.newer)
    assert [r.id for r in front.rows] == [r.id for r in pages[0]]
    # Newer than the first page are only the rows these page reads added.
    newest = await store.audit_page(principal=world.lead, limit=500, before=front.newer)
    assert newest.rows and {r.class_name for r in newest.rows} == {AUDIT_CLASS}


async def test_rows_name_the_user_and_never_hold_phi(world):
    store = world.store
    await _activity(world)
    rows = [r for rows in await _all_pages(store, world.lead, 100) for r in rows]
    users = {u.id: u.username for u in await store.list_users(principal=world.lead)}
    named = [r for r in rows if r.user_id in users]
    assert len(named) > 5 and all(r.username == users[r.user_id] for r in named)
    # Not an account (the first lead is made from the command line, as "cli"): no name is made up.
    assert all(r.username is None for r in rows if r.user_id not in users)
    text = " ".join(str(v) for r in rows for v in vars(r).values())
    for phi in PHI:
        assert phi not in text


async def test_reading_the_audit_is_audited_once_per_page_and_export(world):
    store = world.store
    await _activity(world)
    before = len(await store.audit_trail(principal=world.lead, limit=1000))
    page = await store.audit_page(principal=world.lead, limit=2, patient_id=world.patient.id)
    await store.audit_page(principal=world.lead, limit=2, after=page.older, patient_id=world.patient.id)
    chunks = await store.audit_csv(principal=world.lead, user_id=world.owner.user_id)
    "".join([c async for c in chunks])
    await store.access_report(principal=world.lead, user_id=world.owner.user_id)
    trail = await store.audit_trail(principal=world.lead, limit=1000)
    mine = [e for e in trail[: len(trail) - before] if e.class_name == AUDIT_CLASS]
    assert len(mine) == 4 and len(trail) - before == 4
    assert all(e.actor_id == world.lead.user_id and e.action == "read" and e.patient_ref is None and e.object_id is None
               for e in mine)
    assert sorted(e.detail for e in mine) == ["access_report", "export;filters=user_id", "page;filters=patient_id",
                                              "page;filters=patient_id"]


async def test_only_a_lead_reads_the_audit_view(world):
    store = world.store
    await _activity(world)
    for kind in ("owner", "team_therapist", "team_contributor", "outsider", "viewer"):
        principal = world.principal(kind)
        with pytest.raises(NotFound):
            await store.audit_page(principal=principal)
        with pytest.raises(NotFound):
            await store.audit_csv(principal=principal)
        with pytest.raises(NotFound):
            await store.access_report(principal=principal, user_id=world.owner.user_id)
        with pytest.raises(NotFound):
            await store.patient_activity(principal=principal, patient_id=world.patient.id)


async def test_csv_parses_and_matches_the_listing(world):
    store = world.store
    await _activity(world)
    listing = [r for rows in await _all_pages(store, world.lead, 3, patient_id=world.patient.id) for r in rows]
    text = "".join([c async for c in await store.audit_csv(principal=world.lead, patient_id=world.patient.id)])
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == ["id", "at", "user", "user_id", "action", "class", "object_id", "patient_ref", "outcome",
                      "detail", "address"]
    # The export's own audit row has no patient, so the export is exactly the listing read before it.
    assert rows == [list(r.csv_values()) for r in listing]  # nothing here needs a formula guard
    assert {row[2] for row in rows} >= {"owner", "outsider"}
    for phi in PHI:
        assert phi not in text


async def test_csv_is_bounded_and_a_formula_in_a_refused_field_name_is_not_run(world):
    store = world.store
    async with store.db.write() as session:
        session.add(AuditEvent(actor_id=world.outsider.user_id, action="update", class_name="Patient",
                               object_id=world.patient.id, patient_ref=world.patient.id, outcome="invalid",
                               detail="=HYPERLINK(\"http://x\")"))
        await session.commit()
    text = "".join([c async for c in await store.audit_csv(principal=world.lead, max_rows=1)])
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 and rows[0][9] == "'=HYPERLINK(\"http://x\")"


async def test_access_report_lists_the_patients_a_user_opened_in_the_range(world):
    store = world.store
    await _activity(world)
    await store.get(principal=world.owner, class_name="Patient", object_id=world.patient.id)
    report = await store.access_report(principal=world.lead, user_id=world.owner.user_id)
    assert [r.patient_ref for r in report] == [world.patient.id]
    assert report[0].reads >= 2 and report[0].first_at <= report[0].last_at
    lead = await store.access_report(principal=world.lead, user_id=world.lead.user_id)
    assert world.other_patient.id in {r.patient_ref for r in lead}
    # The outsider's refused read is not an opening.
    assert await store.access_report(principal=world.lead, user_id=world.outsider.user_id) == []
    later = utcnow() + timedelta(hours=1)
    assert await store.access_report(principal=world.lead, user_id=world.owner.user_id, since=later) == []


async def test_patient_activity_shows_who_viewed_and_changed_it_newest_first(world):
    store = world.store
    await _activity(world)
    rows = await store.patient_activity(principal=world.lead, patient_id=world.patient.id, limit=10)
    assert {(r.username, r.action, r.outcome) for r in rows} >= {
        ("owner", "read", "ok"), ("owner", "update", "ok"), ("outsider", "read", "not_found")}
    assert all(r.patient_ref == world.patient.id for r in rows)
    assert [(r.at, r.id) for r in rows] == sorted(((r.at, r.id) for r in rows), reverse=True)
    assert len(await store.patient_activity(principal=world.lead, patient_id=world.patient.id, limit=1)) == 1


@pytest.mark.parametrize("filters, field", [
    ({"action": "peek"}, "action"), ({"outcome": "maybe"}, "outcome"), ({"user_id": "x" * 40}, "user"),
    ({"patient_id": "'; drop"}, "patient"), ({"class_name": "Not a class"}, "class"), ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"), ({"since": utcnow(), "until": utcnow() - timedelta(days=1)}, "to"),
])
async def test_bad_filters_are_refused_naming_the_field(world, filters, field):
    with pytest.raises(InvalidInput) as refused:
        await world.store.audit_page(principal=world.lead, **filters)
    assert refused.value.field == field
