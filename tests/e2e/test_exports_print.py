"""End to end in real Chromium: printing hides the navigation, forms and buttons and prints every
section; the report page prints; the PDF and the caseload CSV download through the browser with the
page's cookie (the caseload's as the rows on screen)."""
from __future__ import annotations

import csv
from pathlib import Path

import pypdf
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import patient_object_id, sign_in

pytestmark = pytest.mark.browser
TABLET = {"width": 768, "height": 1024}


def test_print_hides_navigation_and_forms_and_prints_every_section(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0001")
    page = sign_in(browser, e2e_server, "lead", f"/patient/{pid}", viewport=TABLET)
    expect(page.locator(".ot-header")).to_be_visible()
    expect(page.locator("[data-testid=score-save]")).to_be_visible()
    expect(page.locator(".pt-section[data-section=notes]")).to_be_hidden()  # a tablet shows one tab at a time
    page.emulate_media(media="print")
    expect(page.locator(".ot-header")).to_be_hidden()
    expect(page.locator("[data-testid=score-save]")).to_be_hidden()
    expect(page.locator("[data-draft-form]").first).to_be_hidden()
    expect(page.locator("[data-testid=section-tabs]")).to_be_hidden()
    for key in ("scores", "notes", "equipment", "history"):
        expect(page.locator(f".pt-section[data-section={key}]")).to_be_visible()
    page.context.close()


def test_the_report_prints_and_its_pdf_downloads(browser, e2e_server, tmp_path: Path):
    pid = patient_object_id(e2e_server, "DEMO-0001")
    page = sign_in(browser, e2e_server, "therapist", f"/patient/{pid}")
    page.get_by_text("Progress report", exact=True).click()
    page.wait_for_url(f"{e2e_server.url}/patient/{pid}/report")
    name = page.locator(".ot-page-title").first.inner_text()
    expect(page.get_by_text("Mobility scores")).to_be_visible()
    with page.expect_download() as caught:
        page.get_by_text("PDF", exact=True).click()
    download = caught.value
    assert download.suggested_filename == f"progress-report-{pid}.pdf"
    path = tmp_path / "report.pdf"
    download.save_as(path)
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) >= 1 and name in reader.pages[0].extract_text()
    page.emulate_media(media="print")
    expect(page.get_by_text("PDF", exact=True)).to_be_hidden()
    expect(page.locator(".ot-header")).to_be_hidden()
    expect(page.locator(".ot-page-title").first).to_be_visible()
    page.context.close()


def test_download_csv_in_the_browser_is_the_rows_on_screen(browser, e2e_server, tmp_path: Path):
    page = sign_in(browser, e2e_server, "lead", "/")
    rows = page.locator("[data-patient] .cl-name")
    expect(rows.first).to_be_visible()
    shown = rows.all_inner_texts()
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download CSV").click()
    path = tmp_path / "caseload.csv"
    caught.value.save_as(path)
    with path.open(newline="", encoding="utf-8") as f:
        header, *lines = list(csv.reader(f))
    assert header[0] == "Patient" and [line[0] for line in lines] == shown  # the demo fits one page
    page.context.close()
