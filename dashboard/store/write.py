"""The one write path for the six classes (Parse's RestWrite), as named steps:

    authorize -> clean -> apply the class's rules -> persist -> refresh read models -> audit
              -> record the change (its change_log row, in the same transaction)

and, once committed, the change feed applies the recorded changes (access index, then hub).

How a write persists is chosen here: a new score, note or equipment log is one `transact` job of
Core statements (batched with other creates on SQLite's writer); a patient and every update use an
ORM write transaction (`StoreCore._write`). Both record their changes the same way, and a driver
error never leaves the store: a stale write is `Conflict`, a duplicate patientId `InvalidInput` 137.
The per-class rules are the pure functions of rules.py.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dashboard.access import Principal, Role
from dashboard.changes import Change, patient_mutation
from dashboard.db import CoreWriteConn, WriteConn
from dashboard.errors import InvalidInput, MissingField, NotFound, ParseCode, PermissionDenied, StaleWrite
from dashboard.hub import Event
from dashboard.models import (
    AuditEvent,
    EquipmentLog,
    MobilityScore,
    Patient,
    SessionNote,
    StatusHistory,
    new_object_id,
    utcnow,
)
from dashboard.record_types import EquipmentRecord, NoteRecord, PatientRecord, Record, ScoreRecord
from dashboard.schema import CLASSES, MODELS, PATIENT_RECORDS
from dashboard.serialize import record_from_values, record_of, to_parse
from dashboard.store import rules
from dashboard.store.core import Actor, StoreCore, Tx, audited
from dashboard.store.query import text_problem
from dashboard.store.accounts import Accounts
from dashboard.store.read import Reads, unknown_class
from dashboard.store.request_keys import check_request_key, claim_request_key
from dashboard.store.summaries import (
    LOCK_PATIENT,
    NEXT_HISTORY_SEQUENCE,
    NOTE_PATIENT,
    activity_delta_upsert,
    lock_patient,
    refresh_score_summary,
    score_summary_upsert,
)

MAX_REASON = 2000
# StatusHistory's statusType of a discharge (admitted -> discharged) and a readmission (patients.py).
ADMISSION = "admission"


def activity_event(patient_id: str, open_follow_ups: int, equipment_out: int) -> Event:
    # No note content: lets a ward screen, which may not read notes, keep its counts live.
    return Event("update", "PatientActivity", patient_id, patient_id, {
        "className": "PatientActivity", "objectId": patient_id,
        "openFollowUps": int(open_follow_ups), "equipmentOut": int(equipment_out)})


def patient_id_taken(role: Role) -> InvalidInput:
    """A lead sees every patient and is told plainly. Anyone else gets one answer whether or not
    they can see the patient holding that id (M1: no existence oracle beyond the unique
    constraint itself); a lead resolves the conflict."""
    if role == Role.LEAD:
        return InvalidInput("patientId", "already belongs to another patient", code=ParseCode.DUPLICATE_VALUE)
    return InvalidInput("patientId", "cannot be used for a new patient; ask a lead to check this id",
                        code=ParseCode.DUPLICATE_VALUE)


class Writes:
    """create and update for the six classes (accounts go to `Accounts`), and the verbs over them."""

    def __init__(self, core: StoreCore, reads: Reads, accounts: Accounts):
        self.core, self.reads, self.accounts = core, reads, accounts

    # ======================================================================== create
    @audited("create")
    async def create(self, *, principal: Principal | None, class_name: str,
                     fields: Mapping[str, object], request_key: str | None = None) -> Record:
        """`request_key`: the save's idempotency key (request_keys.py); a repeat raises RepeatedRequest."""
        check_request_key(request_key)
        if class_name == "_User":
            data = dict(fields) if isinstance(fields, Mapping) else {}
            return await self.accounts.create_user(principal=principal, username=data.get("username"),
                                          email=data.get("email"), password=data.get("password"),
                                          role=data.get("role", Role.CONTRIBUTOR), request_key=request_key)
        if class_name == "Patient":
            return await self._create_patient(principal, fields, request_key)
        if class_name == "StatusHistory":
            patient = fields.get("patient") if isinstance(fields, Mapping) else None
            self.core.require_sees(principal, patient if isinstance(patient, str) else None, "patient")
            raise PermissionDenied("StatusHistory is written by the store with each status change")
        if class_name not in PATIENT_RECORDS:
            self.core.actor(principal)
            raise unknown_class(class_name)
        return await self._create_record(principal, class_name, fields, request_key)

    # The steps for a new patient. Imports (imports.py) reuse them for each row.
    def new_patient_values(self, actor: Actor, fields: Mapping[str, object]) -> dict[str, Any]:
        """authorize -> clean -> the class's rules; the attributes to insert, or an error."""
        if not rules.may_add_patient(actor.role):
            raise PermissionDenied("Only a lead or a therapist adds patients")
        values = self.core.clean("Patient", fields, creating=True)
        if actor.role == Role.THERAPIST and values["primary_therapist_id"] != actor.user_id:
            raise PermissionDenied("primaryTherapist: a therapist adds patients as their own")
        if values.get("archived"):
            raise InvalidInput("archived", "a new patient cannot be archived")
        values["mobility_status"] = self.core.catalogue.term("mobilityStatus", values["mobility_status"])
        self.core.not_in_future("dateOfBirth", values.get("date_of_birth"))
        self._check_therapist(values["primary_therapist_id"])
        return values

    async def _create_patient(self, principal: Principal | None, fields: Mapping[str, object],
                              request_key: str | None) -> Record:
        actor = self.core.actor(principal)
        values = self.new_patient_values(actor, fields)
        patient = Patient(id=new_object_id(), **values)
        async with self.core.write(duplicate=lambda: patient_id_taken(actor.role)) as tx:
            await self.core.claim_request_key(tx, principal, request_key, "Patient", patient.id)
            if await tx.session.scalar(select(Patient.id).where(Patient.patient_id == values["patient_id"])):
                raise patient_id_taken(actor.role)
            tx.session.add(patient)  # persist
            await tx.session.flush()
            await self._add_history(tx, actor, patient.id, "mobilityStatus", None,
                                    patient.mobility_status, "admitted")
            tx.audit(principal, "create", "Patient", object_id=patient.id, patient_ref=patient.id)
            tx.changes += [patient_mutation(patient.id, patient.primary_therapist_id),
                           Event("create", "Patient", patient.id, patient.id, to_parse(patient))]
        return self.reads.shaped_for(actor, patient)

    def _equipment_status(self, value: object) -> str:
        """The vocabulary is "equipmentStatus"; the field the caller sent is `status`."""
        try:
            return self.core.catalogue.term("equipmentStatus", value)
        except InvalidInput as exc:
            raise InvalidInput("status", exc.rule) from None

    def _check_therapist(self, user_id: str) -> None:
        user = self.core.access.user(user_id)
        if user is None or not user.active or user.role != Role.THERAPIST:
            raise InvalidInput("primaryTherapist", "must be an active therapist")

    def new_record_values(self, principal: Principal | None, class_name: str,
                           fields: Mapping[str, object], *, admitting: str | None = None) -> dict[str, Any]:
        """authorize -> clean -> the class's rules, for a new score, note or equipment log: the
        attributes to insert, or an error. Single creates and imports both come through here.
        `admitting`: the id of a patient this principal adds in the same transaction (its adder
        always sees it: a lead, or its own therapist)."""
        actor = self.core.actor(principal)  # no session: NotAuthenticated, before anything else
        values = self.core.clean(class_name, fields, creating=True, allow_server_set_for=actor.user_id)
        if admitting is None or values["patient_id"] != admitting:
            self.core.require_sees(principal, values["patient_id"], "patient")
        if not rules.may_add_records(actor.role):
            raise PermissionDenied(f"A {actor.role} account cannot add records")
        if class_name == "MobilityScore":
            measure = self.core.catalogue.measure(values["score_type"])
            values["score_value"] = measure.validate(values["score_value"])
            self.core.not_in_future("scoreDate", values["score_date"])
            if values.get("entered_in_error"):
                raise InvalidInput("enteredInError", "a new score cannot be entered in error")
            values.pop("error_reason", None)
            values.update(recorded_by_id=actor.user_id, entered_in_error=False)
        elif class_name == "SessionNote":
            values["session_type"] = self.core.catalogue.term("sessionType", values["session_type"])
            self.core.not_in_future("sessionDate", values["session_date"])
            values["author_id"] = actor.user_id
        else:
            values["status"] = self._equipment_status(values["status"])
            if values["status"] != "checked_out":
                raise InvalidInput("status", "a new equipment log starts as checked_out")
            values["checked_out_at"] = values.get("checked_out_at") or self.core.clock()
            self.core.not_in_future("checkedOutAt", values["checked_out_at"])
            if values.get("returned_at") is not None:
                raise InvalidInput("returnedAt", "is set when the equipment is returned")
            values["logged_by_id"] = actor.user_id
        return values

    async def _create_record(self, principal: Principal | None, class_name: str,
                             fields: Mapping[str, object], request_key: str | None = None) -> Record:
        """A score, note or equipment log as one `transact` job of Core statements (no ORM unit of
        work; batched with other creates on SQLite): persist, refresh read models, history, audit,
        and its change_log row, all in the job's transaction."""
        record, steps = self._record_steps(principal, class_name, fields, request_key)

        def job(w: WriteConn) -> list[Change]:
            changes = steps(w)
            self.core.log_changes_in_job(w, changes)
            return changes

        changes, seq = await self.core.db.transact_logged(
            job, locks=[(LOCK_PATIENT, {"patient_id": record.patient_id})])
        await self.core.feed.committed(seq, changes)
        return record

    def _record_steps(self, principal: Principal | None, class_name: str, fields: Mapping[str, object],
                      request_key: str | None, *, admitting: str | None = None,
                      ) -> tuple[Record, Callable[[WriteConn], list[Change]]]:
        """The new record, and the statements that persist it with its read models, history and
        audit row (returning its changes): a job's body, alone or after a patient's admission."""
        values = self.new_record_values(principal, class_name, fields, admitting=admitting)
        actor = self.core.actor(principal)
        now = utcnow()
        values = {"id": new_object_id(), "created_at": now, "updated_at": now, "version": 1, **values}
        record = record_from_values(class_name, values)  # no ORM instance: nothing to track
        patient_id, object_id = values["patient_id"], values["id"]
        audit = self.core.audit_row(principal, "create", class_name, object_id=object_id, patient_ref=patient_id)
        history: dict[str, Any] | None = None
        if class_name == "EquipmentLog":
            history = {"id": new_object_id(), "patient_id": patient_id, "status_type": "equipmentStatus",
                       "from_value": None, "to_value": "checked_out", "changed_by_id": actor.user_id,
                       "change_reason": None, "equipment_log_id": object_id, "created_at": now,
                       "updated_at": now}
        table = MODELS[class_name].__table__
        now_for_key = self.core.clock()
        created = Event("create", class_name, object_id, patient_id, to_parse(record))
        delta = _activity_delta(None, record)

        def steps(w: WriteConn) -> list[Change]:
            if request_key is not None:  # first: a refusal below rolls the claim back with the rest
                claim_request_key(w, user_id=actor.user_id, key=request_key, class_name=class_name,
                                  object_id=object_id, now=now_for_key)
            w.lock(LOCK_PATIENT, {"patient_id": patient_id})  # as lock_patient does for ORM sessions
            if class_name == "SessionNote" and values.get("amends_id"):
                amended = w.fetch(NOTE_PATIENT, {"note_id": values["amends_id"]})
                if not amended or amended[0][0] != patient_id:
                    raise NotFound("amends: no such note for this patient")
            changes: list[Change] = []
            if class_name == "EquipmentLog":
                w.insert(table, [values])  # its history row refers to it
            else:  # nothing in the transaction reads it back but the summary, which runs after
                w.append(table, [values])
            if class_name == "MobilityScore":  # a recomputation: once per batch is the same
                w.after(score_summary_upsert(w.dialect), {"patient_id": patient_id,
                                                          "score_type": values["score_type"]})
            elif delta is not None:
                [activity] = w.fetch(activity_delta_upsert(w.dialect), {"patient_id": patient_id, **delta})
                changes.append(activity_event(patient_id, *activity))
            if history is not None:
                [(history["sequence"],)] = w.fetch(NEXT_HISTORY_SEQUENCE, {"patient_id": patient_id})
                w.insert(StatusHistory.__table__, [history])
                changes.append(Event("create", "StatusHistory", history["id"], patient_id,
                                     to_parse(record_from_values("StatusHistory", history))))
            w.append(AuditEvent.__table__, [audit])
            changes.append(created)
            return changes

        return record, steps

    async def create_for_new_patient(self, *, principal: Principal | None, class_name: str,
                                     fields: Mapping[str, object], patient: Mapping[str, object],
                                     pointer: str = "patient") -> tuple[Record, Record]:
        """A score, note or equipment log together with the patient it is for, admitted in the
        same transaction (GraphQL's createAndLink): both are stored, or neither. (patient, record)."""
        if class_name not in ("MobilityScore", "SessionNote", "EquipmentLog") or pointer != "patient":
            self.core.actor(principal)
            raise PermissionDenied(f"{pointer}: only a record's patient can be created with it")
        actor = self.core.actor(principal)
        values = self.new_patient_values(actor, patient)
        row = Patient(id=new_object_id(), **values)
        record, steps = self._record_steps(principal, class_name, {**fields, "patient": row.id}, None,
                                           admitting=row.id)
        async with self.core.write(duplicate=lambda: patient_id_taken(actor.role)) as tx:
            if await tx.session.scalar(select(Patient.id).where(Patient.patient_id == values["patient_id"])):
                raise patient_id_taken(actor.role)
            tx.session.add(row)
            await tx.session.flush()
            await self._add_history(tx, actor, row.id, "mobilityStatus", None, row.mobility_status, "admitted")
            tx.audit(principal, "create", "Patient", object_id=row.id, patient_ref=row.id)
            # The patient's access change first: the record's event is checked against it.
            tx.changes += [patient_mutation(row.id, row.primary_therapist_id),
                           Event("create", "Patient", row.id, row.id, to_parse(row))]
            tx.changes += await tx.session.run_sync(lambda session: steps(CoreWriteConn(session.connection())))
        return self.reads.shaped_for(actor, row), record

    async def add_history(self, tx: Tx, actor: Actor, patient_id: str, status_type: str,
                          from_value: str | None, to_value: str, reason: str | None) -> None:
        """A StatusHistory row in `tx`, for the store's other parts (a discharge: patients.py)."""
        await self._add_history(tx, actor, patient_id, status_type, from_value, to_value, reason)

    async def _add_history(self, tx: Tx, actor: Actor, patient_id: str, status_type: str,
                           from_value: str | None, to_value: str, reason: str | None,
                           equipment_log_id: str | None = None) -> None:
        await lock_patient(tx.session, patient_id)  # the sequence is per patient
        sequence = await tx.session.scalar(NEXT_HISTORY_SEQUENCE, {"patient_id": patient_id})
        row = StatusHistory(patient_id=patient_id, status_type=status_type, from_value=from_value,
                            to_value=to_value, changed_by_id=actor.user_id, change_reason=reason,
                            equipment_log_id=equipment_log_id, sequence=sequence)
        tx.session.add(row)
        await tx.session.flush()
        tx.changes.append(Event("create", "StatusHistory", row.id, patient_id, to_parse(row)))

    # ======================================================================== update
    @audited("update")
    async def update(self, *, principal: Principal | None, class_name: str, object_id: str,
                     changes: Mapping[str, object], expected_version: int | None = None,
                     reason: str | None = None, request_key: str | None = None) -> Record:
        """Changes what ACCESS.md allows; a stale `expected_version` raises Conflict; a repeated
        `request_key` raises RepeatedRequest (checked first, so a repeat is never a Conflict)."""
        check_request_key(request_key)
        if class_name == "_User":
            return await self.accounts.update_user(principal=principal, user_id=object_id, changes=changes,
                                          request_key=request_key)
        actor = self.core.actor(principal)
        if class_name not in MODELS:
            raise unknown_class(class_name)
        if not isinstance(changes, Mapping):
            raise InvalidInput("body", "must be an object of fields")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise InvalidInput("changeReason", f"must be text of at most {MAX_REASON} characters")
        if reason is not None and text_problem(reason):
            raise InvalidInput("changeReason", text_problem(reason) or "")
        try:
            return await self._update(actor, class_name, object_id, changes, expected_version, reason,
                                      request_key)
        except StaleWrite:
            async with self.core.db.read() as session:
                row = await self.reads.load_row(principal, class_name, object_id, session)
            raise StaleWrite(int(getattr(row, "version", 0))) from None

    async def _update(self, actor: Actor, class_name: str, object_id: str, changes: Mapping[str, object],
                      expected_version: int | None, reason: str | None, request_key: str | None) -> Record:
        principal = actor.principal
        async with self.core.write() as tx:
            await self.core.claim_request_key(tx, principal, request_key, class_name, object_id)
            # authorize: a record the principal cannot read is not found
            row = await self.reads.load_row(principal, class_name, object_id, tx.session, for_update=True)
            before = to_parse(row)
            old = record_of(row)
            for name in changes:
                if name not in CLASSES[class_name]:
                    raise InvalidInput(str(name)[:60], f"is not a field of {class_name}",
                                       code=ParseCode.INVALID_KEY_NAME)
            # clean -> the class's rules -> apply to the row
            if isinstance(row, Patient):
                await self._update_patient(tx, actor, row, changes, expected_version, reason)
            elif isinstance(row, MobilityScore):
                self._update_score(actor, row, changes)
            elif isinstance(row, SessionNote):
                self._update_note(actor, row, changes)
            elif isinstance(row, EquipmentLog):
                await self._update_equipment(tx, actor, row, changes, reason)
            else:
                raise PermissionDenied(f"{class_name} is never changed")
            if expected_version is not None and not isinstance(row, Patient):
                self.core.check_version(next(iter(changes), "version"), None, old.version, expected_version)
            await tx.session.flush()  # persist (the version check of the UPDATE runs here)
            new = record_of(row)
            await self._refresh_read_models(tx, old, new)
            patient_id = new.id if isinstance(new, PatientRecord) else getattr(new, "patient_id", None)
            tx.audit(principal, "update", class_name, object_id=new.id, patient_ref=patient_id,
                     detail=",".join(sorted(str(k) for k in changes))[:500])
            tx.changes.append(Event("update", class_name, new.id, patient_id, to_parse(new), before))
        return self.reads.shaped_for(actor, row)

    async def _refresh_read_models(self, tx: Tx, old: Record, new: Record) -> None:
        """Keeps the caseload's read models exact, in the write's transaction, by the change's delta."""
        if isinstance(new, ScoreRecord) and isinstance(old, ScoreRecord) and new.entered_in_error != old.entered_in_error:
            await refresh_score_summary(tx.session, new.patient_id, new.score_type)
            return
        delta = _activity_delta(old, new)
        if delta is None or not isinstance(new, (NoteRecord, EquipmentRecord)):
            return
        await lock_patient(tx.session, new.patient_id)
        connection = await tx.session.connection()
        activity = (await connection.execute(activity_delta_upsert(connection.dialect.name),
                                             {"patient_id": new.patient_id, **delta})).one()
        tx.changes.append(activity_event(new.patient_id, *activity))

    async def _update_patient(self, tx: Tx, actor: Actor, patient: Patient, changes: Mapping[str, object],
                              expected_version: int | None, reason: str | None) -> None:
        owns = self.core.access.owns(actor.principal, patient.id)
        for name in changes:
            refusal = rules.patient_field_refusal(str(name), actor.role, owns=owns)
            if refusal:
                raise PermissionDenied(refusal)
        values = self.core.clean("Patient", changes, creating=False)
        if "mobility_status" in values:
            values["mobility_status"] = self.core.catalogue.term("mobilityStatus", values["mobility_status"])
        if "date_of_birth" in values:
            self.core.not_in_future("dateOfBirth", values["date_of_birth"])
        first = next(iter(changes), "mobilityStatus")
        current = getattr(patient, CLASSES["Patient"][first].attr) if first in CLASSES["Patient"] else None
        self.core.check_version(first, current, patient.version, expected_version)
        if "patient_id" in values and values["patient_id"] != patient.patient_id:
            if await tx.session.scalar(select(Patient.id).where(Patient.patient_id == values["patient_id"])):
                raise patient_id_taken(actor.role)
        new_therapist = values.get("primary_therapist_id")
        if new_therapist is not None and new_therapist != patient.primary_therapist_id:
            self._check_therapist(new_therapist)
            tx.changes.append(patient_mutation(patient.id, new_therapist))
        old_status, was_archived = patient.mobility_status, patient.archived
        for attr, value in values.items():
            setattr(patient, attr, value)
        if patient.mobility_status != old_status:
            await self._add_history(tx, actor, patient.id, "mobilityStatus", old_status,
                                    patient.mobility_status, reason)
        if bool(patient.archived) != bool(was_archived):
            # `archived` set directly (REST, GraphQL): a discharge today, or a readmission, as
            # discharge_patient records one, so no step is missing from the history.
            patient.discharged_on = self.core.clock().date() if patient.archived else None
            patient.discharge_reason = reason if patient.archived else None
            await self._add_history(tx, actor, patient.id, ADMISSION,
                                    "admitted" if patient.archived else "discharged",
                                    "discharged" if patient.archived else "admitted", reason)

    def _update_score(self, actor: Actor, score: MobilityScore, changes: Mapping[str, object]) -> None:
        refusal = rules.score_change_refusal(set(map(str, changes)), actor.role,
                                             recorded_by_id=score.recorded_by_id, user_id=actor.user_id)
        if refusal:
            raise PermissionDenied(refusal)
        if changes.get("enteredInError") is not True:
            raise InvalidInput("enteredInError", "can only be set to true")
        reason = changes.get("errorReason")
        if not isinstance(reason, str) or not reason.strip():
            raise MissingField("errorReason")
        if len(reason) > MAX_REASON:
            raise InvalidInput("errorReason", f"must be at most {MAX_REASON} characters")
        if score.entered_in_error:
            raise InvalidInput("enteredInError", "this score is already marked entered-in-error")
        score.entered_in_error = True
        score.error_reason = reason.strip()
        score.error_marked_by_id = actor.user_id

    def _update_note(self, actor: Actor, note: SessionNote, changes: Mapping[str, object]) -> None:
        refusal = rules.note_change_refusal(set(map(str, changes)), actor.role)
        if refusal:
            raise PermissionDenied(refusal)
        if not isinstance(changes["followUpNeeded"], bool):
            raise InvalidInput("followUpNeeded", "must be true or false")
        if changes["followUpNeeded"] is not False:
            raise PermissionDenied("followUpNeeded: a follow-up can only be cleared")
        note.follow_up_needed = False

    async def _update_equipment(self, tx: Tx, actor: Actor, log: EquipmentLog,
                                changes: Mapping[str, object], reason: str | None) -> None:
        for name in changes:
            if name not in CLASSES["EquipmentLog"]:
                raise InvalidInput(str(name)[:60], "is not a field of EquipmentLog", code=ParseCode.INVALID_KEY_NAME)
            refusal = rules.equipment_field_refusal(str(name), actor.role)
            if refusal:
                raise PermissionDenied(refusal)
        values = self.core.clean("EquipmentLog", changes, creating=False)
        old_status = log.status
        if "status" in values:
            values["status"] = self._equipment_status(values["status"])
            if values["status"] == "returned" and "returned_at" not in values:
                values["returned_at"] = self.core.clock()
            if values["status"] == "checked_out":
                values["returned_at"] = None
        returned = values.get("returned_at")
        if isinstance(returned, datetime) and log.checked_out_at and returned < log.checked_out_at:
            raise InvalidInput("returnedAt", "cannot be before checkedOutAt")
        for attr, value in values.items():
            setattr(log, attr, value)
        if log.status != old_status:
            await self._add_history(tx, actor, log.patient_id, "equipmentStatus", old_status,
                                    log.status, reason, equipment_log_id=log.id)

    @audited("delete")
    async def delete(self, *, principal: Principal | None, class_name: str, object_id: str) -> None:
        """Nothing is ever deleted: leads archive patients and deactivate users."""
        async with self.core.db.read() as session:
            await self.reads.load_row(principal, class_name, object_id, session)
        raise PermissionDenied(f"{class_name} records are never deleted")

    # ======================================================================== convenience
    async def change_status(self, *, principal: Principal | None, patient_id: str, status: str,
                            reason: str | None, expected_version: int | None = None,
                            request_key: str | None = None) -> Record:
        return await self.update(principal=principal, class_name="Patient", object_id=patient_id,
                                 changes={"mobilityStatus": status}, expected_version=expected_version,
                                 reason=reason, request_key=request_key)

    async def record_score(self, *, principal: Principal | None, patient_id: str, score_type: str,
                           value: float, score_date: datetime | None = None,
                           notes: str | None = None, request_key: str | None = None) -> Record:
        fields: dict[str, object] = {"patient": patient_id, "scoreType": score_type, "scoreValue": value,
                                     "scoreDate": score_date or self.core.clock()}
        if notes:
            fields["notes"] = notes
        return await self.create(principal=principal, class_name="MobilityScore", fields=fields,
                                 request_key=request_key)

    async def add_note(self, *, principal: Principal | None, patient_id: str, session_type: str,
                       text: str, follow_up: bool = False, session_date: datetime | None = None,
                       amends: str | None = None, request_key: str | None = None) -> Record:
        fields: dict[str, object] = {"patient": patient_id, "sessionType": session_type, "noteText": text,
                                     "followUpNeeded": follow_up, "sessionDate": session_date or self.core.clock()}
        if amends:
            fields["amends"] = amends
        return await self.create(principal=principal, class_name="SessionNote", fields=fields,
                                 request_key=request_key)

    async def check_out_equipment(self, *, principal: Principal | None, patient_id: str, name: str,
                                  serial_number: str | None = None, request_key: str | None = None) -> Record:
        fields: dict[str, object] = {"patient": patient_id, "equipmentName": name, "status": "checked_out"}
        if serial_number:
            fields["serialNumber"] = serial_number
        return await self.create(principal=principal, class_name="EquipmentLog", fields=fields,
                                 request_key=request_key)

    async def return_equipment(self, *, principal: Principal | None, log_id: str,
                               request_key: str | None = None) -> Record:
        return await self.update(principal=principal, class_name="EquipmentLog", object_id=log_id,
                                 changes={"status": "returned"}, request_key=request_key)

    async def mark_score_in_error(self, *, principal: Principal | None, score_id: str, reason: str,
                                  request_key: str | None = None) -> Record:
        return await self.update(principal=principal, class_name="MobilityScore", object_id=score_id,
                                 changes={"enteredInError": True, "errorReason": reason}, request_key=request_key)

    async def clear_follow_up(self, *, principal: Principal | None, note_id: str,
                              request_key: str | None = None) -> Record:
        return await self.update(principal=principal, class_name="SessionNote", object_id=note_id,
                                 changes={"followUpNeeded": False}, request_key=request_key)

    async def assign_therapist(self, *, principal: Principal | None, patient_id: str, therapist_id: str,
                               request_key: str | None = None) -> Record:
        return await self.update(principal=principal, class_name="Patient", object_id=patient_id,
                                 changes={"primaryTherapist": therapist_id}, request_key=request_key)


def _activity_delta(old: Record | None, new: Record) -> dict[str, Any] | None:
    """How a write moves the patient's activity summary (None: it does not)."""
    if isinstance(new, NoteRecord):
        was = bool(old.follow_up_needed) if isinstance(old, NoteRecord) else False
        return {"last_session_at": new.session_date if old is None else None,
                "follow_ups": int(new.follow_up_needed) - int(was), "equipment": 0}
    if isinstance(new, EquipmentRecord):
        was = isinstance(old, EquipmentRecord) and old.status == "checked_out"
        delta = int(new.status == "checked_out") - int(was)
        if old is not None and delta == 0:
            return None
        return {"last_session_at": None, "follow_ups": 0, "equipment": delta}
    return None


