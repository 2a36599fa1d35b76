"""Who may see what (shared/spec/ACCESS.md), answered from an in-memory index.

The index is loaded once from the database and kept current by the change feed (changes.py), which
applies every committed access mutation (a patient's therapist, a care team, a role, an account's
state, revoked sessions) in the order of the change log. The store's reads and the hub's
per-recipient checks both ask it, so there is one rule.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dashboard.models import AuthSession, CareTeamMember, Patient, User, utcnow
from dashboard.roles import Role


# Sessions' clocks are pruned of ended ones when this many are kept (REST-only use has no sweep).
PRUNE_AT_SESSIONS = 20_000


@dataclass(frozen=True)
class Principal:
    """The acting user, as established by a session. Role and access are looked up live."""

    user_id: str
    session_id: str | None = None
    username: str = ""


@dataclass
class _PatientAccess:
    primary_therapist_id: str
    members: set[str] = field(default_factory=set)


@dataclass
class _UserAccess:
    role: str
    active: bool
    username: str
    full_names: bool = False


@dataclass
class SessionClock:
    """A session's two limits (ACCESS.md): its absolute lifetime and its idle timeout."""

    user_id: str
    expires_at: datetime
    last_seen_at: datetime
    stored_last_seen_at: datetime  # what the database holds (written at a coarser step)
    ends_at: datetime | None = None  # the nearer of the two limits, kept by the index


