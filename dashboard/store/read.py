"""The one read path for the six classes (Parse's RestQuery): visibility as SQL, hidden fields,
audit, and read types shaped for the reader.

Every find, get and count is filtered by what ACCESS.md lets the principal see (the access index
turns it into an `IN` over visible patients), and returns frozen records (record_types.py), never
table rows: a viewer's copy has no private fields, another user's account no email, and for a
viewer (a ward screen) no other user exists at all.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import false, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from dashboard.access import Principal, Role
from dashboard.errors import InvalidInput, NotFound, ParseCode, PermissionDenied, StoreError
from dashboard.models import Base, Patient, User
from dashboard.record_types import Record, UserRecord
from dashboard.schema import MODELS, PRIVATE_FIELDS
from dashboard.serialize import for_viewer_record, record_from_values, record_of
from dashboard.store.core import Actor, StoreCore, audited
from dashboard.store.query import QueryBuilder, text_problem

MAX_LIMIT = 1000
MAX_SKIP = 2**31 - 1  # the databases' OFFSET is a 64-bit integer; a larger one was a 500
# A caller's find or count runs at most this long on PostgreSQL (statement_timeout).
QUERY_TIMEOUT_SECONDS = 10.0
PG_INVALID_REGEX, PG_QUERY_CANCELED = "2201B", "57014"


def unknown_class(class_name: object) -> StoreError:
    return PermissionDenied(f"class {str(class_name)[:40]!r} is not available")


def is_object_id(value: object) -> bool:
    """Could be an object id: text of at most 16 characters that a database can compare."""
    return isinstance(value, str) and 0 < len(value) <= 16 and not text_problem(value)


class Reads:
    """find, get, count and get_many: the one read path."""

    def __init__(self, core: StoreCore):
        self.core = core

    @staticmethod
    def _only_own_user(actor: Actor) -> bool:
        """A viewer (a shared ward screen) reads no staff usernames: of the users, only its own
        record exists for it (finds, gets, counts, includes, exports and live seeds alike)."""
        return actor.role == Role.VIEWER

    def _visible_condition(self, actor: Actor, class_name: str) -> Any:
        """The SQL filter that keeps a principal to what ACCESS.md lets it see (None: no filter)."""
        if class_name == "_User":
            return User.id == actor.user_id if self._only_own_user(actor) else None
        if class_name == "SessionNote" and actor.role == Role.VIEWER:
            return false()
        visible = self.core.access.visible_patient_ids(actor.principal)
        if visible is None:
            return None
        model = MODELS[class_name]
        column = Patient.id if class_name == "Patient" else model.__table__.c.patient_id
        return column.in_(visible)

    def _hidden_fields(self, actor: Actor, class_name: str) -> frozenset[str]:
        if class_name == "_User" and actor.role != Role.LEAD:
            return frozenset({"email", "active"})
        return PRIVATE_FIELDS if actor.role == Role.VIEWER else frozenset()

    def visible_select(self, actor: Actor, class_name: str, where: object) -> tuple[Any, QueryBuilder]:
        """The read path's statement for what `actor` may see of `class_name` matching `where` (finds,
        counts and the exports all start from it)."""
        if class_name not in MODELS:
            raise unknown_class(class_name)
        builder = QueryBuilder(class_name, hidden=self._hidden_fields(actor, class_name))
        statement = select(MODELS[class_name]).where(builder.where(where))
        visible = self._visible_condition(actor, class_name)
        if visible is not None:
            statement = statement.where(visible)
        return statement, builder

    @staticmethod
    def _patient_of(where: object) -> str | None:
        """The patient a find is about, for its audit row; only what could be an object id (a
        longer value cannot match one, and the audit column could not hold it)."""
        if isinstance(where, Mapping):
            value = where.get("patient") or where.get("objectId")
            if isinstance(value, Mapping):
                value = value.get("objectId")
            if is_object_id(value):
                return value
        return None

    @audited("find")
    async def find(self, *, principal: Principal | None, class_name: str, where: object = None,
                   order: object = None, limit: int = 100, skip: int = 0,
                   live_refresh: bool = False) -> list[Record]:
        """Records matching `where` that the principal may read; never more than 1000.

        `live_refresh`: a pushed update of an open view whose opening was audited; access is
        checked as always, but no audit row is added (one save would otherwise add one per screen).
        """
        actor = self.core.actor(principal)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be a whole number from 0 to {MAX_LIMIT}", code=ParseCode.INVALID_QUERY)
        if not isinstance(skip, int) or isinstance(skip, bool) or not 0 <= skip <= MAX_SKIP:
            raise InvalidInput("skip", f"must be a whole number from 0 to {MAX_SKIP}", code=ParseCode.INVALID_QUERY)
        statement, builder = self.visible_select(actor, class_name, where)
        table = MODELS[class_name].__table__
        # The table's columns, not ORM entities: records are built straight from the rows (no
        # identity map, no instance per row), which is most of a long list's cost.
        statement = statement.with_only_columns(*table.c).order_by(*builder.order(order), table.c.id) \
            .limit(limit).offset(skip)
        async with self._query_guard(), self.core.db.read(timeout_seconds=QUERY_TIMEOUT_SECONDS) as session:
            rows = (await session.execute(statement)).mappings().all() if limit else []
        if not live_refresh:
            await self.core.audit_read(principal, class_name, patient_ref=self._patient_of(where),
                                   detail=f"find:{len(rows)}")
        return [self.shaped(actor, record_from_values(class_name, r)) for r in rows]

    @staticmethod
    @asynccontextmanager
    async def _query_guard() -> AsyncIterator[None]:
        """A caller's query that the database refuses or cancels is bad input (102), not a 500."""
        try:
            yield
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if state == PG_INVALID_REGEX:
                raise InvalidInput("where", "$regex is not a pattern this database can run",
                                   code=ParseCode.INVALID_QUERY) from None
            if state == PG_QUERY_CANCELED:
                raise InvalidInput("where", f"the query ran longer than {QUERY_TIMEOUT_SECONDS:g} s; narrow it",
                                   code=ParseCode.INVALID_QUERY) from None
            raise

    def shaped_for(self, actor: Actor, row: Base) -> Record:
        """The row's read type as this reader may see it."""
        return self.shaped(actor, record_of(row))

    def shaped(self, actor: Actor, record: Record) -> Record:
        """A record as this reader may see it (the one shaping step of every read)."""
        if isinstance(record, UserRecord):
            if actor.user_id == record.id or actor.role == Role.LEAD:
                return record
            return UserRecord(id=record.id, username=record.username, role=record.role,
                              created_at=record.created_at, updated_at=record.updated_at,
                              version=record.version)
        if actor.role == Role.VIEWER:
            return for_viewer_record(record, full_names=self.core.access.full_names(actor.principal))
        return record

    @audited("count")
    async def count(self, *, principal: Principal | None, class_name: str, where: object = None) -> int:
        statement, _ = self.visible_select(self.core.actor(principal), class_name, where)
        async with self._query_guard(), self.core.db.read(timeout_seconds=QUERY_TIMEOUT_SECONDS) as session:
            total = await session.scalar(select(func.count()).select_from(statement.subquery()))
        return int(total or 0)

    async def load_row(self, principal: Principal | None, class_name: str, object_id: object,
                        session: AsyncSession, *, for_update: bool = False) -> Base:
        """The table row if the principal may read it (for a write); otherwise NotFound, as for a
        missing id."""
        actor = self.core.actor(principal)
        if class_name not in MODELS:
            raise unknown_class(class_name)
        if not is_object_id(object_id):
            raise NotFound()
        if class_name == "_User" and self._only_own_user(actor) and object_id != actor.user_id:
            raise NotFound()
        row = await session.get(MODELS[class_name], object_id, with_for_update=for_update,
                                populate_existing=for_update)
        if row is None:
            raise NotFound()
        if not self.core.access.can_read(principal, class_name, _patient_ref(class_name, row), str(object_id)):
            raise NotFound()
        return row

    @audited("read")
    async def get(self, *, principal: Principal | None, class_name: str, object_id: str,
                  live_refresh: bool = False) -> Record:
        """One record, or NotFound; `live_refresh` as for `find`."""
        actor = self.core.actor(principal)
        async with self.core.db.read() as session:
            row = await self.load_row(principal, class_name, object_id, session)
        if class_name != "_User" and not live_refresh:
            await self.core.audit_read(principal, class_name, object_id=object_id,
                                   patient_ref=_patient_ref(class_name, row))
        return self.shaped_for(actor, row)

    async def get_many(self, *, principal: Principal | None, class_name: str,
                       object_ids: Sequence[str]) -> dict[str, Record]:
        """The readable ones among `object_ids` (for `include`): unreadable ids are simply absent."""
        ids = [i for i in set(object_ids) if isinstance(i, str)][:MAX_LIMIT]
        if not ids:
            return {}
        rows = await self.find(principal=principal, class_name=class_name,
                               where={"objectId": {"$in": ids}}, limit=MAX_LIMIT)
        return {r.id: r for r in rows}


def _patient_ref(class_name: str, row: Base) -> str | None:
    """The patient a row belongs to (a patient is its own)."""
    if class_name == "Patient":
        return str(row.__dict__.get("id") or getattr(row, "id"))
    value = getattr(row, "patient_id", None)
    return value if isinstance(value, str) else None
