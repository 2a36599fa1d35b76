"""Keyboard only, in real Chromium: sign in, record a score, save a session note, change the mobility
status and check equipment out and back, with Tab, Shift+Tab, Enter, Space, the arrow keys and Escape
(no click, no fill). At every stop the focus is visible: a 2 px or wider outline on a control, or a
field's own 2 px focused border. Each test asserts what the user then sees.

The patient is DEMO-0004, Devon Pike (the demo therapist's own, and no other test on the shared demo
server reassigns it: test_browser_live moves DEMO-0003 to therapist2); what the tests write carries a
fresh marker, so other tests sharing the demo server see only more rows.
"""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DEMO_PASSWORD, patient_object_id, sign_in

pytestmark = pytest.mark.browser
WAIT = 10_000  # ms: only the failure bound
PATIENT = "DEMO-0004"

# Helpers in every page of the context: the focused element's name as a user reads it (a field's
# label, a control's text), and whether its focus is visible.
HELPERS = """
window.kbd = {
  nameOf(e) {
    const field = e.closest('.q-field');
    const label = field && field.querySelector('.q-field__label');
    if (label) return label.textContent.trim();
    return (e.getAttribute('aria-label') || e.innerText || e.textContent || '').trim();
  },
  shown(e) {
    const field = e.closest('.q-field');
    if (field) {  // Quasar's field draws its focus as the 2 px border of its control
      const border = getComputedStyle(field.querySelector('.q-field__control'), '::after');
      return field.classList.contains('q-field--focused') && parseFloat(border.borderTopWidth) >= 2
        && border.borderTopStyle !== 'none';
    }
    const s = getComputedStyle(e);
    return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 && s.outlineColor !== 'rgba(0, 0, 0, 0)';
  },
  state() {
    const e = document.activeElement;
    if (!e || e === document.body) return {name: '(nothing: the page body)', shown: false, tag: 'BODY'};
    return {name: this.nameOf(e), shown: this.shown(e), tag: e.tagName};
  },
};
"""


def focused(page: Page) -> dict:
    """The focused element's name and tag, once its focus shows (or as it is after WAIT)."""
    try:
        page.wait_for_function("() => window.kbd.state().shown", timeout=2_000)
    except Exception:  # noqa: BLE001 - reported by the caller's assertion, with the element's name
        pass
    return page.evaluate("() => window.kbd.state()")


def assert_focus_shown(page: Page) -> dict:
    state = focused(page)
    assert state["shown"], f"focus is not visible on {state['name']!r} ({state['tag']})"
    return state


def tab_to(page: Page, name: str | re.Pattern, *, back: bool = False, within: str | None = None,
           beside: str | None = None, limit: int = 80) -> None:
    """Presses Tab (Shift+Tab with `back`) until the focused element is named `name` (that exact
    name, or one the pattern finds; inside the element matching the CSS selector `within`, and in
    a list row holding the text `beside`, if given), checking at each stop that the focus shows."""
    passed = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        state = assert_focus_shown(page)
        passed.append(state["name"])
        named = name.search(state["name"]) if isinstance(name, re.Pattern) else name == state["name"]
        inside = within is None or page.evaluate("sel => !!document.activeElement.closest(sel)", within)
        near = beside is None or page.evaluate(
            "text => (document.activeElement.closest('.pt-list-row') || {innerText: ''}).innerText.includes(text)", beside)
        if named and inside and near:
            return
    raise AssertionError(f"{name!r} not reached by keyboard; stops: {passed}")


def choose(page: Page, option: str | None = None) -> str:
    """In the focused select: Enter opens its list, Down moves (to `option`, else one step), Enter
    picks. The option under the keyboard is ringed. Returns the option picked."""
    page.keyboard.press("Enter")
    menu = page.locator(".q-menu")
    expect(menu).to_be_visible(timeout=WAIT)
    active = page.locator(".q-menu .q-item.q-manual-focusable--focused")
    for _ in range(30):
        page.keyboard.press("ArrowDown")
        expect(active).to_have_count(1, timeout=WAIT)
        text = active.inner_text().strip()
        outline = active.evaluate("e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth")
        assert outline.split()[0] != "none" and float(outline.split()[1].rstrip("px")) >= 2, (text, outline)
        if option is None or option in text:
            page.keyboard.press("Enter")
            expect(menu).to_have_count(0, timeout=WAIT)
            # Quasar gives the focus back to the select as its list closes; a user goes on from there.
            page.wait_for_function("() => !!(document.activeElement && document.activeElement.closest('.q-select'))",
                                   timeout=WAIT)
            return text
    raise AssertionError(f"{option!r} not in the list")


def dialog_has_focus(page: Page) -> None:
    """Quasar moves the focus into a dialog once its opening transition is over: Tab from then on."""
    page.wait_for_function("() => document.activeElement.closest('[role=dialog]') !== null"
                           " && document.getAnimations().every(a => a.playState !== 'running')", timeout=WAIT)


