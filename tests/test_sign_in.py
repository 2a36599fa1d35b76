"""Sign-up, sign-in, lockout, session expiry and revocation, and how secrets are kept.

Time is a controllable clock handed to the Store (`clock=`): tests move it instead of sleeping.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tests.support import PASSWORD, World
from tests.support import settings_for as make_settings
from dashboard.db import Database
from dashboard.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Taken,
)
from dashboard.models import AuthSession, Base, User
from dashboard.store import Store

UTC = timezone.utc
LIFETIME = timedelta(hours=2)
IDLE = timedelta(minutes=30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def timed_store(db: Database, database_url: str, clock: Clock) -> Store:
    store = Store(db, settings=make_settings(database_url, session_lifetime=LIFETIME, session_idle_timeout=IDLE,
                                             lockout_attempts=5, lockout_window=timedelta(minutes=15),
                                             lockout_duration=timedelta(minutes=15)),
                  clock=clock)
    await store.start()
    await store.bootstrap_lead(username="lead", email="lead@example.org", password=PASSWORD)
    return store


async def _everything(db: Database) -> str:
    """Every value in every table, as one string to search for secrets."""
    parts = []
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in (await session.execute(select(table))).all())
    return "\n".join(parts)


# -- sign-up ---------------------------------------------------------------------------------------
async def test_sign_up_makes_a_contributor_who_sees_no_patient(world: World):
    store = world.store
    signed = await store.sign_up(username="newcomer", email="newcomer@example.org", password="twelve chars")
    assert signed.user.role == "contributor"
    principal = await store.resolve_session(signed.token)
    assert principal.user_id == signed.user.id
    assert await store.find(principal=principal, class_name="Patient") == []
    assert await store.count(principal=principal, class_name="Patient") == 0
    assert await store.caseload(principal=principal) == []
    with pytest.raises(NotFound):
        await store.get(principal=principal, class_name="Patient", object_id=world.patient.id)
    # Until an owning therapist adds it to the care team; then it sees exactly that patient.
    await store.add_care_team_member(principal=world.owner, patient_id=world.patient.id, user_id=signed.user.id)
    assert [p.id for p in await store.find(principal=principal, class_name="Patient")] == [world.patient.id]


async def test_password_shorter_than_twelve_is_refused(timed_store: Store):
    with pytest.raises(InvalidInput) as caught:
        await timed_store.sign_up(username="shorty", email="shorty@example.org", password="elevenchars")
    assert caught.value.field == "password" and "12" in str(caught.value) and caught.value.parse_code == 142
    async with timed_store.db.read() as session:
        assert await session.scalar(select(User).where(User.username == "shorty")) is None
    await timed_store.sign_up(username="shorty", email="shorty@example.org", password="twelve chars")


async def test_duplicate_username_or_email_is_taken(timed_store: Store):
    await timed_store.sign_up(username="Robin", email="robin@example.org", password=PASSWORD)
    with pytest.raises(Taken) as caught:
        await timed_store.sign_up(username="robin", email="other@example.org", password=PASSWORD)
    assert caught.value.field == "username" and caught.value.parse_code == 202
    with pytest.raises(Taken) as caught:
        await timed_store.sign_up(username="robin2", email="ROBIN@example.org", password=PASSWORD)
    assert caught.value.field == "email" and caught.value.parse_code == 203
    async with timed_store.db.read() as session:
        assert len(list(await session.scalars(select(User.id)))) == 2  # the lead and Robin


# -- sign-in and lockout ---------------------------------------------------------------------------
async def _fail(store: Store, username: str, *, password: str = "not the password",
                address: str | None = None) -> Exception:
    with pytest.raises(InvalidCredentials) as caught:
        await store.log_in(username=username, password=password, address=address)
    return caught.value


async def test_lockout_after_five_failures_says_for_how_long(timed_store: Store, clock: Clock):
    store = timed_store
    for _ in range(4):
        assert type(await _fail(store, "lead")) is InvalidCredentials
        clock.advance(minutes=1)
    locked = await _fail(store, "lead")
    assert isinstance(locked, AccountLocked)
    assert "locked" in str(locked) and "15 minutes" in str(locked)
    with pytest.raises(AccountLocked):  # the right password does not help while locked
        await store.log_in(username="lead", password=PASSWORD)
    clock.advance(minutes=14)
    with pytest.raises(AccountLocked) as caught:
        await store.log_in(username="lead", password=PASSWORD)
    assert "1 minute" in str(caught.value)
    clock.advance(minutes=1)
    signed = await store.log_in(username="lead", password=PASSWORD)
    assert (await store.resolve_session(signed.token)).user_id == signed.user.id


async def test_failures_spread_beyond_the_window_do_not_lock(timed_store: Store, clock: Clock):
    for _ in range(4):
        assert type(await _fail(timed_store, "lead")) is InvalidCredentials
    clock.advance(minutes=16)
    for _ in range(4):
        assert type(await _fail(timed_store, "lead")) is InvalidCredentials
    await timed_store.log_in(username="lead", password=PASSWORD)


async def test_unknown_user_gets_the_same_answer_and_is_locked_alike(timed_store: Store):
    wrong_password = [await _fail(timed_store, "lead") for _ in range(5)]
    unknown_user = [await _fail(timed_store, "nobody-here") for _ in range(5)]
    assert [(type(e), str(e)) for e in unknown_user] == [(type(e), str(e)) for e in wrong_password]
    assert str(wrong_password[0]) == "Invalid username/password."
    assert isinstance(unknown_user[-1], AccountLocked)


# -- session expiry ---------------------------------------------------------------------------------
async def test_session_ends_at_its_absolute_lifetime_however_active(timed_store: Store, clock: Clock):
    signed = await timed_store.log_in(username="lead", password=PASSWORD)
    for _ in range(5):  # active every 20 minutes, up to 1 h 40 min
        clock.advance(minutes=20)
        await timed_store.resolve_session(signed.token)
    clock.advance(minutes=19)
    await timed_store.resolve_session(signed.token)  # 1 h 59 min: still alive
    clock.advance(minutes=1)
    with pytest.raises(NotAuthenticated):
        await timed_store.resolve_session(signed.token)


async def test_session_ends_after_idle_timeout_and_activity_extends_it(timed_store: Store, clock: Clock):
    signed = await timed_store.log_in(username="lead", password=PASSWORD)
    clock.advance(minutes=29)
    await timed_store.resolve_session(signed.token)
    clock.advance(minutes=29)  # 58 minutes since sign-in, 29 since last seen
    await timed_store.resolve_session(signed.token)
    clock.advance(minutes=30)
    with pytest.raises(NotAuthenticated) as caught:
        await timed_store.resolve_session(signed.token)
    assert "inactivity" in str(caught.value)


# -- revocation ------------------------------------------------------------------------------------
async def test_logout_revokes_every_session_of_that_user(world: World):
    store = world.store
    first = await store.log_in(username="owner", password=PASSWORD)
    second = await store.log_in(username="owner", password=PASSWORD)
    colleague = await store.log_in(username="team-therapist", password=PASSWORD)
    await store.log_out(principal=first.principal)
    for token in (first.token, second.token):
        with pytest.raises(NotAuthenticated):
            await store.resolve_session(token)
    for principal in (first.principal, second.principal, world.owner):
        with pytest.raises(NotAuthenticated):
            await store.get(principal=principal, class_name="Patient", object_id=world.patient.id)
    assert (await store.resolve_session(colleague.token)).user_id == colleague.user.id
    await store.get(principal=world.team_therapist, class_name="Patient", object_id=world.patient.id)
    async with store.db.read() as session:
        open_sessions = list(await session.scalars(select(AuthSession.id).where(
            AuthSession.user_id == first.user.id, AuthSession.revoked_at.is_(None))))
    assert open_sessions == []
    # Signing in again works and gives a fresh, working session.
    again = await store.log_in(username="owner", password=PASSWORD)
    await store.get(principal=again.principal, class_name="Patient", object_id=world.patient.id)


async def test_deactivation_revokes_sessions_and_refuses_sign_in(world: World):
    store = world.store
    signed = await store.log_in(username="team-therapist", password=PASSWORD)
    await store.update_user(principal=world.lead, user_id=signed.user.id, changes={"active": False})
    with pytest.raises(NotAuthenticated):
        await store.resolve_session(signed.token)
    for principal in (signed.principal, world.team_therapist):
        with pytest.raises(NotAuthenticated):
            await store.find(principal=principal, class_name="Patient")
    refused = await _fail_with(store, "team-therapist", PASSWORD)
    wrong = await _fail_with(store, "owner", "not the password")
    assert (type(refused), str(refused)) == (type(wrong), str(wrong))


async def _fail_with(store: Store, username: str, password: str) -> Exception:
    with pytest.raises(InvalidCredentials) as caught:
        await store.log_in(username=username, password=password)
    return caught.value


# -- secrets at rest --------------------------------------------------------------------------------
async def test_session_tokens_are_stored_only_as_hashes(timed_store: Store):
    signed_up = await timed_store.sign_up(username="newcomer", email="newcomer@example.org", password=PASSWORD)
    signed_in = await timed_store.log_in(username="lead", password=PASSWORD)
    everything = await _everything(timed_store.db)
    async with timed_store.db.read() as session:
        hashes = set(await session.scalars(select(AuthSession.token_hash)))
    for token in (signed_up.token, signed_in.token):
        assert token.startswith("r:")
        assert token not in everything and token[2:] not in everything
        assert hashlib.sha256(token.encode()).hexdigest() in hashes


async def test_passwords_are_stored_as_argon2id_hashes(timed_store: Store):
    await timed_store.sign_up(username="newcomer", email="newcomer@example.org", password="my secret phrase")
    async with timed_store.db.read() as session:
        stored = list(await session.scalars(select(User.password_hash)))
    assert len(stored) == 2 and all(h.startswith("$argon2id$") for h in stored)
    everything = await _everything(timed_store.db)
    assert "my secret phrase" not in everything and PASSWORD not in everything
    # A changed password is hashed the same way, and only the new one signs in.
    user = await timed_store.log_in(username="newcomer", password="my secret phrase")
    await timed_store.update_user(principal=user.principal, user_id=user.user.id,
                                  changes={"password": "another secret phrase"})
    async with timed_store.db.read() as session:
        assert (await session.get(User, user.user.id)).password_hash.startswith("$argon2id$")
    await _fail_with(timed_store, "newcomer", "my secret phrase")
    await timed_store.log_in(username="newcomer", password="another secret phrase")


# -- security review: H2, L2, L5 ---------------------------------------------------------------------
async def test_h2_like_wildcards_are_not_usernames(timed_store: Store):
    for pattern in ("lea_", "lead%", "%lead", "l%d", "LEA_"):
        assert type(await _fail(timed_store, pattern, password=PASSWORD)) is InvalidCredentials, pattern


async def test_h2_lockout_counts_per_account_whatever_the_spelling(timed_store: Store):
    for spelling in ("lead", "LEAD", "Lead", "ｌｅａｄ", "lEaD"):
        assert type(await _fail(timed_store, spelling)) in (InvalidCredentials, AccountLocked)
    # Five failures, five spellings, one account: it is locked for every spelling, right password too.
    for spelling in ("lead", "LEAD", "ｌｅａｄ"):
        assert isinstance(await _fail(timed_store, spelling, password=PASSWORD), AccountLocked), spelling


async def test_h2_sign_up_compares_normalized_names_not_patterns(timed_store: Store):
    # A LIKE pattern that would have matched "lead" is a different, free name...
    signed = await timed_store.sign_up(username="lea_", email="x1@example.org", password="a fine passphrase")
    assert signed.user.username == "lea_"
    # ... while another spelling of a taken name is taken, and so is another spelling of an email.
    with pytest.raises(Taken) as caught:
        await timed_store.sign_up(username="LEAD", email="x2@example.org", password="a fine passphrase")
    assert caught.value.field == "username"
    with pytest.raises(Taken) as caught:
        await timed_store.sign_up(username="someone", email="LEAD@Example.org", password="a fine passphrase")
    assert caught.value.field == "email"
    # A full-width spelling is the same name once normalized (NFKC), so it is taken too.
    with pytest.raises(Taken):
        await timed_store.sign_up(username="ｌｅａｄ", email="x3@example.org", password="a fine passphrase")


async def test_h2_other_spellings_sign_in_to_the_one_account(timed_store: Store):
    lead = (await timed_store.log_in(username="lead", password=PASSWORD)).user
    for spelling in ("LEAD", "ｌｅａｄ"):
        assert (await timed_store.log_in(username=spelling, password=PASSWORD)).user.id == lead.id


@pytest.mark.parametrize("password, rule", [
    (" " * 12, "blank"), ("\x00" * 12, "control"), ("aaaaaaaaaaaa", "repeated"),
    ("abcabcabcabc", "repeated"), ("password1234", "common"), ("Password2026!", "common"),
    ("qwertyqwerty", "common"), ("123456789012", "digits"),
])
async def test_l2_weak_passwords_are_refused_with_the_rule(timed_store: Store, password: str, rule: str):
    from dashboard.password_rules import RULES
    with pytest.raises(InvalidInput) as caught:
        await timed_store.sign_up(username="weak-one", email="weak@example.org", password=password)
    assert caught.value.field == "password" and caught.value.parse_code == 142
    assert caught.value.rule == RULES[rule]
    # Nothing was written: there is no such account to sign in to.
    assert type(await _fail(timed_store, "weak-one", password=password)) is InvalidCredentials


async def test_l5_failed_sign_ins_are_audited_with_account_address_and_lockout(timed_store: Store):
    from dashboard.models import AuditEvent
    lead_id = (await timed_store.log_in(username="lead", password=PASSWORD)).user.id
    for _ in range(5):
        await _fail(timed_store, "LEAD", address="192.0.2.7")
    await _fail(timed_store, "lead", password=PASSWORD, address="192.0.2.8")
    await _fail(timed_store, "nobody-at-all", address="192.0.2.9")
    async with timed_store.db.read() as session:
        rows = list(await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "login", AuditEvent.outcome != "ok")
            .order_by(AuditEvent.id)))
    seen = [(r.object_id, r.address, r.outcome) for r in rows]
    assert seen == [(lead_id, "192.0.2.7", "invalid")] * 4 + [
        (lead_id, "192.0.2.7", "locked"), (lead_id, "192.0.2.8", "locked"), (None, "192.0.2.9", "invalid")]


async def test_concurrent_failed_sign_ins_all_count_towards_the_lockout(world):
    """failures = failures + 1 in one statement: failures racing on several instances are not lost."""
    import asyncio
    import dataclasses

    from sqlalchemy import select

    from dashboard.errors import InvalidCredentials
    from dashboard.models import LoginThrottle

    store = world.store
    store.settings = dataclasses.replace(store.settings, lockout_attempts=100)
    results = await asyncio.gather(*(store.log_in(username="owner", password="wrong password!") for _ in range(12)),
                                   return_exceptions=True)
    assert all(isinstance(r, InvalidCredentials) for r in results)
    async with store.db.read() as session:
        failures = await session.scalar(select(LoginThrottle.failures))
    assert failures == 12


async def test_a_session_active_on_another_instance_is_not_idle_here(timed_store: Store, clock: Clock,
                                                                      database_url: str):
    """B's cached clock says idle; A saw the session since (its last-seen time is in the database)."""
    other_db = Database(database_url)
    other = Store(other_db, settings=timed_store.settings, clock=clock)
    await other.start()
    try:
        signed = await timed_store.log_in(username="lead", password=PASSWORD)
        await other.resolve_session(signed.token)  # B knows the session now
        for _ in range(3):  # 45 minutes of activity on A alone
            clock.advance(minutes=15)
            await timed_store.resolve_session(signed.token)
        assert (await other.resolve_session(signed.token)).user_id == signed.principal.user_id
        clock.advance(minutes=31)  # idle everywhere now
        with pytest.raises(NotAuthenticated, match="inactivity"):
            await other.resolve_session(signed.token)
    finally:
        await other.stop()
        await other_db.dispose()


