"""Discharge, and the discharged patients. Admission is `Writes.create` of a Patient (write.py).

A discharge archives the patient (ACCESS.md: never deleted; a lead archives) with a date and a
reason, in one transaction with its StatusHistory row (statusType "admission": admitted ->
discharged), its audit row and its change, so the caseload and the ward screen, which list only
patients that are not archived, drop the patient at the push. The record stays readable by those
who see the patient, under the caseload's Discharged filter.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from dashboard.access import Principal, Role
from dashboard.errors import InvalidInput, MissingField, PermissionDenied, StoreError
from dashboard.hub import Event
from dashboard.models import Patient, User
from dashboard.record_types import PatientRecord
from dashboard.serialize import initials, record_of, to_parse
from dashboard.store import rules
from dashboard.store.core import StoreCore
from dashboard.store.query import text_problem
from dashboard.store.read import Reads
from dashboard.store.request_keys import check_request_key
from dashboard.store.write import ADMISSION, MAX_REASON, Writes

DISCHARGED_LIMIT = 500  # the newest discharges a list shows (one bounded query)
# The earliest time zone is UTC+14: "today" there is never refused as a future date.
AHEAD_OF_UTC = timedelta(hours=14)


@dataclass(frozen=True)
class DischargedRow:
    """A discharged patient as the Discharged filter of the caseload lists it."""

    object_id: str
    patient_number: str | None  # None for a viewer
    display_name: str  # initials for a viewer unless a lead turned names on
    mobility_status: str
    primary_therapist_id: str
    primary_therapist: str
    discharged_on: date | None
    reason: str | None  # None for a viewer (free text: never on a ward screen)


@dataclass(frozen=True)
class Discharge:
    on: date | None
    reason: str | None  # None for a viewer


class Patients:
    def __init__(self, core: StoreCore, reads: Reads, writes: Writes):
        self.core, self.reads, self.writes = core, reads, writes

    async def discharge_patient(self, *, principal: Principal | None, patient_id: str, reason: object,
                                date: object, expected_version: int | None = None,
                                request_key: str | None = None) -> PatientRecord:
        """Archives the patient with the discharge `date` (a date, or an aware datetime: its UTC
        day) and `reason`: a lead only. NotFound for a patient the principal cannot read;
        InvalidInput naming "reason" or "date"; Conflict on a stale `expected_version`."""
        try:
            return await self._discharge(principal, patient_id, reason, date, expected_version, request_key)
        except StoreError as exc:
            await self.core.audit_refusal("update", {"principal": principal, "class_name": "Patient",
                                                     "object_id": patient_id}, exc)
            raise

    async def _discharge(self, principal: Principal | None, patient_id: str, reason: object, day: object,
                         expected_version: int | None, request_key: str | None) -> PatientRecord:
        actor = self.core.actor(principal)
        check_request_key(request_key)
        async with self.core.write() as tx:
            await self.core.claim_request_key(tx, principal, request_key, "Patient", patient_id)
            row = await self.reads.load_row(principal, "Patient", patient_id, tx.session, for_update=True)
            assert isinstance(row, Patient)
            if rules.patient_field_refusal("archived", actor.role, owns=False) is not None:
                raise PermissionDenied("Only a lead discharges a patient")
            text = self._reason(reason)
            on = self._day(day, row.date_of_birth)
            if row.archived:
                raise InvalidInput("archived", "this patient is already discharged")
            self.core.check_version("archived", row.archived, row.version, expected_version)
            before = to_parse(row)
            row.archived, row.discharged_on, row.discharge_reason = True, on, text
            await tx.session.flush()  # persist (the version check of the UPDATE runs here)
            await self.writes.add_history(tx, actor, row.id, ADMISSION, "admitted", "discharged", text)
            tx.audit(principal, "update", "Patient", object_id=row.id, patient_ref=row.id,
                     detail="archived,dischargedOn,dischargeReason")
            tx.changes.append(Event("update", "Patient", row.id, row.id, to_parse(record_of(row)), before))
        return self.reads.shaped_for(actor, row)  # type: ignore[return-value]

    @staticmethod
    def _reason(reason: object) -> str:
        if reason is None or (isinstance(reason, str) and not reason.strip()):
            raise MissingField("reason")
        if not isinstance(reason, str):
            raise InvalidInput("reason", "must be text")
        if len(reason) > MAX_REASON:
            raise InvalidInput("reason", f"must be at most {MAX_REASON} characters")
        problem = text_problem(reason)
        if problem:
            raise InvalidInput("reason", problem)
        return reason.strip()

    def _day(self, value: object, born: datetime | None) -> date:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise InvalidInput("date", "must be a date with a time zone")
            value = value.astimezone(timezone.utc).date()
        if not isinstance(value, date):
            raise MissingField("date") if value is None else InvalidInput("date", "must be a date")
        if value > (self.core.clock() + AHEAD_OF_UTC).date():
            raise InvalidInput("date", "cannot be in the future")
        if born is not None and value < born.astimezone(timezone.utc).date():
            raise InvalidInput("date", "cannot be before the date of birth")
        return value

    async def discharged_patients(self, *, principal: Principal | None,
                                  live_refresh: bool = False) -> list[DischargedRow]:
        """The discharged patients the principal sees, newest discharge first (one query)."""
        actor = self.core.actor(principal)
        viewer = actor.role == Role.VIEWER
        names = not viewer or self.core.access.full_names(actor.principal)
        query = (select(Patient.id, Patient.patient_id, Patient.display_name, Patient.mobility_status,
                        Patient.primary_therapist_id, User.username, Patient.discharged_on,
                        Patient.discharge_reason)
                 .join(User, User.id == Patient.primary_therapist_id)
                 .where(Patient.archived.is_(True))
                 .order_by(Patient.discharged_on.desc(), Patient.display_name, Patient.id)
                 .limit(DISCHARGED_LIMIT))
        visible = self.core.access.visible_patient_ids(principal)
        if visible is not None:
            query = query.where(Patient.id.in_(visible))
        async with self.core.db.read() as session:
            found = (await session.execute(query)).all()
        rows = [DischargedRow(object_id=pid, patient_number=None if viewer else number,
                              display_name=name if names else initials(name), mobility_status=status,
                              primary_therapist_id=therapist_id, primary_therapist="" if viewer else therapist,
                              discharged_on=on, reason=None if viewer else why)
                for pid, number, name, status, therapist_id, therapist, on, why in found]
        if not live_refresh:
            await self.core.audit_read(principal, "Patient", detail=f"discharged:{len(rows)}")
        return rows

    async def discharge_of(self, *, principal: Principal | None, patient_id: str,
                           live_refresh: bool = False) -> Discharge | None:
        """When and why the patient was discharged (None while admitted); NotFound as for a read."""
        actor = self.core.actor(principal)
        async with self.core.db.read() as session:
            row: Any = await self.reads.load_row(principal, "Patient", patient_id, session)
        if not row.archived:
            return None
        if not live_refresh:
            await self.core.audit_read(principal, "Patient", object_id=row.id, patient_ref=row.id,
                                       detail="discharge")
        return Discharge(on=row.discharged_on, reason=None if actor.role == Role.VIEWER else row.discharge_reason)
