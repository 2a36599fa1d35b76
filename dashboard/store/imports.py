"""Bulk import: many patients, scores or notes in a few transactions, through the write pipeline's
steps for each row (authorize, clean, the class's rules), persisted as batched INSERTs.

For loading an installation (a migration from another system, or a benchmark) before it serves.
A bad row refuses the whole call before anything is written. Rows are inserted in batches of
`batch` per transaction, with one audit row per batch and the caseload's read models recomputed for
what the batch touched. Imports publish no record events (nobody is told about history being
loaded), but new patients are access mutations in the change log like any other, so every screen
and instance learns of them. A patientId already stored answers 137, as a single create does.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert, select

from dashboard.access import Principal, Role
from dashboard.changes import patient_mutation
from dashboard.errors import InvalidInput, ParseCode, PermissionDenied
from dashboard.models import MobilityScore, Patient, SessionNote, StatusHistory, new_object_id
from dashboard.store.core import StoreCore
from dashboard.store.summaries import refresh_patient_activity, refresh_score_summary
from dashboard.store.write import Writes, patient_id_taken

BATCH = 1000


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


class Imports:
    def __init__(self, core: StoreCore, writes: Writes):
        self.core, self.writes = core, writes

    async def import_patients(self, *, principal: Principal | None,
                              rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> list[str]:
        """Lead only. Returns the new objectIds in the order given."""
        actor = self.core.actor(principal)
        if actor.role != Role.LEAD:
            raise PermissionDenied("Only a lead imports patients")
        now = self.core.clock()
        patients: list[dict[str, Any]] = []
        seen_numbers: set[str] = set()
        for fields in rows:
            values = self.writes.new_patient_values(actor, fields)
            if values["patient_id"] in seen_numbers:
                raise InvalidInput("patientId", "appears twice in the import", code=ParseCode.DUPLICATE_VALUE)
            seen_numbers.add(values["patient_id"])
            patients.append({"id": new_object_id(), "archived": False, "created_at": now,
                             "updated_at": now, "version": 1, **values})
        for chunk in _chunks(patients, batch):
            # A concurrent create may take one of the ids after the check: 137 all the same.
            async with self.core.write(duplicate=lambda: patient_id_taken(actor.role)) as tx:
                numbers = [p["patient_id"] for p in chunk]
                if await tx.session.scalar(select(Patient.id).where(Patient.patient_id.in_(numbers)).limit(1)):
                    raise patient_id_taken(actor.role)
                await tx.session.execute(insert(Patient), chunk)
                await tx.session.execute(insert(StatusHistory), [{
                    "id": new_object_id(), "patient_id": p["id"], "status_type": "mobilityStatus",
                    "from_value": None, "to_value": p["mobility_status"],
                    "changed_by_id": actor.user_id, "change_reason": "admitted", "sequence": 1,
                    "created_at": now, "updated_at": now} for p in chunk])
                tx.audit(principal, "import", "Patient", detail=f"import:{len(chunk)}")
                tx.changes += [patient_mutation(p["id"], p["primary_therapist_id"]) for p in chunk]
        return [p["id"] for p in patients]

    async def import_scores(self, *, principal: Principal | None,
                            rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> int:
        """Scores recorded by `principal`, who must be allowed to add records to each patient."""
        scores = [self._import_row(principal, "MobilityScore", fields) for fields in rows]
        for chunk in _chunks(scores, batch):
            async with self.core.write() as tx:
                await tx.session.execute(insert(MobilityScore), chunk)
                for patient_id, score_type in sorted({(r["patient_id"], r["score_type"]) for r in chunk}):
                    await refresh_score_summary(tx.session, patient_id, score_type)
                tx.audit(principal, "import", "MobilityScore", detail=f"import:{len(chunk)}")
        return len(scores)

    async def import_notes(self, *, principal: Principal | None,
                           rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> int:
        notes = [self._import_row(principal, "SessionNote", fields) for fields in rows]
        for chunk in _chunks(notes, batch):
            async with self.core.write() as tx:
                await tx.session.execute(insert(SessionNote), chunk)
                for patient_id in sorted({r["patient_id"] for r in chunk}):
                    await refresh_patient_activity(tx.session, patient_id)
                tx.audit(principal, "import", "SessionNote", detail=f"import:{len(chunk)}")
        return len(notes)

    def _import_row(self, principal: Principal | None, class_name: str,
                    fields: Mapping[str, object]) -> dict[str, Any]:
        """The same steps as a single create (write.py), as a row for a bulk INSERT."""
        values = self.writes.new_record_values(principal, class_name, fields)
        if values.get("amends_id"):
            raise InvalidInput("amends", "an import cannot amend notes")
        now = self.core.clock()
        return {"id": new_object_id(), "created_at": now, "updated_at": now, "version": 1, **values}
