"""Account self-service through the store: one's own password, email and sessions, and a lead's reset
of another account's password (which forces a new one at the next sign-in). SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from dashboard.errors import InvalidInput, MissingField, NotAuthenticated, PermissionDenied, Taken
from dashboard.hub import DeliveryKind
from dashboard.models import AuditEvent, User
from dashboard.store import Store
from dashboard.errors import PasswordChangeRequired, SessionNeedsNewPassword
from tests.support import PASSWORD, build_world, mailbox

NEW_PASSWORD = "a quieter river at dusk"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


async def _audit_text(store: Store) -> str:
    await store.core.flush_audit()
    async with store.db.read() as session:
        rows = (await session.execute(select(AuditEvent.action, AuditEvent.detail, AuditEvent.outcome))).all()
    return repr(rows)


async def test_wrong_current_password_is_refused_and_nothing_changes(store: Store) -> None:
    world = await build_world(store)
    with pytest.raises(InvalidInput) as refused:
        await store.accounts.change_password(principal=world.owner, current_password="not my password",
                                             new_password=NEW_PASSWORD)
    assert refused.value.field == "current_password"
    with pytest.raises(MissingField):
        await store.accounts.change_password(principal=world.owner, current_password="", new_password=NEW_PASSWORD)
    # The old password still signs in, the new one does not; the session is untouched.
    await store.log_in(username="owner", password=PASSWORD)
    with pytest.raises(Exception):
        await store.log_in(username="owner", password=NEW_PASSWORD)
    assert store.permissions(principal=world.owner).role == "therapist"


@pytest.mark.parametrize("weak, rule", [
    ("short", "at least"),
    ("password1234", "too common"),
    ("aaaaaaaaaaaaaaa", "repeated"),
    ("abcdefghijklmno", "consecutive"),
])
async def test_weak_or_common_new_password_is_refused_naming_the_rule(store: Store, weak: str, rule: str) -> None:
    world = await build_world(store)
    with pytest.raises(InvalidInput) as refused:
        await store.accounts.change_password(principal=world.owner, current_password=PASSWORD, new_password=weak)
    assert refused.value.field == "new_password"
    assert rule in refused.value.rule
    await store.log_in(username="owner", password=PASSWORD)  # unchanged


async def test_new_password_ends_every_other_session_and_keeps_this_one(store: Store) -> None:
    world = await build_world(store)
    here = await store.log_in(username="owner", password=PASSWORD, user_agent=BROWSER, address="10.0.0.5")
    elsewhere = await store.log_in(username="owner", password=PASSWORD, user_agent="ParseSDK/8", address="10.0.0.9")
    someone_else = await store.log_in(username="team-therapist", password=PASSWORD)
    with mailbox(store.hub, elsewhere.principal, ()) as box, mailbox(store.hub, here.principal, ()) as mine:
        ended = await store.accounts.change_password(principal=here.principal, current_password=PASSWORD,
                                                     new_password=NEW_PASSWORD)
        assert ended == 2  # `elsewhere` and world.owner (build_world's sign-in)
        # The other session's open pages and subscriptions are told at once; this session's are not.
        deliveries = box.drain()
        assert any(d.kind == DeliveryKind.ACCESS_ENDED and d.patient_id is None for d in deliveries)
        assert not any(d.kind == DeliveryKind.ACCESS_ENDED for d in mine.drain())
    for gone in (elsewhere, ):
        with pytest.raises(NotAuthenticated):
            await store.resolve_session(gone.token)
        with pytest.raises(NotAuthenticated):
            store.permissions(principal=gone.principal)
    with pytest.raises(NotAuthenticated):
        store.permissions(principal=world.owner)
    assert (await store.resolve_session(here.token)).user_id == here.principal.user_id
    assert (await store.resolve_session(someone_else.token)).user_id == someone_else.principal.user_id
    with pytest.raises(Exception):
        await store.log_in(username="owner", password=PASSWORD)
    await store.log_in(username="owner", password=NEW_PASSWORD)
    audit = await _audit_text(store)
    assert "password" in audit and PASSWORD not in audit and NEW_PASSWORD not in audit


async def test_own_sessions_list_device_address_and_sign_out_everywhere_else(store: Store) -> None:
    await build_world(store)
    here = await store.log_in(username="owner", password=PASSWORD, user_agent=BROWSER, address="10.0.0.5")
    phone = await store.log_in(username="owner", password=PASSWORD, user_agent="ParseSDK/8", address="10.0.0.9")
    listed = await store.accounts.own_sessions(principal=here.principal)
    assert listed[0].current and listed[0].session_id == here.principal.session_id
    assert (listed[0].user_agent, listed[0].address) == (BROWSER, "10.0.0.5")
    assert {(s.user_agent, s.address) for s in listed} >= {(BROWSER, "10.0.0.5"), ("ParseSDK/8", "10.0.0.9")}
    assert all(s.created_at is not None and s.last_seen_at is not None for s in listed)
    ended = await store.accounts.sign_out_other_sessions(principal=here.principal)
    assert ended == len(listed) - 1
    with pytest.raises(NotAuthenticated):
        await store.resolve_session(phone.token)
    remaining = await store.accounts.own_sessions(principal=here.principal)
    assert [s.session_id for s in remaining] == [here.principal.session_id]
    # Nobody lists anybody else's sessions: a principal sees only its own.
    other = await store.log_in(username="outsider", password=PASSWORD)
    theirs = [s.session_id for s in await store.accounts.own_sessions(principal=other.principal)]
    assert other.principal.session_id in theirs and here.principal.session_id not in theirs
    assert len(theirs) == 2  # build_world's sign-in and this one


async def test_email_is_validated_and_unique(store: Store) -> None:
    world = await build_world(store)
    with pytest.raises(InvalidInput) as bad:
        await store.accounts.change_email(principal=world.owner, email="not-an-address")
    assert bad.value.field == "email"
    with pytest.raises(Taken) as taken:
        await store.accounts.change_email(principal=world.owner, email="OUTSIDER@example.org")
    assert taken.value.field == "email"
    changed = await store.accounts.change_email(principal=world.owner, email="Owner.New@Example.org")
    assert changed.email.lower() == "owner.new@example.org"
    async with store.db.read() as session:
        assert await session.scalar(select(User.email).where(User.username == "outsider")) == "outsider@example.org"


async def test_lead_reset_forces_a_new_password_at_the_next_sign_in(store: Store) -> None:
    world = await build_world(store)
    temporary = "temporary lantern 4417"
    open_session = await store.log_in(username="owner", password=PASSWORD)
    ended = await store.accounts.reset_password(principal=world.lead, user_id=world.users["owner"].id,
                                                temporary_password=temporary)
    assert ended == 2
    with pytest.raises(NotAuthenticated):
        await store.resolve_session(open_session.token)
    with pytest.raises(Exception):
        await store.log_in(username="owner", password=PASSWORD)
    # The API's sign-in gets a clear refusal and no session ...
    with pytest.raises(PasswordChangeRequired):
        await store.log_in(username="owner", password=temporary)
    # ... the pages' sign-in a session that only the password page may use.
    signed = await store.log_in(username="owner", password=temporary, password_change_page=True)
    assert signed.must_change_password
    with pytest.raises(SessionNeedsNewPassword):
        await store.resolve_session(signed.token)
    assert (await store.resolve_session(signed.token, password_change_page=True)).user_id == signed.principal.user_id
    assert await store.accounts.must_change_password(principal=signed.principal)
    await store.accounts.change_password(principal=signed.principal, current_password=temporary,
                                         new_password=NEW_PASSWORD)
    assert not await store.accounts.must_change_password(principal=signed.principal)
    assert (await store.resolve_session(signed.token)).user_id == signed.principal.user_id
    assert not (await store.log_in(username="owner", password=NEW_PASSWORD)).must_change_password
    audit = await _audit_text(store)
    assert "reset_password" in audit and temporary not in audit


async def test_only_a_lead_resets_and_a_weak_temporary_password_is_refused(store: Store) -> None:
    world = await build_world(store)
    target = world.users["outsider"].id
    for actor in (world.owner, world.team_contributor, world.viewer):
        with pytest.raises(PermissionDenied):
            await store.accounts.reset_password(principal=actor, user_id=target, temporary_password="a fine long phrase")
    with pytest.raises(InvalidInput) as weak:
        await store.accounts.reset_password(principal=world.lead, user_id=target, temporary_password="password")
    assert weak.value.field == "temporary_password"
    # Nothing changed: the outsider signs in as before, with no forced change.
    assert not (await store.log_in(username="outsider", password=PASSWORD)).must_change_password
    await store.core.flush_audit()
    async with store.db.read() as session:
        refused = (await session.execute(select(AuditEvent.actor_id).where(
            AuditEvent.action == "reset_password", AuditEvent.outcome != "ok"))).all()
    assert len(refused) == 4  # three denied, one invalid


async def test_the_api_refuses_a_forced_change_account_clearly_and_records_the_user_agent(store: Store) -> None:
    import httpx

    from tests.api.conftest import APP_ID, make_app

    world = await build_world(store)
    temporary = "temporary lantern 4417"
    await store.accounts.reset_password(principal=world.lead, user_id=world.users["owner"].id,
                                        temporary_password=temporary)
    page_session = await store.log_in(username="owner", password=temporary, password_change_page=True)
    transport = httpx.ASGITransport(app=make_app(store), client=("10.0.0.7", 5555))
    headers = {"X-Parse-Application-Id": APP_ID, "User-Agent": "ParseSDK-Android/4.3"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        login = await client.post("/parse/login", headers=headers, json={"username": "owner", "password": temporary})
        assert login.status_code == 403 and login.json()["code"] == 119
        assert "choose a new password" in login.json()["error"] and "sessionToken" not in login.text
        graphql = await client.post("/graphql", headers=headers, json={"query": (
            'mutation { logIn(input: {username: "owner", password: "%s"}) { viewer { sessionToken } } }' % temporary)})
        [error] = graphql.json()["errors"]
        assert error["extensions"]["code"] == 119 and "choose a new password" in error["message"]
        assert not (graphql.json().get("data") or {}).get("logIn")
        # The page's session (allowed on /account only) is no session for the API.
        me = await client.get("/parse/users/me", headers={**headers, "X-Parse-Session-Token": page_session.token})
        assert me.status_code == 401 and me.json()["code"] == 209
        # An ordinary account's API login is listed with its client and address.
        login = await client.post("/parse/login", headers=headers, json={"username": "outsider", "password": PASSWORD})
        assert login.status_code == 200
    outsider = await store.resolve_session(login.json()["sessionToken"])
    listed = {s.session_id: s for s in await store.accounts.own_sessions(principal=outsider)}
    assert (listed[outsider.session_id].user_agent, listed[outsider.session_id].address) == \
        ("ParseSDK-Android/4.3", "10.0.0.7")


async def test_a_password_set_through_the_api_also_ends_the_other_sessions(store: Store) -> None:
    world = await build_world(store)
    api = await store.log_in(username="owner", password=PASSWORD, user_agent="ParseSDK/8")
    await store.update_user(principal=api.principal, user_id=world.users["owner"].id,
                            changes={"password": NEW_PASSWORD})
    with pytest.raises(NotAuthenticated):
        store.permissions(principal=world.owner)  # build_world's sign-in
    assert (await store.resolve_session(api.token)).user_id == world.users["owner"].id
