"""Board-wide read models: the caseload and the equipment board (the audit log: audit.py).

The caseload takes two SELECTs whatever the number of patients: patients with their activity
summary, and the score summaries. Both read models are kept exact by the store on every write
(store/summaries.py), so no query ranks or aggregates the raw records.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, select

from dashboard.access import Principal, Role
from dashboard.models import EquipmentLog, Patient, PatientActivity, ScoreSummary, User
from dashboard.record_types import EquipmentRecord
from dashboard.serialize import initials
from dashboard.store.core import StoreCore, audited
from dashboard.store.read import Reads


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
    log: EquipmentRecord
    patient_object_id: str
    patient_label: str


class Caseloads:
    def __init__(self, core: StoreCore, reads: Reads):
        self.core, self.reads = core, reads

    def _patient_filter(self, principal: Principal | None, column: Any, only: str | None) -> list[Any]:
        visible = self.core.access.visible_patient_ids(principal)
        conditions = []
        if visible is not None:
            conditions.append(column.in_(visible))
        if only is not None:
            conditions.append(column == only)
        return conditions

    @audited("caseload")
    async def caseload(self, *, principal: Principal | None, patient_id: str | None = None,
                       include_archived: bool = False, live_refresh: bool = False) -> list[CaseloadRow]:
        """One row per visible patient (or just `patient_id`, for a live row update).

        `live_refresh` marks a pushed update of a view whose opening was audited: access is
        checked as always, but no audit row is added, or one save would add one per open screen.
        """
        role = self.core.role(principal)
        names = role != Role.VIEWER or self.core.access.full_names(principal)
        patients_q = (
            select(Patient.id, Patient.patient_id, Patient.display_name, Patient.mobility_status,
                   Patient.primary_therapist_id, User.username, Patient.version,
                   PatientActivity.last_session_at, PatientActivity.open_follow_ups,
                   PatientActivity.equipment_out)
            .join(User, User.id == Patient.primary_therapist_id)
            .outerjoin(PatientActivity, PatientActivity.patient_id == Patient.id)
            .where(*self._patient_filter(principal, Patient.id, patient_id))
            .order_by(Patient.display_name, Patient.id)
        )
        if not include_archived:
            patients_q = patients_q.where(Patient.archived.is_(False))
        # Plain columns, not entities: thousands of rows, and identity-map bookkeeping would dominate.
        scores_q = select(ScoreSummary.patient_id, ScoreSummary.score_type, ScoreSummary.latest_value,
                          ScoreSummary.latest_date, ScoreSummary.previous_value).where(
            *self._patient_filter(principal, ScoreSummary.patient_id, patient_id))
        async with self.core.db.read() as session:
            patients = (await session.execute(patients_q)).all()
            summaries = (await session.execute(scores_q)).all()
        rows: dict[str, CaseloadRow] = {}
        for (pid, number, name, status, therapist_id, therapist, version,
             last_session, follow_ups, out) in patients:
            rows[pid] = CaseloadRow(
                object_id=pid, patient_number=number if role != Role.VIEWER else None,
                display_name=name if names else initials(name), mobility_status=status,
                primary_therapist_id=therapist_id, primary_therapist=therapist, version=version,
                # A viewer sees how many follow-ups are open, never a note or its date.
                last_session=last_session if role != Role.VIEWER else None,
                open_follow_ups=follow_ups or 0, equipment_out=out or 0)
        for pid, score_type, value, when, previous in summaries:
            row = rows.get(pid)
            if row is None:
                continue
            measure = self.core.catalogue.measures.get(score_type)
            trend = measure.trend(value, previous) if measure else ""
            row.latest[score_type] = LatestScore(score_type, value, when, trend, previous)
        if not live_refresh:
            await self.core.audit_read(principal, "Patient", patient_ref=patient_id,
                                   detail=f"caseload:{len(rows)}")
        return list(rows.values())

    async def equipment_board(self, *, principal: Principal | None,
                              returned_within: timedelta = timedelta(hours=24)) -> tuple[list[BoardItem], list[BoardItem]]:
        """(checked out now, returned recently) across the principal's visible patients."""
        actor = self.core.actor(principal)
        names = actor.role != Role.VIEWER or self.core.access.full_names(actor.principal)
        since = self.core.clock() - returned_within
        query = (
            select(EquipmentLog, Patient.display_name)
            .join(Patient, Patient.id == EquipmentLog.patient_id)
            .where(*self._patient_filter(principal, EquipmentLog.patient_id, None))
            .where((EquipmentLog.status != "returned") | and_(
                EquipmentLog.status == "returned", EquipmentLog.returned_at >= since))
            .order_by(EquipmentLog.checked_out_at)
        )
        async with self.core.db.read() as session:
            found = (await session.execute(query)).all()
        out, returned = [], []
        for row, name in found:
            log = cast(EquipmentRecord, self.reads.shaped_for(actor, row))
            item = BoardItem(log, log.patient_id, name if names else initials(name))
            (returned if log.status == "returned" else out).append(item)
        returned.sort(key=lambda i: i.log.returned_at or since, reverse=True)
        await self.core.audit_read(principal, "EquipmentLog", detail=f"board:{len(found)}")
        return out, returned
