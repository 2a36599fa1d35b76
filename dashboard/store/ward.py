"""Counts for the ward screen: open follow-ups per visible patient, without any note content.

A viewer may not read session notes (ACCESS.md), but the ward screen shows how many follow-ups are
open; this returns only those counts, for the patients the principal sees.
"""
from __future__ import annotations

from sqlalchemy import func, select

from dashboard.access import Principal
from dashboard.models import SessionNote
from dashboard.store.base import StoreBase


class WardMixin(StoreBase):
    async def follow_up_counts(self, *, principal: Principal | None,
                               patient_id: str | None = None) -> dict[str, int]:
        self._role(principal)
        visible = self.access.visible_patient_ids(principal)
        query = (select(SessionNote.patient_id, func.count())
                 .where(SessionNote.follow_up_needed.is_(True)).group_by(SessionNote.patient_id))
        if visible is not None:
            query = query.where(SessionNote.patient_id.in_(visible))
        if patient_id is not None:
            query = query.where(SessionNote.patient_id == patient_id)
        async with self.db.read() as session:
            return {pid: int(n) for pid, n in (await session.execute(query)).all()}
