"""WCAG 2.1 A/AA in real Chromium with axe-core (npm, pinned in tests/accessibility/package.json,
installed by tests/install.sh): every page, for the roles that reach it, at a tablet's 768×1024 and a
TV's 1920×1080, has no critical or serious violation. Dialogs are checked open."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM_ARGS, SCREENSHOTS, patient_object_id, sign_in  # noqa: F401 - CHROMIUM_ARGS for readers

AXE = Path(__file__).resolve().parents[1] / "accessibility" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = [{"width": 768, "height": 1024}, {"width": 1920, "height": 1080}]
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
NOT_FOUND = "/no-such-page"

pytestmark = pytest.mark.browser


def violations(page, within: str | None = None, skip: tuple[str, ...] = ()) -> list[dict]:
    """axe's critical and serious violations on the page as it is now (or within the element matching
    the CSS selector `within`, and without the rules in `skip`): rule, count, first nodes."""
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed ({AXE}): run bash tests/install.sh")
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async ([tags, within, skip]) => {
        const rules = Object.fromEntries(skip.map(id => [id, {enabled: false}]));
        const result = await axe.run(within ? document.querySelector(within) : document,
                                     {runOnly: {type: 'tag', values: tags}, rules});
        return result.violations.filter(v => v.impact === 'critical' || v.impact === 'serious')
            .map(v => ({rule: v.id, impact: v.impact, nodes: v.nodes.length,
                        first: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').slice(0, 200))}));
    }""", [TAGS, within, list(skip)])


def assert_accessible(page, what: str, within: str | None = None, skip: tuple[str, ...] = ()) -> None:
    found = violations(page, within, skip)
    assert found == [], f"{what}: {json.dumps(found, indent=1)}"


def assert_one_h1(page, what: str) -> None:
    """Exactly one h1 (axe's page-has-heading-one is only moderate, and counts no second one)."""
    headings = page.locator("h1").all_inner_texts()
    assert len(headings) == 1, f"{what}: h1 elements {headings}"


# A viewer (the ward account) reaches /ward only: every other page is the not-found page for it.
SIGNED_IN = [("lead", "/"), ("therapist", "/"), ("lead", "/equipment"), ("lead", "/admin"), ("lead", "/audit"),
             ("therapist", "/account"), ("ward", "/ward"), ("lead", "/patient/{P}"),
             ("therapist", "/patient/{FOLLOW_UP}"), ("lead", "/patient/{P}/report")]


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
@pytest.mark.parametrize("user,path", SIGNED_IN, ids=lambda x: x)
def test_signed_in_pages_have_no_serious_violation(browser, e2e_server, user, path, viewport):
    # DEMO-0002 has a note awaiting follow-up (its chip) and no equipment out; DEMO-0001 has equipment out.
    path = path.format(P=patient_object_id(e2e_server, "DEMO-0001"), FOLLOW_UP=patient_object_id(e2e_server, "DEMO-0002"))
    page = sign_in(browser, e2e_server, user, path, viewport=viewport)
    try:
        assert_accessible(page, f"{user} {path}")
        assert_one_h1(page, f"{user} {path}")
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
@pytest.mark.parametrize("user,home", [("lead", "/"), ("ward", "/ward")], ids=lambda x: x)
def test_the_not_found_page_signed_in_has_no_serious_violation(browser, e2e_server, user, home, viewport):
    # For the viewer (the ward account) every page but /ward is this page, the caseload included.
    page = sign_in(browser, e2e_server, user, home, viewport=viewport)
    try:
        for path in (NOT_FOUND, "/patient/no-such-patient") + (("/",) if user == "ward" else ()):
            response = page.goto(f"{e2e_server.url}{path}")
            assert response is not None and response.status == 404, path
            assert_accessible(page, f"{user} {path}")
            assert_one_h1(page, f"{user} {path}")
    finally:
        page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
def test_sign_in_sign_up_and_not_found_have_no_serious_violation(browser, e2e_server, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    try:
        for path in ("/login", "/signup", NOT_FOUND):
            page.goto(f"{e2e_server.url}{path}")
            assert_accessible(page, path)
            assert_one_h1(page, path)
    finally:
        context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v['width']}x{v['height']}")