# -- one sign-in rate limit for every instance on one PostgreSQL ---------------------------------------------
MID_MINUTE = 29_000_000 * 60 + 30.0  # a fixed wall clock, half-way through a minute


@pytest.fixture
async def two_instances(timed_store: Store, database_url: str):
    """Two stores on one PostgreSQL database, as two app instances behind a balancer."""
    if timed_store.db.is_sqlite:
        pytest.skip("SQLite is one process: its limiter is in memory, and there is no other instance")
    other_db = Database(database_url)
    other = Store(other_db, settings=timed_store.settings)
    await other.start()
    yield timed_store, other
    await other.stop()
    await other_db.dispose()


def _share_limits(stores, per_account: int, per_address: int, now: float) -> None:
    from dashboard.rate_limit import SharedLoginLimiter

    for store in stores:
        assert isinstance(store.sign_in_limiter, SharedLoginLimiter)  # what PostgreSQL gets by default
        store.sign_in_limiter = SharedLoginLimiter(store.db, per_account, per_address, clock=lambda: now)


async def test_the_eleventh_sign_in_a_minute_is_refused_on_whichever_instance(two_instances):
    from dashboard.errors import RateLimited

    a, b = two_instances
    _share_limits((a, b), per_account=10, per_address=100, now=MID_MINUTE)
    for attempt in range(10):  # spread over both instances and many addresses
        store = (a, b)[attempt % 2]
        await store.log_in(username="lead", password=PASSWORD, address=f"10.0.0.{attempt}")
    for store in (a, b):
        with pytest.raises(RateLimited) as refused:
            await store.log_in(username="LEAD", password=PASSWORD, address="10.0.1.1")  # any spelling
        assert refused.value.seconds == 30  # the minute's end
    await b.sign_up(username="another", email="another@example.org", password=PASSWORD, address="10.0.2.1")
    await a.log_in(username="another", password=PASSWORD, address="10.0.2.1")  # other accounts go on


