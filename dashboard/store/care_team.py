"""Care teams: who besides the primary therapist (and the leads) sees a patient.

A member added or removed is an access mutation and a `CareTeam` event on the patient's topic, both
in the change log with the write: every open page of that patient re-reads its team from the event,
and the member's own screens gain or lose the patient from the mutation.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, cast

from sqlalchemy import select

from dashboard.access import Principal
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
        """Members with when they were granted; usernames and roles only for non-leads."""
        actor = self.core.require_sees(principal, patient_id)
        async with self.core.db.read() as session:
            rows = (await session.execute(
                select(User, CareTeamMember.granted_at).join(CareTeamMember, CareTeamMember.user_id == User.id)
                .where(CareTeamMember.patient_id == patient_id).order_by(User.username))).all()
        return [TeamMember(cast(UserRecord, self.reads.shaped_for(actor, user)), at) for user, at in rows]
