"""The sign-in and sign-up posts' JSON answers (what the pages' script shows without a reload): each
problem under the field it names, a lock or the rate limit for the banner, and never what was typed
beyond the field names. The native post (no script) still redirects with a code."""
from __future__ import annotations

from tests.support import PASSWORD

JSON = {"Accept": "application/json"}


async def test_a_locked_account_and_a_missing_field_answer_in_json(pages_app):
    client = pages_app.new_user().http_client
    response = await client.post("/login", headers=JSON, data={"username": "outsider", "password": ""})
    assert response.status_code == 400
    assert response.json() == {"form": None, "fields": {"password": ["Enter your password."]}}
    response = await client.post("/login", headers=JSON, data={"username": "", "password": ""})
    assert response.json()["fields"] == {"username": ["Enter your username."],
                                         "password": ["Enter your password."]}
    for _ in range(3):  # lockout_attempts=3 in these tests
        response = await client.post("/login", headers=JSON,
                                     data={"username": "outsider", "password": "wrong-wrong-wrong"})
    assert response.status_code == 403 and response.json()["fields"] == {}
    assert response.json()["form"].startswith("This account is locked after repeated failed sign-ins.")
    assert "outsider" not in response.text and "wrong-wrong" not in response.text
    assert "set-cookie" not in response.headers


async def test_json_sign_in_sets_the_http_only_cookie_and_names_the_next_page(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/login", headers=JSON, data={
        "username": "owner", "password": PASSWORD, "next": "/equipment"})
    assert response.status_code == 200 and response.json() == {"next": "/equipment"}
    assert "httponly" in response.headers["set-cookie"].lower()
    assert (await user.http_client.get("/")).status_code == 200
    evil = await pages_app.new_user().http_client.post("/login", headers={**JSON, "Origin": "https://evil.example"},
                                                       data={"username": "owner", "password": PASSWORD})
    assert evil.status_code == 403 and "set-cookie" not in evil.headers


async def test_sign_up_answers_every_problem_and_the_native_post_still_redirects(pages_app):
    client = pages_app.new_user().http_client
    typed = {"username": "x", "email": "owner@example.org", "password": "aaaaaaaaaaaaaaaa"}
    response = await client.post("/signup", headers=JSON, data=typed)
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "username": ["Usernames are 3 to 64 letters, digits, dots, dashes or underscores."],
        "email": ["An account with that email already exists."],
        "password": ["That password must not be one character or a short pattern repeated."],
    }
    response = await client.post("/signup", data=typed)
    assert response.status_code == 303 and "error=bad_username" in response.headers["location"]
    assert "owner%40example" not in response.headers["location"]


async def test_a_push_refreshes_the_equipment_board_but_not_its_pager(pages_app):
    """The pager may have the keyboard's focus: a push (or the minute timer) rebuilds the rows only."""
    from nicegui import ui

    w = pages_app.world
    for i in range(31):  # one more than a page
        await w.store.check_out_equipment(principal=w.lead, patient_id=w.patient.id, name=f"Frame {i:02}")
    lead = await pages_app.signed_in("lead")
    await lead.open("/equipment")
    await lead.should_see("31")
    [pager] = lead.find(kind=ui.pagination).elements
    pager.value = 2
    await lead.should_see("Frame 30")
    await w.store.check_out_equipment(principal=w.lead, patient_id=w.patient.id, name="Rollator")
    await lead.should_see("Rollator", retries=30)  # oldest first: the new one is on page 2
    assert lead.find(kind=ui.pagination).elements == {pager} and pager.value == 2
