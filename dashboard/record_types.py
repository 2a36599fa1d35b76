"""What the store returns and the hub delivers: frozen, typed records, never ORM rows.

As the FastAPI template keeps `UserPublic` apart from its table model, these are the read types. They
carry the ORM's attribute names (a Pointer `patient` is `patient_id`), aware UTC datetimes, and
only what the reader may see (a viewer's have no private fields; another user's account has no
email). `dashboard.serialize` builds them from a row (`record_of`) and from a Parse-shaped object
(`from_parse`), beside `to_parse`, which turns either back into Parse JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True)
class UserRecord:
    class_name: ClassVar[str] = "_User"
    id: str
    username: str
    role: str
    created_at: datetime
    updated_at: datetime
    version: int
    email: str | None = None  # self and leads only
    active: bool | None = None  # self and leads only
    show_full_names: bool = False


@dataclass(frozen=True)
class PatientRecord:
    class_name: ClassVar[str] = "Patient"
    id: str
    patient_id: str | None  # the hospital's identifier; None for a viewer
    display_name: str
    primary_therapist_id: str
    mobility_status: str
    created_at: datetime
    updated_at: datetime
    version: int
    date_of_birth: datetime | None = None
    archived: bool = False
    bed: str | None = None


@dataclass(frozen=True)
class ScoreRecord:
    class_name: ClassVar[str] = "MobilityScore"
    id: str
    patient_id: str
    score_date: datetime
    score_type: str
    score_value: float
    recorded_by_id: str
    created_at: datetime
    updated_at: datetime
    version: int
    notes: str | None = None
    entered_in_error: bool = False
    error_reason: str | None = None
    error_marked_by_id: str | None = None


@dataclass(frozen=True)
class NoteRecord:
    class_name: ClassVar[str] = "SessionNote"
    id: str
    patient_id: str
    session_date: datetime
    session_type: str
    note_text: str | None  # None for a viewer (who is never sent notes)
    author_id: str
    created_at: datetime
    updated_at: datetime
    version: int
    follow_up_needed: bool = False
    amends_id: str | None = None


@dataclass(frozen=True)
class EquipmentRecord:
    class_name: ClassVar[str] = "EquipmentLog"
    id: str
    patient_id: str
    equipment_name: str
    status: str
    logged_by_id: str
    created_at: datetime
    updated_at: datetime
    version: int
    serial_number: str | None = None
    checked_out_at: datetime | None = None
    returned_at: datetime | None = None


@dataclass(frozen=True)
class HistoryRecord:
    class_name: ClassVar[str] = "StatusHistory"
    id: str
    patient_id: str
    status_type: str
    to_value: str
    changed_by_id: str
    created_at: datetime
    updated_at: datetime
    from_value: str | None = None
    change_reason: str | None = None
    equipment_log_id: str | None = None
    sequence: int = 0


@dataclass(frozen=True)
class AuditRecord:
    """One audit row: who did what to which record, when, and the outcome; never a PHI value."""

    id: int
    at: datetime
    actor_id: str | None
    action: str
    class_name: str
    object_id: str | None
    patient_ref: str | None
    outcome: str
    detail: str | None
    address: str | None


Record = UserRecord | PatientRecord | ScoreRecord | NoteRecord | EquipmentRecord | HistoryRecord
PatientRecordType = ScoreRecord | NoteRecord | EquipmentRecord | HistoryRecord

RECORD_TYPES: dict[str, type[Record]] = {
    t.class_name: t for t in (UserRecord, PatientRecord, ScoreRecord, NoteRecord, EquipmentRecord, HistoryRecord)
}
