"""What every part of the store shares (the `StoreCore`): the database, the access index, the hub
and the change feed; the principal check; the write transaction that records its changes;
field validation; audit. The parts (reads, accounts, writes, care teams, caseloads, imports) each
hold one and nothing else, as the template's crud functions take a session."""
from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from dashboard.access import AccessIndex, Principal, Role
from dashboard.catalogue import Catalogue, default_catalogue
from dashboard.changes import INSERT_CHANGE, Change, ChangeFeed, change_row
from dashboard.config import Settings
from dashboard.db import CoreWriteConn, Database, WriteConn
from dashboard.errors import (
    Conflict,
    InvalidInput,
    ParseCode,
    MissingField,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    RepeatedRequest,
    StaleWrite,
    StoreError,
)
from dashboard.hub import Hub
from dashboard.models import AuditEvent, utcnow
from dashboard.passwords import PasswordHasher
from dashboard.presence import PresenceBoard
from dashboard.rate_limit import LoginLimiter, SharedLoginLimiter, SignInLimiter
from dashboard.schema import CLASSES, MODELS, FieldSpec
from dashboard.store.query import text_problem
from dashboard.store.rules import Permissions
from dashboard.store.request_keys import claim_request_key

log = logging.getLogger("ot_tracker.store")
AUDIT = AuditEvent.__table__
P = ParamSpec("P")
R = TypeVar("R")

OUTCOMES: dict[type[StoreError], str] = {
    NotAuthenticated: "unauthenticated",
    NotFound: "not_found",
    PermissionDenied: "denied",
    Conflict: "conflict",
    RateLimited: "rate_limited",
    # A save sent again with its request key: neither a denial nor a second create or change.
    RepeatedRequest: "repeat",
}


@dataclass(frozen=True)
class Actor:
    """A principal whose session is current, with its live role."""

    principal: Principal
    role: Role

    @property
    def user_id(self) -> str:
        return self.principal.user_id


@dataclass
class Tx:
    """One write transaction: its session, and the changes it commits (dashboard/changes.py)."""

    session: AsyncSession
    changes: list[Change] = field(default_factory=list)

    def audit(self, principal: Principal | None, action: str, class_name: str, *,
              object_id: str | None = None, patient_ref: str | None = None,
              detail: str | None = None, address: str | None = None) -> None:
        self.session.add(AuditEvent(
            actor_id=principal.user_id if principal else None, action=action, class_name=class_name,
            object_id=object_id, patient_ref=patient_ref, outcome="ok", detail=detail,
            address=address[:64] if address else None,
        ))


