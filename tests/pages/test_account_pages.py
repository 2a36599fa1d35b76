"""/account with NiceGUI's simulated users: one's own password (others signed out, this page kept),
email, sessions; and Admin's password reset, which sends the account to choose a new password."""
from __future__ import annotations

from tests.support import PASSWORD, eventually

NEW_PASSWORD = "a quieter river at dusk"
TEMPORARY = "temporary lantern 4417"


def _one(user, marker: str):
    [element] = user.find(marker=marker).elements
    return element


async def test_wrong_current_password_and_weak_new_one_are_said_under_their_fields(pages_app):
    owner = await pages_app.signed_in("owner")
    await owner.open("/account")
    await owner.should_see("Change password")
    current, new, repeat = (_one(owner, m) for m in ("current-password", "new-password", "repeat-password"))
    current.value, new.value, repeat.value = "not my password", NEW_PASSWORD, NEW_PASSWORD
    owner.find(marker="change-password").click()
    await eventually(lambda: current.error == "That is not your current password.")
    assert (current.value, new.value, repeat.value) == ("not my password", NEW_PASSWORD, NEW_PASSWORD)
    current.value, new.value, repeat.value = PASSWORD, "password1234", "password1234"
    owner.find(marker="change-password").click()
    await eventually(lambda: new.error is not None)
    assert new.error == "That password is too common or too easy to guess; use a phrase of your own."
    assert current.error is None and new.value == "password1234"
    repeat.value = "something else entirely"
    new.value = NEW_PASSWORD
    owner.find(marker="change-password").click()
    await eventually(lambda: repeat.error == "The two new passwords differ.")
    # Nothing changed: the old password still signs in.
    await pages_app.signed_in("owner")


async def test_a_new_password_signs_out_the_other_session_and_keeps_this_one(pages_app):
    # NiceGUI's simulation has one `ui.navigate` for all its users (the last one touched), so the
    # other session is a cookie here, never a built page (whose end would move this user's page):
    # tests/e2e/test_account_browser.py has the other open page. Signed in, /login sends it on.
    here = await pages_app.signed_in("owner")
    elsewhere = await pages_app.signed_in("owner")
    assert (await elsewhere.http_client.get("/login")).status_code == 303
    await here.open("/account")
    await here.should_see("This session")
    assert len(here.find(marker="session-other").elements) >= 1
    _one(here, "current-password").value = PASSWORD
    _one(here, "new-password").value = NEW_PASSWORD
    _one(here, "repeat-password").value = NEW_PASSWORD
    here.find(marker="change-password").click()
    await here.should_see("Password changed.", retries=30)
    response = await elsewhere.http_client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    await here.should_not_see(marker="session-other", retries=30)
    assert (await here.http_client.get("/account")).status_code == 200  # this session stays
    assert all(_one(here, m).value == "" for m in ("current-password", "new-password", "repeat-password"))


async def test_email_errors_under_the_field_and_sign_out_everywhere_else(pages_app):
    owner = await pages_app.signed_in("owner")
    other = await pages_app.signed_in("owner")  # a cookie, not an open page (see above)
    await owner.open("/account")
    email = _one(owner, "email")
    assert email.value == "owner@example.org"
    email.value = "outsider@example.org"
    owner.find(marker="save-email").click()
    await eventually(lambda: email.error == "An account with that email already exists.")
    assert email.value == "outsider@example.org"
    email.value = "no-at-sign"
    owner.find(marker="save-email").click()
    await eventually(lambda: email.error == "Enter a valid email address.")
    email.value = "owner.new@example.org"
    owner.find(marker="save-email").click()
    await owner.should_see("Email saved.", retries=30)
    assert (await pages_app.world.store.get_user(principal=pages_app.world.owner.__class__(
        pages_app.world.lead.user_id), user_id=pages_app.world.users["owner"].id)).email == "owner.new@example.org"
    owner.find(marker="sign-out-elsewhere").click()
    await owner.should_see("Signed out of", retries=30)
    assert (await other.http_client.get("/")).status_code == 303
    assert (await owner.http_client.get("/")).status_code == 200


async def test_every_signed_in_user_has_the_account_link_but_a_ward_screen(pages_app):
    member = await pages_app.signed_in("team-contributor")
    await member.open("/equipment")
    member.find("Account")  # the navigation's link
    await member.open("/account")
    await member.should_see("Where you are signed in")
    # A viewer (a ward screen) reaches only the ward board: its account page is not found.
    viewer = await pages_app.signed_in("viewer")
    assert (await viewer.http_client.get("/account")).status_code == 404
    anonymous = pages_app.new_user()
    response = await anonymous.http_client.get("/account")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_lead_reset_ends_the_sessions_and_forces_a_new_password_first(pages_app):
    owner_before = await pages_app.signed_in("owner")  # a cookie, not an open page (see above)
    assert (await owner_before.http_client.get("/login")).status_code == 303
    lead = await pages_app.signed_in("lead")
    await lead.open("/admin")
    lead.find(marker="reset-owner").click()
    await lead.should_see("Reset owner's password")
    field = _one(lead, "temporary-password")
    field.value = "password"
    lead.find(marker="reset-confirm").click()
    await eventually(lambda: field.error is not None)
    assert field.error.startswith("That password must be at least")
    field.value = TEMPORARY
    lead.find(marker="reset-confirm").click()
    await lead.should_see("owner's password is reset", retries=30)
    response = await owner_before.http_client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")

    owner = pages_app.new_user()
    response = await owner.http_client.post("/login", data={"username": "owner", "password": TEMPORARY})
    assert response.status_code == 303 and response.headers["location"] == "/account"
    for page in ("/", f"/patient/{pages_app.world.patient.id}", "/equipment", "/login"):
        response = await owner.http_client.get(page)
        assert response.status_code == 303 and response.headers["location"] == "/account", page
    await owner.open("/account")
    await owner.should_see("A lead reset your password")
    await owner.should_not_see("Where you are signed in")
    _one(owner, "current-password").value = TEMPORARY
    _one(owner, "new-password").value = NEW_PASSWORD
    _one(owner, "repeat-password").value = NEW_PASSWORD
    owner.find(marker="change-password").click()
    await eventually(lambda: owner.back_history[-1] == "/")  # on to the caseload
    await owner.should_not_see("A lead reset your password")
    assert (await owner.http_client.get("/")).status_code == 200


async def test_a_non_lead_has_no_reset(pages_app):
    owner = await pages_app.signed_in("owner")
    response = await owner.http_client.get("/admin")
    assert response.status_code == 404


async def test_the_sign_in_script_is_sent_to_the_password_page_after_a_reset(pages_app):
    w = pages_app.world
    await w.store.accounts.reset_password(principal=w.lead, user_id=w.users["outsider"].id,
                                          temporary_password=TEMPORARY)
    client = pages_app.new_user().http_client
    response = await client.post("/login", headers={"Accept": "application/json"},
                                 data={"username": "outsider", "password": TEMPORARY, "next": "/equipment"})
    assert response.status_code == 200 and response.json() == {"next": "/account"}
    assert (await client.get("/account")).status_code == 200
    response = await client.get("/equipment")
    assert response.status_code == 303 and response.headers["location"] == "/account"
