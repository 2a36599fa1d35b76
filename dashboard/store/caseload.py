"""Board-wide read models: the caseload, the equipment board, the audit trail.

The caseload takes four SQL statements whatever the number of patients: patients, the two most
recent valid scores per measure (a window function), note summaries, and equipment out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select

from dashboard.access import LEAD, VIEWER, Principal
from dashboard.errors import PermissionDenied
from dashboard.models import AuditEvent, EquipmentLog, MobilityScore, Patient, SessionNote, User
from dashboard.serialize import initials
from dashboard.store.base import audited
from dashboard.store.records import RecordsMixin


@dataclass(frozen=True)
class LatestScore:
    score_type: str
    value: float
    score_date: datetime
    trend: str  # better | worse | same | "" (no previous)
    previous: float | None


@dataclass
class CaseloadRow:
    object_id: str
    patient_number: str | None  # the hospital's identifier; None for a viewer
    display_name: str  # initials for a viewer unless a lead turned names on
    mobility_status: str
    primary_therapist_id: str
    primary_therapist: str
    version: int
    latest: dict[str, LatestScore] = field(default_factory=dict)
    last_session: datetime | None = None
    open_follow_ups: int = 0
    equipment_out: int = 0


@dataclass(frozen=True)
class BoardItem:
    log: EquipmentLog
    patient_object_id: str
    patient_label: str


class CaseloadMixin(RecordsMixin):
    def _patient_filter(self, principal: Principal | None, column: Any, only: str | None) -> list[Any]:
        visible = self.access.visible_patient_ids(principal)
        conditions = []
        if visible is not None:
            conditions.append(column.in_(visible))
        if only is not None:
            conditions.append(column == only)
        return conditions

    @audited("caseload")
    async def caseload(self, *, principal: Principal | None, patient_id: str | None = None,
                       include_archived: bool = False) -> list[CaseloadRow]:
        """One row per visible patient (or just `patient_id`, for a live row update)."""
        role = self._role(principal)
        assert principal is not None
        names = role != VIEWER or self.access.full_names(principal)
        patients_q = (
            select(Patient.id, Patient.patient_id, Patient.display_name, Patient.mobility_status,
                   Patient.primary_therapist_id, User.username, Patient.version)
            .join(User, User.id == Patient.primary_therapist_id)
            .where(*self._patient_filter(principal, Patient.id, patient_id))
            .order_by(Patient.display_name, Patient.id)
        )
        if not include_archived:
            patients_q = patients_q.where(Patient.archived.is_(False))
        ranked = (
            select(MobilityScore.patient_id, MobilityScore.score_type, MobilityScore.score_value,
                   MobilityScore.score_date,
                   func.row_number().over(
                       partition_by=(MobilityScore.patient_id, MobilityScore.score_type),
                       order_by=(MobilityScore.score_date.desc(), MobilityScore.created_at.desc()),
                   ).label("rank"))
            .where(MobilityScore.entered_in_error.is_(False),
                   *self._patient_filter(principal, MobilityScore.patient_id, patient_id))
            .subquery()
        )
        scores_q = select(ranked).where(ranked.c.rank <= 2)
        notes_q = (
            select(SessionNote.patient_id, func.max(SessionNote.session_date),
                   func.sum(case((SessionNote.follow_up_needed.is_(True), 1), else_=0)))
            .where(*self._patient_filter(principal, SessionNote.patient_id, patient_id))
            .group_by(SessionNote.patient_id)
        )
        equipment_q = (
            select(EquipmentLog.patient_id, func.count())
            .where(EquipmentLog.status == "checked_out",
                   *self._patient_filter(principal, EquipmentLog.patient_id, patient_id))
            .group_by(EquipmentLog.patient_id)
        )
        async with self.db.read() as session:
            patients = (await session.execute(patients_q)).all()
            scores = (await session.execute(scores_q)).all()
            notes = (await session.execute(notes_q)).all() if role != VIEWER else []
            equipment = (await session.execute(equipment_q)).all()
        rows: dict[str, CaseloadRow] = {}
        for pid, number, name, status, therapist_id, therapist, version in patients:
            rows[pid] = CaseloadRow(
                object_id=pid, patient_number=number if role != VIEWER else None,
                display_name=name if names else initials(name), mobility_status=status,
                primary_therapist_id=therapist_id, primary_therapist=therapist, version=version)
        previous: dict[tuple[str, str], float] = {}
        for pid, score_type, value, _date, rank in scores:
            if rank == 2:
                previous[(pid, score_type)] = value
        for pid, score_type, value, score_date, rank in scores:
            row = rows.get(pid)
            if rank != 1 or row is None:
                continue
            measure = self.catalogue.measures.get(score_type)
            before = previous.get((pid, score_type))
            trend = measure.trend(value, before) if measure else ""
            row.latest[score_type] = LatestScore(score_type, value, score_date, trend, before)
        for pid, last, follow_ups in notes:
            if pid in rows:
                rows[pid].last_session, rows[pid].open_follow_ups = last, int(follow_ups or 0)
        for pid, out in equipment:
            if pid in rows:
                rows[pid].equipment_out = int(out)
        await self._audit_read(principal, "Patient", patient_ref=patient_id,
                               detail=f"caseload:{len(rows)}")
        return list(rows.values())

    async def equipment_board(self, *, principal: Principal | None,
                              returned_within: timedelta = timedelta(hours=24)) -> tuple[list[BoardItem], list[BoardItem]]:
        """(checked out now, returned recently) across the principal's visible patients."""
        role = self._role(principal)
        assert principal is not None
        names = role != VIEWER or self.access.full_names(principal)
        since = self.clock() - returned_within
        query = (
            select(EquipmentLog, Patient.display_name)
            .join(Patient, Patient.id == EquipmentLog.patient_id)
            .where(*self._patient_filter(principal, EquipmentLog.patient_id, None))
            .where((EquipmentLog.status != "returned") | and_(
                EquipmentLog.status == "returned", EquipmentLog.returned_at >= since))
            .order_by(EquipmentLog.checked_out_at)
        )
        async with self.db.read() as session:
            found = (await session.execute(query)).all()
        out, returned = [], []
        for log, name in found:
            item = BoardItem(log, log.patient_id, name if names else initials(name))
            (returned if log.status == "returned" else out).append(item)
        returned.sort(key=lambda i: i.log.returned_at or since, reverse=True)
        await self._audit_read(principal, "EquipmentLog", detail=f"board:{len(found)}")
        return out, returned

    async def audit_trail(self, *, principal: Principal | None, patient_id: str | None = None,
                          limit: int = 200) -> list[AuditEvent]:
        if self._role(principal) != LEAD:
            raise PermissionDenied("Only a lead reads the audit log")
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(max(limit, 1), 1000))
        if patient_id:
            query = query.where(AuditEvent.patient_ref == patient_id)
        async with self.db.read() as session:
            return list(await session.scalars(query))