def test_the_patient_page_s_status_dialog_has_no_serious_violation(browser, e2e_server, viewport):
    pid = patient_object_id(e2e_server, "DEMO-0001")
    page = sign_in(browser, e2e_server, "lead", f"/patient/{pid}", viewport=viewport)
    try:
        page.get_by_role("button", name="Change status").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        # Its opening transition over (mid-way its card is still translucent over the backdrop).
        page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
        # The dialog is modal (aria-modal): what is behind its backdrop is checked by the page's own test.
        # Contrast is left to those: inside Quasar's dialog axe stacks the backdrop (#999) behind the
        # card's buttons, which the screen shows on white (the page's buttons, same colours, pass).
        assert_accessible(page, "status dialog", within="[role=dialog]", skip=("color-contrast",))
    finally:
        page.context.close()


def test_the_not_found_page_looks_like_the_app_offers_a_way_back_and_breaks_no_policy(browser, e2e_server):
    """The one 404 answer: the app's header band and brand, an h1, a sentence that does not say
    whether a record exists, a link back, a skip link to the main landmark, all under the app's
    Content-Security-Policy with nothing refused (Chromium reports each refusal as an event)."""
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    context.add_init_script("""window.cspRefused = [];
        document.addEventListener('securitypolicyviolation', e => window.cspRefused.push(e.violatedDirective));""")
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    try:
        response = page.goto(f"{e2e_server.url}{NOT_FOUND}")
        assert response is not None and response.status == 404
        assert "content-security-policy" in response.headers
        assert page.locator("html").get_attribute("lang") == "en-GB"
        expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
        expect(page.get_by_text("This page does not exist, or you do not have access to it.")).to_be_visible()
        expect(page.get_by_role("banner").get_by_role("link", name="OT Tracker")).to_have_attribute("href", "/login")
        # The header band is the app's teal, the heading the app's ink: the page's <style> applied.
        band = page.get_by_role("banner").evaluate("e => getComputedStyle(e).backgroundImage")
        assert "linear-gradient" in band and "rgb(11, 85, 99)" in band, band
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to main content")
        expect(skip).to_be_focused()
        assert skip.bounding_box()["width"] > 100  # shown while focused
        page.keyboard.press("Enter")
        expect(page.get_by_role("main")).to_be_focused()
        page.keyboard.press("Tab")
        back = page.get_by_role("link", name="Back to OT Tracker")
        expect(back).to_be_focused()
        assert back.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "not-found-768x1024.png"))
        assert page.evaluate("window.cspRefused") == []
        assert not [m for m in console if "Content Security Policy" in m], console
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/login"))  # signed out: sign in (signed in: the account's start page)
    finally:
        context.close()


def test_trend_arrows_are_read_out_in_words(browser, e2e_server):
    """Colour and direction are not the only signal: a screen reader hears improving, worsening or
    no change (Quasar hides an icon from assistive technology unless it is given a role)."""
    page = sign_in(browser, e2e_server, "lead", "/")
    try:
        chip = page.locator(".score-chip").first
        expect(chip.get_by_role("img", name=re.compile(r"^(improving|worsening|no change)$"))).to_have_count(1)
    finally:
        page.context.close()


DIALOGS = [  # (page, the button that opens it, the dialog's title)
    ("/", "Admit patient", "Admit patient"),
    ("/patient/{P}", "Edit profile", "Edit profile"),
    ("/patient/{P}", "Discharge", "Discharge patient"),
    ("/patient/{P}", "Add addendum", "Add an addendum"),
    ("/patient/{P}", "Mark entered in error", "Mark score entered in error"),
    ("/patient/{P}", "Return", re.compile(r"^Return .+\?$")),
    ("/admin", "Reset password", re.compile(r"^Reset .+'s password$")),
]


@pytest.mark.parametrize("path,opener,title", DIALOGS, ids=[d[1] for d in DIALOGS])
def test_every_dialog_is_named_by_its_title_and_its_fields_are_labelled(browser, e2e_server, path, opener, title):
    page = sign_in(browser, e2e_server, "lead", path.format(P=patient_object_id(e2e_server, "DEMO-0001")),
                   viewport=VIEWPORTS[1])
    try:
        page.get_by_role("button", name=opener, exact=True).first.click()
        dialog = page.get_by_role("dialog", name=title)  # aria-labelledby its heading
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("heading", level=2, name=title)).to_be_visible()
        page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
        # As for the status dialog: modal, and contrast is left to the page's own scan.
        assert_accessible(page, f"{opener} dialog", within="[role=dialog]", skip=("color-contrast",))
        unnamed = dialog.evaluate("""d => [...d.querySelectorAll('input:not([type=hidden]), textarea, [role=combobox]')]
            .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
            .map(e => e.outerHTML.slice(0, 120))""")
        assert unnamed == [], unnamed
    finally:
        page.context.close()
