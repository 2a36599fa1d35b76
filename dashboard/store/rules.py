"""The per-class write rules of ACCESS.md ("Per class"), as pure functions: no I/O, no store.

The write pipeline enforces them, and `Store.permissions` answers from them what a principal may do
on a patient's page, so a page never restates a rule (and never disagrees with the store).
A refusal is the text of the PermissionDenied the write raises; None means allowed.
"""
from __future__ import annotations

from dataclasses import dataclass

from dashboard.access import Role

# Who may add scores, notes and equipment to the patients they see.
WRITERS = frozenset({Role.LEAD, Role.THERAPIST, Role.CONTRIBUTOR})
PATIENT_OWNER_FIELDS = frozenset({"displayName", "dateOfBirth", "mobilityStatus", "bed"})
PATIENT_LEAD_FIELDS = frozenset({"primaryTherapist", "patientId", "archived"})
EQUIPMENT_LEAD_FIELDS = frozenset({"equipmentName", "serialNumber"})
EQUIPMENT_WRITER_FIELDS = frozenset({"status", "returnedAt"})
SCORE_ERROR_FIELDS = frozenset({"enteredInError", "errorReason"})


def may_add_records(role: Role | None) -> bool:
    return role in WRITERS


def may_add_patient(role: Role | None) -> bool:
    return role in (Role.LEAD, Role.THERAPIST)


def may_manage_patient(role: Role | None, *, owns: bool) -> bool:
    """Profile and mobility status, and the care team: a lead, or the owning therapist."""
    return role == Role.LEAD or (role == Role.THERAPIST and owns)


def may_read_class(role: Role | None, class_name: str) -> bool:
    """A viewer (a ward screen) never reads session notes."""
    return role is not None and not (role == Role.VIEWER and class_name == "SessionNote")


def patient_field_refusal(name: str, role: Role | None, *, owns: bool) -> str | None:
    if name in PATIENT_LEAD_FIELDS and role != Role.LEAD:
        return f"{name}: only a lead may change it"
    if name in PATIENT_OWNER_FIELDS and not may_manage_patient(role, owns=owns):
        return f"{name}: only a lead or the owning therapist may change it"
    return None


def score_change_refusal(fields: frozenset[str] | set[str], role: Role | None, *,
                         recorded_by_id: str, user_id: str) -> str | None:
    if set(fields) - SCORE_ERROR_FIELDS:
        return "Scores are never edited; mark one entered-in-error instead"
    if not (role == Role.LEAD or (recorded_by_id == user_id and role in WRITERS)):
        return "Only the recorder or a lead marks a score entered-in-error"
    return None


def note_change_refusal(fields: frozenset[str] | set[str], role: Role | None) -> str | None:
    if set(fields) != {"followUpNeeded"}:
        return "Note text is never edited; add an addendum instead"
    if role not in WRITERS:
        return f"A {role} account cannot change notes"
    return None


def equipment_field_refusal(name: str, role: Role | None) -> str | None:
    if name in EQUIPMENT_LEAD_FIELDS:
        return None if role == Role.LEAD else f"{name}: only a lead may change it"
    if name in EQUIPMENT_WRITER_FIELDS:
        return None if role in WRITERS else f"A {role} account cannot change equipment"
    return f"{name}: cannot be changed"


@dataclass(frozen=True)
class Permissions:
    """What a principal may do, from the live role; on a patient when `patient_id` was given.

    Pages ask the store for this (`Store.permissions`) and hold no role of their own.
    """

    user_id: str
    role: Role
    patient_id: str | None = None
    owns: bool = False  # the patient's primary therapist, still a therapist
    full_names: bool = False  # a viewer whose lead turned names on

    @property
    def is_lead(self) -> bool:
        """Admin (accounts, roles, assignment) and every patient."""
        return self.role == Role.LEAD

    @property
    def is_viewer(self) -> bool:
        """A shared ward screen: no notes, no private fields."""
        return self.role == Role.VIEWER

    @property
    def reads_notes(self) -> bool:
        return may_read_class(self.role, "SessionNote")

    @property
    def shows_names(self) -> bool:
        """Full display names; a viewer gets initials unless a lead turned names on."""
        return self.role != Role.VIEWER or self.full_names

    @property
    def can_record(self) -> bool:
        """Add scores, notes and addenda; check out and return equipment; clear follow-ups."""
        return may_add_records(self.role)

    @property
    def can_add_patient(self) -> bool:
        return may_add_patient(self.role)

    @property
    def can_manage(self) -> bool:
        """Change the patient's profile and mobility status."""
        return may_manage_patient(self.role, owns=self.owns)

    @property
    def can_change_team(self) -> bool:
        return may_manage_patient(self.role, owns=self.owns)

    @property
    def can_clear_follow_up(self) -> bool:
        return note_change_refusal({"followUpNeeded"}, self.role) is None

    @property
    def can_return_equipment(self) -> bool:
        return equipment_field_refusal("status", self.role) is None

    @property
    def can_assign(self) -> bool:
        """Change the primary therapist (and the hospital identifier, and archive)."""
        return patient_field_refusal("primaryTherapist", self.role, owns=self.owns) is None

    def can_mark(self, score: object) -> bool:
        """Mark this score entered-in-error: its recorder (still a writer) or a lead, once."""
        if getattr(score, "entered_in_error", True):
            return False
        return score_change_refusal(SCORE_ERROR_FIELDS, self.role,
                                    recorded_by_id=getattr(score, "recorded_by_id", ""),
                                    user_id=self.user_id) is None
