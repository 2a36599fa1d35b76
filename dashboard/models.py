"""The data model: the six classes of shared/spec/schema.json plus what access needs.

Attribute names are the schema's field names in snake_case; a Pointer field `patient` is the
foreign key `patient_id`. Patient's own `patientId` (the hospital's identifier) is therefore
`Patient.patient_id`: it lives on a different table from the pointers of the same name.
"""
from __future__ import annotations

import secrets
from datetime import date, datetime, timezone

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from dashboard.roles import Role

OBJECT_ID_LENGTH = 10


def new_object_id() -> str:
    """A random URL-safe id, as Parse makes them (10 characters, about 60 bits)."""
    return secrets.token_urlsafe(8)[:OBJECT_ID_LENGTH]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; naive UTC in SQLite, timestamptz in PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store only takes timezone-aware values")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[override]
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Versioned:
    """Optimistic concurrency: every UPDATE checks and bumps the version."""

    version: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, object]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class User(Timestamps, Versioned, Base):
    __tablename__ = "users"
    class_name = "_User"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # The username as compared (NFKC, case-folded): one account per key, however it is spelled.
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.CONTRIBUTOR.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A lead turns on full names for a shared ward screen (a viewer account).
    show_full_names: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set by a lead's password reset: the next sign-in must choose a new password before anything else.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Patient(Timestamps, Versioned, Base):
    __tablename__ = "patients"
    class_name = "Patient"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    patient_id: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    date_of_birth: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    primary_therapist_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    mobility_status: Mapped[str] = mapped_column(String(32))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set with `archived` when a lead discharges the patient (store/patients.py).
    discharged_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    discharge_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    bed: Mapped[str | None] = mapped_column(String(32), nullable=True)  # bed, bay or room


class MobilityScore(Timestamps, Versioned, Base):
    __tablename__ = "mobility_scores"
    # created_at breaks ties under "latest score" (summaries.py), so a burst on one date stays a lookup.
    __table_args__ = (Index("ix_scores_patient_type_date_created", "patient_id", "score_type", "score_date",
                            "created_at"),)
    class_name = "MobilityScore"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    score_date: Mapped[datetime] = mapped_column(UTCDateTime)
    score_type: Mapped[str] = mapped_column(String(32))
    score_value: Mapped[float] = mapped_column(Float)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_by_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    entered_in_error: Mapped[bool] = mapped_column(Boolean, default=False)
    error_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_marked_by_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class EquipmentLog(Timestamps, Versioned, Base):
    __tablename__ = "equipment_logs"
    __table_args__ = (Index("ix_equipment_patient_status", "patient_id", "status"),)
    class_name = "EquipmentLog"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    equipment_name: Mapped[str] = mapped_column(String(200))
    serial_number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    logged_by_id: Mapped[str] = mapped_column(ForeignKey("users.id"))


class SessionNote(Timestamps, Versioned, Base):
    __tablename__ = "session_notes"
    __table_args__ = (Index("ix_notes_patient_date", "patient_id", "session_date"),)
    class_name = "SessionNote"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    session_date: Mapped[datetime] = mapped_column(UTCDateTime)
    session_type: Mapped[str] = mapped_column(String(32))
    note_text: Mapped[str] = mapped_column(Text)
    follow_up_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    # A correction is a new note that points to the one it amends; text is never edited.
    amends_id: Mapped[str | None] = mapped_column(ForeignKey("session_notes.id"), nullable=True)


class StatusHistory(Timestamps, Base):
    __tablename__ = "status_history"
    __table_args__ = (Index("ix_history_patient_created", "patient_id", "created_at"),
                      # The next sequence is max(sequence) of the patient: a lookup, not a scan.
                      Index("ix_history_patient_sequence", "patient_id", "sequence"))
    class_name = "StatusHistory"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    status_type: Mapped[str] = mapped_column(String(32))  # "mobilityStatus" or "equipmentStatus"
    from_value: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_value: Mapped[str] = mapped_column(String(64))
    changed_by_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    change_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    equipment_log_id: Mapped[str | None] = mapped_column(ForeignKey("equipment_logs.id"), nullable=True)
    # Orders the chain even when two changes share a timestamp.
    sequence: Mapped[int] = mapped_column(Integer, default=0)