class AccessIndex:
    """Also the sessions' clocks: a session past its lifetime or idle limit has no role, so every
    store call refuses it and every push to it is dropped at delivery, on every channel."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow,
                 idle_timeout: timedelta = timedelta(minutes=30), viewer_exempt: bool = False) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        # A shared ward screen (the viewer role, and only it) may be exempt from both limits.
        self.viewer_exempt = viewer_exempt
        self._patients: dict[str, _PatientAccess] = {}
        self._users: dict[str, _UserAccess] = {}
        self._member_of: dict[str, set[str]] = {}
        self._primary_of: dict[str, set[str]] = {}
        self._revoked_sessions: set[str] = set()
        self._sessions: dict[str, SessionClock] = {}
        self._team_changes = 0  # counts every member added or removed, and each full reload
        self._team_changed_at: dict[str, int] = {}  # patient → the count at its team's last change

    def clear(self) -> None:
        self._patients.clear()
        self._users.clear()
        self._member_of.clear()
        self._primary_of.clear()
        self._revoked_sessions.clear()
        self._sessions.clear()

    def user_ids(self) -> set[str]:
        return set(self._users)

    def revoked_sessions(self) -> frozenset[str]:
        return frozenset(self._revoked_sessions)

    def replace_from(self, fresh: "AccessIndex") -> None:
        """Takes `fresh`'s patients, users and care teams (a full resync's snapshot), keeping this
        index's session clocks; revocations are only added (never stricter in the database)."""
        self._patients, self._users = fresh._patients, fresh._users
        self._member_of, self._primary_of = fresh._member_of, fresh._primary_of
        self._revoked_sessions |= fresh._revoked_sessions
        self._team_changes += 1
        self._team_changed_at = {pid: self._team_changes for pid in self._patients}

    async def load(self, session: AsyncSession) -> None:
        self.clear()
        for uid, role, active, username, names in await session.execute(
            select(User.id, User.role, User.active, User.username, User.show_full_names)
        ):
            self.put_user(uid, role=role, active=active, username=username, full_names=names)
        for pid, therapist in await session.execute(select(Patient.id, Patient.primary_therapist_id)):
            self.put_patient(pid, primary_therapist_id=therapist)
        for pid, uid in await session.execute(select(CareTeamMember.patient_id, CareTeamMember.user_id)):
            self.add_member(pid, uid)
        for (sid,) in await session.execute(
            select(AuthSession.id).where(AuthSession.revoked_at.is_not(None))
        ):
            self._revoked_sessions.add(sid)

    # -- questions ------------------------------------------------------------------------------
    def role(self, principal: Principal | None) -> str | None:
        """The principal's current role; None when signed out, revoked or deactivated."""
        if principal is None or principal.session_id in self._revoked_sessions:
            return None
        user = self._users.get(principal.user_id)
        if user is None or not user.active:
            return None
        if principal.session_id is not None and self.session_over(principal.session_id, user.role):
            return None
        return user.role

    # -- session clocks -------------------------------------------------------------------------
    def track_session(self, session_id: str, user_id: str, *, expires_at: datetime,
                      last_seen_at: datetime) -> SessionClock:
        clock = self._sessions.get(session_id)
        if clock is None:
            if len(self._sessions) >= PRUNE_AT_SESSIONS:
                self.prune_sessions()
            clock = self._sessions[session_id] = SessionClock(user_id, expires_at, last_seen_at, last_seen_at)
            clock.ends_at = min(expires_at, last_seen_at + self.idle_timeout)
        return clock

    def session_clock(self, session_id: str) -> SessionClock | None:
        return self._sessions.get(session_id)

    def session_over(self, session_id: str, role: str | None = None) -> str | None:
        """Why the session is over ("revoked", "expired", "idle", "unknown"), or None while current.
        A session this process never saw established is over: it fails closed."""
        if session_id in self._revoked_sessions:
            return "revoked"
        clock = self._sessions.get(session_id)
        if clock is None:
            return "unknown"
        if self.viewer_exempt and (role or self._role_of(clock.user_id)) == Role.VIEWER:
            return None
        now = self.clock()
        if clock.ends_at is not None and now < clock.ends_at:
            return None
        return "expired" if now >= clock.expires_at else "idle"

    def _role_of(self, user_id: str) -> str | None:
        user = self._users.get(user_id)
        return user.role if user else None

    def touch_session(self, session_id: str) -> SessionClock | None:
        """Activity on a current session (a request, a page event): its idle time starts again."""
        clock = self._sessions.get(session_id)
        if clock is None or self.session_over(session_id):
            return None
        clock.last_seen_at = self.clock()
        clock.ends_at = min(clock.expires_at, clock.last_seen_at + self.idle_timeout)
        return clock

    def seen_elsewhere(self, session_id: str, last_seen_at: datetime | None) -> None:
        """The database's last-seen time, written by another instance: a later one extends the clock."""
        clock = self._sessions.get(session_id)
        if clock is None or last_seen_at is None or last_seen_at <= clock.last_seen_at:
            return
        clock.last_seen_at = clock.stored_last_seen_at = last_seen_at
        clock.ends_at = min(clock.expires_at, last_seen_at + self.idle_timeout)

    def forget_session(self, session_id: str) -> None:
        """An ended session's clock is dropped; being unknown, it stays over."""
        self._sessions.pop(session_id, None)

    def prune_sessions(self) -> int:
        """Drops the clocks of sessions that are over (memory stays in proportion to live ones)."""
        over = [sid for sid, c in self._sessions.items() if self.session_over(sid, self._role_of(c.user_id))]
        for sid in over:
            del self._sessions[sid]
        return len(over)

    def user(self, user_id: str) -> _UserAccess | None:
        return self._users.get(user_id)

    def sees_patient(self, principal: Principal | None, patient_id: str | None) -> bool:
        role = self.role(principal)
        access = self._patients.get(patient_id or "")
        if role is None or access is None or principal is None:
            return False
        if role == Role.LEAD:
            return True
        if principal.user_id in access.members:
            return True
        return role == Role.THERAPIST and access.primary_therapist_id == principal.user_id

    def can_read(self, principal: Principal | None, class_name: str, patient_id: str | None,
                 object_id: str | None = None) -> bool:
        if class_name == "_User":
            role = self.role(principal)
            return role is not None  # others' username and role are public to signed-in users
        if class_name == "SessionNote" and self.role(principal) == Role.VIEWER:
            return False
        return self.sees_patient(principal, patient_id)

    def owns(self, principal: Principal | None, patient_id: str) -> bool:
        """The owning therapist: the patient's primaryTherapist, still a therapist."""
        access = self._patients.get(patient_id)
        return (
            principal is not None
            and access is not None
            and self.role(principal) == Role.THERAPIST
            and access.primary_therapist_id == principal.user_id
        )

    def visible_patient_ids(self, principal: Principal | None) -> set[str] | None:
        """The patients the principal sees; None means every patient (a lead)."""
        role = self.role(principal)
        if role is None or principal is None:
            return set()
        if role == Role.LEAD:
            return None
        ids = set(self._member_of.get(principal.user_id, ()))
        if role == Role.THERAPIST:
            ids |= self._primary_of.get(principal.user_id, set())
        return ids

    def visible_for_user(self, user_id: str) -> set[str]:
        """Every patient the user sees now (leads: all); for computing who gained or lost access."""
        visible = self.visible_patient_ids(Principal(user_id))
        return set(self._patients) if visible is None else visible

    def session_revoked(self, session_id: str | None) -> bool:
        return session_id in self._revoked_sessions

    def primary_therapist(self, patient_id: str) -> str | None:
        access = self._patients.get(patient_id)
        return access.primary_therapist_id if access else None

    def active_leads(self) -> set[str]:
        return {uid for uid, u in self._users.items() if u.role == Role.LEAD and u.active}

    def full_names(self, principal: Principal) -> bool:
        user = self._users.get(principal.user_id)
        return bool(user and user.full_names)

    # -- updates, called by the store after commit ----------------------------------------------
    def put_user(self, user_id: str, *, role: str, active: bool, username: str,
                 full_names: bool = False) -> None:
        self._users[user_id] = _UserAccess(role, active, username, full_names)

    def put_patient(self, patient_id: str, *, primary_therapist_id: str) -> None:
        access = self._patients.get(patient_id)
        if access is None:
            access = self._patients[patient_id] = _PatientAccess(primary_therapist_id)
        else:
            self._primary_of.get(access.primary_therapist_id, set()).discard(patient_id)
            access.primary_therapist_id = primary_therapist_id
        self._primary_of.setdefault(primary_therapist_id, set()).add(patient_id)

    def add_member(self, patient_id: str, user_id: str) -> None:
        self._team_changes += 1
        self._team_changed_at[patient_id] = self._team_changes
        self._patients[patient_id].members.add(user_id)
        self._member_of.setdefault(user_id, set()).add(patient_id)

    def team_key(self, patient_id: str) -> tuple:
        """What a care-team listing shows, as this index knows it: its members with their role and
        whether they are active. Equal keys: the same listing (a cache of it stays good)."""
        access = self._patients.get(patient_id)
        if access is None:
            return ()
        users = self._users
        members = tuple(sorted((uid, users[uid].role, users[uid].active) if uid in users else (uid, None, None)
                               for uid in access.members))
        return (self._team_changed_at.get(patient_id, 0), members)  # a member gone and back: since anew

    def remove_member(self, patient_id: str, user_id: str) -> None:
        self._team_changes += 1
        self._team_changed_at[patient_id] = self._team_changes
        self._patients[patient_id].members.discard(user_id)
        self._member_of.get(user_id, set()).discard(patient_id)

    def revoke_session(self, session_id: str) -> None:
        self._revoked_sessions.add(session_id)

