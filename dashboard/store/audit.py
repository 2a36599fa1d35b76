"""The audit log, for leads: a filtered listing in keyset pages, an access report, a CSV export and a
patient's activity. Reading it is itself audited (one row per page read or export, without PHI).

Every query is ordered newest first by (at, id) and served by one of AuditEvent's composite indexes
(dashboard/models.py): a page reads `limit + 1` rows whatever the size of the log, and the names of
the actors come in one batched lookup. A patient is named by its opaque objectId only: the hospital's
identifier, names and dates of birth never enter a row, a CSV or a URL.

A non-lead gets NotFound, as for anything it may not read (ACCESS.md).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, func, literal, select, tuple_

from dashboard.access import Principal, Role
from dashboard.errors import InvalidInput, NotFound, PermissionDenied
from dashboard.models import AuditEvent, User
from dashboard.record_types import AuditRecord
from dashboard.store.core import StoreCore

# What the action filter offers: a group of stored actions, or "denied" (any refused attempt).
READ_ACTIONS = ("read", "find", "count", "caseload")
ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "read": READ_ACTIONS, "create": ("create",), "update": ("update",), "delete": ("delete",),
    "login": ("login",), "logout": ("logout",), "signup": ("signup",), "grant": ("grant",),
    "revoke": ("revoke",), "unlock": ("unlock",), "import": ("import",),
}
DENIED_OUTCOMES = ("denied", "not_found", "unauthenticated")
ACTIONS = tuple(ACTION_GROUPS) + ("denied",)
OUTCOMES = ("ok", "denied", "not_found", "invalid", "conflict", "unauthenticated", "rate_limited", "repeat",
            "wrong_password", "locked")
AUDIT_CLASS = "AuditLog"  # the class named by the audit-of-audit rows
MAX_PAGE = 500
MAX_EXPORT = 100_000
EXPORT_CHUNK = 1_000
MAX_REPORT = 500
CSV_COLUMNS = ("id", "at", "user", "user_id", "action", "class", "object_id", "patient_ref", "outcome",
               "detail", "address")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass(frozen=True)
class AuditCursor:
    """Where a page ends: the (at, id) of its first or last row."""

    at: datetime
    id: int


@dataclass(frozen=True)
class AuditFilter:
    """The listing's filters; None means any. `since` is inclusive, `until` exclusive."""

    user_id: str | None = None
    patient_id: str | None = None
    class_name: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def used(self) -> str:
        """The names of the filters set (never their values), for the audit-of-audit row."""
        return ",".join(name for name, value in vars(self).items() if value is not None) or "none"


@dataclass(frozen=True)
class AuditRow:
    """One audit row as a lead sees it: who (username and id), what, which record, when, the outcome."""

    id: int
    at: datetime
    user_id: str | None
    username: str | None
    action: str
    class_name: str
    object_id: str | None
    patient_ref: str | None  # the patient's opaque objectId
    outcome: str
    detail: str | None  # field names or counts, never values
    address: str | None

    @property
    def cursor(self) -> AuditCursor:
        return AuditCursor(self.at, self.id)

    def csv_values(self) -> tuple[str, ...]:
        return (str(self.id), self.at.isoformat(), self.username or "", self.user_id or "", self.action,
                self.class_name, self.object_id or "", self.patient_ref or "", self.outcome, self.detail or "",
                self.address or "")


@dataclass(frozen=True)
class AuditPage:
    """A page, newest first. `older` continues towards older rows, `newer` back towards newer ones;
    None when there are none that way."""

    rows: list[AuditRow]
    older: AuditCursor | None
    newer: AuditCursor | None


@dataclass(frozen=True)
class AccessReportRow:
    """A patient a user opened in the range: how many reads, the first and the last."""

    patient_ref: str
    reads: int
    first_at: datetime
    last_at: datetime


