"""The exports as the pages offer them, with NiceGUI's simulated users: the caseload's Download CSV
and GET /caseload.csv (the page's rows in the page's order), the printable progress report and its
PDF, and the patient page's links; each as the signed-in user may read it."""
from __future__ import annotations

import csv
import io

from tests.support import eventually
from tests.test_exports import PHI, chart, pdf_text

# The record's private words, for a page's HTML: a bare year could be in any id's digits.
WORDS = tuple(p for p in PHI if not p.isdigit())


def page_names(user) -> list[str]:
    """The caseload's rows as shown, top to bottom (the patient's name on each)."""
    [rows] = user.find(marker="caseload-list").elements
    return [next(e.text for e in row.descendants() if "cl-name" in e.classes) for row in rows.default_slot.children
            if row.props.get("data-patient")]


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, [dict(zip(header, row)) for row in rows]


async def export_rows(w) -> list[str]:
    """The details of the caseload exports' audit rows, oldest first."""
    rows = await w.store.audit_trail(principal=w.lead, limit=1000)
    return [r.detail for r in reversed(rows) if (r.detail or "").startswith("export:caseload")]


def choose(user, marker: str, value: str) -> None:
    [field] = user.find(marker=marker).elements
    field.value = value


async def more_patients(w) -> None:
    for number, name, status in (("DEMO-R", "Ruth Alder", "dependent"), ("DEMO-S", "Sam Birch", "supervision"),
                                 ("DEMO-T", "Tara Cole", "independent"), ("DEMO-U", "Abe Dunn", "supervision")):
        await w.store.create(principal=w.lead, class_name="Patient", fields={
            "patientId": number, "displayName": name, "primaryTherapist": w.users["owner"].id,
            "mobilityStatus": status})


async def test_download_csv_is_the_caseload_as_shown_filters_search_and_sort(pages_app):
    w = pages_app.world
    await more_patients(w)
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await lead.should_see("Ruth Alder")
    choose(lead, "sort", "status")
    await eventually(lambda: page_names(lead)[0] == "Ruth Alder")  # most dependent first
    shown = page_names(lead)
    assert len(shown) == 6

    lead.find(marker="caseload-csv").click()
    header, rows = csv_rows((await lead.download.next()).content.decode())
    assert [r["Patient"] for r in rows] == shown
    assert header[:2] == ["Patient", "Identifier"] and rows[0]["Identifier"] == "DEMO-R"

    choose(lead, "status-filter", "supervision")
    choose(lead, "search", "a")  # the search never goes into an address: the button sends the file
    await eventually(lambda: len(page_names(lead)) == 3)
    shown = page_names(lead)
    assert sorted(shown) == ["Abe Dunn", "Pat Example", "Sam Birch"]
    lead.find(marker="caseload-csv").click()
    _, rows = csv_rows((await lead.download.next()).content.decode())
    assert [r["Patient"] for r in rows] == shown
    assert {r["Mobility status"] for r in rows} == {"Supervision"}


