"""Sign in, sign up, sign out, and what a page does without a session."""
from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from dashboard.rate_limit import address_limit
from pages import auth
from tests.support import PASSWORD


async def test_no_session_is_sent_to_sign_in_and_brought_back(pages_app):
    user = pages_app.new_user()
    pid = pages_app.world.patient.id
    for path in ("/", f"/patient/{pid}", "/equipment", "/ward", "/admin"):
        response = await user.http_client.get(path)
        assert response.status_code == 303
        target = urlparse(response.headers["location"])
        assert target.path == "/login" and parse_qs(target.query)["next"] == [path]
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD,
                                                           "next": f"/patient/{pid}"})
    assert response.status_code == 303 and response.headers["location"] == f"/patient/{pid}"


async def test_the_session_cookie_is_http_only_and_same_site(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "ot_session=" in cookie
    value = user.http_client.cookies["ot_session"]
    assert value.count(".") >= 2  # signed: a tampered cookie never reaches the database
    assert (await user.http_client.get("/")).status_code == 200
    other = pages_app.new_user().http_client
    assert (await other.get("/", headers={"Cookie": f"ot_session={value}"})).status_code == 200
    assert (await other.get("/", headers={"Cookie": f"ot_session={value[:-3]}AAA"})).status_code == 303


async def test_next_must_be_a_local_path(pages_app):
    user = pages_app.new_user()
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil", "/x\"onmouseover=1"):
        response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD,
                                                               "next": bad})
        assert response.headers["location"] == "/"


async def test_wrong_password_is_explained(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/login", data={"username": "owner", "password": "nope-nope-nope"})
    assert "error=invalid" in response.headers["location"]
    await user.open(response.headers["location"])
    await user.should_see("That username and password do not match")


async def test_a_locked_account_says_how_long(pages_app):
    user = pages_app.new_user()
    for _ in range(3):
        response = await user.http_client.post("/login", data={"username": "outsider", "password": "wrong-wrong-wrong"})
    assert "error=locked" in response.headers["location"]
    await user.open(response.headers["location"])
    await user.should_see("This account is locked after repeated failed sign-ins. Try again in 15 minutes")
    # Even the right password is refused while locked; a lead can unlock it.
    response = await user.http_client.post("/login", data={"username": "outsider", "password": PASSWORD})
    assert "error=locked" in response.headers["location"]


async def test_sign_in_attempts_are_rate_limited_per_address_as_on_the_api(pages_app):
    """Guesses spread over many accounts from one address are slowed, before any account locks."""
    settings = auth.settings()
    limit = address_limit(settings.login_rate_per_minute, settings.login_address_rate_per_minute)
    user = pages_app.new_user()
    locations = []
    for i in range(limit + 1):
        response = await user.http_client.post("/login", data={"username": f"nobody-{i}", "password": "guess-guess"})
        locations.append(response.headers["location"])
    assert all("error=invalid" in location for location in locations[:limit])
    assert "error=busy" in locations[-1]
    await user.open(locations[-1])
    await user.should_see("Too many sign-in attempts from here. Try again in")
    # Even the right password waits: the limit is checked before the password.
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD})
    assert "error=busy" in response.headers["location"]


async def test_sign_up_refuses_a_short_password_and_then_signs_in(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/signup", data={"username": "newbie", "email": "n@example.org",
                                                            "password": "short"})
    assert "error=bad_password" in response.headers["location"]
    await user.open(response.headers["location"])
    await user.should_see("The password is too short: use at least 12 characters.")
    response = await user.http_client.post("/signup", data={"username": "newbie", "email": "n@example.org",
                                                            "password": "long enough password"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    await user.open("/")
    await user.should_see("No patients yet")
    await user.should_see("Contributor")


async def test_sign_out_ends_the_session(pages_app):
    user = await pages_app.signed_in("owner")
    await user.open("/")
    await user.should_see("Pat Example")
    response = await user.http_client.post("/logout")
    assert response.headers["location"].startswith("/login")
    assert (await user.http_client.get("/")).status_code == 303


async def test_sign_in_page_renders_the_form(pages_app):
    user = pages_app.new_user()
    await user.open("/login")
    await user.should_see("Sign in")
    await user.should_see("Create an account")
