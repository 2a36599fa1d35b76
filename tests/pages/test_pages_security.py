"""Security review, pages: H1 (an open page's session ends), M6 (unconnected pages are let go),
L1 (cross-site form posts), L4 (cookies), M5 (the sign-up form is rate limited), L8 (which path of
the socket guard is active)."""
from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

from nicegui import Client

from dashboard.access import Principal
from dashboard.models import utcnow
from dashboard.rate_limit import LoginLimiter
from pages import auth, socket_guard
from tests.support import eventually
from tests.support import PASSWORD


async def test_h1_an_idle_page_gets_no_pushes_and_is_sent_to_sign_in(pages_app):
    w = pages_app.world
    store = w.store
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    await owner.should_see("Pat Example")
    offset = store.settings.session_idle_timeout + timedelta(seconds=1)
    store.clock = lambda: utcnow() + offset
    writer = Principal(w.lead.user_id)  # no session: the moved clock ends sessions, not it
    await store.record_score(principal=writer, patient_id=w.patient.id, score_type="tug", value=17.5)
    await owner.should_not_see("17.5 s")  # past the idle limit, the push is not delivered
    assert store.hub.sweep() >= 1
    await owner.should_see("Locked after 30 minutes without activity", retries=30)
    assert owner.back_history[-1].endswith(f"next=%2Fpatient%2F{w.patient.id}")
    await owner.should_not_see("Pat Example")
    response = await owner.http_client.get(f"/patient/{w.patient.id}")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_h1_an_idle_page_s_handlers_cannot_act(pages_app):
    w = pages_app.world
    store = w.store
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    [measure] = owner.find(marker="score-measure").elements
    [value] = owner.find(marker="score-value").elements
    measure.value, value.value = "berg", 30
    store.clock = lambda: utcnow() + store.settings.session_idle_timeout + timedelta(seconds=1)
    owner.find(marker="score-save").click()
    await owner.should_see("Invalid session token", retries=30)  # the store refused the save
    assert await store.count(principal=Principal(w.lead.user_id), class_name="MobilityScore") == 0


async def test_m6_a_page_whose_socket_never_connects_is_let_go(pages_app):
    w = pages_app.world
    hub = w.store.hub
    owner = await pages_app.signed_in("owner")
    before_clients, before_subs = len(Client.instances), hub.subscription_count
    for _ in range(3):  # the page is sent, but no socket ever connects for it
        assert (await owner.http_client.get(f"/patient/{w.patient.id}")).status_code == 200
    assert len(Client.instances) == before_clients + 3 and hub.subscription_count > before_subs
    now = time.monotonic()
    assert socket_guard.prune_unconnected(now) == 0  # first seen now
    assert socket_guard.prune_unconnected(now + socket_guard.UNCONNECTED_SECONDS + 0.1) == 3
    assert len(Client.instances) == before_clients and hub.subscription_count == before_subs


async def test_m6_a_connected_page_is_kept(pages_app):
    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    await owner.open(f"/patient/{w.patient.id}")
    now = time.monotonic()
    socket_guard.prune_unconnected(now)
    assert socket_guard.prune_unconnected(now + 60) == 0
    await owner.should_see("Pat Example")


async def test_l1_cross_site_form_posts_are_refused(pages_app):
    user = pages_app.new_user()
    for origin in ("https://evil.example", "null"):
        response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD},
                                               headers={"Origin": origin})
        assert response.status_code == 403 and "set-cookie" not in response.headers
        response = await user.http_client.post("/signup", headers={"Origin": origin}, data={
            "username": "csrf-made", "email": "csrf@example.org", "password": "a fine passphrase"})
        assert response.status_code == 403
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD},
                                           headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    signed = await pages_app.signed_in("owner")
    response = await signed.http_client.post("/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert (await signed.http_client.get("/")).status_code == 200  # still signed in
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD},
                                           headers={"Origin": "http://test"})
    assert response.status_code == 303 and "set-cookie" in response.headers


async def test_l4_the_session_cookie_ends_with_the_browser_session_and_is_host_locked_when_secure(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/login", data={"username": "owner", "password": PASSWORD})
    assert "max-age" not in response.headers["set-cookie"].lower()
    assert "expires" not in response.headers["set-cookie"].lower()
    settings = auth.settings()
    auth.configure(dataclasses.replace(settings, secure_cookies=True))
    try:
        response = await pages_app.new_user().http_client.post(
            "/login", data={"username": "owner", "password": PASSWORD})
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-ot_session=") and "secure" in cookie.lower()
        assert "domain" not in cookie.lower() and "path=/" in cookie.lower()
    finally:
        auth.configure(settings)


async def test_m5_the_sign_up_form_has_the_api_s_limit(pages_app):
    store = pages_app.world.store
    store.sign_in_limiter = LoginLimiter(10, 3)
    user = pages_app.new_user()
    answers = []
    for i in range(5):
        response = await user.http_client.post("/signup", data={
            "username": f"bulk{i}", "email": f"bulk{i}@example.org", "password": "a fine passphrase"})
        answers.append(response.headers["location"])
        user.http_client.cookies.clear()
    assert sum("error=busy" in a for a in answers) == 2
    users = await store.list_users(principal=pages_app.world.lead)
    assert len([u for u in users if u.username.startswith("bulk")]) == 3
    await user.open(answers[-1])
    await user.should_see("Too many attempts from here")


async def test_l2_the_sign_up_form_names_the_password_rule(pages_app):
    user = pages_app.new_user()
    response = await user.http_client.post("/signup", data={
        "username": "weakling", "email": "weak@example.org", "password": "password1234"})
    await user.open(response.headers["location"])
    await user.should_see("That password is too common or too easy to guess")


def test_l8_the_socket_guard_runs_on_nicegui_s_internals_here():
    """Which path is active: the full guard on the checked NiceGUI; a NiceGUI upgrade trips this."""
    assert socket_guard.installable()


async def test_m6_a_let_go_page_is_freed_at_once_not_at_a_full_collection(pages_app):
    """Its memory is returned by reference counting: nothing keeps the page in a cycle (with the
    serving process's rare full collections, thousands of closed pages had piled up)."""
    import gc
    import weakref

    w = pages_app.world
    owner = await pages_app.signed_in("owner")
    before = set(Client.instances)
    assert (await owner.http_client.get(f"/patient/{w.patient.id}")).status_code == 200
    [new_id] = set(Client.instances) - before
    page = weakref.ref(Client.instances[new_id])
    gc.collect()
    gc.disable()
    try:
        now = time.monotonic()
        socket_guard.prune_unconnected(now)
        assert socket_guard.prune_unconnected(now + socket_guard.UNCONNECTED_SECONDS + 0.1) == 1
        # Its tasks (outbox, the wait for a socket) end on their next turn; then nothing holds it.
        await eventually(lambda: page() is None)
    finally:
        gc.enable()
