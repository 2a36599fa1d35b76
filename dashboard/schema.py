"""Field specs for the six classes: the one place that maps Parse field names to model attributes.

Mirrors shared/spec/schema.json (a test checks they agree), plus the few fields access needs:
`enteredInError`/`errorReason` on scores, `amends` on notes, `archived` and `bed` on patients.
"""
from __future__ import annotations

from dataclasses import dataclass

from dashboard import models

MAX_TEXT = 20_000  # note text and reasons
MAX_SHORT = 200  # names, types, identifiers


@dataclass(frozen=True)
class FieldSpec:
    name: str  # Parse field name
    attr: str  # model attribute
    kind: str  # String, Number, Boolean, Date, Pointer
    required: bool = False
    target: str | None = None  # Pointer target class ("_User" for users)
    max_length: int = MAX_SHORT
    server_set: bool = False  # filled by the store (author, recordedBy, ...)
    private: bool = False  # PHI: never in a viewer's push, a URL or a log


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


CLASSES: dict[str, dict[str, FieldSpec]] = {
    "_User": _fields(
        FieldSpec("username", "username", "String", required=True, max_length=64),
        FieldSpec("email", "email", "String", required=True, max_length=254),
        FieldSpec("password", "password_hash", "String", required=True, max_length=1024),
        FieldSpec("role", "role", "String", required=True, max_length=16),
        FieldSpec("active", "active", "Boolean"),
    ),
    "Patient": _fields(
        FieldSpec("patientId", "patient_id", "String", required=True, max_length=64, private=True),
        FieldSpec("displayName", "display_name", "String", required=True),
        FieldSpec("dateOfBirth", "date_of_birth", "Date", private=True),
        FieldSpec("primaryTherapist", "primary_therapist_id", "Pointer", required=True, target="_User"),
        FieldSpec("mobilityStatus", "mobility_status", "String", required=True, max_length=32),
        FieldSpec("archived", "archived", "Boolean"),
        # Where on the ward: bed, bay or room as the ward writes it; the ward board is ordered by it.
        FieldSpec("bed", "bed", "String", max_length=32),
    ),
    "MobilityScore": _fields(
        FieldSpec("patient", "patient_id", "Pointer", required=True, target="Patient"),
        FieldSpec("scoreDate", "score_date", "Date", required=True),
        FieldSpec("scoreType", "score_type", "String", required=True, max_length=32),
        FieldSpec("scoreValue", "score_value", "Number", required=True),
        FieldSpec("notes", "notes", "String", max_length=MAX_TEXT, private=True),
        FieldSpec("recordedBy", "recorded_by_id", "Pointer", required=True, target="_User", server_set=True),
        FieldSpec("enteredInError", "entered_in_error", "Boolean"),
        FieldSpec("errorReason", "error_reason", "String", max_length=MAX_TEXT, private=True),
    ),
    "EquipmentLog": _fields(
        FieldSpec("patient", "patient_id", "Pointer", required=True, target="Patient"),
        FieldSpec("equipmentName", "equipment_name", "String", required=True),
        FieldSpec("serialNumber", "serial_number", "String", max_length=100),
        FieldSpec("status", "status", "String", required=True, max_length=32),
        FieldSpec("checkedOutAt", "checked_out_at", "Date"),
        FieldSpec("returnedAt", "returned_at", "Date"),
        FieldSpec("loggedBy", "logged_by_id", "Pointer", required=True, target="_User", server_set=True),
    ),
    "SessionNote": _fields(
        FieldSpec("patient", "patient_id", "Pointer", required=True, target="Patient"),
        FieldSpec("sessionDate", "session_date", "Date", required=True),
        FieldSpec("sessionType", "session_type", "String", required=True, max_length=32),
        FieldSpec("noteText", "note_text", "String", required=True, max_length=MAX_TEXT, private=True),
        FieldSpec("followUpNeeded", "follow_up_needed", "Boolean", required=True),
        FieldSpec("author", "author_id", "Pointer", required=True, target="_User", server_set=True),
        FieldSpec("amends", "amends_id", "Pointer", target="SessionNote"),
    ),
    "StatusHistory": _fields(
        FieldSpec("patient", "patient_id", "Pointer", required=True, target="Patient"),
        FieldSpec("statusType", "status_type", "String", required=True),
        FieldSpec("fromValue", "from_value", "String"),
        FieldSpec("toValue", "to_value", "String", required=True),
        FieldSpec("changedBy", "changed_by_id", "Pointer", required=True, target="_User", server_set=True),
        FieldSpec("changeReason", "change_reason", "String", max_length=MAX_TEXT, private=True),
    ),
}

MODELS: dict[str, type[models.Base]] = {
    "_User": models.User,
    "Patient": models.Patient,
    "MobilityScore": models.MobilityScore,
    "EquipmentLog": models.EquipmentLog,
    "SessionNote": models.SessionNote,
    "StatusHistory": models.StatusHistory,
}

# Classes whose rows belong to one patient and take that patient's visibility.
PATIENT_RECORDS = ("MobilityScore", "EquipmentLog", "SessionNote", "StatusHistory")
# Fields no viewer push or ward screen may carry.
PRIVATE_FIELDS = frozenset(n for spec in CLASSES.values() for n, f in spec.items() if f.private)

