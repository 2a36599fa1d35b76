"""Sign-up, sign-in with lockout, server-side sessions, account self-service (password, email, own
sessions), and the leads' user administration (including a password reset that forces a change)."""
from __future__ import annotations

import asyncio
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dashboard import password_rules
from dashboard.access import Principal, Role
from dashboard.changes import revoke_mutation, user_mutation
from dashboard.errors import (
    ParseCode,
    AccountLocked,
    InvalidCredentials,
    InvalidInput,
    MissingField,
    NotAuthenticated,
    NotFound,
    PasswordChangeRequired,
    PermissionDenied,
    RateLimited,
    SessionNeedsNewPassword,
    Taken,
)
from dashboard.models import AuthSession, LoginThrottle, User, UTCDateTime, new_object_id
from dashboard.record_types import UserRecord
from dashboard.names import MAX_INPUT, account_key, email_key
from dashboard.passwords import new_session_token, token_hash
from dashboard.serialize import record_of
from dashboard.store.core import AUDIT, StoreCore, Tx, audited
from dashboard.store.read import Reads, is_object_id
from dashboard.store.query import text_problem
from dashboard.store.request_keys import check_request_key

USERNAME_RULE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
EMAIL_RULE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
# Refresh last_seen at most this often: the idle timeout is minutes, a write per request is waste.
LAST_SEEN_GRANULARITY_SECONDS = 30


SESSION_CACHE_SIZE = 10_000


@dataclass
class _CachedSession:
    session_id: str
    user_id: str
    must_change: bool = False  # re-read while true (it is cleared, never set, on a live session)


@dataclass(frozen=True)
class OwnSession:
    """One of the user's active sessions, as /account lists them (never the token)."""

    session_id: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str | None
    address: str | None
    current: bool


def _clip(value: str | None, size: int) -> str | None:
    """A header as a column holds it: cut to size, control characters dropped."""
    if not isinstance(value, str) or not value:
        return None
    return "".join(c for c in value if unicodedata.category(c) != "Cc" and not "\ud800" <= c <= "\udfff")[:size] or None


@dataclass(frozen=True)
class SignedIn:
    user: UserRecord
    token: str
    principal: Principal
    must_change_password: bool = False


def _failure_upsert(dialect: str) -> Any:
    """One more failure for a username key; a window that has run out starts again at 1."""
    table = LoginThrottle.__table__
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    expired = table.c.window_started_at < bindparam("window_start", type_=UTCDateTime)
    statement = insert(table).values(username_key=bindparam("key"), failures=1,
                                     window_started_at=bindparam("now", type_=UTCDateTime))
    return statement.on_conflict_do_update(index_elements=[table.c.username_key], set_={
        "failures": case((expired, 1), else_=table.c.failures + 1),
        "window_started_at": case((expired, statement.excluded.window_started_at), else_=table.c.window_started_at),
        "locked_until": case((expired, None), else_=table.c.locked_until),
    }).returning(table.c.failures)


