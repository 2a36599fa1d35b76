"""Live editing that never loses work, in real Chromium: a colleague's pushes, reloads, a server
restart, a dropped connection and the idle lock all leave what a therapist typed where it was."""
from __future__ import annotations

import re
import sqlite3
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, SCREENSHOTS, patient_object_id, sign_in
from tests.support import LiveServer, make_live_server

pytestmark = pytest.mark.browser
PUSH = 5_000  # ms: a push arrives well within a second; this is only the failure bound
TABLET = {"width": 768, "height": 1024}


@pytest.fixture(scope="module")
def editing_server(tmp_path_factory: pytest.TempPathFactory):
    server = make_live_server(tmp_path_factory.mktemp("editing"))
    server.start()
    yield server
    server.stop()


def rows(server: LiveServer, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(server.data_dir / "ot-tracker.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def notes_with(server: LiveServer, marker: str) -> int:
    return rows(server, "SELECT count(*) FROM session_notes WHERE note_text LIKE ?", f"%{marker}")[0][0]


def until(condition, seconds: float = PUSH / 1000) -> None:
    """Polls a condition outside the browser (the database) until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def tab(page, key: str) -> None:
    page.locator(f"[data-pt-tab={key}]").click()
    expect(page.locator(f"[data-pt-tab={key}]")).to_have_attribute("aria-selected", "true")


def pick(page, field, option: str) -> None:
    field.click()
    page.get_by_role("option", name=option, exact=True).click()


def score_value(page):
    return page.locator("input[data-testid=score-value]")


def note_text(page):
    return page.locator("[data-draft-form=note] textarea")


def equipment_name(page):
    return page.locator("[data-draft-form=equipment] input").first


def drafts_of(page) -> list[str]:
    return page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('ot-draft:'))")


def type_everywhere(page, tag: str) -> dict[str, str]:
    """The therapist half-types in every form of the tablet page; returns what was typed."""
    typed = {"score": "41", "note": f"Half a note {tag}", "equipment": f"Rollator {tag}", "serial": f"SN-{tag}"}
    tab(page, "scores")
    score_value(page).fill(typed["score"])
    tab(page, "equipment")
    equipment_name(page).fill(typed["equipment"])
    page.locator("[data-draft-form=equipment] input").nth(1).fill(typed["serial"])
    tab(page, "notes")
    note_text(page).fill(typed["note"])
    return typed


def assert_still_typed(page, typed: dict[str, str]) -> None:
    tab(page, "scores")
    expect(score_value(page)).to_have_value(typed["score"])
    if "equipment" in typed:
        tab(page, "equipment")
        expect(equipment_name(page)).to_have_value(typed["equipment"])
        expect(page.locator("[data-draft-form=equipment] input").nth(1)).to_have_value(typed["serial"])
    tab(page, "notes")
    expect(note_text(page)).to_have_value(typed["note"])


def test_a_colleagues_saves_never_touch_what_the_therapist_is_typing(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0006")
    therapist = sign_in(browser, server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    lead = sign_in(browser, server, "lead", f"/patient/{pid}")
    typed = type_everywhere(therapist, "t1")
    # The addendum dialog, open with text in it, on the newest note.
    therapist.get_by_role("button", name=re.compile("Add addendum")).first.click()
    addendum = therapist.locator("[data-draft-form^='addendum:'] textarea")
    addendum.fill("Correction: the transfer used a slide sheet")

    marker = uuid.uuid4().hex[:8]
    lead.locator("[data-draft-form=note] textarea").fill(f"Lead's note {marker}")
    lead.get_by_role("button", name="Save note").click()
    pick(lead, lead.locator("[data-draft-form=score] .q-select"), "FIM motor subscale — a whole number from 13 to 91")
    score_value(lead).fill("52")
    lead.get_by_role("button", name="Save score").click()
    lead.locator("[data-draft-form=equipment] input").first.fill(f"Hoist {marker}")
    lead.get_by_role("button", name="Check out").click()
    lead.locator("[data-testid=change-status]").click()
    pick(lead, lead.locator("[data-testid=status-select]"), "Bed bound")
    lead.locator("textarea[data-testid=status-reason]").fill("Unwell today")
    lead.locator("[data-testid=status-save]").click()

    # Every change is shown on the therapist's page...
    expect(therapist.locator("[data-testid=status-badge]")).to_have_text("Bed bound", timeout=PUSH)
    expect(therapist.locator(".chart-fim_motor")).to_have_count(1, timeout=PUSH)
    expect(therapist.locator("[data-testid=note-feed]")).to_contain_text(marker, timeout=PUSH)
    expect(therapist.locator("[data-testid=equipment-out]")).to_contain_text(f"Hoist {marker}", timeout=PUSH)
    # ... and nothing the therapist typed moved.
    expect(addendum).to_have_value("Correction: the transfer used a slide sheet")
    therapist.locator("[data-testid=addendum-cancel]").click()
    expect(therapist.get_by_text("Discard what you typed?")).to_be_visible()
    therapist.locator("[data-testid=confirm-cancel]").click()
    expect(addendum).to_have_value("Correction: the transfer used a slide sheet")
    addendum.press("Escape")  # persistent: neither Escape nor a tap beside the dialog closes it
    therapist.mouse.click(6, TABLET["height"] - 6)
    expect(addendum).to_be_visible()
    expect(addendum).to_have_value("Correction: the transfer used a slide sheet")
    therapist.get_by_role("button", name="Save addendum").click()
    expect(addendum).to_have_count(0, timeout=PUSH)
    assert_still_typed(therapist, typed)

    # The status dialog open with a reason typed; the lead changes the status meanwhile.
    therapist.locator("[data-testid=change-status]").click()
    reason = therapist.locator("textarea[data-testid=status-reason]")
    reason.fill("Stood with one assist this morning")
    lead.locator("[data-testid=change-status]").click()
    pick(lead, lead.locator("[data-testid=status-select]"), "Dependent")
    lead.locator("textarea[data-testid=status-reason]").fill("Back to baseline")
    lead.locator("[data-testid=status-save]").click()
    expect(therapist.get_by_text(re.compile(r"lead changed the status to Dependent while this was open"))) \
        .to_be_visible(timeout=PUSH)
    expect(reason).to_have_value("Stood with one assist this morning")
    therapist.context.close()
    lead.context.close()


def test_after_saving_a_score_the_field_is_empty_without_an_error_and_enter_saves_the_next(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0008")
    page = sign_in(browser, server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    field = score_value(page)
    field.fill("77")
    field.press("Enter")
    expect(page.get_by_text("Barthel score saved")).to_be_visible(timeout=PUSH)
    expect(page.locator("[data-testid=score-list]")).to_contain_text("77", timeout=PUSH)
    expect(field).to_have_value("")
    expect(page.get_by_text("Enter a value")).to_have_count(0)
    expect(page.locator("[data-draft-form=score] .q-field--error")).to_have_count(0)
    expect(field).to_be_focused()
    page.keyboard.type("78")
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=score-list]")).to_contain_text("78", timeout=PUSH)
    expect(field).to_have_value("")
    values = [v for (v,) in rows(server, "SELECT s.score_value FROM mobility_scores s JOIN patients p ON p.id = "
                                         "s.patient_id WHERE p.patient_id = 'DEMO-0008' AND s.score_type = 'barthel' "
                                         "AND s.score_value IN (77, 78)")]
    assert sorted(values) == [77, 78]
    assert drafts_of(page) == []  # each draft was cleared once its save was confirmed
    # The toast sits above the form: it never covers the Save button.
    toast = page.locator(".q-notification").first.bounding_box()
    button = page.locator("[data-testid=score-save]").bounding_box()
    assert toast is not None and button is not None
    assert toast["y"] + toast["height"] <= button["y"] or toast["y"] >= button["y"] + button["height"]
    page.context.close()


def test_a_draft_survives_a_reload_a_server_restart_and_is_gone_after_signing_out(browser, own_server):
    pid = patient_object_id(own_server, "DEMO-0002")
    page = sign_in(browser, own_server, "therapist", f"/patient/{pid}", viewport=TABLET)
    pick(page, page.locator("[data-draft-form=score] .q-select"), "Berg Balance Scale — a whole number from 0 to 56")
    typed = type_everywhere(page, "r1")
    page.locator("[data-testid=change-status]").click()
    page.locator("textarea[data-testid=status-reason]").fill("Reason kept through a restart")

    page.reload()
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    assert_still_typed(page, typed)
    tab(page, "scores")
    expect(page.locator("[data-draft-form=score] .q-select")).to_contain_text("Berg Balance Scale")
    expect(page.locator("[data-testid=status-draft]")).to_be_visible()

    # Offline, a check-out is tapped (queued on the device); the server restarts meanwhile.
    tab(page, "equipment")
    page.context.set_offline(True)
    expect(page.locator("[data-testid=offline-banner]")).to_be_visible(timeout=PUSH)
    page.get_by_role("button", name=re.compile("Check out")).click()
    expect(page.locator("[data-draft-save=equipment][data-queued]")).to_have_count(1)
    own_server.restart()
    page.context.set_offline(False)
    # Nobody touches the page: it reloads itself once the server answers, the drafts come back and
    # the queued check-out is sent, once.
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=45_000)
    expect(page.locator("[data-testid=equipment-out]")).to_contain_text(typed["equipment"], timeout=PUSH)
    expect(equipment_name(page)).to_have_value("")
    assert rows(own_server, "SELECT count(*) FROM equipment_logs WHERE equipment_name = ?",
                typed["equipment"]) == [(1,)]
    typed.pop("equipment")
    assert_still_typed(page, typed)
    page.locator("[data-testid=change-status]").click()
    expect(page.locator("textarea[data-testid=status-reason]")).to_have_value("Reason kept through a restart")
    assert "Half a note" not in page.url and "r1" not in page.url
    server_log = (own_server.data_dir / "server.log").read_text()
    assert "Half a note r1" not in server_log and "Reason kept through a restart" not in server_log

    page.locator("[data-testid=status-cancel]").click()
    page.locator("[data-testid=confirm-yes]").click()  # discard the status reason
    page.locator("form[action='/logout'] button").click()
    expect(page).to_have_url(re.compile(r"/login"))
    assert drafts_of(page) == []
    page.fill("input[name=username]", "therapist")
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    # Signed in again: "/" or, when the page's own session-end redirect won the race, the patient.
    page.wait_for_url(re.compile(rf"^{re.escape(own_server.url)}/(patient/{pid})?(#\w+)?$"))
    page.goto(f"{own_server.url}/patient/{pid}")
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    tab(page, "notes")
    expect(note_text(page)).to_have_value("")
    page.context.close()


def test_a_save_tapped_offline_is_sent_once_when_the_connection_returns(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0007")
    page = sign_in(browser, server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    tab(page, "notes")
    marker = f"offline-{uuid.uuid4().hex[:8]}"
    note_text(page).fill(f"Walked to the day room {marker}")
    page.context.set_offline(True)
    banner = page.locator("[data-testid=offline-banner]")
    expect(banner).to_be_visible(timeout=PUSH)
    expect(banner).to_contain_text("You are offline")
    save = page.get_by_role("button", name=re.compile("Save note"))
    expect(save).to_have_accessible_name(re.compile("sends when back online"))
    save.click()
    expect(page.locator("[data-draft-save=note][data-queued]")).to_have_count(1)
    assert notes_with(server, marker) == 0
    page.context.set_offline(False)
    expect(page.locator(".pt-note").filter(has_text=marker)).to_have_count(1, timeout=PUSH * 2)
    expect(note_text(page)).to_have_value("")
    expect(banner).to_be_hidden()
    assert notes_with(server, marker) == 1

    # An answer lost after the store committed: the draft stays with its key, and saving it again
    # (after a reload) is recognised as the same save, not stored twice.
    again = f"lost-answer-{uuid.uuid4().hex[:8]}"
    note_text(page).fill(f"Kitchen practice {again}")
    # The store commits, but nothing the server sends back reaches the page (fields cleared, draft done).
    page.evaluate("() => { window.socket.off('update'); window.socket.off('run_javascript'); }")
    page.get_by_role("button", name=re.compile("Save note")).click()
    until(lambda: notes_with(server, again) == 1)
    page.reload()
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    tab(page, "notes")
    expect(note_text(page)).to_have_value(f"Kitchen practice {again}")  # the kept draft
    page.get_by_role("button", name=re.compile("Save note")).click()
    expect(note_text(page)).to_have_value("", timeout=PUSH)
    assert notes_with(server, again) == 1
    expect(page.locator(".pt-note").filter(has_text=again)).to_have_count(1)
    page.context.close()


def test_confirmations_name_the_consequence_and_cancel_changes_nothing(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0005")
    page = sign_in(browser, server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    tab(page, "equipment")
    item = f"Frame {uuid.uuid4().hex[:6]}"
    equipment_name(page).fill(item)
    equipment_name(page).press("Enter")
    row = page.locator("[data-testid=equipment-out] .pt-list-row").filter(has_text=item)
    expect(row).to_have_count(1, timeout=PUSH)
    row.get_by_role("button", name="Return").click()
    expect(page.locator("[data-testid=confirm-consequence]")).to_contain_text("recorded as returned")
    page.locator("[data-testid=confirm-cancel]").click()
    expect(row).to_have_count(1)
    assert rows(server, "SELECT status FROM equipment_logs WHERE equipment_name = ?", item) == [("checked_out",)]
    row.get_by_role("button", name="Return").click()
    page.locator("[data-testid=confirm-yes]").click()
    expect(row).to_have_count(0, timeout=PUSH)
    assert rows(server, "SELECT status FROM equipment_logs WHERE equipment_name = ?", item) == [("returned",)]
    page.context.close()


def test_screenshots_of_the_tablet_patient_page(browser, editing_server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pid = patient_object_id(editing_server, "DEMO-0005")
    page = sign_in(browser, editing_server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    page.wait_for_function("() => document.querySelectorAll('.pt-chart canvas').length > 0")
    # The first screen holds the patient's header and status, the section tabs and the score form.
    for target in ("[data-testid=status-badge]", "[data-testid=section-tabs]", "[data-testid=score-save]"):
        box = page.locator(target).bounding_box()
        assert box is not None and box["y"] + box["height"] <= TABLET["height"], target
    page.screenshot(path=str(SCREENSHOTS / "patient-tablet-first-screen.png"))
    for key in ("scores", "notes", "equipment", "history", "team"):
        tab(page, key)
        page.screenshot(path=str(SCREENSHOTS / f"patient-tablet-{key}.png"), full_page=True)
    page.context.close()


def test_an_idle_page_locks_receives_no_patient_data_and_its_draft_comes_back(browser, tmp_path):
    """ACCESS.md's idle timeout (1 minute here) on an open page: the lock screen, no pushes of
    patient data after it, the draft kept; the ward screen (a viewer, exempt) stays live."""
    import httpx

    server = make_live_server(tmp_path, OT_SESSION_IDLE_MINUTES="1")
    server.start()
    try:
        pid = patient_object_id(server, "DEMO-0001")
        ward = sign_in(browser, server, "ward", "/ward", viewport={"width": 1920, "height": 1080})
        page = sign_in(browser, server, "therapist", "/", viewport=TABLET)
        frames: list[tuple[float, str]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(
            (time.monotonic(), payload if isinstance(payload, str) else payload.decode("utf-8", "replace")))))
        page.goto(f"{server.url}/patient/{pid}")
        expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
        tab(page, "notes")
        note_text(page).fill("Draft typed before the lock")
        expect(page.get_by_text("Avery Quill")).to_be_visible()

        # No interaction from here: within the idle minute (and the sweeper's second) it locks.
        expect(page).to_have_url(re.compile(r"/login\?locked=1"), timeout=90_000)
        locked_at = time.monotonic()
        expect(page.get_by_text(re.compile("locked", re.I)).first).to_be_visible()
        assert "Avery Quill" not in page.content()

        # A colleague changes the patient: the ward screen shows it, the locked page gets none of it.
        marker = f"after-lock-{uuid.uuid4().hex[:8]}"
        headers = {"X-Parse-Application-Id": "ot-tracker"}
        login = httpx.post(f"{server.url}/parse/login", headers=headers,
                           json={"username": "lead", "password": DEMO_PASSWORD})
        headers["X-Parse-Session-Token"] = login.json()["sessionToken"]
        changed = httpx.put(f"{server.url}/parse/classes/Patient/{pid}", headers=headers,
                            json={"mobilityStatus": "supervision", "changeReason": marker})
        assert changed.status_code == 200, changed.text
        expect(ward.locator(f"[data-patient='{pid}']")).to_contain_text("Supervision", timeout=PUSH)
        after = [text for at, text in frames if at >= locked_at]
        assert not any(marker in text or "Avery Quill" in text or "Supervision" in text for text in after)

        # Signing in again goes back to the patient, with the draft.
        page.fill("input[name=username]", "therapist")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(rf"/patient/{pid}"))
        expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
        tab(page, "notes")
        expect(note_text(page)).to_have_value("Draft typed before the lock")
        expect(page.locator("[data-testid=status-badge]")).to_have_text("Supervision")
        ward.context.close()
        page.context.close()
    finally:
        server.stop()


def test_what_is_typed_before_the_page_has_connected_is_kept(browser, editing_server):
    """A slow connection: the page shows before its socket connects (and before the server has put
    any draft back). Typing then is kept on the device all the same, and comes back once connected."""
    server = editing_server
    pid = patient_object_id(server, "DEMO-0008")
    page = sign_in(browser, server, "therapist2", "/", viewport=TABLET)
    page.route_web_socket(re.compile(r"/_nicegui_ws/"), lambda ws: ws.close())  # the socket never opens
    page.route(re.compile(r"/_nicegui_ws/"), lambda route: route.abort())  # nor its polling fallback
    page.goto(f"{server.url}/patient/{pid}#notes")
    expect(note_text(page)).to_be_visible()
    expect(page.locator("body[data-live=live]")).to_have_count(0)
    note_text(page).fill("Typed while the page was still connecting")
    assert any(k.endswith(":note") for k in drafts_of(page))
    # Another tab of the same browser, connected: the draft is there.
    fresh = page.context.new_page()
    fresh.goto(f"{server.url}/patient/{pid}#notes")
    expect(fresh.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    expect(note_text(fresh)).to_have_value("Typed while the page was still connecting")
    page.context.close()


def test_score_note_and_check_out_are_each_at_most_three_taps_from_the_caseload(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0006")
    page = sign_in(browser, server, "therapist2", "/", viewport=TABLET)
    marker = uuid.uuid4().hex[:6]

    def from_caseload(section: str | None, fill, save: str) -> int:
        page.goto(f"{server.url}/")
        taps = 0
        page.locator(f"[data-patient='{pid}']").click()
        taps += 1
        if section is not None:
            page.locator(f"[data-pt-tab={section}]").click()
            taps += 1
        button = page.get_by_role("button", name=re.compile(save))
        box = button.bounding_box()  # on the first screen: no scrolling between the taps
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= TABLET["height"], save
        fill()  # typing, not tapping
        button.click()
        return taps + 1

    assert from_caseload(None, lambda: score_value(page).fill("61"), "Save score") <= 3
    expect(page.locator("[data-testid=score-list]")).to_contain_text("61", timeout=PUSH)
    assert from_caseload("notes", lambda: note_text(page).fill(f"Seen on the ward {marker}"), "Save note") <= 3
    expect(page.locator("[data-testid=note-feed]")).to_contain_text(marker, timeout=PUSH)
    assert from_caseload("equipment", lambda: equipment_name(page).fill(f"Commode {marker}"), "Check out") <= 3
    expect(page.locator("[data-testid=equipment-out]")).to_contain_text(f"Commode {marker}", timeout=PUSH)
    page.context.close()


def test_a_queued_save_the_store_refuses_stays_a_draft_and_is_not_sent_again(browser, editing_server):
    server = editing_server
    pid = patient_object_id(server, "DEMO-0007")
    page = sign_in(browser, server, "therapist2", f"/patient/{pid}", viewport=TABLET)
    scope = page.locator("[data-draft-form=equipment]").get_attribute("data-draft-scope")
    too_long = "Walking frame " + "x" * 200  # over the store's 200 characters
    # A check-out queued offline earlier (in another tab, before a restart): sent when the page opens.
    page.evaluate("""([key, name]) => localStorage.setItem(key, JSON.stringify(
        {key: 'ab'.repeat(16), values: {name: name, serial: ''}, queued: true}))""",
                  [f"ot-draft:{scope}:equipment", too_long])
    page.reload()
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    tab(page, "equipment")
    expect(page.get_by_text(re.compile(r"At most 200 characters"))).to_be_visible(timeout=PUSH)
    expect(equipment_name(page)).to_have_value(too_long)  # kept where it was typed
    entry = page.evaluate("(key) => JSON.parse(localStorage.getItem(key))", f"ot-draft:{scope}:equipment")
    assert entry["queued"] is False and entry["values"]["name"] == too_long
    assert rows(server, "SELECT count(*) FROM equipment_logs WHERE equipment_name = ?", too_long) == [(0,)]
    page.context.close()