async def test_attempts_from_one_address_are_counted_together_and_apart_from_others(two_instances):
    from dashboard.errors import RateLimited

    a, b = two_instances
    _share_limits((a, b), per_account=10, per_address=3, now=MID_MINUTE)
    for store, name in ((a, "nobody1"), (b, "nobody2"), (a, "nobody3")):
        with pytest.raises(InvalidCredentials):
            await store.log_in(username=name, password="wrong password!", address="192.0.2.7")
    with pytest.raises(RateLimited):
        await b.log_in(username="lead", password=PASSWORD, address="192.0.2.7")
    await b.log_in(username="lead", password=PASSWORD, address="192.0.2.8")


async def test_the_previous_minute_counts_by_the_share_of_it_still_in_the_window(two_instances):
    from dashboard.errors import RateLimited

    a, b = two_instances
    _share_limits((a, b), per_account=10, per_address=100, now=MID_MINUTE)
    for attempt in range(10):
        await a.log_in(username="lead", password=PASSWORD, address=f"10.0.3.{attempt}")
    _share_limits((a, b), per_account=10, per_address=100, now=MID_MINUTE + 45)  # 15 s into the next minute
    await b.log_in(username="lead", password=PASSWORD, address="10.0.4.1")  # 1 + 10 × 0.75 = 8.5
    await b.log_in(username="lead", password=PASSWORD, address="10.0.4.2")  # 9.5
    with pytest.raises(RateLimited):
        await a.log_in(username="lead", password=PASSWORD, address="10.0.4.3")  # 10.5 > 10
