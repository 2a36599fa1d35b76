"""Keeps the caseload's read models exact: recomputed from indexed rows inside the write's transaction.

Recomputing (rather than adjusting by one) means an entered-in-error mark, a cleared follow-up or a
return can never drift the summary away from the records it summarises.
"""
from __future__ import annotations

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from dashboard.models import EquipmentLog, MobilityScore, PatientActivity, ScoreSummary, SessionNote


async def refresh_score_summary(session: AsyncSession, patient_id: str, score_type: str) -> None:
    newest = (await session.execute(
        select(MobilityScore.score_value, MobilityScore.score_date)
        .where(MobilityScore.patient_id == patient_id, MobilityScore.score_type == score_type,
               MobilityScore.entered_in_error.is_(False))
        .order_by(MobilityScore.score_date.desc(), MobilityScore.created_at.desc())
        .limit(2))).all()
    row = await session.get(ScoreSummary, (patient_id, score_type))
    if not newest:
        if row is not None:
            await session.execute(delete(ScoreSummary).where(
                ScoreSummary.patient_id == patient_id, ScoreSummary.score_type == score_type))
        return
    if row is None:
        row = ScoreSummary(patient_id=patient_id, score_type=score_type)
        session.add(row)
    row.latest_value, row.latest_date = newest[0]
    row.previous_value = newest[1][0] if len(newest) > 1 else None


async def refresh_patient_activity(session: AsyncSession, patient_id: str) -> PatientActivity:
    last_session, follow_ups = (await session.execute(
        select(func.max(SessionNote.session_date),
               func.coalesce(func.sum(case((SessionNote.follow_up_needed.is_(True), 1), else_=0)), 0))
        .where(SessionNote.patient_id == patient_id))).one()
    out = await session.scalar(select(func.count()).where(
        EquipmentLog.patient_id == patient_id, EquipmentLog.status == "checked_out"))
    row = await session.get(PatientActivity, patient_id)
    if row is None:
        row = PatientActivity(patient_id=patient_id)
        session.add(row)
    row.last_session_at, row.open_follow_ups, row.equipment_out = last_session, int(follow_ups), int(out or 0)
    return row
