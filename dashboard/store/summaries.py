"""Keeps the caseload's read models exact, inside the write's transaction, at a cost that does not
grow with the patient's records.

Patient activity (last session, open follow-ups, equipment out) is adjusted by each write's delta in
one upsert: a new note with a follow-up adds one, a cleared follow-up or a return takes one away.
Recounting instead scanned the patient's rows on every write (note creates fell from 787/s to 230/s
past 15,000 notes on one patient). A score summary is the two newest valid scores, read through the
(patient, measure, date) index: a lookup, not a scan. Imports recompute both from the rows once per
batch (`refresh_*`), which also repairs any drift.
"""
from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, delete, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from dashboard.models import (
    UTCDateTime,
    EquipmentLog,
    MobilityScore,
    Patient,
    PatientActivity,
    ScoreSummary,
    SessionNote,
    StatusHistory,
)


# PostgreSQL runs writes to one patient concurrently; each would recompute from a snapshot without
# the other's uncommitted row (a stale summary, a repeated history sequence). Locking the patient row
# first (NO KEY UPDATE: foreign-key checks still pass) makes them take turns; each statement after the
# lock sees what the previous holder committed. SQLite has one writer, so it needs nothing.
LOCK_PATIENT = select(Patient.id).where(Patient.id == bindparam("patient_id", type_=String)).with_for_update(
    key_share=True)


async def lock_patient(session: AsyncSession, patient_id: str) -> None:
    if _dialect(session) != "sqlite":
        await session.execute(LOCK_PATIENT, {"patient_id": patient_id})


async def refresh_score_summary(session: AsyncSession, patient_id: str, score_type: str) -> None:
    """The same statement as a create's (`score_summary_upsert`), after clearing the row: a measure
    whose every score is now entered in error has no summary."""
    await lock_patient(session, patient_id)
    await session.execute(delete(ScoreSummary).where(
        ScoreSummary.patient_id == patient_id, ScoreSummary.score_type == score_type))
    connection = await session.connection()  # Core execution, as on the create path
    await connection.execute(score_summary_upsert(_dialect(session)),
                             {"patient_id": patient_id, "score_type": score_type})


async def refresh_patient_activity(session: AsyncSession, patient_id: str) -> tuple[int, int]:
    """Recounts (open follow-ups, equipment out) from the rows: for imports, once per batch."""
    await lock_patient(session, patient_id)
    connection = await session.connection()  # Core execution, as on the create path
    follow_ups, out = (await connection.execute(patient_activity_upsert(_dialect(session)),
                                                {"patient_id": patient_id})).one()
    return int(follow_ups), int(out)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# ---------------------------------------------------------------------------- as single statements
# The same recomputation as one upsert each, for the fast write path (`Database.transact`): a create
# refreshes its read model in one statement instead of a read, an ORM load and a flush.

def _upsert_for(dialect: str) -> Any:
    return postgresql_insert if dialect == "postgresql" else sqlite_insert


def _newest_score(offset: int) -> Any:
    return (select(MobilityScore.score_value, MobilityScore.score_date)
            .where(MobilityScore.patient_id == bindparam("patient_id"),
                   MobilityScore.score_type == bindparam("score_type"),
                   MobilityScore.entered_in_error.is_(False))
            .order_by(MobilityScore.score_date.desc(), MobilityScore.created_at.desc())
            .limit(1).offset(offset))


@functools.cache
def score_summary_upsert(dialect: str) -> Any:
    """Params patient_id, score_type. Only for after a valid score was added (there is one)."""
    latest = _newest_score(0).subquery()
    source = select(bindparam("patient_id", type_=String), bindparam("score_type", type_=String),
                    latest.c.score_value, latest.c.score_date,
                    _newest_score(1).with_only_columns(MobilityScore.score_value).scalar_subquery(),
                    ).where(true())  # SQLite reads "FROM x ON CONFLICT" as a join without a WHERE
    statement = _upsert_for(dialect)(ScoreSummary).from_select(
        ["patient_id", "score_type", "latest_value", "latest_date", "previous_value"], source)
    return statement.on_conflict_do_update(
        index_elements=[ScoreSummary.patient_id, ScoreSummary.score_type],
        set_={"latest_value": statement.excluded.latest_value, "latest_date": statement.excluded.latest_date,
              "previous_value": statement.excluded.previous_value})


@functools.cache
def patient_activity_upsert(dialect: str) -> Any:
    """Param patient_id; returns (open_follow_ups, equipment_out)."""
    patient = bindparam("patient_id", type_=String)
    notes = SessionNote.patient_id == patient
    source = select(
        patient,
        select(func.max(SessionNote.session_date)).where(notes).scalar_subquery(),
        select(func.count()).where(notes, SessionNote.follow_up_needed.is_(True)).scalar_subquery(),
        select(func.count()).where(EquipmentLog.patient_id == patient,
                                   EquipmentLog.status == "checked_out").scalar_subquery(),
    ).where(true())
    statement = _upsert_for(dialect)(PatientActivity).from_select(
        ["patient_id", "last_session_at", "open_follow_ups", "equipment_out"], source)
    return statement.on_conflict_do_update(
        index_elements=[PatientActivity.patient_id],
        set_={"last_session_at": statement.excluded.last_session_at,
              "open_follow_ups": statement.excluded.open_follow_ups,
              "equipment_out": statement.excluded.equipment_out},
    ).returning(PatientActivity.open_follow_ups, PatientActivity.equipment_out)


@functools.cache
def activity_delta_upsert(dialect: str) -> Any:
    """Params patient_id, last_session_at (or None), follow_ups and equipment (the deltas); returns
    (open_follow_ups, equipment_out) after the change."""
    values = {"patient_id": bindparam("patient_id", type_=String),
              "last_session_at": bindparam("last_session_at", type_=UTCDateTime),
              "open_follow_ups": bindparam("follow_ups", type_=Integer),
              "equipment_out": bindparam("equipment", type_=Integer)}
    statement = _upsert_for(dialect)(PatientActivity).values(**values)
    table, new = PatientActivity.__table__.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[PatientActivity.patient_id],
        set_={"last_session_at": case((or_(table.last_session_at.is_(None),
                                           new.last_session_at > table.last_session_at), new.last_session_at),
                                      else_=table.last_session_at),
              "open_follow_ups": table.open_follow_ups + new.open_follow_ups,
              "equipment_out": table.equipment_out + new.equipment_out},
    ).returning(PatientActivity.open_follow_ups, PatientActivity.equipment_out)


# Params patient_id.
NEXT_HISTORY_SEQUENCE = select(func.coalesce(func.max(StatusHistory.sequence), 0) + 1).where(
    StatusHistory.patient_id == bindparam("patient_id", type_=String))
NOTE_PATIENT = select(SessionNote.patient_id).where(SessionNote.id == bindparam("note_id", type_=String))
