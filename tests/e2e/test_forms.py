"""Forms outside the patient page keep what was typed and say what is wrong under the field that is
wrong; Admin's access-changing actions ask first, naming the consequence, and Cancel changes nothing.

Real Chromium against the shared demo server. Accounts these tests change are their own (made
through the Parse API), so no other test sees a demo account deactivated or a patient reassigned.
"""
from __future__ import annotations

import sqlite3
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, patient_object_id, sign_in

pytestmark = pytest.mark.browser
APP_ID = "ot-tracker"
WAIT = 5_000  # ms: only the failure bound
WRONG = "That username and password do not match. Check both and try again."
TOO_SHORT = "The password is too short: use at least 12 characters."


def fresh_name(kind: str) -> str:
    # "a0-" sorts before every demo account, so the account is on Admin's first page of users.
    return f"a0-{kind}-{uuid.uuid4().hex[:6]}"


def api_sign_up(server, username: str) -> None:
    r = httpx.post(f"{server.url}/parse/users", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": username, "password": DEMO_PASSWORD, "email": f"{username}@example.org"})
    assert r.status_code == 201, r.text


def api_signs_in(server, username: str) -> bool:
    r = httpx.post(f"{server.url}/parse/login", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": username, "password": DEMO_PASSWORD})
    return r.status_code == 200


def stored(server, sql: str, *args: object) -> object:
    with sqlite3.connect(server.data_dir / "ot-tracker.sqlite3") as db:
        return db.execute(sql, args).fetchone()[0]


def expect_under(field, message) -> None:
    """`message` is shown, just below `field` and across it (not in a toast somewhere else)."""
    expect(message).to_be_visible(timeout=WAIT)
    f, m = field.bounding_box(), message.bounding_box()
    gap = m["y"] - (f["y"] + f["height"])
    assert -1 <= gap < 48, (f, m)
    assert m["x"] < f["x"] + f["width"] and m["x"] + m["width"] > f["x"], (f, m)


def signed_out_page(browser, url: str):
    """A fresh context on `url`, and the list of every URL it requests from then on."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(url)
    return page, urls


def test_a_wrong_password_keeps_the_username_and_says_so_under_the_password_field(browser, e2e_server):
    page, urls = signed_out_page(browser, f"{e2e_server.url}/login?next=/equipment")
    username, password = page.get_by_label("Username"), page.get_by_label("Password")
    username.fill("therapist")
    page.get_by_role("button", name="Sign in").click()
    expect_under(password, page.get_by_text("Enter your password.", exact=True))
    expect(password).to_have_accessible_description("Enter your password.")
    expect(username).to_have_value("therapist")

    password.fill("not-the-password-7")
    page.get_by_role("button", name="Sign in").click()
    expect_under(password, page.get_by_text(WRONG, exact=True))
    expect(password).to_have_accessible_description(WRONG)
    expect(username).to_have_value("therapist")
    expect(page.get_by_text("Enter your password.")).to_have_count(0)
    assert not [u for u in urls + [page.url] if "therapist" in u or "not-the-password" in u], urls

    password.fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{e2e_server.url}/equipment")
    expect(page.get_by_text("Equipment board")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "ot_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.context.close()


def test_sign_up_shows_every_problem_at_once_under_its_field_and_keeps_every_field(browser, e2e_server):
    page, urls = signed_out_page(browser, f"{e2e_server.url}/signup")
    username, email = page.get_by_label("Username"), page.get_by_label("Email")
    password = page.get_by_label("Password (at least 12 characters)")
    username.fill("therapist")  # a demo account's
    email.fill("not-an-email")
    password.fill("password")  # too short, and common
    page.get_by_role("button", name="Create account").click()

    expect_under(username, page.get_by_text("That username is already taken. Choose another.", exact=True))
    expect_under(email, page.get_by_text("Enter a valid email address.", exact=True))
    expect_under(password, page.get_by_text(TOO_SHORT))
    expect(password).to_have_accessible_description(
        f"{TOO_SHORT}\nThat password is too common or too easy to guess; use a phrase of your own.")
    for field, typed in ((username, "therapist"), (email, "not-an-email"), (password, "password")):
        expect(field).to_have_value(typed)
    assert not [u for u in urls + [page.url] if "not-an-email" in u or "therapist" in u], urls

    name = fresh_name("signup")
    username.fill(name)
    email.fill(f"{name}@example.org")
    password.fill("moss lantern over the quay")
    expect(page.get_by_text("Enter a valid email address.")).to_have_count(0)  # each edit clears its error
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{e2e_server.url}/")
    expect(page.get_by_text("No patients yet")).to_be_visible(timeout=WAIT)
    page.context.close()


def test_admin_create_shows_a_short_password_under_its_field_and_keeps_the_rest(browser, e2e_server):
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    name = fresh_name("created")
    username, email = lead.get_by_label("Username"), lead.get_by_label("Email")
    password = lead.get_by_label("Initial password")
    username.fill(name)
    email.fill(f"{name}@example.org")
    password.fill("short")
    lead.get_by_role("button", name="Create").click()
    expect_under(password, lead.get_by_text(TOO_SHORT, exact=True))
    expect(username).to_have_value(name)
    expect(email).to_have_value(f"{name}@example.org")
    expect(lead.get_by_text(name, exact=True)).to_have_count(0)

    password.fill("moss lantern over the quay")
    expect(lead.get_by_text(TOO_SHORT)).to_have_count(0)
    password.press("Enter")  # Enter in a single-line field creates, as the button does
    expect(lead.get_by_text(name, exact=True)).to_be_visible(timeout=WAIT)  # in the accounts list
    expect(username).to_have_value("")
    expect(password).to_have_value("")
    expect(username).to_be_focused()  # ready for the next account
    lead.context.close()


def test_deactivating_asks_first_and_cancel_leaves_the_account_active(browser, e2e_server):
    name = fresh_name("deact")
    api_sign_up(e2e_server, name)
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    row = lead.locator(".ad-row", has=lead.get_by_text(name, exact=True))
    row.get_by_role("button", name="Deactivate").click()
    dialog = lead.get_by_role("dialog", name=f"Deactivate {name}?")
    expect(dialog).to_contain_text(f"{name} is signed out everywhere and can no longer sign in.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(row).to_contain_text("Active")
    assert api_signs_in(e2e_server, name)

    row.get_by_role("button", name="Deactivate").click()
    dialog.get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("Deactivated", timeout=WAIT)
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()
    assert not api_signs_in(e2e_server, name)
    lead.context.close()


def test_reassigning_a_therapist_asks_and_cancel_shows_the_old_one_again(browser, e2e_server):
    number = "DEMO-0007"  # Gray Tamsin: therapist2's, no care team; no other test reassigns it
    pid = patient_object_id(e2e_server, number)
    owner_sql = "SELECT u.username FROM patients p JOIN users u ON u.id = p.primary_therapist_id WHERE p.id = ?"
    assert stored(e2e_server, owner_sql, pid) == "therapist2"
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    select = lead.locator(f"[data-testid=therapist-{pid}]")
    expect(select).to_contain_text("therapist2")
    select.click()
    lead.get_by_role("option", name="therapist", exact=True).click()
    dialog = lead.get_by_role("dialog", name="Make therapist primary therapist of Gray Tamsin?")
    expect(dialog).to_contain_text("therapist2 loses access to Gray Tamsin at once; therapist gains it.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(select).to_contain_text("therapist2", timeout=WAIT)
    assert stored(e2e_server, owner_sql, pid) == "therapist2"
    lead.context.close()


def test_a_role_and_ward_full_names_ask_first_and_cancel_puts_the_control_back(browser, e2e_server):
    name = fresh_name("role")
    api_sign_up(e2e_server, name)  # a contributor
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    row = lead.locator(".ad-row", has=lead.get_by_text(name, exact=True))
    role = row.locator(".q-select")
    role.click()
    lead.get_by_role("option", name="Ward screen", exact=True).click()
    dialog = lead.get_by_role("dialog", name=f"Make {name} Ward screen?")
    expect(dialog).to_contain_text(f"{name} will see only the patients whose care team it is on")
    expect(dialog).to_contain_text(f"{name} loses session notes")
    dialog.get_by_role("button", name="Cancel").click()
    expect(role).to_contain_text("Contributor", timeout=WAIT)
    assert stored(e2e_server, "SELECT role FROM users WHERE username = ?", name) == "contributor"

    role.click()
    lead.get_by_role("option", name="Ward screen", exact=True).click()
    dialog.get_by_role("button", name="Change role").click()
    switch = row.get_by_role("switch", name="Full names on ward")
    expect(switch).to_be_visible(timeout=WAIT)
    switch.click()
    names = lead.get_by_role("dialog", name=f"Show full names on {name}?")
    expect(names).to_contain_text(
        f"The ward screen {name} will show patients' full names to anyone who can see it.")
    names.get_by_role("button", name="Cancel").click()
    expect(switch).to_have_attribute("aria-checked", "false")
    assert stored(e2e_server, "SELECT show_full_names FROM users WHERE username = ?", name) == 0
    lead.context.close()