async def test_the_csv_address_takes_the_pages_filters_and_sort_by_the_page_cookie(pages_app):
    w = pages_app.world
    await more_patients(w)
    lead = await pages_app.signed_in("lead")
    await lead.open("/")
    await lead.should_see("Ruth Alder")
    choose(lead, "sort", "status")
    choose(lead, "therapist-filter", w.users["owner"].id)
    await eventually(lambda: len(page_names(lead)) == 5)
    before = await export_rows(w)
    response = await lead.http_client.get("/caseload.csv", params={"therapist": w.users["owner"].id,
                                                                   "sort": "status"})
    assert await export_rows(w) == before + ["export:caseload:5"]  # one audit row, counts only
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="caseload-')
    _, rows = csv_rows(response.text)
    assert [r["Patient"] for r in rows] == page_names(lead)

    for params, words in (({"search": "Pat"}, "search: is not taken in an address"),
                          ({"status": "flying"}, "status: must be one of"),
                          ({"sort": "age"}, "sort: must be one of"),
                          ({"patientId": "DEMO-P"}, "patientId: is not a parameter of /caseload.csv")):
        bad = await lead.http_client.get("/caseload.csv", params=params)
        assert bad.status_code == 400 and bad.text.startswith(words), bad.text
    cross = await lead.http_client.get("/caseload.csv", headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    signed_out = await pages_app.new_user().http_client.get("/caseload.csv")
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")


async def test_a_viewer_gets_no_caseload_csv(pages_app):
    w = pages_app.world
    await chart(w)
    viewer = await pages_app.signed_in("viewer")  # a ward screen reaches only the ward board
    response = await viewer.http_client.get("/caseload.csv")
    assert response.status_code == 404
    for phi in (*WORDS, "Pat Example", "P.E.", "Quinn"):
        assert phi not in response.text


async def test_the_printable_report_shows_the_record_as_the_reader_may_read_it(pages_app):
    w = pages_app.world
    await chart(w)
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}/report")
    for text in ("Pat Example", "DEMO-P", "29 Feb 1944", "Timed Up and Go", "↓ lower is better", "Berg Balance Scale",
                 "↑ higher is better", "Lives alone, dog Rex.", "Correction: two rails.", "Walker",
                 "Supervision → Minimal assist", "fell on the stairs"):
        await owner.should_see(text)
    assert len(owner.find(marker="report-score").elements) == 6  # every score, the one in error too

    viewer = await pages_app.signed_in("viewer")  # a ward screen reaches only the ward board
    response = await viewer.http_client.get(f"/patient/{w.patient.id}/report")
    assert response.status_code == 404
    for phi in (*WORDS, "Pat Example", "P.E.", "Berg Balance Scale"):
        assert phi not in response.text

    for who in ("outsider", "other_therapist"):
        other = await pages_app.signed_in(who.replace("_", "-"))
        assert (await other.http_client.get(f"/patient/{w.patient.id}/report")).status_code == 404
    assert (await owner.http_client.get("/patient/NoSuchPat1/report")).status_code == 404


async def test_the_pdf_download_has_the_name_and_every_measure_and_is_not_found_for_a_viewer(pages_app):
    w = pages_app.world
    await chart(w)
    owner = await pages_app.signed_in("owner")
    response = await owner.http_client.get(f"/patient/{w.patient.id}/report.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="progress-report-{w.patient.id}.pdf"'
    pages, text = pdf_text(response.content)
    assert pages >= 1
    for expected in ("Pat Example", "Timed Up and Go", "Berg Balance Scale", "Lives alone, dog Rex."):
        assert expected in text

    viewer = await pages_app.signed_in("viewer")  # a ward screen reaches only the ward board
    response = await viewer.http_client.get(f"/patient/{w.patient.id}/report.pdf")
    assert response.status_code == 404 and response.headers["content-type"] != "application/pdf"
    for phi in (*WORDS, "Pat Example", "P.E."):
        assert phi not in response.text

    outsider = await pages_app.signed_in("outsider")
    assert (await outsider.http_client.get(f"/patient/{w.patient.id}/report.pdf")).status_code == 404
    assert (await owner.http_client.get("/patient/NoSuchPat1/report.pdf")).status_code == 404
    cross = await owner.http_client.get(f"/patient/{w.patient.id}/report.pdf", headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403


async def test_the_patient_page_links_to_the_report_its_pdf_and_the_fhir_export(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    links = {marker: owner.find(marker=marker).elements.pop().props["href"]
             for marker in ("open-report", "report-pdf", "export-fhir")}
    assert links == {"open-report": f"/patient/{w.patient.id}/report",
                     "report-pdf": f"/patient/{w.patient.id}/report.pdf",
                     "export-fhir": f"/fhir/Patient/{w.patient.id}/$everything"}
    # Each answers to the page's own cookie (the FHIR route is the API's, outside this pages-only app:
    # tests/api/test_fhir.py signs in to it with the pages' cookie).
    for href in (links["open-report"], links["report-pdf"]):
        assert (await owner.http_client.get(href)).status_code == 200
    await owner.open(links["open-report"])
    await owner.should_see("Progress report")


async def test_an_open_report_says_when_it_is_out_of_date_and_empties_when_access_ends(pages_app):
    w = pages_app.world
    await chart(w)
    member = await pages_app.signed_in("team-therapist")
    await member.open(f"/patient/{w.patient.id}/report")
    await member.should_see("Lives alone, dog Rex.")
    await member.should_not_see(marker="report-stale")
    await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="berg", value=50)
    await member.should_see("Records changed since this report was prepared: reload to include them.")
    await w.store.remove_care_team_member(principal=w.lead, patient_id=w.patient.id,
                                          user_id=w.users["team_therapist"].id)
    await member.should_see("Your access to this patient has ended")
    for text in ("Pat Example", "Lives alone, dog Rex.", "Berg Balance Scale"):
        await member.should_not_see(text)
