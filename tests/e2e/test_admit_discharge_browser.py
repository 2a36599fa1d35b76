"""End to end in real Chromium: a lead admits a patient who appears on the assigned therapist's open
caseload, and a discharge takes a patient off an open caseload and the ward screen, without reloads."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import patient_object_id, sign_in

pytestmark = pytest.mark.browser
PUSH = 5_000  # ms: a push is expected well within a second; this is only the failure bound


def test_an_admission_appears_live_on_the_therapists_caseload(browser, own_server):
    therapist = sign_in(browser, own_server, "therapist2", "/")
    expect(therapist.get_by_text("Emery Sloane")).to_be_visible()
    lead = sign_in(browser, own_server, "lead", "/")
    lead.locator("[data-testid=admit-patient]").click()
    dialog = lead.get_by_role("dialog", name="Admit patient")
    expect(dialog).to_be_visible()
    dialog.locator("input[data-testid=admit-patient-id]").fill("E2E-0042")
    dialog.locator("input[data-testid=admit-name]").fill("Nico Arrival")
    dialog.locator("input[data-testid=admit-birth]").fill("1951-06-14")
    dialog.locator("[data-testid=admit-therapist]").click()
    lead.get_by_role("option", name="therapist2", exact=True).click()
    dialog.locator("[data-testid=admit-save]").click()
    expect(dialog).to_have_count(0, timeout=PUSH)
    expect(therapist.get_by_text("Nico Arrival")).to_be_visible(timeout=PUSH)  # no reload on this page
    pid = patient_object_id(own_server, "E2E-0042")
    expect(therapist.locator(f"[data-patient='{pid}']")).to_have_count(1)
    # The same identifier again: said under the field, and the dialog keeps what was typed.
    lead.locator("[data-testid=admit-patient]").click()
    dialog = lead.get_by_role("dialog", name="Admit patient")
    dialog.locator("input[data-testid=admit-patient-id]").fill("E2E-0042")
    dialog.locator("input[data-testid=admit-name]").fill("Nico Again")
    dialog.locator("[data-testid=admit-therapist]").click()
    lead.get_by_role("option", name="therapist2", exact=True).click()
    dialog.locator("[data-testid=admit-save]").click()
    expect(dialog.get_by_text("already belongs to another patient")).to_be_visible(timeout=PUSH)
    expect(dialog.locator("input[data-testid=admit-name]")).to_have_value("Nico Again")
    for page in (therapist, lead):
        page.context.close()


def test_a_discharge_leaves_the_open_caseload_and_the_ward_screen(browser, own_server):
    pid = patient_object_id(own_server, "DEMO-0005")  # therapist2's, on the ward screen's team
    therapist = sign_in(browser, own_server, "therapist2", "/")
    ward = sign_in(browser, own_server, "ward", "/ward", viewport={"width": 1920, "height": 1080})
    expect(therapist.locator(f"[data-patient='{pid}']")).to_have_count(1)
    expect(ward.locator(f"[data-patient='{pid}']")).to_have_count(1)
    lead = sign_in(browser, own_server, "lead", f"/patient/{pid}")
    lead.locator("[data-testid=discharge]").click()
    dialog = lead.get_by_role("dialog", name="Discharge patient")
    expect(dialog).to_be_visible()
    dialog.locator("textarea[data-testid=discharge-reason]").fill("Home, community OT follows up")
    dialog.locator("[data-testid=discharge-save]").click()
    expect(lead.locator("[data-testid=discharged-banner]")).to_contain_text(
        "Home, community OT follows up", timeout=PUSH)
    expect(therapist.locator(f"[data-patient='{pid}']")).to_have_count(0, timeout=PUSH)
    expect(ward.locator(f"[data-patient='{pid}']")).to_have_count(0, timeout=PUSH)
    # Still readable, under Discharged.
    therapist.locator("[data-testid=admission-filter]").click()
    therapist.get_by_role("option", name="Discharged", exact=True).click()
    expect(therapist.get_by_text("Emery Sloane")).to_be_visible(timeout=PUSH)
    expect(therapist.get_by_text("Home, community OT follows up")).to_be_visible()
    for page in (therapist, ward, lead):
        page.context.close()