class CareTeamMember(Base):
    __tablename__ = "care_team_members"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    granted_by_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthSession(Base):
    """A server-side session. Only the SHA-256 of the token is kept."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_object_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Shown to the user on /account (which device, from where); never a secret, never PHI.
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LoginThrottle(Base):
    """Failed sign-ins per username key (also for unknown usernames, so both answer alike)."""

    __tablename__ = "login_throttle"

    username_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginAttempt(Base):
    """Sign-in attempts per key (an account's or a client address's) and minute: the one rate
    limit that every instance on one PostgreSQL shares (dashboard/rate_limit.py)."""

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Who did what to which record, when, and the outcome. Never holds PHI values."""

    __tablename__ = "audit_log"
    # Each of the audit view's filters with the listing's order, newest first by (at, id), so a keyset
    # page reads only its rows at any size of the log (dashboard/store/audit.py; migration 0009).
    __table_args__ = (Index("ix_audit_at_id", "at", "id"), Index("ix_audit_patient_at", "patient_ref", "at", "id"),
                      Index("ix_audit_actor_at", "actor_id", "at", "id"),
                      Index("ix_audit_class_at", "class_name", "at", "id"),
                      Index("ix_audit_outcome_at", "outcome", "at", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    class_name: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    patient_ref: Mapped[str | None] = mapped_column(String(16), nullable=True)  # Patient.id, opaque
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)  # field names, never values
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the client's, for sign-ins


class RequestKey(Base):
    """A save's idempotency key (Parse's X-Parse-Request-Id), per acting user, kept 24 hours: a save
    repeated with it is refused as a repeat of the record named here (dashboard/store/request_keys.py)."""

    __tablename__ = "request_keys"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


PATIENT_RECORD_CLASSES: dict[str, type[Base]] = {
    "MobilityScore": MobilityScore,
    "SessionNote": SessionNote,
    "EquipmentLog": EquipmentLog,
    "StatusHistory": StatusHistory,
}


class ScoreSummary(Base):
    """Read model: the two newest valid scores per patient and measure, kept by the store on write.

    The caseload reads this instead of ranking every score (833 ms at 200,000 scores in SQLite).
    """

    __tablename__ = "score_summaries"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    score_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    latest_value: Mapped[float] = mapped_column(Float)
    latest_date: Mapped[datetime] = mapped_column(UTCDateTime)
    previous_value: Mapped[float | None] = mapped_column(Float, nullable=True)


class PatientActivity(Base):
    """Read model: last session, open follow-ups and equipment out per patient, kept on write."""

    __tablename__ = "patient_activity"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    last_session_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    open_follow_ups: Mapped[int] = mapped_column(Integer, default=0)
    equipment_out: Mapped[int] = mapped_column(Integer, default=0)


class ChangeLog(Base):
    """Committed changes as data: one row per write transaction, inserted by that transaction as its
    last statement, holding its record events and access mutations in order (dashboard/changes.py).

    `seq` follows commit order. SQLite has one writer, so its AUTOINCREMENT rowid does (and a
    rolled-back write takes no number). On PostgreSQL an identity value is taken at INSERT, not at
    COMMIT; a trigger numbers the row under a transaction-scoped advisory lock instead, so numbers
    follow commit order and a reader sees a prefix with only permanent holes (SCALE-OUT.md §3).
    """

    __tablename__ = "change_log"
    __table_args__ = (Index("ix_change_log_at", "at"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str] = mapped_column(Text)  # JSON: a list of changes


# The numbering on PostgreSQL; the migration (0005) creates the same objects.
CHANGE_LOG_ADVISORY_LOCK = 7_310_001
# The wake-up of other instances (SCALE-OUT.md §3): delivered at commit, in commit order. Its payload
# is the row's number and nothing else (no data, no PHI): a listener that has applied it reads nothing.
CHANGE_LOG_NOTIFY_CHANNEL = "ot_changes"
CHANGE_LOG_NOTIFY_DDL = (
    f"""CREATE OR REPLACE FUNCTION change_log_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANGE_LOG_NOTIFY_CHANNEL}', NEW.seq::text);
    RETURN NULL;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS change_log_notify ON change_log",
    "CREATE TRIGGER change_log_notify AFTER INSERT ON change_log FOR EACH ROW EXECUTE FUNCTION change_log_notify()",
)
CHANGE_LOG_PG_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS change_seq",
    "ALTER TABLE change_log ALTER COLUMN seq DROP DEFAULT",
    f"""CREATE OR REPLACE FUNCTION change_log_number() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({CHANGE_LOG_ADVISORY_LOCK});
    NEW.seq := nextval('change_seq');
    RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS change_log_number ON change_log",
    "CREATE TRIGGER change_log_number BEFORE INSERT ON change_log FOR EACH ROW EXECUTE FUNCTION change_log_number()",
    *CHANGE_LOG_NOTIFY_DDL,
)
for _statement in CHANGE_LOG_PG_DDL:
    event.listen(ChangeLog.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
