"""The one read path and the one write path for the six classes (Parse's RestQuery and RestWrite).

Per-class write rules follow shared/spec/ACCESS.md, table "Per class".
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from dashboard.access import CONTRIBUTOR, LEAD, THERAPIST, VIEWER, Principal
from dashboard.db import WriteConn
from dashboard.errors import InvalidInput, MissingField, NotFound, PermissionDenied, StoreError
from dashboard.hub import Event
from dashboard.models import (
    AuditEvent,
    Base,
    CareTeamMember,
    EquipmentLog,
    MobilityScore,
    Patient,
    SessionNote,
    StatusHistory,
    User,
    new_object_id,
    utcnow,
)
from dashboard.schema import CLASSES, MODELS, PATIENT_RECORDS, PRIVATE_FIELDS
from dashboard.serialize import initials, to_parse
from dashboard.store.accounts import AccountsMixin
from dashboard.store.base import Tx, audited
from dashboard.store.query import QueryBuilder, text_problem
from dashboard.store.request_keys import check_request_key, claim_request_key
from dashboard.store.summaries import (
    LOCK_PATIENT,
    NEXT_HISTORY_SEQUENCE,
    NOTE_PATIENT,
    lock_patient,
    patient_activity_upsert,
    refresh_patient_activity,
    refresh_score_summary,
    score_summary_upsert,
)

MAX_LIMIT = 1000
MAX_SKIP = 2**31 - 1  # the databases' OFFSET is a 64-bit integer; a larger one was a 500
# A caller's find or count runs at most this long on PostgreSQL (statement_timeout).
QUERY_TIMEOUT_SECONDS = 10.0
PG_INVALID_REGEX, PG_QUERY_CANCELED = "2201B", "57014"
WRITERS = (LEAD, THERAPIST, CONTRIBUTOR)  # who may add records to patients they see
PATIENT_OWNER_FIELDS = {"displayName", "dateOfBirth", "mobilityStatus"}
PATIENT_LEAD_FIELDS = {"primaryTherapist", "patientId", "archived"}


def _unknown_class(class_name: object) -> StoreError:
    return PermissionDenied(f"class {str(class_name)[:40]!r} is not available")


class RecordsMixin(AccountsMixin):
    # ======================================================================== reads
    def _visible_condition(self, principal: Principal | None, class_name: str) -> Any:
        """The SQL filter that keeps a principal to what ACCESS.md lets it see."""
        role = self._role(principal)
        model = MODELS[class_name]
        if class_name == "_User":
            return None
        if class_name == "SessionNote" and role == VIEWER:
            return False
        visible = self.access.visible_patient_ids(principal)
        if visible is None:
            return None
        column = Patient.id if class_name == "Patient" else model.patient_id  # type: ignore[attr-defined]
        return column.in_(visible)

    def _hidden_fields(self, principal: Principal | None, class_name: str) -> frozenset[str]:
        role = self.access.role(principal)
        if class_name == "_User" and role != LEAD:
            return frozenset({"email", "active"})
        return PRIVATE_FIELDS if role == VIEWER else frozenset()

    def _select(self, principal: Principal | None, class_name: str, where: object) -> Any:
        if class_name not in MODELS:
            raise _unknown_class(class_name)
        builder = QueryBuilder(class_name, hidden=self._hidden_fields(principal, class_name))
        visible = self._visible_condition(principal, class_name)
        model = MODELS[class_name]
        statement = select(model).where(builder.where(where))
        if visible is False:
            statement = statement.where(False)  # type: ignore[arg-type]
        elif visible is not None:
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
            if isinstance(value, str) and 0 < len(value) <= 16 and not text_problem(value):
                return value
        return None

    @audited("find")
    async def find(self, *, principal: Principal | None, class_name: str, where: object = None,
                   order: object = None, limit: int = 100, skip: int = 0,
                   live_refresh: bool = False) -> list[Base]:
        """Records matching `where` that the principal may read; never more than 1000.

        `live_refresh`: a pushed update of an open view whose opening was audited; access is
        checked as always, but no audit row is added (one save would otherwise add one per screen).
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be a whole number from 0 to {MAX_LIMIT}", code=102)
        if not isinstance(skip, int) or isinstance(skip, bool) or not 0 <= skip <= MAX_SKIP:
            raise InvalidInput("skip", f"must be a whole number from 0 to {MAX_SKIP}", code=102)
        statement, builder = self._select(principal, class_name, where)
        model = MODELS[class_name]
        statement = statement.order_by(*builder.order(order), model.id).limit(limit).offset(skip)
        async with self._query_guard(), self.db.read(timeout_seconds=QUERY_TIMEOUT_SECONDS) as session:
            rows = list(await session.scalars(statement)) if limit else []
        if not live_refresh:
            await self._audit_read(principal, class_name, patient_ref=self._patient_of(where),
                                   detail=f"find:{len(rows)}")
        if class_name == "_User":
            return [self._user_view(principal, r) for r in rows]  # type: ignore[arg-type,misc]
        return [self._shaped_for(principal, class_name, r) for r in rows]

    @staticmethod
    @asynccontextmanager
    async def _query_guard() -> AsyncIterator[None]:
        """A caller's query that the database refuses or cancels is bad input (102), not a 500."""
        try:
            yield
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
            if state == PG_INVALID_REGEX:
                raise InvalidInput("where", "$regex is not a pattern this database can run", code=102) from None
            if state == PG_QUERY_CANCELED:
                raise InvalidInput("where", f"the query ran longer than {QUERY_TIMEOUT_SECONDS:g} s; narrow it",
                                   code=102) from None
            raise

    def _shaped_for(self, principal: Principal | None, class_name: str, row: Base) -> Base:
        """A viewer (a ward screen) gets a detached copy without PHI: no patientId, date of birth
        or free text, and initials unless a lead turned names on. Everyone else gets the row."""
        if self.access.role(principal) != VIEWER:
            return row
        model = type(row)
        copy = model(**{c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs})  # type: ignore[attr-defined]
        for spec in CLASSES[class_name].values():
            if spec.private:
                setattr(copy, spec.attr, None)
        if isinstance(copy, Patient) and not self.access.full_names(principal):  # type: ignore[arg-type]
            copy.display_name = initials(copy.display_name)
        return copy

    @audited("count")
    async def count(self, *, principal: Principal | None, class_name: str, where: object = None) -> int:
        statement, _ = self._select(principal, class_name, where)
        async with self._query_guard(), self.db.read(timeout_seconds=QUERY_TIMEOUT_SECONDS) as session:
            total = await session.scalar(select(func.count()).select_from(statement.subquery()))
        return int(total or 0)

    async def _load_readable(self, principal: Principal | None, class_name: str, object_id: object,
                             *, for_update: bool = False, session=None) -> Base:
        """The row if the principal may read it; otherwise NotFound, as for a missing id."""
        self._role(principal)
        if class_name not in MODELS:
            raise _unknown_class(class_name)
        if not isinstance(object_id, str) or not object_id or len(object_id) > 16 or text_problem(object_id):
            raise NotFound()
        model = MODELS[class_name]
        if session is None:
            async with self.db.read() as s:
                row = await s.get(model, object_id)
        else:
            row = await session.get(model, object_id, with_for_update=for_update, populate_existing=True)
        if row is None:
            raise NotFound()
        patient_id = row.id if class_name == "Patient" else getattr(row, "patient_id", None)
        if not self.access.can_read(principal, class_name, patient_id, row.id):  # type: ignore[attr-defined]
            raise NotFound()
        return row

    @audited("read")
    async def get(self, *, principal: Principal | None, class_name: str, object_id: str,
                  live_refresh: bool = False) -> Base:
        """One record, or NotFound; `live_refresh` as for `find`."""
        row = await self._load_readable(principal, class_name, object_id)
        if class_name == "_User":
            return self._user_view(principal, row)  # type: ignore[arg-type]
        if not live_refresh:
            await self._audit_read(principal, class_name, object_id=object_id,
                                   patient_ref=_patient_ref(class_name, row))
        return self._shaped_for(principal, class_name, row)

    async def get_many(self, *, principal: Principal | None, class_name: str,
                       object_ids: Sequence[str]) -> dict[str, Base]:
        """The readable ones among `object_ids` (for `include`): unreadable ids are simply absent."""
        ids = [i for i in set(object_ids) if isinstance(i, str)][:MAX_LIMIT]
        if not ids:
            return {}
        rows = await self.find(principal=principal, class_name=class_name,
                               where={"objectId": {"$in": ids}}, limit=MAX_LIMIT)
        return {r.id: r for r in rows}  # type: ignore[attr-defined]

    # ======================================================================== writes
    @audited("create")
    async def create(self, *, principal: Principal | None, class_name: str,
                     fields: Mapping[str, object], request_key: str | None = None) -> Base:
        """`request_key`: the save's idempotency key (request_keys.py); a repeat raises RepeatedRequest."""
        check_request_key(request_key)
        if class_name == "_User":
            data = dict(fields) if isinstance(fields, Mapping) else {}
            return await self.create_user(principal=principal, username=data.get("username"),  # type: ignore[arg-type]
                                          email=data.get("email"), password=data.get("password"),  # type: ignore[arg-type]
                                          role=data.get("role", "contributor"),  # type: ignore[arg-type]
                                          request_key=request_key)
        if class_name == "Patient":
            return await self._create_patient(principal, fields, request_key)
        if class_name == "StatusHistory":
            patient = fields.get("patient") if isinstance(fields, Mapping) else None
            self._require_sees(principal, patient if isinstance(patient, str) else None, "patient")
            raise PermissionDenied("StatusHistory is written by the store with each status change")
        if class_name not in PATIENT_RECORDS:
            self._role(principal)
            raise _unknown_class(class_name)
        return await self._create_record(principal, class_name, fields, request_key)

    async def _create_patient(self, principal: Principal | None, fields: Mapping[str, object],
                              request_key: str | None) -> Patient:
        role = self._role(principal)
        assert principal is not None
        if role not in (LEAD, THERAPIST):
            raise PermissionDenied("Only a lead or a therapist adds patients")
        values = self._clean("Patient", fields, creating=True)
        if role == THERAPIST and values["primary_therapist_id"] != principal.user_id:
            raise PermissionDenied("primaryTherapist: a therapist adds patients as their own")
        if values.get("archived"):
            raise InvalidInput("archived", "a new patient cannot be archived")
        values["mobility_status"] = self.catalogue.term("mobilityStatus", values["mobility_status"])
        self._not_in_future("dateOfBirth", values.get("date_of_birth"))
        self._check_therapist(values["primary_therapist_id"])
        patient = Patient(id=new_object_id(), **values)
        try:
            async with self._write() as tx:
                await self._claim_request_key(tx, principal, request_key, "Patient", patient.id)
                if await tx.session.scalar(select(Patient.id).where(Patient.patient_id == values["patient_id"])):
                    raise self._patient_id_taken(role)
                tx.session.add(patient)
                await tx.session.flush()
                await self._add_history(tx, principal, patient.id, "mobilityStatus", None,
                                        patient.mobility_status, "admitted")
                tx.audit(principal, "create", "Patient", object_id=patient.id, patient_ref=patient.id)
                therapist = patient.primary_therapist_id
                self._access_change(tx, {therapist} | self._leads(), lambda: self.access.put_patient(
                    patient.id, primary_therapist_id=therapist))
                tx.events.append(Event("create", "Patient", patient.id, patient.id, to_parse(patient)))
        except IntegrityError:  # a concurrent create took the id between the check and the insert
            raise self._patient_id_taken(role) from None
        return patient

    @staticmethod
    def _patient_id_taken(role: str) -> InvalidInput:
        """A lead sees every patient and is told plainly. Anyone else gets one answer whether or not
        they can see the patient holding that id (M1: no existence oracle beyond the unique
        constraint itself); a lead resolves the conflict."""
        if role == LEAD:
            return InvalidInput("patientId", "already belongs to another patient", code=137)
        return InvalidInput("patientId", "cannot be used for a new patient; ask a lead to check this id", code=137)

    def _equipment_status(self, value: object) -> str:
        """The vocabulary is "equipmentStatus"; the field the caller sent is `status`."""
        try:
            return self.catalogue.term("equipmentStatus", value)
        except InvalidInput as exc:
            raise InvalidInput("status", exc.rule) from None

    def _leads(self) -> set[str]:
        return {uid for uid, u in self.access._users.items() if u.role == LEAD and u.active}

    def _check_therapist(self, user_id: str) -> None:
        user = self.access.user(user_id)
        if user is None or not user.active or user.role != THERAPIST:
            raise InvalidInput("primaryTherapist", "must be an active therapist")

    def _new_record_values(self, principal: Principal | None, class_name: str,
                           fields: Mapping[str, object]) -> dict[str, Any]:
        """Every rule for a new score, note or equipment log: the attributes to insert, or an error.

        The one place these rules live: single creates and bulk imports both come through here.
        """
        self._role(principal)  # no session: NotAuthenticated, before anything else
        assert principal is not None
        values = self._clean(class_name, fields, creating=True, allow_server_set_for=principal.user_id)
        role = self._require_sees(principal, values["patient_id"], "patient")
        if role not in WRITERS:
            raise PermissionDenied(f"A {role} account cannot add records")
        if class_name == "MobilityScore":
            measure = self.catalogue.measure(values["score_type"])
            values["score_value"] = measure.validate(values["score_value"])
            self._not_in_future("scoreDate", values["score_date"])
            if values.get("entered_in_error"):
                raise InvalidInput("enteredInError", "a new score cannot be entered in error")
            values.pop("error_reason", None)
            values.update(recorded_by_id=principal.user_id, entered_in_error=False)
        elif class_name == "SessionNote":
            values["session_type"] = self.catalogue.term("sessionType", values["session_type"])
            self._not_in_future("sessionDate", values["session_date"])
            values["author_id"] = principal.user_id
        else:
            values["status"] = self._equipment_status(values["status"])
            if values["status"] != "checked_out":
                raise InvalidInput("status", "a new equipment log starts as checked_out")
            values["checked_out_at"] = values.get("checked_out_at") or self.clock()
            self._not_in_future("checkedOutAt", values["checked_out_at"])
            if values.get("returned_at") is not None:
                raise InvalidInput("returnedAt", "is set when the equipment is returned")
            values["logged_by_id"] = principal.user_id
        return values

    async def _create_record(self, principal: Principal | None, class_name: str,
                             fields: Mapping[str, object], request_key: str | None = None) -> Base:
        """A score, note or equipment log with its read model, history and audit row, as one
        `transact` job: Core inserts, no ORM unit of work, batched with other creates on SQLite."""
        values = self._new_record_values(principal, class_name, fields)
        assert principal is not None
        model = MODELS[class_name]
        now = utcnow()
        values = {"id": new_object_id(), "created_at": now, "updated_at": now, "version": 1, **values}
        row: Base = model(**values)
        patient_id, object_id = values["patient_id"], values["id"]
        audit = self._audit_row(principal, "create", class_name, object_id=object_id, patient_ref=patient_id)
        history: dict[str, Any] | None = None
        if class_name == "EquipmentLog":
            history = {"id": new_object_id(), "patient_id": patient_id, "status_type": "equipmentStatus",
                       "from_value": None, "to_value": "checked_out", "changed_by_id": principal.user_id,
                       "change_reason": None, "equipment_log_id": object_id, "created_at": now,
                       "updated_at": now}
        table = model.__table__  # type: ignore[attr-defined]
        now_for_key = self.clock()

        def job(w: WriteConn) -> tuple[int, int] | None:
            if request_key is not None:  # first: a refusal below rolls the claim back with the rest
                claim_request_key(w, user_id=principal.user_id, key=request_key, class_name=class_name,
                                  object_id=object_id, now=now_for_key)
            if w.dialect != "sqlite":  # as lock_patient does for ORM sessions
                w.fetch(LOCK_PATIENT, {"patient_id": patient_id})
            if class_name == "SessionNote" and values.get("amends_id"):
                amended = w.fetch(NOTE_PATIENT, {"note_id": values["amends_id"]})
                if not amended or amended[0][0] != patient_id:
                    raise NotFound("amends: no such note for this patient")
            w.insert(table, [values])
            activity = None
            if class_name == "MobilityScore":
                w.fetch(score_summary_upsert(w.dialect), {"patient_id": patient_id,
                                                          "score_type": values["score_type"]})
            else:
                [activity] = w.fetch(patient_activity_upsert(w.dialect), {"patient_id": patient_id})
            if history is not None:
                [(history["sequence"],)] = w.fetch(NEXT_HISTORY_SEQUENCE, {"patient_id": patient_id})
                w.insert(StatusHistory.__table__, [history])
            w.insert(AuditEvent.__table__, [audit])
            return activity

        activity = await self.db.transact(job)
        # Committed: now, and only now, tell the subscribers (in the order the ORM path used).
        if activity is not None:
            self.hub.publish(_activity_event(patient_id, *activity))
        if history is not None:
            self.hub.publish(Event("create", "StatusHistory", history["id"], patient_id,
                                   to_parse(StatusHistory(**history))))
        self.hub.publish(Event("create", class_name, object_id, patient_id, to_parse(row)))
        return row

    @staticmethod
    async def _refresh_summaries(tx: Tx, row: Base) -> None:
        """Keeps the caseload's read models exact, inside the same transaction as the write."""
        if isinstance(row, MobilityScore):
            await tx.session.flush()
            await refresh_score_summary(tx.session, row.patient_id, row.score_type)
        elif isinstance(row, (SessionNote, EquipmentLog)):
            await tx.session.flush()
            activity = await refresh_patient_activity(tx.session, row.patient_id)
            tx.events.append(_activity_event(row.patient_id, *activity))

    async def _add_history(self, tx: Tx, principal: Principal, patient_id: str, status_type: str,
                           from_value: str | None, to_value: str, reason: str | None,
                           equipment_log_id: str | None = None) -> StatusHistory:
        await lock_patient(tx.session, patient_id)  # the sequence is per patient
        sequence = await tx.session.scalar(NEXT_HISTORY_SEQUENCE, {"patient_id": patient_id})
        row = StatusHistory(patient_id=patient_id, status_type=status_type, from_value=from_value,
                            to_value=to_value, changed_by_id=principal.user_id, change_reason=reason,
                            equipment_log_id=equipment_log_id, sequence=sequence)
        tx.session.add(row)
        await tx.session.flush()
        tx.events.append(Event("create", "StatusHistory", row.id, patient_id, to_parse(row)))
        return row

    @audited("update")
    async def update(self, *, principal: Principal | None, class_name: str, object_id: str,
                     changes: Mapping[str, object], expected_version: int | None = None,
                     reason: str | None = None, request_key: str | None = None) -> Base:
        """Changes what ACCESS.md allows; a stale `expected_version` raises Conflict; a repeated
        `request_key` raises RepeatedRequest (checked first, so a repeat is never a Conflict)."""
        check_request_key(request_key)
        if class_name == "_User":
            return await self.update_user(principal=principal, user_id=object_id, changes=changes,
                                          request_key=request_key)
        if class_name not in MODELS:
            self._role(principal)
            raise _unknown_class(class_name)
        if not isinstance(changes, Mapping):
            raise InvalidInput("body", "must be an object of fields")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
            raise InvalidInput("changeReason", "must be text of at most 2000 characters")
        if reason is not None and text_problem(reason):
            raise InvalidInput("changeReason", text_problem(reason) or "")
        assert principal is not None or True
        async with self._write() as tx:
            await self._claim_request_key(tx, principal, request_key, class_name, object_id)
            row = await self._load_readable(principal, class_name, object_id, for_update=True,
                                            session=tx.session)
            assert principal is not None
            before = to_parse(row)
            for name in changes:
                if name not in CLASSES[class_name]:
                    raise InvalidInput(str(name)[:60], f"is not a field of {class_name}", code=105)
            if class_name == "Patient":
                await self._update_patient(tx, principal, row, changes, expected_version, reason)  # type: ignore[arg-type]
            elif class_name == "MobilityScore":
                self._update_score(principal, row, changes)  # type: ignore[arg-type]
            elif class_name == "SessionNote":
                self._update_note(principal, row, changes)  # type: ignore[arg-type]
            elif class_name == "EquipmentLog":
                await self._update_equipment(tx, principal, row, changes, reason)  # type: ignore[arg-type]
            else:
                raise PermissionDenied(f"{class_name} is never changed")
            await self._refresh_summaries(tx, row)
            if expected_version is not None and class_name != "Patient":
                self._check_version(next(iter(changes), "version"), None, row.version, expected_version)  # type: ignore[attr-defined]
            await tx.session.flush()
            patient_id = row.id if class_name == "Patient" else row.patient_id  # type: ignore[attr-defined]
            tx.audit(principal, "update", class_name, object_id=row.id, patient_ref=patient_id,  # type: ignore[attr-defined]
                     detail=",".join(sorted(str(k) for k in changes))[:500])
            tx.events.append(Event("update", class_name, row.id, patient_id, to_parse(row), before))  # type: ignore[attr-defined]
        return row

    async def _update_patient(self, tx: Tx, principal: Principal, patient: Patient,
                              changes: Mapping[str, object], expected_version: int | None,
                              reason: str | None) -> None:
        role = self._role(principal)
        for name in changes:
            if name in PATIENT_LEAD_FIELDS and role != LEAD:
                raise PermissionDenied(f"{name}: only a lead may change it")
            if name in PATIENT_OWNER_FIELDS and not (role == LEAD or self.access.owns(principal, patient.id)):
                raise PermissionDenied(f"{name}: only a lead or the owning therapist may change it")
            if name not in CLASSES["Patient"]:
                raise InvalidInput(str(name)[:60], "is not a field of Patient", code=105)
        values = self._clean("Patient", changes, creating=False)
        if "mobility_status" in values:
            values["mobility_status"] = self.catalogue.term("mobilityStatus", values["mobility_status"])
        if "date_of_birth" in values:
            self._not_in_future("dateOfBirth", values["date_of_birth"])
        first = next(iter(changes), "mobilityStatus")
        current = getattr(patient, CLASSES["Patient"][first].attr) if first in CLASSES["Patient"] else None
        self._check_version(first, current, patient.version, expected_version)
        if "patient_id" in values and values["patient_id"] != patient.patient_id:
            if await tx.session.scalar(select(Patient.id).where(Patient.patient_id == values["patient_id"])):
                raise self._patient_id_taken(role)
        new_therapist = values.get("primary_therapist_id")
        if new_therapist is not None and new_therapist != patient.primary_therapist_id:
            self._check_therapist(new_therapist)
            old = patient.primary_therapist_id
            self._access_change(tx, {old, new_therapist}, lambda: self.access.put_patient(
                patient.id, primary_therapist_id=new_therapist))
        old_status = patient.mobility_status
        for attr, value in values.items():
            setattr(patient, attr, value)
        if patient.mobility_status != old_status:
            await self._add_history(tx, principal, patient.id, "mobilityStatus", old_status,
                                    patient.mobility_status, reason)

    def _update_score(self, principal: Principal, score: MobilityScore, changes: Mapping[str, object]) -> None:
        role = self._role(principal)
        if set(changes) - {"enteredInError", "errorReason"}:
            raise PermissionDenied("Scores are never edited; mark one entered-in-error instead")
        if not (role == LEAD or (score.recorded_by_id == principal.user_id and role in WRITERS)):
            raise PermissionDenied("Only the recorder or a lead marks a score entered-in-error")
        if changes.get("enteredInError") is not True:
            raise InvalidInput("enteredInError", "can only be set to true")
        reason = changes.get("errorReason")
        if not isinstance(reason, str) or not reason.strip():
            raise MissingField("errorReason")
        if len(reason) > 2000:
            raise InvalidInput("errorReason", "must be at most 2000 characters")
        if score.entered_in_error:
            raise InvalidInput("enteredInError", "this score is already marked entered-in-error")
        score.entered_in_error = True
        score.error_reason = reason.strip()
        score.error_marked_by_id = principal.user_id

    def _update_note(self, principal: Principal, note: SessionNote, changes: Mapping[str, object]) -> None:
        role = self._role(principal)
        if set(changes) != {"followUpNeeded"}:
            raise PermissionDenied("Note text is never edited; add an addendum instead")
        if role not in WRITERS:
            raise PermissionDenied(f"A {role} account cannot change notes")
        if not isinstance(changes["followUpNeeded"], bool):
            raise InvalidInput("followUpNeeded", "must be true or false")
        if changes["followUpNeeded"] is not False:
            raise PermissionDenied("followUpNeeded: a follow-up can only be cleared")
        note.follow_up_needed = False

    async def _update_equipment(self, tx: Tx, principal: Principal, log: EquipmentLog,
                                changes: Mapping[str, object], reason: str | None) -> None:
        role = self._role(principal)
        for name in changes:
            if name in ("equipmentName", "serialNumber"):
                if role != LEAD:
                    raise PermissionDenied(f"{name}: only a lead may change it")
            elif name in ("status", "returnedAt"):
                if role not in WRITERS:
                    raise PermissionDenied(f"A {role} account cannot change equipment")
            elif name in CLASSES["EquipmentLog"]:
                raise PermissionDenied(f"{name}: cannot be changed")
            else:
                raise InvalidInput(str(name)[:60], "is not a field of EquipmentLog", code=105)
        values = self._clean("EquipmentLog", changes, creating=False)
        old_status = log.status
        if "status" in values:
            values["status"] = self._equipment_status(values["status"])
            if values["status"] == "returned" and "returned_at" not in values:
                values["returned_at"] = self.clock()
            if values["status"] == "checked_out":
                values["returned_at"] = None
        if values.get("returned_at") is not None and log.checked_out_at and values["returned_at"] < log.checked_out_at:
            raise InvalidInput("returnedAt", "cannot be before checkedOutAt")
        for attr, value in values.items():
            setattr(log, attr, value)
        if log.status != old_status:
            await self._add_history(tx, principal, log.patient_id, "equipmentStatus", old_status,
                                    log.status, reason, equipment_log_id=log.id)

    @audited("delete")
    async def delete(self, *, principal: Principal | None, class_name: str, object_id: str) -> None:
        """Nothing is ever deleted: leads archive patients and deactivate users."""
        await self._load_readable(principal, class_name, object_id)
        raise PermissionDenied(f"{class_name} records are never deleted")

    # ======================================================================== care teams
    async def _may_manage_team(self, principal: Principal | None, patient_id: str) -> None:
        role = self._require_sees(principal, patient_id)
        if not (role == LEAD or self.access.owns(principal, patient_id)):
            raise PermissionDenied("Only a lead or the owning therapist changes the care team")

    @audited("grant")
    async def add_care_team_member(self, *, principal: Principal | None, patient_id: str,
                                   user_id: str) -> None:
        await self._may_manage_team(principal, patient_id)
        member = self.access.user(user_id) if isinstance(user_id, str) else None
        if member is None or not member.active:
            raise InvalidInput("member", "must be an active user")
        async with self._write() as tx:
            exists = await tx.session.get(CareTeamMember, (patient_id, user_id))
            if exists is None:
                tx.session.add(CareTeamMember(patient_id=patient_id, user_id=user_id,
                                              granted_by_id=principal.user_id, granted_at=self.clock()))  # type: ignore[union-attr]
                tx.audit(principal, "grant", "CareTeam", object_id=user_id, patient_ref=patient_id)
                self._access_change(tx, {user_id}, lambda: self.access.add_member(patient_id, user_id))

    @audited("revoke")
    async def remove_care_team_member(self, *, principal: Principal | None, patient_id: str,
                                      user_id: str) -> None:
        await self._may_manage_team(principal, patient_id)
        async with self._write() as tx:
            row = await tx.session.get(CareTeamMember, (patient_id, user_id))
            if row is None:
                raise NotFound("member: not on this care team")
            await tx.session.delete(row)
            tx.audit(principal, "revoke", "CareTeam", object_id=user_id, patient_ref=patient_id)
            self._access_change(tx, {user_id}, lambda: self.access.remove_member(patient_id, user_id))

    async def care_team(self, *, principal: Principal | None, patient_id: str) -> list[tuple[User, datetime]]:
        """Members with when they were granted; usernames and roles only for non-leads."""
        self._require_sees(principal, patient_id)
        async with self.db.read() as session:
            rows = (await session.execute(
                select(User, CareTeamMember.granted_at).join(CareTeamMember, CareTeamMember.user_id == User.id)
                .where(CareTeamMember.patient_id == patient_id).order_by(User.username))).all()
        return [(self._user_view(principal, u), at) for u, at in rows]  # type: ignore[arg-type]

    # ======================================================================== convenience
    async def change_status(self, *, principal: Principal | None, patient_id: str, status: str,
                            reason: str | None, expected_version: int | None = None,
                            request_key: str | None = None) -> Patient:
        return await self.update(principal=principal, class_name="Patient", object_id=patient_id,  # type: ignore[return-value]
                                 changes={"mobilityStatus": status}, expected_version=expected_version,
                                 reason=reason, request_key=request_key)

    async def record_score(self, *, principal: Principal | None, patient_id: str, score_type: str,
                           value: float, score_date: datetime | None = None,
                           notes: str | None = None, request_key: str | None = None) -> MobilityScore:
        fields: dict[str, object] = {"patient": patient_id, "scoreType": score_type, "scoreValue": value,
                                     "scoreDate": score_date or self.clock()}
        if notes:
            fields["notes"] = notes
        return await self.create(principal=principal, class_name="MobilityScore", fields=fields,  # type: ignore[return-value]
                                 request_key=request_key)

    async def add_note(self, *, principal: Principal | None, patient_id: str, session_type: str,
                       text: str, follow_up: bool = False, session_date: datetime | None = None,
                       amends: str | None = None, request_key: str | None = None) -> SessionNote:
        fields: dict[str, object] = {"patient": patient_id, "sessionType": session_type, "noteText": text,
                                     "followUpNeeded": follow_up, "sessionDate": session_date or self.clock()}
        if amends:
            fields["amends"] = amends
        return await self.create(principal=principal, class_name="SessionNote", fields=fields,  # type: ignore[return-value]
                                 request_key=request_key)

    async def check_out_equipment(self, *, principal: Principal | None, patient_id: str, name: str,
                                  serial_number: str | None = None, request_key: str | None = None) -> EquipmentLog:
        fields: dict[str, object] = {"patient": patient_id, "equipmentName": name, "status": "checked_out"}
        if serial_number:
            fields["serialNumber"] = serial_number
        return await self.create(principal=principal, class_name="EquipmentLog", fields=fields,  # type: ignore[return-value]
                                 request_key=request_key)

    async def return_equipment(self, *, principal: Principal | None, log_id: str,
                               request_key: str | None = None) -> EquipmentLog:
        return await self.update(principal=principal, class_name="EquipmentLog", object_id=log_id,  # type: ignore[return-value]
                                 changes={"status": "returned"}, request_key=request_key)

    async def mark_score_in_error(self, *, principal: Principal | None, score_id: str, reason: str,
                                  request_key: str | None = None) -> MobilityScore:
        return await self.update(principal=principal, class_name="MobilityScore", object_id=score_id,  # type: ignore[return-value]
                                 changes={"enteredInError": True, "errorReason": reason}, request_key=request_key)

    async def clear_follow_up(self, *, principal: Principal | None, note_id: str,
                              request_key: str | None = None) -> SessionNote:
        return await self.update(principal=principal, class_name="SessionNote", object_id=note_id,  # type: ignore[return-value]
                                 changes={"followUpNeeded": False}, request_key=request_key)

    async def assign_therapist(self, *, principal: Principal | None, patient_id: str, therapist_id: str,
                               request_key: str | None = None) -> Patient:
        return await self.update(principal=principal, class_name="Patient", object_id=patient_id,  # type: ignore[return-value]
                                 changes={"primaryTherapist": therapist_id}, request_key=request_key)


def _activity_event(patient_id: str, open_follow_ups: int, equipment_out: int) -> Event:
    # No note content: lets a ward screen, which may not read notes, keep its counts live.
    return Event("update", "PatientActivity", patient_id, patient_id, {
        "className": "PatientActivity", "objectId": patient_id,
        "openFollowUps": open_follow_ups, "equipmentOut": equipment_out})


def _patient_ref(class_name: str, row: Base) -> str | None:
    if class_name == "Patient":
        return row.id  # type: ignore[attr-defined]
    return getattr(row, "patient_id", None)


__all__ = ["RecordsMixin", "IntegrityError"]
