"""Board-wide read models: the caseload and the equipment board (the audit log: audit.py).

The caseload takes two SELECTs whatever the number of patients: patients with their activity
summary, and the score summaries. Both read models are kept exact by the store on every write
(store/summaries.py), so no query ranks or aggregates the raw records.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any, cast

from sqlalchemy import and_, case, func, null, select, union_all

from dashboard.access import Principal, Role
from dashboard.models import (
    EquipmentLog,
    MobilityScore,
    Patient,
    PatientActivity,
    ScoreSummary,
    SessionNote,
    User,
)
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
    bed: str | None = None  # bed, bay or room
    updated_at: datetime | None = None  # the patient's own record (status, profile)


@dataclass(frozen=True)
class WardRow:
    """A ward board card: the caseload row, whether therapy saw the patient today, and when anything
    on the card last changed. Coded data only: a viewer learns no note, date of birth or identifier."""

    row: CaseloadRow
    seen_today: bool
    last_updated: datetime | None


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
                   PatientActivity.equipment_out, Patient.bed, Patient.updated_at)
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
             last_session, follow_ups, out, bed, updated_at) in patients:
            viewer = role == Role.VIEWER
            rows[pid] = CaseloadRow(
                object_id=pid, patient_number=None if viewer else number,
                display_name=name if names else initials(name), mobility_status=status,
                # A viewer learns no staff username (issue 16), nor a note or its date; it sees how
                # many follow-ups are open.
                primary_therapist_id=therapist_id, primary_therapist="" if viewer else therapist, version=version,
                last_session=None if viewer else last_session,
                open_follow_ups=follow_ups or 0, equipment_out=out or 0, bed=bed, updated_at=updated_at)
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

    async def ward_board(self, *, principal: Principal | None, patient_id: str | None = None,
                         live_refresh: bool = False) -> list[WardRow]:
        """The caseload's rows ordered by bed, with "seen today" and "last updated": one more SELECT
        (the latest change and the latest session or score date per patient) whatever the count."""
        rows = await self.caseload(principal=principal, patient_id=patient_id, live_refresh=live_refresh)
        if not rows:
            return []
        conditions = {cls: self._patient_filter(principal, cls.patient_id, patient_id)
                      for cls in (MobilityScore, SessionNote, EquipmentLog)}
        parts = union_all(
            select(MobilityScore.patient_id.label("pid"), func.max(MobilityScore.updated_at).label("changed"),
                   func.max(case((MobilityScore.entered_in_error.is_(False), MobilityScore.score_date)))
                   .label("dated"))
            .where(*conditions[MobilityScore]).group_by(MobilityScore.patient_id),
            select(SessionNote.patient_id, func.max(SessionNote.updated_at), func.max(SessionNote.session_date))
            .where(*conditions[SessionNote]).group_by(SessionNote.patient_id),
            select(EquipmentLog.patient_id, func.max(EquipmentLog.updated_at), null())
            .where(*conditions[EquipmentLog]).group_by(EquipmentLog.patient_id),
        ).subquery()
        latest = select(parts.c.pid, func.max(parts.c.changed), func.max(parts.c.dated)).group_by(parts.c.pid)
        async with self.core.db.read() as session:
            activity = {pid: (changed, dated) for pid, changed, dated in (await session.execute(latest)).all()}
        # "Today" is the ward's day: the server's local midnight, as every page's dates are local.
        midnight = datetime.combine(self.core.clock().astimezone().date(), time()).astimezone()
        board = []
        for row in rows:
            changed, dated = activity.get(row.object_id, (None, None))
            changed, dated = _aware(changed), _aware(dated)
            moments = [m for m in (row.updated_at, changed) if m is not None]
            board.append(WardRow(row, seen_today=dated is not None and dated >= midnight,
                                 last_updated=max(moments) if moments else None))
        board.sort(key=lambda w: ward_order(w.row))
        return board

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


def _aware(moment: datetime | None) -> datetime | None:
    """An aggregate's datetime: SQLite hands back a naive UTC one (the column type is not applied)."""
    if moment is None or isinstance(moment, datetime) and moment.tzinfo is not None:
        return moment
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=timezone.utc)


_NUMBER = re.compile(r"(\d+)")


def ward_order(row: CaseloadRow) -> tuple:
    """By bed as a person reads it ("Bay 2 bed 10" after "Bay 2 bed 9"); patients without one last."""
    bed = (row.bed or "").strip().lower()
    natural = tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                    for part in _NUMBER.split(bed) if part)
    return (not bed, natural, row.display_name.lower(), row.object_id)