def audited(action: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Adds an audit row for every refused attempt (denied, not found, invalid, conflict)."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except StoreError as exc:
                core = getattr(args[0], "core", None)
                if isinstance(core, StoreCore):
                    await core.audit_refusal(action, kwargs, exc)
                raise

        return wrapper

    return decorate


class StoreCore:
    def __init__(self, db: Database, *, settings: Settings, catalogue: Catalogue | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.settings = settings
        self.catalogue = catalogue or default_catalogue()
        self.clock = clock
        # The index reads the store's clock (tests move it), so sessions age alike everywhere.
        self.access = AccessIndex(clock=lambda: self.clock(), idle_timeout=settings.session_idle_timeout,
                                  viewer_exempt=settings.viewer_sessions_exempt)
        self.hub = Hub(self.access, queue_size=settings.subscriber_queue_size)
        self.feed = ChangeFeed(db, self.access, self.hub, instance_id=settings.instance_id,
                               retention=timedelta(seconds=settings.change_log_retention_seconds))
        self.presence = PresenceBoard(settings.instance_id, ttl=float(settings.presence_ttl_seconds))
        self.presence.attach(self.feed)
        self._audit_pending: list[dict[str, Any]] = []
        self._audit_task: asyncio.Task[None] | None = None
        self.hasher = PasswordHasher(memory_kib=settings.argon2_memory_kib,
                                     time_cost=settings.argon2_time_cost)
        # One sign-in limiter for every channel (pages and API): the store applies it. On PostgreSQL
        # it is counted in the database, shared by every instance.
        self.sign_in_limiter: SignInLimiter = (
            LoginLimiter(settings.login_rate_per_minute, settings.login_address_rate_per_minute) if db.is_sqlite
            else SharedLoginLimiter(db, settings.login_rate_per_minute, settings.login_address_rate_per_minute))

    async def start(self) -> None:
        await self.feed.start()
        self.feed.start_heartbeat()
        self.feed.start_listening()
        self.presence.start()

    async def stop(self) -> None:
        """Stops the change feed's heartbeat and stores every queued read's audit row."""
        await self.presence.stop()
        await self.feed.stop()
        await self.flush_audit()

    # -- principals -----------------------------------------------------------------------------
    def actor(self, principal: Principal | None) -> Actor:
        """The acting principal with its live role, or NotAuthenticated (as the template's
        `CurrentUser`: past this point the principal is never None)."""
        role = self.access.role(principal)
        if role is None or principal is None:
            raise NotAuthenticated()
        return Actor(principal, Role(role))

    def role(self, principal: Principal | None) -> Role:
        return self.actor(principal).role

    def require_sees(self, principal: Principal | None, patient_id: str | None,
                      field: str | None = None) -> Actor:
        actor = self.actor(principal)
        if not isinstance(patient_id, str) or not self.access.sees_patient(principal, patient_id):
            raise NotFound(f"{field}: no such patient" if field else "Object not found.")
        return actor

    def permissions(self, *, principal: Principal | None, patient_id: str | None = None) -> Permissions:
        """What the principal may do now (the live role), on `patient_id` when given: the same rule
        functions the writes enforce (rules.py). NotAuthenticated without a current session;
        NotFound for a patient it cannot see."""
        actor = self.require_sees(principal, patient_id) if patient_id is not None else self.actor(principal)
        return Permissions(user_id=actor.user_id, role=actor.role, patient_id=patient_id,
                           owns=patient_id is not None and self.access.owns(actor.principal, patient_id),
                           full_names=self.access.full_names(actor.principal))

    # -- transactions ---------------------------------------------------------------------------
    @asynccontextmanager
    async def write(self, *, duplicate: Callable[[], StoreError] | None = None) -> AsyncIterator[Tx]:
        """An ORM write transaction. Its changes are inserted as its change_log row, the last
        statement before COMMIT; once committed, the change feed applies them (index, then hub)."""
        async with self.db.write() as session:
            tx = Tx(session)
            try:
                yield tx
                seq = await self.log_changes(session, tx.changes)
                await session.commit()
            except StaleDataError:
                # Another transaction changed the row after this one read it: nothing was written.
                raise StaleWrite() from None
            except IntegrityError:
                # A unique key taken by a write that committed meanwhile (the checks before the
                # insert could not see it): `duplicate` says which, in the caller's words.
                if duplicate is not None:
                    raise duplicate() from None
                raise InvalidInput("body", "conflicts with a record saved at the same moment; try again",
                                   code=ParseCode.DUPLICATE_VALUE) from None
        await self.feed.committed(seq, tx.changes)

    @staticmethod
    async def log_changes(session: AsyncSession, changes: list[Change]) -> int | None:
        if not changes:
            return None
        return int(await session.scalar(INSERT_CHANGE, change_row(changes)))

    @staticmethod
    def log_changes_in_job(w: WriteConn, changes: list[Change]) -> None:
        """A `transact_logged` job's change_log row: call it as the job's last step (its number is
        answered by `transact_logged`; on PostgreSQL the row goes in with its batch's, before COMMIT)."""
        if changes:
            w.log_change(change_row(changes))

    async def claim_request_key(self, tx: Tx, principal: Principal | None, request_key: str | None,
                                 class_name: str, object_id: object) -> None:
        """The ORM path's key claim (request_keys.py): call it first in the transaction."""
        if request_key is None:
            return
        actor = self.actor(principal)
        if not isinstance(object_id, str) or not object_id or len(object_id) > 16 or text_problem(object_id):
            raise NotFound()  # as loading the record would answer
        now, user_id = self.clock(), actor.user_id
        await tx.session.run_sync(lambda s: claim_request_key(
            CoreWriteConn(s.connection()), user_id=user_id, key=request_key, class_name=class_name,
            object_id=object_id, now=now))

    # -- audit ----------------------------------------------------------------------------------
    async def audit_read(self, principal: Principal | None, class_name: str, *,
                          object_id: str | None = None, patient_ref: str | None = None,
                          detail: str | None = None) -> None:
        """Queues a read's audit row; rows are written together, within milliseconds.

        A row per read through SQLite's one writer made every page open wait behind every other
        (hundreds of open pages timed out). Writes and refusals stay in their own transactions.
        """
        self._audit_pending.append(dict(
            at=self.clock(), actor_id=principal.user_id if principal else None, action="read",
            class_name=class_name, object_id=object_id, patient_ref=patient_ref, outcome="ok",
            detail=detail, address=None))
        if self._audit_task is None or self._audit_task.done():
            self._audit_task = asyncio.get_running_loop().create_task(self._write_pending_audit())

    async def _write_pending_audit(self) -> None:
        while self._audit_pending:
            rows, self._audit_pending = self._audit_pending, []
            try:
                await self.db.transact(lambda w, rows=rows: w.insert(AUDIT, rows))
            except DBAPIError:
                # The database refused a row of the batch (a bug: rows are bounded when queued).
                # Written one by one, only the refused ones are lost, and they never block the rest.
                for row in rows:
                    try:
                        await self.db.transact(lambda w, row=row: w.insert(AUDIT, [row]))
                    except DBAPIError:
                        log.exception("an audit row was refused by the database and dropped")
            except Exception:  # noqa: BLE001 - keep the rows; the next read or flush retries
                self._audit_pending[:0] = rows
                log.exception("audit rows not written; %d kept for retry", len(rows))
                return

    async def flush_audit(self) -> None:
        """Waits until every queued read's audit row is stored (before reading the trail, at stop)."""
        task = self._audit_task
        if task is not None and not task.done():
            await task
        await self._write_pending_audit()

    async def audit_refusal(self, action: str, kwargs: Mapping[str, Any], exc: StoreError) -> None:
        principal = kwargs.get("principal")
        outcome = next((o for t, o in OUTCOMES.items() if isinstance(exc, t)), "invalid")
        detail = getattr(exc, "field", None)
        object_id = kwargs.get("object_id") or kwargs.get("patient_id") or kwargs.get("user_id")
        if isinstance(exc, RepeatedRequest):
            object_id = exc.object_id  # the record the first request made or changed
        patient_ref = kwargs.get("patient_id")
        if patient_ref is None and kwargs.get("class_name") == "Patient":
            patient_ref = kwargs.get("object_id")  # a refused attempt on a patient is in its audit view

        def clip(value: object, size: int) -> str | None:
            # Refused input can be anything: keep the audit row within its columns, never fail on it
            # (NUL and lone surrogates, which no database stores, become "?").
            if not isinstance(value, str):
                return None
            value = value[:size]
            return value if not text_problem(value) else "".join(
                "?" if c == "\x00" or "\ud800" <= c <= "\udfff" else c for c in value)

        row = self.audit_row(
            principal if isinstance(principal, Principal) else None, action,
            clip(str(kwargs.get("class_name", "")) or _class_of(action), 32) or "",
            object_id=clip(object_id, 16), patient_ref=clip(patient_ref, 16), detail=clip(detail, 500),
            outcome=outcome)
        row["address"] = clip(kwargs.get("address"), 64)
        await self.db.transact(lambda w: w.insert(AUDIT, [row]))

    def audit_row(self, principal: Principal | None, action: str, class_name: str, *,
                   object_id: str | None = None, patient_ref: str | None = None,
                   detail: str | None = None, outcome: str = "ok") -> dict[str, Any]:
        """An audit row for a `transact` job (every column given, so all rows insert alike)."""
        return dict(at=utcnow(), actor_id=principal.user_id if principal else None, action=action,
                    class_name=class_name, object_id=object_id, patient_ref=patient_ref,
                    outcome=outcome, detail=detail, address=None)

    # -- validation -----------------------------------------------------------------------------
    def clean(self, class_name: str, fields: Mapping[str, object], *, creating: bool,
               allow_server_set_for: str | None = None) -> dict[str, Any]:
        """Type-checks Parse-named fields; returns {attribute: value}. Writes nothing."""
        if not isinstance(fields, Mapping):
            raise InvalidInput("body", "must be an object of fields")
        specs = CLASSES[class_name]
        out: dict[str, Any] = {}
        for name, value in fields.items():
            spec = specs.get(name)
            if spec is None:
                raise InvalidInput(str(name)[:60], f"is not a field of {class_name}", code=ParseCode.INVALID_KEY_NAME)
            if spec.server_set:
                if value is not None and value != allow_server_set_for:
                    raise InvalidInput(name, "is set by the server to the signed-in user")
                continue
            out[spec.attr] = self.check_type(spec, value, class_name)
        if creating:
            for name, spec in specs.items():
                if spec.required and not spec.server_set and out.get(spec.attr) is None:
                    raise MissingField(name)
        return out

    def check_type(self, spec: FieldSpec, value: object, class_name: str | None = None) -> Any:
        if value is None:
            if spec.required:
                raise MissingField(spec.name)
            if class_name is not None and not MODELS[class_name].__table__.c[spec.attr].nullable:
                raise InvalidInput(spec.name, "cannot be cleared; give a value")
            return None
        if spec.kind == "String":
            if not isinstance(value, str):
                raise InvalidInput(spec.name, "must be text")
            problem = text_problem(value)
            if problem:
                raise InvalidInput(spec.name, problem)
            if len(value) > spec.max_length:
                raise InvalidInput(spec.name, f"must be at most {spec.max_length} characters")
            if spec.required and not value.strip():
                raise MissingField(spec.name)
            return value
        if spec.kind == "Number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(spec.name, "must be a number")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int too large for a float: bad input, not a server error
                finite = False
            if not finite:
                raise InvalidInput(spec.name, "must be a finite number")
            return value
        if spec.kind == "Boolean":
            if not isinstance(value, bool):
                raise InvalidInput(spec.name, "must be true or false")
            return value
        if spec.kind == "Date":
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise InvalidInput(spec.name, "must be a date with a time zone")
            return value.astimezone(timezone.utc)
        if spec.kind == "Pointer":
            if not isinstance(value, str) or not value or len(value) > 16 or text_problem(value):
                raise InvalidInput(spec.name, f"must point to a {spec.target.lstrip('_') if spec.target else 'record'}")
            return value
        raise InvalidInput(spec.name, f"unsupported type {spec.kind}")  # pragma: no cover

    def not_in_future(self, field: str, value: datetime | None) -> None:
        if value is not None and value > self.clock() + timedelta(days=1):
            raise InvalidInput(field, "cannot be in the future")

    @staticmethod
    def check_version(field: str, current: object, version: int, expected: int | None) -> None:
        if expected is not None and expected != version:
            raise Conflict(field, current, version)


def _class_of(action: str) -> str:
    return {"login": "_User", "signup": "_User", "caseload": "Patient"}.get(action, "")
