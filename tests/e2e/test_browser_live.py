"""End to end in real Chromium: live updates between browsers, access ending, the ward screen."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS, patient_object_id, sign_in

pytestmark = pytest.mark.browser
PUSH = 5_000  # ms: a push is expected well within a second; this is only the failure bound


def chart_values(page, score_type: str) -> list[float]:
    return page.evaluate("""(cls) => {
        const el = document.querySelector('.' + cls);
        const chart = el && getElement(el.id.slice(1)).chart;
        return chart ? chart.getOption().series[0].data.map(p => p[1]) : [];
    }""", f"chart-{score_type}")


def test_a_score_saved_by_the_therapist_appears_on_the_leads_page(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0001")
    lead = sign_in(browser, e2e_server, "lead", f"/patient/{pid}")
    therapist = sign_in(browser, e2e_server, "therapist", f"/patient/{pid}")
    expect(lead.get_by_text(re.compile("Also viewing: therapist"))).to_be_visible(timeout=PUSH)
    assert 87 not in chart_values(lead, "barthel")
    therapist.locator("input[data-testid=score-value]").fill("87")
    therapist.locator("[data-testid=score-save]").click()
    expect(lead.locator("[data-testid=score-list]")).to_contain_text("87", timeout=PUSH)
    lead.wait_for_function("""() => {
        const el = document.querySelector('.chart-barthel');
        return el && getElement(el.id.slice(1)).chart.getOption().series[0].data.some(p => p[1] === 87);
    }""", timeout=PUSH)
    assert 87 in chart_values(lead, "barthel")
    lead.context.close()
    therapist.context.close()


def test_a_therapist_not_on_the_team_never_sees_the_patient(browser, e2e_server):
    hidden = patient_object_id(e2e_server, "DEMO-0002")  # therapist's patient; therapist2 is not on its team
    visible = patient_object_id(e2e_server, "DEMO-0005")  # therapist2's own patient
    outsider = sign_in(browser, e2e_server, "therapist2", "/")
    expect(outsider.locator(f"[data-patient='{visible}']")).to_have_count(1)
    expect(outsider.locator(f"[data-patient='{hidden}']")).to_have_count(0)
    therapist = sign_in(browser, e2e_server, "therapist", f"/patient/{hidden}")
    therapist.locator("input[data-testid=score-value]").fill("64")
    therapist.locator("[data-testid=score-save]").click()
    expect(therapist.locator("[data-testid=score-list]")).to_contain_text("64", timeout=PUSH)
    # Then a change the outsider may see; once it has arrived, the earlier push has settled too.
    lead = sign_in(browser, e2e_server, "lead", f"/patient/{visible}")
    lead.locator("input[data-testid=score-value]").fill("99")
    lead.locator("[data-testid=score-save]").click()
    expect(outsider.locator(f"[data-patient='{visible}']")).to_contain_text("99", timeout=PUSH)
    expect(outsider.locator(f"[data-patient='{hidden}']")).to_have_count(0)
    assert "Blake Harrow" not in outsider.content()
    for page in (outsider, therapist, lead):
        page.context.close()


def test_reassigning_a_patient_ends_the_open_page_of_its_old_therapist(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0003")
    therapist = sign_in(browser, e2e_server, "therapist", f"/patient/{pid}")
    expect(therapist.get_by_text("Casey Marlow")).to_be_visible()
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    lead.locator(f"[data-testid=therapist-{pid}]").click()
    lead.get_by_role("option", name="therapist2", exact=True).click()
    lead.locator("[data-testid=confirm-yes]").click()  # reassigning asks first
    expect(therapist.locator("[data-testid=access-ended]")).to_be_visible(timeout=PUSH)
    expect(therapist.get_by_text("Casey Marlow")).to_have_count(0)
    lead.context.close()
    therapist.context.close()


def change_status(page, label: str, reason: str) -> None:
    page.locator("[data-testid=change-status]").click()
    page.locator("[data-testid=status-select]").click()
    page.get_by_role("option", name=label, exact=True).click()
    page.locator("textarea[data-testid=status-reason]").fill(reason)
    page.locator("[data-testid=status-save]").click()
    expect(page.locator("[data-testid=status-badge]")).to_have_text(label, timeout=PUSH)


def test_the_ward_screen_updates_and_survives_a_server_restart(browser, own_server):
    pid = patient_object_id(own_server, "DEMO-0001")
    ward = sign_in(browser, own_server, "ward", "/ward", viewport={"width": 1920, "height": 1080})
    card = ward.locator(f"[data-patient='{pid}']")
    expect(card).to_contain_text("Moderate assist")
    lead = sign_in(browser, own_server, "lead", f"/patient/{pid}")
    change_status(lead, "Minimal assist", "Transfers improving")
    expect(card).to_contain_text("Minimal assist", timeout=PUSH)
    content = ward.content()
    assert "DEMO-0001" not in content and "Avery Quill" not in content
    # The year of birth as a value, not inside an asset's hash (NiceGUI's paths carry hex digests).
    assert not re.search(r"(?<![0-9A-Za-z])1941(?![0-9A-Za-z])", content)

    own_server.restart()
    # Nobody touches the ward screen: it must reconnect, reload itself and be live again.
    expect(ward.locator("body[data-live=live]")).to_have_count(1, timeout=45_000)
    expect(ward.locator(f"[data-patient='{pid}']")).to_contain_text("Minimal assist", timeout=15_000)
    # The lead's page reloads itself too (a reload of our own would race with it).
    expect(lead.locator("body[data-live=live]")).to_have_count(1, timeout=45_000)
    expect(lead.locator("[data-testid=status-badge]")).to_have_text("Minimal assist", timeout=15_000)
    expect(lead.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    change_status(lead, "Supervision", "Walking with supervision")
    expect(ward.locator(f"[data-patient='{pid}']")).to_contain_text("Supervision", timeout=PUSH)
    lead.context.close()
    ward.context.close()


@pytest.mark.parametrize("size", [(768, 1024), (1920, 1080)], ids=["tablet", "tv"])
def test_screenshots(browser, e2e_server, size):
    width, height = size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pid = patient_object_id(e2e_server, "DEMO-0004")
    viewport = {"width": width, "height": height}
    shots = [("lead", "/", "caseload"), ("therapist", f"/patient/{pid}", "patient"),
             ("lead", "/equipment", "equipment"), ("ward", "/ward", "ward"), ("lead", "/admin", "admin"),
             ("lead", "/audit", "audit"), ("therapist", "/account", "account"),
             ("lead", f"/patient/{pid}/report", "report")]
    for username, path, name in shots:
        page = sign_in(browser, e2e_server, username, path, viewport=viewport)
        if name == "patient":
            page.wait_for_function("() => document.querySelectorAll('.pt-chart canvas').length > 0")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}x{height}.png"), full_page=name != "ward")
        # Tablets: every button a finger can hit is at least 44 px tall.
        small = page.evaluate("""() => [...document.querySelectorAll('button, .q-btn')]
            .filter(b => b.offsetParent !== null)
            .map(b => b.getBoundingClientRect()).filter(r => r.height > 0 && r.height < 43.5).length""")
        assert small == 0, f"{name}: {small} buttons under 44 px"
        # Nothing runs off the side of the screen (a sideways scroll bar on a tablet hides controls).
        wide = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"{name}: {wide} px wider than the screen"
        if name == "audit":  # each column's head above its column, however many a narrow screen shows
            head, first = page.evaluate("""() => [...document.querySelectorAll('.au-row')].slice(0, 2)
                .map(r => [...r.children].filter(c => getComputedStyle(c).display !== 'none').length)""")
            assert head == first, f"audit: {head} column heads over {first} columns"
        page.context.close()
    print(f"screenshots written to {SCREENSHOTS}")
