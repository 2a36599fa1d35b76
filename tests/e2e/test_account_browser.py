"""A new password on one browser ends the account's session in another browser at once: that
browser's open page says it is signed out. Real Chromium against the shared demo server, with an
account of the test's own (made through the Parse API)."""
from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, sign_in

pytestmark = pytest.mark.browser
APP_ID = "ot-tracker"
WAIT = 10_000  # ms: only the failure bound
NEW_PASSWORD = "a quieter river at dusk"


def test_a_password_change_in_one_browser_signs_the_other_out(browser, e2e_server):
    name = f"a0-account-{uuid.uuid4().hex[:6]}"
    r = httpx.post(f"{e2e_server.url}/parse/users", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": name, "password": DEMO_PASSWORD, "email": f"{name}@example.org"})
    assert r.status_code == 201, r.text
    other = sign_in(browser, e2e_server, name, "/account")
    here = sign_in(browser, e2e_server, name, "/account")
    expect(here.get_by_text("This session", exact=True)).to_have_count(1, timeout=WAIT)
    # This browser, the other one, and the sign-up's API session, each named by its user agent.
    expect(here.get_by_text(re.compile(r"^(HeadlessChrome|Chrome) \d+"))).to_have_count(2, timeout=WAIT)
    expect(here.get_by_text(re.compile(r"^python-httpx/"))).to_have_count(1, timeout=WAIT)

    # A wrong current password: said under the field, the typing kept, the other browser unaffected.
    here.get_by_label("Current password").fill("not my password")
    here.get_by_label(re.compile(r"^New password \(at least")).fill(NEW_PASSWORD)
    here.get_by_label("New password again").fill(NEW_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    expect(here.get_by_text("That is not your current password.")).to_be_visible(timeout=WAIT)
    expect(here.get_by_label("New password again")).to_have_value(NEW_PASSWORD)
    expect(other).to_have_url(re.compile(r"/account$"))

    here.get_by_label("Current password").fill(DEMO_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    expect(here.get_by_text(re.compile(r"Password changed\."))).to_be_visible(timeout=WAIT)
    expect(here.get_by_role("button", name="Sign out everywhere else")).to_be_disabled(timeout=WAIT)
    # The other browser's open page leaves for the sign-in page and says why.
    expect(other).to_have_url(re.compile(r"/login\?expired=1"), timeout=WAIT)
    expect(other.get_by_text("Your session ended")).to_be_visible(timeout=WAIT)
    # This browser stays signed in; the old password no longer signs in, the new one does.
    here.reload()
    expect(here.get_by_text("This session", exact=True)).to_have_count(1, timeout=WAIT)
    expect(here.get_by_text(re.compile(r"^(HeadlessChrome|Chrome) \d+"))).to_have_count(1, timeout=WAIT)
    expect(here).to_have_url(re.compile(r"/account$"))
    old = httpx.post(f"{e2e_server.url}/parse/login", headers={"X-Parse-Application-Id": APP_ID},
                     json={"username": name, "password": DEMO_PASSWORD})
    new = httpx.post(f"{e2e_server.url}/parse/login", headers={"X-Parse-Application-Id": APP_ID},
                     json={"username": name, "password": NEW_PASSWORD})
    assert (old.status_code, new.status_code) == (404, 200)
    for page in (here, other):
        page.context.close()


def test_a_lead_reset_makes_the_next_sign_in_choose_a_new_password_first(browser, e2e_server):
    name = f"a0-reset-{uuid.uuid4().hex[:6]}"  # sorts first: on Admin's first page of users
    r = httpx.post(f"{e2e_server.url}/parse/users", headers={"X-Parse-Application-Id": APP_ID},
                   json={"username": name, "password": DEMO_PASSWORD, "email": f"{name}@example.org"})
    assert r.status_code == 201, r.text
    temporary = "temporary lantern 4417"
    lead = sign_in(browser, e2e_server, "lead", "/admin")
    lead.get_by_role("button", name="Reset password").first.wait_for(timeout=WAIT)
    row = lead.locator(".ad-row", has_text=name)
    row.get_by_role("button", name="Reset password").click()
    dialog = lead.get_by_role("dialog", name=f"Reset {name}'s password")
    field = dialog.get_by_label(re.compile(r"^Temporary password"))
    field.fill("password")
    dialog.get_by_role("button", name="Reset password").click()
    expect(dialog.get_by_text(re.compile(r"^That password must be at least"))).to_be_visible(timeout=WAIT)
    expect(field).to_have_value("password")
    field.fill(temporary)
    dialog.get_by_role("button", name="Reset password").click()
    expect(lead.get_by_text(f"{name}'s password is reset")).to_be_visible(timeout=WAIT)
    expect(dialog).to_have_count(0, timeout=WAIT)

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{e2e_server.url}/login?next=/equipment")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", temporary)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/account$"), timeout=WAIT)
    expect(page.get_by_text("A lead reset your password")).to_be_visible(timeout=WAIT)
    page.goto(f"{e2e_server.url}/equipment")
    expect(page).to_have_url(re.compile(r"/account$"), timeout=WAIT)
    page.get_by_label("Temporary password").fill(temporary)
    page.get_by_label(re.compile(r"^New password \(at least")).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/$"), timeout=WAIT)
    page.goto(f"{e2e_server.url}/equipment")
    expect(page).to_have_url(re.compile(r"/equipment$"), timeout=WAIT)
    for p in (lead, page):
        p.context.close()
