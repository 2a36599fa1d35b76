"""Care teams: who besides the primary therapist (and the leads) sees a patient.

A member added or removed is an access mutation and a `CareTeam` event on the patient's topic, both
in the change log with the write: every open page of that patient re-reads its team from the event,
and the member's own screens gain or lose the patient from the mutation.
"""
from __future__ import annotations

import asyncio

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select

from dashboard.access import Principal, Role
from dashboard.changes import member_mutation
from dashboard.errors import InvalidInput, NotFound, PermissionDenied
from dashboard.hub import Event
from dashboard.models import CareTeamMember, User
from dashboard.record_types import UserRecord
from dashboard.store import rules
from dashboard.store.core import Actor, StoreCore, audited
from dashboard.store.read import Reads


class TeamMember(NamedTuple):
    user: UserRecord
    granted_at: datetime


def team_event(patient_id: str) -> Event:
    """Says only "this patient's team changed": each page re-reads it as its own principal."""
    return Event("update", "CareTeam", patient_id, patient_id, {"className": "CareTeam", "objectId": patient_id})


class CareTeams:
    def __init__(self, core: StoreCore, reads: Reads):
        self.core, self.reads = core, reads
        # patient → (the access index's team key, the one read of that team): a change reaches every
        # open page of the patient at once, and 250 pages each reading the team held the instance's
        # connection pool for seconds (bench cluster, revocation). Shaping stays per reader.
        self._teams: dict[str, tuple[tuple, asyncio.Future]] = {}

    def _may_change_team(self, principal: Principal | None, patient_id: str) -> Actor:
        actor = self.core.require_sees(principal, patient_id)
        if not rules.may_manage_patient(actor.role, owns=self.core.access.owns(principal, patient_id)):
            raise PermissionDenied("Only a lead or the owning therapist changes the care team")
        return actor

    @audited("grant")
    async def add_care_team_member(self, *, principal: Principal | None, patient_id: str,
                                   user_id: str) -> None:
        actor = self._may_change_team(principal, patient_id)
        member = self.core.access.user(user_id) if isinstance(user_id, str) else None
        if member is None or not member.active:
            raise InvalidInput("member", "must be an active user")
        async with self.core.write() as tx:
            exists = await tx.session.get(CareTeamMember, (patient_id, user_id))
            if exists is None:
                tx.session.add(CareTeamMember(patient_id=patient_id, user_id=user_id,
                                              granted_by_id=actor.user_id, granted_at=self.core.clock()))
                tx.audit(principal, "grant", "CareTeam", object_id=user_id, patient_ref=patient_id)
                tx.changes += [member_mutation("add_member", patient_id, user_id), team_event(patient_id)]

    @audited("revoke")
    async def remove_care_team_member(self, *, principal: Principal | None, patient_id: str,
                                      user_id: str) -> None:
        self._may_change_team(principal, patient_id)
        async with self.core.write() as tx:
            row = await tx.session.get(CareTeamMember, (patient_id, user_id))
            if row is None:
                raise NotFound("member: not on this care team")
            await tx.session.delete(row)
            tx.audit(principal, "revoke", "CareTeam", object_id=user_id, patient_ref=patient_id)
            tx.changes += [member_mutation("remove_member", patient_id, user_id), team_event(patient_id)]

    async def care_team(self, *, principal: Principal | None, patient_id: str) -> list[TeamMember]:
        """Members with when they were granted: each one's username and role (ACCESS.md: what anyone
        signed in reads of another account)."""
        actor = self.core.require_sees(principal, patient_id)
        key = self.core.access.team_key(patient_id)
        cached = self._teams.get(patient_id)
        if cached is None or cached[0] != key:
            cached = self._teams[patient_id] = (key, asyncio.ensure_future(self._read_team(patient_id)))
        try:
            rows = await asyncio.shield(cached[1])
        except Exception:
            if self._teams.get(patient_id) is cached:
                del self._teams[patient_id]  # the next reader tries again
            raise
        if actor.role == Role.VIEWER:  # a ward screen learns no staff username (store/read.py)
            return [m for m in rows if m.user.id == actor.user_id]
        return list(rows)

    async def _read_team(self, patient_id: str) -> list[TeamMember]:
        """The team as everyone who sees the patient sees it: username and role (no email), so one
        read serves every reader, and nothing a key above does not cover can go stale."""
        async with self.core.db.read() as session:
            rows = (await session.execute(
                select(User.id, User.username, User.role, User.created_at, User.updated_at, User.version,
                       CareTeamMember.granted_at)
                .join(CareTeamMember, CareTeamMember.user_id == User.id)
                .where(CareTeamMember.patient_id == patient_id).order_by(User.username))).all()
        return [TeamMember(UserRecord(id=uid, username=name, role=role, created_at=created, updated_at=updated,
                                      version=version), at)
                for uid, name, role, created, updated, version, at in rows]