class AuditLog:
    def __init__(self, core: StoreCore):
        self.core = core

    # -- the checks -----------------------------------------------------------------------------
    def _lead(self, principal: Principal | None) -> None:
        if self.core.role(principal) != Role.LEAD:  # NotAuthenticated without a current session
            raise NotFound()

    @staticmethod
    def _filter(user_id: str | None, patient_id: str | None, class_name: str | None, action: str | None,
                outcome: str | None, since: datetime | None, until: datetime | None) -> AuditFilter:
        for field, value in (("user", user_id), ("patient", patient_id)):
            if value is not None and (not isinstance(value, str) or not _ID.match(value)):
                raise InvalidInput(field, "must be an objectId (letters, digits, - and _, up to 16)")
        if class_name is not None and (not isinstance(class_name, str) or not _NAME.match(class_name)):
            raise InvalidInput("class", "must be a class name (letters, digits and _, up to 32)")
        if action is not None and action not in ACTIONS:
            raise InvalidInput("action", f"must be one of {', '.join(ACTIONS)}")
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidInput("outcome", f"must be one of {', '.join(OUTCOMES)}")
        for field, value in (("from", since), ("to", until)):
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidInput(field, "must be a date and time with a time zone")
        if since is not None and until is not None and until <= since:
            raise InvalidInput("to", "must be after the start of the range")
        return AuditFilter(user_id, patient_id, class_name, action, outcome, since, until)

    @staticmethod
    def _limit(limit: int, most: int = MAX_PAGE) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
            raise InvalidInput("limit", f"must be a whole number from 1 to {most}")
        return limit

    # -- the queries ----------------------------------------------------------------------------
    @staticmethod
    def _where(query: Select[Any], f: AuditFilter) -> Select[Any]:
        a = AuditEvent
        if f.user_id is not None:
            query = query.where(a.actor_id == f.user_id)
        if f.patient_id is not None:
            query = query.where(a.patient_ref == f.patient_id)
        if f.class_name is not None:
            query = query.where(a.class_name == f.class_name)
        if f.action == "denied":
            query = query.where(a.outcome.in_(DENIED_OUTCOMES))
        elif f.action is not None:
            group = ACTION_GROUPS[f.action]
            query = query.where(a.action == group[0] if len(group) == 1 else a.action.in_(group))
        if f.outcome is not None:
            query = query.where(a.outcome == f.outcome)
        if f.since is not None:
            query = query.where(a.at >= f.since)
        if f.until is not None:
            query = query.where(a.at < f.until)
        return query

    async def _rows(self, f: AuditFilter, limit: int, *, after: AuditCursor | None = None,
                    before: AuditCursor | None = None) -> tuple[list[AuditRow], bool]:
        """Up to `limit` rows newest first, older than `after` or newer than `before`; and whether
        there are more beyond them, that way."""
        a = AuditEvent
        key = tuple_(a.at, a.id)
        query = self._where(select(a), f)
        if before is not None:
            query = query.where(key > tuple_(_at(before.at), before.id)).order_by(a.at.asc(), a.id.asc())
        else:
            if after is not None:
                query = query.where(key < tuple_(_at(after.at), after.id))
            query = query.order_by(a.at.desc(), a.id.desc())
        async with self.core.db.read() as session:
            found = list(await session.scalars(query.limit(limit + 1)))
            more = len(found) > limit
            found = found[:limit]
            if before is not None:
                found.reverse()
            names = await self._usernames(session, {r.actor_id for r in found if r.actor_id})
        return [AuditRow(id=r.id, at=r.at, user_id=r.actor_id, username=names.get(r.actor_id or ""),
                         action=r.action, class_name=r.class_name, object_id=r.object_id,
                         patient_ref=r.patient_ref, outcome=r.outcome, detail=r.detail, address=r.address)
                for r in found], more

    @staticmethod
    async def _usernames(session: Any, ids: set[str]) -> dict[str, str]:
        """The usernames of a page's actors, in one query."""
        if not ids:
            return {}
        return dict((await session.execute(select(User.id, User.username).where(User.id.in_(sorted(ids))))).all())

    # -- the verbs ------------------------------------------------------------------------------
    async def audit_page(self, *, principal: Principal | None, user_id: str | None = None,
                         patient_id: str | None = None, class_name: str | None = None, action: str | None = None,
                         outcome: str | None = None, since: datetime | None = None, until: datetime | None = None,
                         after: AuditCursor | None = None, before: AuditCursor | None = None,
                         limit: int = 50) -> AuditPage:
        """One page of the filtered log, newest first: the first page, the one older than `after`
        (the previous page's `older`), or the one newer than `before` (its `newer`)."""
        self._lead(principal)
        f = self._filter(user_id, patient_id, class_name, action, outcome, since, until)
        limit = self._limit(limit)
        if after is not None and before is not None:
            raise InvalidInput("before", "cannot be given with after")
        for field, c in (("after", after), ("before", before)):
            if c is not None and not isinstance(c, AuditCursor):
                raise InvalidInput(field, "must be a cursor of a page")
        await self.core.flush_audit()
        rows, more = await self._rows(f, limit, after=after, before=before)
        await self.core.audit_read(principal, AUDIT_CLASS, detail=f"page;filters={f.used()}")
        if not rows:
            return AuditPage(rows, None, None)
        if before is not None:  # came back towards newer rows: older ones exist (the page it came from)
            return AuditPage(rows, rows[-1].cursor, rows[0].cursor if more else None)
        return AuditPage(rows, rows[-1].cursor if more else None, rows[0].cursor if after is not None else None)

    async def patient_activity(self, *, principal: Principal | None, patient_id: str,
                               limit: int = 50) -> list[AuditRow]:
        """Who viewed and who changed a patient's records, and when: the newest `limit` rows."""
        self._lead(principal)
        f = self._filter(None, patient_id, None, None, None, None, None)
        limit = self._limit(limit)
        await self.core.flush_audit()
        rows, _ = await self._rows(f, limit)
        await self.core.audit_read(principal, AUDIT_CLASS, detail="activity")
        return rows

    async def access_report(self, *, principal: Principal | None, user_id: str, since: datetime | None = None,
                            until: datetime | None = None, limit: int = MAX_REPORT) -> list[AccessReportRow]:
        """Which patients `user_id` opened in the range (successful reads), most recently opened first."""
        self._lead(principal)
        if user_id is None:
            raise InvalidInput("user", "is required")
        f = self._filter(user_id, None, None, "read", "ok", since, until)
        limit = self._limit(limit, MAX_REPORT)
        a = AuditEvent
        last = func.max(a.at)
        query = self._where(select(a.patient_ref, func.count(), func.min(a.at), last), f) \
            .where(a.patient_ref.is_not(None)).group_by(a.patient_ref).order_by(last.desc()).limit(limit)
        await self.core.flush_audit()
        async with self.core.db.read() as session:
            found = (await session.execute(query)).all()
        await self.core.audit_read(principal, AUDIT_CLASS, detail="access_report")
        return [AccessReportRow(ref, n, _aware(first), _aware(newest)) for ref, n, first, newest in found]

    async def audit_csv(self, *, principal: Principal | None, user_id: str | None = None,
                        patient_id: str | None = None, class_name: str | None = None, action: str | None = None,
                        outcome: str | None = None, since: datetime | None = None, until: datetime | None = None,
                        max_rows: int = MAX_EXPORT) -> AsyncIterator[str]:
        """The filtered listing as CSV, newest first: checked and audited now, then read in keyset
        chunks as the caller iterates (never the whole log in memory); at most `max_rows` rows."""
        self._lead(principal)
        f = self._filter(user_id, patient_id, class_name, action, outcome, since, until)
        max_rows = self._limit(max_rows, MAX_EXPORT)
        await self.core.flush_audit()
        # The log as it is now: not this export's own row, nor any row added while it is read.
        start = AuditCursor(self.core.clock(), 0)
        await self.core.audit_read(principal, AUDIT_CLASS, detail=f"export;filters={f.used()}")
        return self._csv_chunks(f, max_rows, start)

    async def _csv_chunks(self, f: AuditFilter, max_rows: int, start: AuditCursor) -> AsyncIterator[str]:
        yield _csv_text([CSV_COLUMNS])
        after, left = start, max_rows
        while left > 0:
            rows, more = await self._rows(f, min(EXPORT_CHUNK, left), after=after)
            if rows:
                yield _csv_text(r.csv_values() for r in rows)
            left -= len(rows)
            if not more or not rows:
                return
            after = rows[-1].cursor

    async def audit_trail(self, *, principal: Principal | None, patient_id: str | None = None,
                          limit: int = 200) -> list[AuditRecord]:
        """The newest raw rows (tests and tools); not itself audited, unlike the lead's views above."""
        if self.core.role(principal) != Role.LEAD:
            raise PermissionDenied("Only a lead reads the audit log")
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(max(limit, 1), 1000))
        if patient_id:
            query = query.where(AuditEvent.patient_ref == patient_id)
        await self.core.flush_audit()
        async with self.core.db.read() as session:
            return [AuditRecord(id=r.id, at=r.at, actor_id=r.actor_id, action=r.action, class_name=r.class_name,
                                object_id=r.object_id, patient_ref=r.patient_ref, outcome=r.outcome,
                                detail=r.detail, address=r.address)
                    for r in await session.scalars(query)]


def _at(value: datetime) -> Any:
    """A cursor's time as a bound value of the column's type (UTC; naive on SQLite)."""
    return literal(value, AuditEvent.__table__.c.at.type)


def _aware(value: Any) -> datetime:
    """An aggregate's time, timezone-aware UTC as the column reads it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


FREE_TEXT = frozenset(CSV_COLUMNS.index(c) for c in ("user", "detail", "address"))


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (a refused field name can be anything)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_text(rows: Any) -> str:
    """CSV lines; the free-text columns made safe to open (ids and names of classes are checked shapes)."""
    out = io.StringIO()
    csv.writer(out).writerows([spreadsheet_safe(v) if i in FREE_TEXT else v for i, v in enumerate(row)] for row in rows)
    return out.getvalue()


__all__: Sequence[str] = ("AuditLog", "AuditCursor", "AuditFilter", "AuditRow", "AuditPage", "AccessReportRow",
                          "ACTIONS", "OUTCOMES", "AUDIT_CLASS")