class Accounts:
    """Sign-up, sign-in, sessions and the leads' user administration."""

    def __init__(self, core: StoreCore, reads: Reads):
        self.core, self.reads = core, reads
        self._sessions: dict[str, _CachedSession] = {}  # token hash -> cached session

    # -- validation -----------------------------------------------------------------------------
    def _check_username(self, username: object) -> str:
        if username is None or username == "":
            raise MissingField("username")
        if not isinstance(username, str):
            raise InvalidInput("username", "must be text")
        username = unicodedata.normalize("NFKC", username[:MAX_INPUT])
        if not USERNAME_RULE.match(username):
            raise InvalidInput("username", "must be 3 to 64 letters, digits, dots, dashes or underscores")
        return username

    def _check_email(self, email: object) -> str:
        if email is None or email == "":
            raise MissingField("email")
        if not isinstance(email, str):
            raise InvalidInput("email", "must be text")
        if len(email) > 254 or not EMAIL_RULE.match(email) or text_problem(email):
            raise InvalidInput("email", "must be an email address", code=ParseCode.INVALID_EMAIL_ADDRESS)
        return email_key(email)

    def _password_problems(self, password: object) -> list[InvalidInput]:
        """Every rule a password breaks (its length and its weakness both), first the one to fix first."""
        if password is None or password == "":
            return [MissingField("password")]
        if not isinstance(password, str):
            return [InvalidInput("password", "must be text")]
        problems = []
        if len(password) < self.core.settings.min_password_length:
            problems.append(InvalidInput(
                "password", f"must be at least {self.core.settings.min_password_length} characters", code=ParseCode.VALIDATION_ERROR))
        if len(password) > 1024:
            problems.append(InvalidInput("password", "must be at most 1024 characters", code=ParseCode.VALIDATION_ERROR))
        weakness = password_rules.weakness(password) or text_problem(password)
        if weakness:
            problems.append(InvalidInput("password", weakness, code=ParseCode.VALIDATION_ERROR))
        return problems

    def _check_password(self, password: object) -> str:
        problems = self._password_problems(password)
        if problems or not isinstance(password, str):
            raise problems[0] if problems else MissingField("password")
        return password

    @staticmethod
    def _check_role(role: object) -> Role:
        if not isinstance(role, str) or role not in Role.__members__.values():
            raise InvalidInput("role", f"must be one of: {', '.join(Role)}")
        return Role(role)

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.core.hasher.hash, password)

    # -- creating users -------------------------------------------------------------------------
    async def _insert_user(self, *, username: str, email: str, password: str, role: str,
                           actor: Principal | None, audit_action: str,
                           request_key: str | None = None, user_agent: str | None = None,
                           address: str | None = None) -> tuple[UserRecord, str | None]:
        password_hash = await self._hash(password)
        user = User(id=new_object_id(), username=username, username_key=account_key(username), email=email,
                    password_hash=password_hash, role=role, active=True)
        token = new_session_token() if actor is None else None
        session_row = None
        # A concurrent sign-up may take the username or email after the check.
        async with self.core.write(duplicate=lambda: Taken("username")) as tx:
            await self.core.claim_request_key(tx, actor, request_key, "_User", user.id)
            await self._ensure_unique(tx, username=username, email=email)
            tx.session.add(user)
            await tx.session.flush()
            if token:
                session_row = self._new_session(tx, user.id, token, user_agent=user_agent, address=address)
            tx.audit(actor or Principal(user.id), audit_action, "_User", object_id=user.id)
            tx.changes.append(user_mutation(user.id, role=user.role, active=True, username=user.username))
        if session_row is not None:
            self._track(session_row)
        return record_of(user), token

    async def _ensure_unique(self, tx: Tx, *, username: str | None = None, email: str | None = None) -> None:
        taken = await self._taken(tx.session, username=username, email=email)
        if taken:
            raise taken[0]

    @staticmethod
    async def _taken(session: AsyncSession, *, username: str | None = None,
                     email: str | None = None) -> list[Taken]:
        """The checked username and email that an account already has."""
        taken = []
        if username is not None and await session.scalar(
                select(User.id).where(User.username_key == account_key(username))):
            taken.append(Taken("username"))
        if email is not None and await session.scalar(select(User.id).where(User.email == email)):
            taken.append(Taken("email"))
        return taken

    async def new_account_problems(self, *, username: object, email: object,
                                   password: object) -> list[InvalidInput | Taken]:
        """Everything wrong with a new account's fields at once, each naming its field, so a form
        can show them all under their fields. The same rules as sign_up and create_user (which stop
        at the first); call it only after one of them refused, which rate limited the attempt."""
        problems: list[InvalidInput | Taken] = []
        checked: dict[str, str] = {}
        for name, value, check in (("username", username, self._check_username),
                                   ("email", email, self._check_email)):
            try:
                checked[name] = check(value)
            except InvalidInput as exc:
                problems.append(exc)
        if checked:
            async with self.core.db.read() as session:
                problems += await self._taken(session, **checked)
        return problems + self._password_problems(password)

    @audited("signup")
    async def sign_up(self, *, username: str, email: str, password: str,
                      address: str | None = None, user_agent: str | None = None) -> SignedIn:
        """A new account: always a contributor, seeing no patient until added to a care team.
        `address`: the client's, from a channel (pages, API): each one is rate limited. Both it and
        `user_agent` are kept on the session for the user's list of sessions."""
        if address is not None:
            await self._limit_sign_in(address, None)
        username = self._check_username(username)
        email = self._check_email(email)
        password = self._check_password(password)
        user, token = await self._insert_user(username=username, email=email, password=password,
                                              role=Role.CONTRIBUTOR, actor=None, audit_action="signup",
                                              user_agent=user_agent, address=address)
        if token is None:  # pragma: no cover - a sign-up always opens a session
            raise NotAuthenticated()
        session_id = await self._session_id_for(token)
        return SignedIn(user, token, Principal(user.id, session_id, user.username))

    @audited("create")
    async def create_user(self, *, principal: Principal | None, username: str, email: str,
                          password: str, role: str, class_name: str = "_User",
                          request_key: str | None = None) -> UserRecord:
        if self.core.role(principal) != Role.LEAD:
            raise PermissionDenied("Only a lead creates accounts")
        user, _ = await self._insert_user(
            username=self._check_username(username), email=self._check_email(email),
            password=self._check_password(password), role=self._check_role(role),
            actor=principal, audit_action="create", request_key=check_request_key(request_key))
        return user

    async def bootstrap_lead(self, *, username: str, email: str, password: str) -> UserRecord:
        """The command line's way to make the first lead of an empty installation."""
        user, _ = await self._insert_user(
            username=self._check_username(username), email=self._check_email(email),
            password=self._check_password(password), role=Role.LEAD, actor=Principal("cli"),
            audit_action="create")
        return user

    # -- sessions -------------------------------------------------------------------------------
    def _new_session(self, tx: Tx, user_id: str, token: str, *, user_agent: str | None = None,
                     address: str | None = None) -> AuthSession:
        now = self.core.clock()
        row = AuthSession(token_hash=token_hash(token), user_id=user_id, created_at=now,
                          last_seen_at=now, expires_at=now + self.core.settings.session_lifetime,
                          user_agent=_clip(user_agent, 256), address=_clip(address, 64))
        tx.session.add(row)
        return row

    def _track(self, row: AuthSession) -> None:
        """A new session's clocks, once it is committed (this process's cache; others read it)."""
        self.core.access.track_session(row.id, row.user_id, expires_at=row.expires_at, last_seen_at=row.last_seen_at)

    async def _session_id_for(self, token: str) -> str:
        async with self.core.db.read() as session:
            found = await session.scalar(select(AuthSession.id).where(AuthSession.token_hash == token_hash(token)))
        if found is None:
            raise NotAuthenticated()
        return str(found)

    async def _limit_sign_in(self, address: str, username: object) -> None:
        """Attempts per minute per client address and per account key; RateLimited beyond."""
        wait = await self.core.sign_in_limiter.check(username=username, address=address)
        if wait:
            raise RateLimited(wait)

    async def log_in(self, *, username: str, password: str, address: str | None = None,
                     user_agent: str | None = None, password_change_page: bool = False) -> SignedIn:
        """Same answer, and about the same time, for a wrong password and an unknown user.

        Every spelling of an account (case, full-width forms) is that account: the lockout and the
        rate limit count per account. `address` is the client's, given by a channel (pages, API),
        which rate limits the attempt; internal callers (tests, the command line) give none.

        An account whose password a lead reset signs in only where it can choose a new one
        (`password_change_page`, the pages); the API gets PasswordChangeRequired and no session.
        """
        if address is not None:
            await self._limit_sign_in(address, username)
        if not isinstance(username, str) or not username:
            raise MissingField("username")
        if not isinstance(password, str) or not password:
            raise MissingField("password")
        key = account_key(username)
        now = self.core.clock()
        async with self.core.db.read() as session:
            throttle = await session.get(LoginThrottle, key)
            user = await session.scalar(select(User).where(User.username_key == key))
        account = user.id if user is not None else None
        if throttle and throttle.locked_until and throttle.locked_until > now:
            await asyncio.to_thread(self.core.hasher.verify, password, None)
            await self._audit_sign_in(account, address, "locked")
            raise AccountLocked(math.ceil((throttle.locked_until - now).total_seconds() / 60))
        usable = user is not None and user.active
        ok = await asyncio.to_thread(self.core.hasher.verify, password, user.password_hash if usable else None)
        if not ok or user is None:
            minutes = await self._record_failure(key)
            await self._audit_sign_in(account, address, "locked" if minutes else "invalid")
            if minutes:
                raise AccountLocked(minutes)
            raise InvalidCredentials()
        if user.must_change_password and not password_change_page:
            await self._audit_sign_in(account, address, "must_change")
            raise PasswordChangeRequired()
        token = new_session_token()
        async with self.core.write() as tx:
            row = self._new_session(tx, user.id, token, user_agent=user_agent, address=address)
            existing = await tx.session.get(LoginThrottle, key)
            if existing is not None:
                await tx.session.delete(existing)
            tx.audit(Principal(user.id), "login", "_User", object_id=user.id, address=address)
        self._track(row)
        return SignedIn(record_of(user), token, Principal(user.id, row.id, user.username),
                        must_change_password=bool(user.must_change_password))

    async def _audit_sign_in(self, account: str | None, address: str | None, outcome: str) -> None:
        """A refused sign-in: the account tried (when it exists), where from, wrong or locked."""
        row = self.core.audit_row(None, "login", "_User", object_id=account, outcome=outcome)
        row["address"] = address[:64] if address else None
        await self.core.db.transact(lambda w: w.insert(AUDIT, [row]))

    async def _record_failure(self, key: str) -> int:
        """Counts a failed sign-in, in one statement (failures = failures + 1: concurrent failures on
        several instances all count); returns the minutes locked when this one tipped it over."""
        settings = self.core.settings
        now = self.core.clock()
        async with self.core.write() as tx:
            failures = int(await tx.session.scalar(_failure_upsert(self.core.db.dialect), {
                "key": key, "now": now, "window_start": now - settings.lockout_window}))
            if failures >= settings.lockout_attempts:
                await tx.session.execute(update(LoginThrottle).where(LoginThrottle.username_key == key)
                                         .values(locked_until=now + settings.lockout_duration))
                return math.ceil(settings.lockout_duration.total_seconds() / 60)
        return 0

    async def resolve_session(self, token: str | None, *, password_change_page: bool = False) -> Principal:
        """The principal behind a session token, or NotAuthenticated (expired, idle, revoked).
        A session of an account that must choose a new password is SessionNeedsNewPassword except
        for the page that changes it (`password_change_page`).

        Sessions are cached by token hash, so a request costs no database read; their clocks live
        in the access index, which every store call and every push consults, so an expired or idle
        session ends on every channel alike. A resolve is activity: the idle time starts again.
        """
        if not token or not isinstance(token, str) or len(token) > 200:
            raise NotAuthenticated()
        key = token_hash(token)
        cached = self._sessions.get(key)
        if cached is None:
            async with self.core.db.read() as session:
                found = (await session.execute(
                    select(AuthSession, User.must_change_password).join(User, User.id == AuthSession.user_id)
                    .where(AuthSession.token_hash == key))).first()
            row = found[0] if found else None
            if row is None or found is None or row.revoked_at is not None:
                raise NotAuthenticated()
            self.core.access.track_session(row.id, row.user_id, expires_at=row.expires_at, last_seen_at=row.last_seen_at)
            cached = _CachedSession(row.id, row.user_id, bool(found[1]))
            if len(self._sessions) >= SESSION_CACHE_SIZE:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = cached
        user = self.core.access.user(cached.user_id)
        over = self.core.access.session_over(cached.session_id, user.role if user else None)
        if over == "idle":
            # Idle here may be active on another instance: its last-seen time is in the database.
            async with self.core.db.read() as session:
                seen = await session.scalar(select(AuthSession.last_seen_at).where(AuthSession.id == cached.session_id))
            self.core.access.seen_elsewhere(cached.session_id, seen)
            over = self.core.access.session_over(cached.session_id, user.role if user else None)
        if over == "idle":
            raise NotAuthenticated("Session expired after inactivity")
        if over is not None or user is None or not user.active:
            raise NotAuthenticated()
        if cached.must_change:
            # Changed on another instance meanwhile? The flag is only ever cleared on a live session.
            async with self.core.db.read() as session:
                cached.must_change = bool(await session.scalar(
                    select(User.must_change_password).where(User.id == cached.user_id)))
            if cached.must_change and not password_change_page:
                raise SessionNeedsNewPassword()
        await self.touch_session(Principal(cached.user_id, cached.session_id))
        return Principal(cached.user_id, cached.session_id, user.username)

    async def touch_session(self, principal: Principal) -> bool:
        """Activity by this principal's session (a request, a message): its idle time starts again.
        The database learns it at most every LAST_SEEN_GRANULARITY_SECONDS. False when the session
        is already over (nothing is extended)."""
        due = self._touch(principal)
        if due is None:
            return False
        if due:
            await self._store_last_seen(principal)
        return True

    def note_activity(self, principal: Principal) -> bool:
        """`touch_session` for a caller that cannot wait (a page event): the in-memory clock now,
        the database write, when one is due, in the background."""
        due = self._touch(principal)
        if due:
            asyncio.get_running_loop().create_task(self._store_last_seen(principal))
        return due is not None

    def _touch(self, principal: Principal) -> bool | None:
        """None: the session is over. Else whether the database's last-seen time is due a write."""
        if principal.session_id is None:
            return None
        clock = self.core.access.touch_session(principal.session_id)
        if clock is None:
            return None
        if (clock.last_seen_at - clock.stored_last_seen_at).total_seconds() < LAST_SEEN_GRANULARITY_SECONDS:
            return False
        clock.stored_last_seen_at = clock.last_seen_at
        return True

    async def _store_last_seen(self, principal: Principal) -> None:
        clock = self.core.access.session_clock(principal.session_id or "")
        if clock is None:
            return
        # Sign-in bookkeeping through the one write transaction (it records no change: activity is
        # no access mutation, and other processes re-read it when they judge a session idle).
        async with self.core.write() as tx:
            await tx.session.execute(update(AuthSession).where(AuthSession.id == principal.session_id)
                                     .values(last_seen_at=clock.stored_last_seen_at))

    def session_ended_because(self, *, principal: Principal) -> str | None:
        """Why the principal's session is over ("idle", "expired", "revoked", "unknown"), or None."""
        if principal.session_id is None:
            return None
        return self.core.access.session_over(principal.session_id)

    async def log_out(self, *, principal: Principal | None) -> None:
        """Revokes every session of the user; their open pages and subscriptions end at once."""
        if principal is None:
            raise NotAuthenticated()
        async with self.core.write() as tx:
            revoked = await self._revoke_sessions(tx, principal.user_id)
            tx.audit(principal, "logout", "_User", object_id=principal.user_id)
            tx.changes.append(revoke_mutation(principal.user_id, revoked))

    # -- account self-service -------------------------------------------------------------------
    @audited("password")
    async def change_password(self, *, principal: Principal | None, current_password: str,
                              new_password: str) -> int:
        """The user's own new password, the current one required. Every other session of the user is
        revoked (their pages and subscriptions end, on every instance); this one stays. A forced
        change (after a lead's reset) is done by this too. Returns how many sessions were ended."""
        actor = self.core.actor(principal)
        if not isinstance(current_password, str) or not current_password:
            raise MissingField("current_password")
        problems = self._password_problems(new_password)
        if problems:
            first = problems[0]
            raise InvalidInput("new_password", first.rule, code=ParseCode(first.parse_code))
        if new_password == current_password:
            raise InvalidInput("new_password", "must differ from the current password",
                               code=ParseCode.VALIDATION_ERROR)
        async with self.core.db.read() as session:
            stored = await session.scalar(select(User.password_hash).where(User.id == actor.user_id))
        if stored is None:
            raise NotAuthenticated()
        if not await asyncio.to_thread(self.core.hasher.verify, current_password, stored):
            raise InvalidInput("current_password", "is not your current password",
                               code=ParseCode.VALIDATION_ERROR)
        new_hash = await self._hash(new_password)
        async with self.core.write() as tx:
            user = await tx.session.get(User, actor.user_id, with_for_update=True)
            if user is None or user.password_hash != stored:  # changed meanwhile (another tab, a lead)
                raise InvalidInput("current_password", "is not your current password",
                                   code=ParseCode.VALIDATION_ERROR)
            user.password_hash = new_hash
            forced = bool(user.must_change_password)
            user.must_change_password = False
            revoked = await self._revoke_sessions(tx, user.id, keep=actor.principal.session_id)
            tx.audit(principal, "password", "_User", object_id=user.id,
                     detail=f"{'forced change' if forced else 'changed'}; {len(revoked)} other sessions ended")
            if revoked:
                tx.changes.append(revoke_mutation(user.id, revoked))
        for cached in self._sessions.values():
            if cached.user_id == actor.user_id:
                cached.must_change = False
        return len(revoked)

    async def change_email(self, *, principal: Principal | None, email: str) -> UserRecord:
        """The user's own email: validated, and unique (case-insensitively) among accounts."""
        actor = self.core.actor(principal)
        return await self.update_user(principal=principal, user_id=actor.user_id, changes={"email": email})

    @audited("reset_password")
    async def reset_password(self, *, principal: Principal | None, user_id: str,
                             temporary_password: str) -> int:
        """A lead sets a temporary password for another account: its sessions are revoked at once and
        its next sign-in must choose a new password before anything else. Returns sessions ended."""
        actor = self.core.actor(principal)
        if actor.role != Role.LEAD:
            raise PermissionDenied("Only a lead resets another account's password")
        if actor.user_id == user_id:
            raise PermissionDenied("Change your own password on the Account page")
        problems = self._password_problems(temporary_password)
        if problems:
            first = problems[0]
            raise InvalidInput("temporary_password", first.rule, code=ParseCode(first.parse_code))
        new_hash = await self._hash(temporary_password)
        async with self.core.write() as tx:
            user = await tx.session.get(User, user_id, with_for_update=True) if is_object_id(user_id) else None
            if user is None:
                raise NotFound()
            user.password_hash = new_hash
            user.must_change_password = True
            revoked = await self._revoke_sessions(tx, user.id)
            tx.audit(principal, "reset_password", "_User", object_id=user.id,
                     detail=f"{len(revoked)} sessions ended")
            if revoked:
                tx.changes.append(revoke_mutation(user.id, revoked))
        return len(revoked)

    async def own_sessions(self, *, principal: Principal | None) -> list[OwnSession]:
        """The user's sessions still in use (not revoked, not past their lifetime or idle limit),
        newest activity first; the one of `principal` is marked current."""
        actor = self.core.actor(principal)
        async with self.core.db.read() as session:
            rows = list(await session.scalars(
                select(AuthSession).where(AuthSession.user_id == actor.user_id, AuthSession.revoked_at.is_(None),
                                          AuthSession.expires_at > self.core.clock())
                .order_by(AuthSession.last_seen_at.desc()).limit(200)))
        sessions = []
        idle_limit = self.core.clock() - self.core.settings.session_idle_timeout
        if actor.role == Role.VIEWER and self.core.settings.viewer_sessions_exempt:
            idle_limit = datetime.min.replace(tzinfo=idle_limit.tzinfo)  # a wall screen never idles out
        for row in rows:
            clock = self.core.access.session_clock(row.id)
            seen = max(row.last_seen_at, clock.last_seen_at) if clock is not None else row.last_seen_at
            current = row.id == actor.principal.session_id
            if not current and (seen < idle_limit or row.id in self.core.access.revoked_sessions()):
                continue
            sessions.append(OwnSession(row.id, row.created_at, seen, row.user_agent, row.address, current))
        sessions.sort(key=lambda s: (not s.current, -s.last_seen_at.timestamp()))
        return sessions

    @audited("logout")
    async def sign_out_other_sessions(self, *, principal: Principal | None) -> int:
        """Revokes every session of the user but this one ("sign out everywhere else")."""
        actor = self.core.actor(principal)
        if actor.principal.session_id is None:
            raise NotAuthenticated()
        async with self.core.write() as tx:
            revoked = await self._revoke_sessions(tx, actor.user_id, keep=actor.principal.session_id)
            tx.audit(principal, "logout", "_User", object_id=actor.user_id,
                     detail=f"other sessions: {len(revoked)} ended")
            if revoked:
                tx.changes.append(revoke_mutation(actor.user_id, revoked))
        return len(revoked)

    @audited("logout")
    async def sign_out_user(self, *, principal: Principal | None, user_id: str) -> int:
        """A lead ends every session of another account (a ward TV nobody signs out at the screen);
        its open pages and sockets end through the change log. Returns how many ended."""
        if self.core.role(principal) != Role.LEAD:
            raise PermissionDenied("Only a lead signs other accounts out")
        async with self.core.write() as tx:
            if not is_object_id(user_id) or await tx.session.get(User, user_id) is None:
                raise NotFound()
            revoked = await self._revoke_sessions(tx, user_id)
            tx.audit(principal, "logout", "_User", object_id=user_id, detail=f"signed out by a lead: {len(revoked)} ended")
            if revoked:
                tx.changes.append(revoke_mutation(user_id, revoked))
        return len(revoked)

    async def must_change_password(self, *, principal: Principal | None) -> bool:
        """Whether this account must choose a new password before anything else."""
        actor = self.core.actor(principal)
        async with self.core.db.read() as session:
            return bool(await session.scalar(select(User.must_change_password).where(User.id == actor.user_id)))

    async def _revoke_sessions(self, tx: Tx, user_id: str, *, keep: str | None = None) -> list[str]:
        """Revokes the user's sessions (all but `keep`); the caller puts the ids in the change log."""
        ids = list(await tx.session.scalars(select(AuthSession.id).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
            AuthSession.id != (keep or ""))))
        if ids:
            await tx.session.execute(
                update(AuthSession).where(AuthSession.id.in_(ids)).values(revoked_at=self.core.clock()))
        return ids

    # -- reading and changing users -------------------------------------------------------------
    async def get_user(self, *, principal: Principal | None, user_id: str) -> UserRecord:
        actor = self.core.actor(principal)
        async with self.core.db.read() as session:
            user = await session.get(User, user_id) if is_object_id(user_id) else None
        if user is None:
            raise NotFound()
        return cast(UserRecord, self.reads.shaped_for(actor, user))

    async def list_users(self, *, principal: Principal | None) -> list[UserRecord]:
        actor = self.core.actor(principal)
        query = select(User).order_by(User.username)
        if actor.role == Role.VIEWER:  # a ward screen learns no staff username: only itself exists for it
            query = query.where(User.id == actor.user_id)
        async with self.core.db.read() as session:
            users = list(await session.scalars(query))
        return [cast(UserRecord, self.reads.shaped_for(actor, u)) for u in users]

    @audited("update")
    async def update_user(self, *, principal: Principal | None, user_id: str,
                          changes: Mapping[str, object], class_name: str = "_User",
                          request_key: str | None = None) -> UserRecord:
        """Self: email, password. Lead: role, active, showFullNames (for a ward screen)."""
        actor = self.core.actor(principal)
        is_self, is_lead = actor.user_id == user_id, actor.role == Role.LEAD
        allowed = ({"email", "password"} if is_self else set()) | (
            {"role", "active", "showFullNames"} if is_lead else set())
        if not isinstance(changes, Mapping):
            raise InvalidInput("body", "must be an object of fields")
        if actor.role == Role.VIEWER and not is_self:
            raise NotFound()  # as for a missing id: another account does not exist for a viewer
        for name in changes:
            if name not in {"email", "password", "role", "active", "showFullNames", "username"}:
                raise InvalidInput(str(name)[:60], "is not a field of _User", code=ParseCode.INVALID_KEY_NAME)
            if name not in allowed:
                raise PermissionDenied(f"{name}: you may not change it")
        new_hash = None
        if "password" in changes:
            new_hash = await self._hash(self._check_password(changes["password"]))
        check_request_key(request_key)
        async with self.core.write() as tx:
            await self.core.claim_request_key(tx, principal, request_key, "_User", user_id)
            user = await tx.session.get(User, user_id, with_for_update=True) if is_object_id(user_id) else None
            if user is None:
                raise NotFound()
            if "email" in changes:
                email = self._check_email(changes["email"])
                if email != user.email:
                    await self._ensure_unique(tx, email=email)
                user.email = email
            revoked: list[str] = []
            if new_hash:
                # As on /account: the other sessions end (the API's own, that made the change, stays).
                user.password_hash = new_hash
                user.must_change_password = False
                revoked = await self._revoke_sessions(tx, user.id, keep=actor.principal.session_id)
            if "showFullNames" in changes:
                if not isinstance(changes["showFullNames"], bool):
                    raise InvalidInput("showFullNames", "must be true or false")
                user.show_full_names = changes["showFullNames"]
            if "role" in changes:
                user.role = self._check_role(changes["role"])
            if "active" in changes:
                if not isinstance(changes["active"], bool):
                    raise InvalidInput("active", "must be true or false")
                if changes["active"] is False and user.active:
                    revoked = await self._revoke_sessions(tx, user.id)
                user.active = changes["active"]
            tx.audit(principal, "update", "_User", object_id=user.id, detail=",".join(sorted(changes)))
            tx.changes.append(user_mutation(user.id, role=user.role, active=user.active, username=user.username,
                                            full_names=user.show_full_names))
            if revoked:
                tx.changes.append(revoke_mutation(user.id, revoked))
        return cast(UserRecord, self.reads.shaped_for(actor, user))

    @audited("unlock")
    async def unlock_user(self, *, principal: Principal | None, user_id: str) -> None:
        if self.core.role(principal) != Role.LEAD:
            raise PermissionDenied("Only a lead unlocks accounts")
        async with self.core.write() as tx:
            user = await tx.session.get(User, user_id) if is_object_id(user_id) else None
            if user is None:
                raise NotFound()
            row = await tx.session.get(LoginThrottle, user.username_key)
            if row is not None:
                await tx.session.delete(row)
            tx.audit(principal, "unlock", "_User", object_id=user_id)

    async def lock_state(self, *, principal: Principal | None, user_id: str) -> int:
        """Minutes left on a lock (0 when not locked); for the admin page."""
        if self.core.role(principal) != Role.LEAD:
            raise PermissionDenied()
        async with self.core.db.read() as session:
            user = await session.get(User, user_id) if is_object_id(user_id) else None
            row = await session.get(LoginThrottle, user.username_key) if user else None
        if row is None or row.locked_until is None or row.locked_until <= self.core.clock():
            return 0
        return math.ceil((row.locked_until - self.core.clock()).total_seconds() / 60)