def on_patient(browser, e2e_server, user: str = "therapist") -> Page:
    page = sign_in(browser, e2e_server, user, f"/patient/{patient_object_id(e2e_server, PATIENT)}")
    page.context.add_init_script(HELPERS)
    page.evaluate(HELPERS)
    return page


def marker() -> str:
    return f"kbd-{uuid.uuid4().hex[:8]}"


def test_sign_in_then_the_skip_link_and_a_patient_row_by_keyboard(browser, e2e_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(HELPERS)
    page = context.new_page()
    try:
        page.goto(f"{e2e_server.url}/login")
        assert assert_focus_shown(page)["name"] == "Username"  # the page puts the cursor there
        page.keyboard.type("therapist")
        tab_to(page, "Password")
        page.keyboard.type(DEMO_PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{e2e_server.url}/")
        expect(page.get_by_role("heading", level=1, name="Caseload")).to_be_visible(timeout=WAIT)
        expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)

        # The first Tab stop is the skip link, hidden until then and shown when focused.
        skip = page.get_by_role("link", name="Skip to main content")
        assert skip.bounding_box()["width"] <= 1
        page.keyboard.press("Tab")
        assert assert_focus_shown(page)["name"] == "Skip to main content"
        box = skip.bounding_box()
        assert box["width"] > 100 and box["height"] > 20 and box["y"] >= 0, box
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()
        # The next stop is the main column's first control, not the header's navigation.
        page.keyboard.press("Tab")
        assert assert_focus_shown(page)["name"].endswith("Download CSV")

        tab_to(page, re.compile(r"^Devon Pike\b"))
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/patient/"))
        expect(page.get_by_role("heading", level=1, name="Devon Pike")).to_be_visible(timeout=WAIT)
        # Shift+Tab from the top of the patient page reaches the header's sign-out, ringed in white.
        page.evaluate(HELPERS)
        tab_to(page, "Sign out")
        ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineColor")
        assert ring == "rgb(255, 255, 255)", ring
        tab_to(page, "Caseload", back=True)
    finally:
        context.close()


def test_a_score_saves_on_enter_and_the_field_clears_quietly_for_the_next(browser, e2e_server):
    page = on_patient(browser, e2e_server)
    try:
        note = marker()
        tab_to(page, "Measure")
        assert choose(page, "Berg").startswith("Berg")
        tab_to(page, "Value")
        page.keyboard.type("44")
        tab_to(page, "Comment (optional)")
        page.keyboard.type(note)
        tab_to(page, "Value", back=True)  # back over the date's day, month and year
        page.keyboard.press("Enter")  # Enter in Value saves

        expect(page.get_by_text("Berg score saved")).to_be_visible(timeout=WAIT)
        expect(page.locator("[data-testid=score-list]")).to_contain_text(note, timeout=WAIT)
        value = page.locator("input[data-testid=score-value]")
        expect(value).to_have_value("")
        expect(value).to_be_focused()  # the cursor is back for the next entry
        assert assert_focus_shown(page)["name"] == "Value"
        # Quietly: no "Enter a value" under the emptied field.
        expect(page.get_by_text("Enter a value")).to_have_count(0)
        expect(page.locator(".q-field--error")).to_have_count(0)

        # A second entry straight away, Enter again.
        page.keyboard.type("45")
        page.keyboard.press("Enter")
        expect(page.locator("[data-testid=score-list]")).to_contain_text("45", timeout=WAIT)
        expect(value).to_have_value("", timeout=WAIT)
        expect(value).to_be_focused()
    finally:
        page.context.close()


def test_a_session_note_with_a_follow_up_by_keyboard(browser, e2e_server):
    page = on_patient(browser, e2e_server)
    try:
        text = f"Walked the corridor with a frame, {marker()}"
        tab_to(page, "Session type")
        tab_to(page, "Follow-up needed")
        follow = page.get_by_role("checkbox", name="Follow-up needed")
        expect(follow).to_have_attribute("aria-checked", "false")
        page.keyboard.press("Space")
        expect(follow).to_have_attribute("aria-checked", "true", timeout=WAIT)
        tab_to(page, "Session note")
        page.keyboard.type(text)
        tab_to(page, re.compile(r"Save note$"))
        page.keyboard.press("Enter")

        expect(page.get_by_text("Note saved")).to_be_visible(timeout=WAIT)
        notes = page.locator(".pt-section[data-section=notes]")
        expect(notes).to_contain_text(text, timeout=WAIT)
        expect(page.get_by_role("textbox", name="Session note")).to_have_value("")
        expect(follow).to_have_attribute("aria-checked", "false")
        assert assert_focus_shown(page)["name"] == "Session type"  # back at the form's first field
    finally:
        page.context.close()


def test_the_status_dialog_by_keyboard_opens_named_keeps_its_reason_and_gives_focus_back(browser, e2e_server):
    page = on_patient(browser, e2e_server)
    try:
        tab_to(page, re.compile(r"Change status$"))
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Change mobility status")
        expect(dialog).to_be_visible(timeout=WAIT)
        dialog_has_focus(page)
        tab_to(page, "New status", within="[role=dialog]")
        # Escape closes the open list and nothing else (the dialog is persistent).
        page.keyboard.press("Enter")
        expect(page.locator(".q-menu")).to_be_visible(timeout=WAIT)
        page.keyboard.press("Escape")
        expect(page.locator(".q-menu")).to_have_count(0, timeout=WAIT)
        expect(dialog).to_be_visible()
        chosen = choose(page)  # the status after the current one
        reason = f"Walks with supervision now, {marker()}"
        tab_to(page, "Reason (required)", within="[role=dialog]")
        page.keyboard.type(reason[:10])
        # Quasar runs a select's queued focus once its list has finished closing, often while the
        # reason is being typed: the field being typed in keeps the focus and every word.
        page.evaluate("() => document.querySelector('[role=dialog] .q-select [tabindex]').focus()")
        page.keyboard.type(reason[10:])
        expect(page.get_by_role("textbox", name="Reason (required)")).to_be_focused()
        page.keyboard.press("Escape")  # persistent: what was typed stays
        expect(dialog).to_be_visible()
        expect(page.get_by_role("textbox", name="Reason (required)")).to_have_value(reason)
        tab_to(page, re.compile(r"Save status$"), within="[role=dialog]")
        page.keyboard.press("Enter")

        expect(dialog).to_have_count(0, timeout=WAIT)
        expect(page.locator("[data-testid=status-badge]")).to_contain_text(chosen, timeout=WAIT)
        expect(page.locator(".pt-section[data-section=history]")).to_contain_text(reason, timeout=WAIT)
        # Focus back where the user was: on Change status.
        expect(page.get_by_role("button", name="Change status")).to_be_focused(timeout=WAIT)
        assert_focus_shown(page)
    finally:
        page.context.close()


def test_equipment_checked_out_and_returned_by_keyboard(browser, e2e_server):
    page = on_patient(browser, e2e_server)
    try:
        item = f"Walking frame {marker()}"
        tab_to(page, "Equipment", within=".pt-section[data-section=equipment]")  # not the header's link
        page.keyboard.type(item)
        tab_to(page, "Serial (optional)")
        page.keyboard.type("WF-1")
        page.keyboard.press("Enter")

        out = page.locator("[data-testid=equipment-out]")
        expect(out).to_contain_text(item, timeout=WAIT)
        field = page.get_by_role("textbox", name="Equipment")
        expect(field).to_have_value("")
        expect(field).to_be_focused()

        tab_to(page, re.compile(r"Return$"), beside=item)
        page.keyboard.press("Enter")
        confirm = page.get_by_role("dialog", name=f"Return {item}?")
        expect(confirm).to_be_visible(timeout=WAIT)
        dialog_has_focus(page)
        tab_to(page, re.compile(r"Return$"), within="[role=dialog]")
        page.keyboard.press("Enter")

        expect(confirm).to_have_count(0, timeout=WAIT)
        expect(out).not_to_contain_text(item, timeout=WAIT)
        expect(page.locator(".pt-section[data-section=equipment]")).to_contain_text(f"{item} — returned")
        # The Return button went with its row: the cursor is on the equipment form, not lost.
        expect(field).to_be_focused(timeout=WAIT)
        assert_focus_shown(page)
    finally:
        page.context.close()


def test_on_a_tablet_the_section_tabs_are_one_stop_moved_along_with_the_arrow_keys(browser, e2e_server):
    page = sign_in(browser, e2e_server, "therapist", f"/patient/{patient_object_id(e2e_server, PATIENT)}",
                   viewport={"width": 768, "height": 1024})
    page.context.add_init_script(HELPERS)
    page.evaluate(HELPERS)
    try:
        tabs = page.get_by_role("tablist", name="Sections")
        tab_to(page, re.compile(r"Scores$"), within=".pt-tabs")
        page.keyboard.press("ArrowRight")
        notes_tab = tabs.get_by_role("tab", name="Notes")
        expect(notes_tab).to_be_focused()
        expect(notes_tab).to_have_attribute("aria-selected", "true")
        assert_focus_shown(page)
        notes = page.get_by_role("heading", level=2, name="Session notes")
        expect(notes).to_be_visible()
        expect(page.get_by_role("heading", level=2, name="Mobility scores")).to_be_hidden()
        # The other tabs are not Tab stops: the next one is the notes form's first field.
        page.keyboard.press("Tab")
        assert assert_focus_shown(page)["name"] == "Session type"
        page.keyboard.press("Shift+Tab")
        expect(notes_tab).to_be_focused()
        page.keyboard.press("End")
        expect(tabs.get_by_role("tab", name="Team")).to_have_attribute("aria-selected", "true")
        page.keyboard.press("ArrowRight")  # wraps round to the first
        expect(tabs.get_by_role("tab", name="Scores")).to_be_focused()
        expect(page.get_by_role("heading", level=2, name="Mobility scores")).to_be_visible()
    finally:
        page.context.close()
