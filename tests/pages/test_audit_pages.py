"""The Audit page and the patient page's Activity panel, with NiceGUI's simulated users: what a lead
finds there, and that nobody else gets either."""
from __future__ import annotations

import csv
import io

import pytest
from dashboard.errors import NotFound
from tests.support import eventually


async def _traffic(w) -> None:
    """The owner views P; the outsider tries to and is refused."""
    await w.store.get(principal=w.owner, class_name="Patient", object_id=w.patient.id)
    with pytest.raises(NotFound):
        await w.store.get(principal=w.outsider, class_name="Patient", object_id=w.patient.id)


def _rows(user, marker: str) -> list[str]:
    """Each marked row's labels, joined: what a lead reads on the row."""
    out = []
    try:
        found = user.find(marker=marker).elements
    except AssertionError:  # NiceGUI's find when nothing is on the page
        return []
    for row in sorted(found, key=lambda e: e.id):  # a set: in page order
        texts = [getattr(e, "text", "") for e in row.descendants()]
        out.append(" | ".join(t for t in texts if t))
    return out


def _set(user, marker: str, value) -> None:
    [field] = user.find(marker=marker).elements
    field.value = value


async def test_a_lead_finds_the_therapist_s_view_and_the_outsider_s_refused_attempt(pages_app):
    w = pages_app.world
    await _traffic(w)
    lead = await pages_app.signed_in("lead")
    await lead.open("/audit")
    await lead.should_see("Audit log")
    _set(lead, "filter-patient", w.patient.id)
    lead.find(marker="audit-show").click()

    await eventually(lambda: any("outsider" in t for t in _rows(lead, "audit-row")))
    rows = _rows(lead, "audit-row")
    assert any("owner | viewed | Patient" in t and "ok" in t for t in rows), rows
    assert any("outsider | viewed | Patient" in t and "not found" in t for t in rows), rows
    # The refused attempts alone.
    _set(lead, "filter-patient", "")
    _set(lead, "filter-action", "denied")
    lead.find(marker="audit-show").click()
    await eventually(lambda: (r := _rows(lead, "audit-row")) and all("outsider" in t for t in r))
    rows = _rows(lead, "audit-row")
    assert len(rows) == 1 and w.patient.id in rows[0]
    for text in rows:
        assert "Pat Example" not in text and "DEMO-P" not in text


async def test_the_csv_is_the_filtered_rows_and_only_for_a_lead(pages_app):
    w = pages_app.world
    await _traffic(w)
    lead = await pages_app.signed_in("lead")
    response = await lead.http_client.get("/audit/export.csv", params={"patient": w.patient.id})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment")
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header[:3] == ["id", "at", "user"]
    assert {(r[2], r[4], r[8]) for r in rows} >= {("owner", "read", "ok"), ("outsider", "read", "not_found")}
    assert all(r[7] == w.patient.id for r in rows)
    assert "Pat Example" not in response.text and "DEMO-P" not in response.text
    bad = await lead.http_client.get("/audit/export.csv", params={"from": "yesterday"})
    assert bad.status_code == 400 and bad.text == "from: must be a date like 2026-12-03"
    owner = await pages_app.signed_in("owner")
    assert (await owner.http_client.get("/audit/export.csv")).status_code == 404


async def test_next_page_and_previous_walk_the_log_by_keyset(pages_app):
    w = pages_app.world
    for _ in range(60):
        await w.store.get(principal=w.owner, class_name="Patient", object_id=w.patient.id)
    lead = await pages_app.signed_in("lead")
    total = len(await w.store.audit_trail(principal=w.lead, limit=1000))
    assert 50 < total < 100
    await lead.open("/audit")
    await lead.should_see("50 rows, newest first")
    first = _rows(lead, "audit-row")
    assert len(first) == 50
    lead.find(marker="audit-next").click()
    await eventually(lambda: (r := _rows(lead, "audit-row")) and r != first)
    second = _rows(lead, "audit-row")
    # The rest of the log as it was, nothing twice and nothing left out (newer rows, such as this
    # page's own audit rows, are before the first page, not after it).
    assert len(second) == total - 50
    [next_button] = lead.find(marker="audit-next").elements
    assert not next_button.enabled
    lead.find(marker="audit-previous").click()
    await eventually(lambda: _rows(lead, "audit-row") != second)
    assert _rows(lead, "audit-row") == first


async def test_a_non_lead_gets_not_found_on_audit_and_no_link_to_it(pages_app):
    for name in ("owner", "team-contributor", "viewer"):
        user = await pages_app.signed_in(name)
        response = await user.http_client.get("/audit")
        assert response.status_code == 404, name
    owner = await pages_app.signed_in("owner")
    await owner.open("/")
    await owner.should_not_see("Audit")
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await lead.should_see("Audit")


async def test_the_activity_panel_shows_for_a_lead_and_not_for_a_therapist(pages_app):
    w = pages_app.world
    await _traffic(w)
    await w.store.change_status(principal=w.owner, patient_id=w.patient.id, status="dependent", reason="Fell")
    lead = await pages_app.signed_in("lead")
    await lead.open(f"/patient/{w.patient.id}")
    await lead.should_see("Activity")
    rows = _rows(lead, "activity-row")
    assert any("owner | changed patient" in t for t in rows), rows
    assert any("owner | viewed patient" in t for t in rows), rows
    assert any("outsider | viewed patient" in t and "not found" in t for t in rows), rows
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("Pat Example")
    await owner.should_not_see(marker="activity")
    await owner.should_not_see("Full audit log")


async def test_a_bad_filter_is_said_under_its_field_and_the_rows_stay(pages_app):
    lead = await pages_app.signed_in("lead")
    await lead.open("/audit")
    await lead.should_see("rows, newest first")
    before = _rows(lead, "audit-row")
    _set(lead, "filter-patient", "not an id!")
    lead.find(marker="audit-show").click()
    [patient] = lead.find(marker="filter-patient").elements
    await eventually(lambda: patient.error)
    assert patient.error == "must be an objectId (letters, digits, - and _, up to 16)"
    assert _rows(lead, "audit-row") == before


async def test_the_access_report_lists_the_patients_a_user_opened(pages_app):
    w = pages_app.world
    await _traffic(w)
    lead = await pages_app.signed_in("lead")
    await lead.open("/audit")
    lead.find(marker="report-show").click()  # no user chosen: said under the field
    [user_field] = lead.find(marker="report-user").elements
    await eventually(lambda: user_field.error == "Choose a user")
    _set(lead, "report-user", w.owner.user_id)
    lead.find(marker="report-show").click()
    await eventually(lambda: _rows(lead, "report-row"))
    [row] = _rows(lead, "report-row")
    assert row.startswith(f"{w.patient.id} | 1 | ")
    _set(lead, "report-user", w.outsider.user_id)  # refused, so never opened
    lead.find(marker="report-show").click()
    await lead.should_see("This user opened no patient in this range.")
