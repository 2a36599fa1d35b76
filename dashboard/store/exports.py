"""Whole-record exports: everything about one patient that the principal may read, in one snapshot.

The records are selected through the read path's own statement (Reads.visible_select: the visibility
filter and the reader's hidden fields) and shaped as every read is, so an export never holds more
than the same principal's finds would: a viewer's has no notes and no private fields. One audit
row for the whole export (counts only, never a value); a refusal is audited as every refusal is.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from dashboard.access import Principal
from dashboard.errors import NotFound, StoreError
from dashboard.record_types import (
    EquipmentRecord,
    HistoryRecord,
    NoteRecord,
    PatientRecord,
    Record,
    ScoreRecord,
    UserRecord,
)
from dashboard.schema import MODELS
from dashboard.serialize import record_from_values
from dashboard.store.caseload import CaseloadRow, Caseloads
from dashboard.store.core import Actor, StoreCore
from dashboard.store.read import QUERY_TIMEOUT_SECONDS, Reads, is_object_id

# Each class in the order a reader expects it (oldest first); ties broken by id for a stable export.
ORDER = {"MobilityScore": "scoreDate,createdAt", "SessionNote": "sessionDate,createdAt",
         "EquipmentLog": "createdAt", "StatusHistory": "createdAt"}


@dataclass(frozen=True)
class PatientEverything:
    """One patient's records as the principal may read them (no notes for a viewer), and the
    accounts they name (username and role only, unless the reader may see more)."""

    patient: PatientRecord
    scores: list[ScoreRecord] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    equipment: list[EquipmentRecord] = field(default_factory=list)
    history: list[HistoryRecord] = field(default_factory=list)
    users: dict[str, UserRecord] = field(default_factory=dict)

    @property
    def record_count(self) -> int:
        return 1 + len(self.scores) + len(self.notes) + len(self.equipment) + len(self.history)


def _people(records: list[Any]) -> set[str]:
    """The accounts the records name (recorders, authors, who changed what)."""
    names = ("recorded_by_id", "error_marked_by_id", "author_id", "logged_by_id", "changed_by_id",
             "primary_therapist_id")
    return {value for r in records for n in names if isinstance(value := getattr(r, n, None), str)}


class Exports:
    def __init__(self, core: StoreCore, reads: Reads):
        self.core, self.reads = core, reads
        self.caseloads = Caseloads(core, reads)  # stateless: the caseload page's own read model

    async def caseload_export(self, *, principal: Principal | None,
                              pick: Callable[[list[CaseloadRow]], list[CaseloadRow]] | None = None) -> list[CaseloadRow]:
        """The caseload rows the caseload page would get, narrowed and ordered by `pick` (the page's
        own filters and sort); one audit row for the export, with the number of rows only (a
        refusal is audited by the caseload's read, as every refusal is)."""
        rows = await self.caseloads.caseload(principal=principal, live_refresh=True)  # audited here, once
        if pick is not None:
            rows = pick(rows)
        await self.core.audit_read(principal, "Patient", detail=f"export:caseload:{len(rows)}")
        return rows

    async def patient_everything(self, *, principal: Principal | None, patient_id: str,
                                 kind: str | None = None) -> PatientEverything:
        """Everything about `patient_id` the principal may read, or NotFound (unknown and unreadable
        alike); one bounded query per class, in one read transaction. `kind` names the export in
        its audit row ("report", "report-pdf"; none for FHIR's)."""
        try:
            return await self._everything(principal, patient_id, kind)
        except StoreError as exc:
            await self.core.audit_refusal("export", {"principal": principal, "class_name": "Patient",
                                                     "patient_id": patient_id}, exc)
            raise

    async def _everything(self, principal: Principal | None, patient_id: str, kind: str | None) -> PatientEverything:
        actor = self.core.actor(principal)
        if not is_object_id(patient_id):
            raise NotFound()
        async with self.core.db.read(timeout_seconds=QUERY_TIMEOUT_SECONDS) as session:
            row = await self.reads.load_row(principal, "Patient", patient_id, session)
            patient = cast(PatientRecord, self.reads.shaped_for(actor, row))
            found: dict[str, list[Any]] = {}
            for class_name, order in ORDER.items():
                found[class_name] = await self._rows(session, actor, class_name, {"patient": patient_id}, order)
            people = _people([patient, *(r for rows in found.values() for r in rows)])
            users = await self._rows(session, actor, "_User", {"objectId": {"$in": sorted(people)}}, None) \
                if people else []
        everything = PatientEverything(
            patient=patient, scores=found["MobilityScore"], notes=found["SessionNote"],
            equipment=found["EquipmentLog"], history=found["StatusHistory"],
            users={u.id: u for u in cast(list[UserRecord], users)})
        await self.core.audit_read(principal, "Patient", object_id=patient_id, patient_ref=patient_id,
                                   detail=f"export:{kind + ':' if kind else ''}{everything.record_count}")
        return everything

    async def _rows(self, session: Any, actor: Actor, class_name: str, where: dict[str, Any],
                    order: str | None) -> list[Record]:
        statement, builder = self.reads.visible_select(actor, class_name, where)
        table = MODELS[class_name].__table__
        statement = statement.with_only_columns(*table.c).order_by(*builder.order(order), table.c.id)
        rows = (await session.execute(statement)).mappings().all()
        return [self.reads.shaped(actor, record_from_values(class_name, r)) for r in rows]
