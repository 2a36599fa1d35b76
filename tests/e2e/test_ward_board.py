"""The ward board in real Chromium: large type on a TV, no navigation, no scroll bar, ordered by bed,
pages when the patients do not fit, live, and a viewer account that reaches nothing else."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS, patient_object_id, sign_in

pytestmark = pytest.mark.browser
PUSH = 5_000  # ms: a push is expected well within a second; this is only the failure bound
TV, TV_4K = {"width": 1920, "height": 1080}, {"width": 3840, "height": 2160}

MEASURE = """() => {
  const sizes = sel => [...document.querySelectorAll(sel)].map(e => parseFloat(getComputedStyle(e).fontSize));
  const root = document.documentElement;
  const cards = [...document.querySelectorAll('.ward-card')];
  return {
    names: sizes('.ward-name'), statuses: sizes('.ward-card .ot-status'), scores: sizes('.ward-chip .value'),
    scrolls: root.scrollHeight > root.clientHeight || root.scrollWidth > root.clientWidth,
    clipped: cards.filter(c => c.scrollHeight > c.clientHeight + 1 || c.scrollWidth > c.clientWidth + 1).length,
    cards: cards.length, h1: document.querySelectorAll('h1').length,
    beds: [...document.querySelectorAll('.ward-bed')].map(e => e.textContent),
    nav: document.querySelectorAll('header, .ot-nav, form[action="/logout"], a[href]').length,
    legend: document.querySelector('.ward-legend')?.getBoundingClientRect().bottom <= innerHeight,
  };
}"""


def board(page, cards: int) -> dict:
    """The board's measurements once it shows `cards` cards (laid out for this screen)."""
    expect(page.locator(".ward-grid:not(.ward-measuring) .ward-card")).to_have_count(cards)
    return page.evaluate(MEASURE)


def test_the_board_reads_from_across_the_room_at_1920_and_at_3840(browser, e2e_server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, scale in ((TV, 1), (TV_4K, 2)):
        page = sign_in(browser, e2e_server, "ward", "/ward", viewport=viewport)
        seen = board(page, 6)  # the ward account's six patients, all on one page
        assert min(seen["names"]) >= 40 * scale and min(seen["statuses"]) >= 32 * scale, seen
        assert seen["scores"] and min(seen["scores"]) >= 28 * scale, seen
        assert not seen["scrolls"] and seen["clipped"] == 0 and seen["legend"], seen
        assert seen["nav"] == 0, "no navigation, sign-out or link on the TV"
        assert seen["h1"] == 1
        # Ordered by bed as the ward reads it; the side room (no bay) after the bays.
        assert seen["beds"] == ["Bay 1 bed 1", "Bay 1 bed 2", "Bay 2 bed 1", "Bay 2 bed 2", "Bay 2 bed 4",
                                "Side room 3"], seen["beds"]
        expect(page.get_by_text(re.compile(r"Last heard from the server \d\d:\d\d:\d\d"))).to_be_visible()
        expect(page.locator(".ward-legend")).to_contain_text("falls risk (TUG > 12 s, Berg < 45)")
        content = page.content()
        # Initials only, no identifier, no staff username (the viewer's own name is not shown either).
        assert "Avery Quill" not in content and "DEMO-0001" not in content
        assert not re.search(r">\s*(therapist2?|lead|assistant|ward)\s*<", content)
        page.screenshot(path=str(SCREENSHOTS / f"ward-board-{viewport['width']}x{viewport['height']}.png"))
        page.context.close()


def test_a_board_that_cannot_hold_every_patient_pages_through_them(browser, e2e_server):
    page = sign_in(browser, e2e_server, "ward", "/ward", viewport={"width": 1280, "height": 800})
    seen = board(page, 4)
    assert not seen["scrolls"] and seen["clipped"] == 0, seen
    pager = page.locator("[data-testid=ward-pager], .ward-pager")
    expect(pager).to_have_text("6 patients · page 1 of 2")
    first = page.locator(".ward-bed").first.text_content()
    # It turns the page by itself (every 20 s), and back to the first after the last.
    expect(pager).to_have_text("6 patients · page 2 of 2", timeout=30_000)
    assert page.locator(".ward-card").count() == 2
    assert page.locator(".ward-bed").first.text_content() != first
    page.context.close()


def test_the_board_follows_a_score_a_session_and_a_change_of_bed_live(browser, own_server):
    pid = patient_object_id(own_server, "DEMO-0001")  # Avery Quill, Bay 1 bed 2
    ward = sign_in(browser, own_server, "ward", "/ward", viewport=TV)
    card = ward.locator(f"[data-patient='{pid}']")
    expect(card).to_contain_text("Not seen today")
    lead = sign_in(browser, own_server, "lead", f"/patient/{pid}")
    lead.locator("input[data-testid=score-value]").fill("97")
    lead.locator("[data-testid=score-save]").click()
    expect(card.locator(".ward-chip").first).to_contain_text("97", timeout=PUSH)
    expect(card).to_contain_text("Seen today", timeout=PUSH)  # a score dated today is today's therapy
    expect(card.locator("[data-testid=ward-updated], .ward-foot")).to_contain_text(re.compile(r"Updated \d\d:\d\d"))
    # The lead moves the patient to the side room's neighbour: the card takes its new place.
    lead.locator("[data-testid=edit-profile]").click()
    lead.locator("input[data-testid=profile-bed]").fill("Side room 4")
    lead.get_by_role("button", name="Save profile").click()
    expect(card.locator(".ward-bed")).to_have_text("Side room 4", timeout=PUSH)
    expect(lead.get_by_text(re.compile(r"Therapist: therapist · Side room 4$"))).to_be_visible()
    expect(ward.locator(".ward-bed").last).to_have_text("Side room 4")
    lead.context.close()
    ward.context.close()


def test_a_viewer_reaches_the_ward_board_and_nothing_else(browser, e2e_server):
    pid = patient_object_id(e2e_server, "DEMO-0001")  # on the ward account's care team
    page = sign_in(browser, e2e_server, "ward", "/ward", viewport=TV)
    for path in ("/", f"/patient/{pid}", "/equipment", "/admin", "/audit", "/account"):
        response = page.goto(f"{e2e_server.url}{path}")
        assert response is not None and response.status == 404, path
        assert "Avery Quill" not in page.content() and "A.Q." not in page.content(), path
    page.context.close()


def test_a_lead_signs_the_ward_screen_out_from_admin(browser, own_server):
    ward = sign_in(browser, own_server, "ward", "/ward", viewport=TV)
    lead = sign_in(browser, own_server, "lead", "/admin")
    row = lead.locator(".ad-row", has_text="Full names on ward")  # the ward account's row
    row.get_by_role("button", name="Sign out everywhere").click()
    lead.locator("[data-testid=confirm-yes]").click()
    expect(lead.get_by_text(re.compile(r"ward is signed out \(\d+ sessions? ended\)"))).to_be_visible(timeout=PUSH)
    # Nobody touches the TV: it leaves for the sign-in page by itself, showing no patient.
    expect(ward).to_have_url(re.compile(r"/login"), timeout=PUSH)
    expect(ward.locator(".ward-card")).to_have_count(0)
    lead.context.close()
    ward.context.close()
