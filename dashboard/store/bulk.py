"""Bulk import: many patients, scores or notes in a few transactions, validated as `create` validates.

For loading an installation (a migration from another system, or a benchmark) before it serves.
Each row passes the same checks as a single create (field types via `_clean`, the measure catalogue,
the vocabularies, no future dates, the principal may write to that patient); a bad row refuses the
whole call before anything is written. Rows are inserted in batches of `batch` per transaction, with
one audit row per batch. Imports publish no live events: nobody is told about history being loaded.
The caseload's read models (score summaries, patient activity) are refreshed for what each batch touched.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert

from dashboard.access import LEAD, THERAPIST, CONTRIBUTOR, Principal
from dashboard.errors import InvalidInput, PermissionDenied
from dashboard.models import MobilityScore, Patient, SessionNote, StatusHistory, new_object_id
from dashboard.store.summaries import refresh_patient_activity, refresh_score_summary
from dashboard.store.base import StoreBase

BATCH = 1000
WRITERS = (LEAD, THERAPIST, CONTRIBUTOR)


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


class BulkMixin(StoreBase):
    async def import_patients(self, *, principal: Principal | None,
                              rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> list[str]:
        """Lead only. Returns the new objectIds in the order given."""
        if self._role(principal) != LEAD:
            raise PermissionDenied("Only a lead imports patients")
        assert principal is not None
        now = self.clock()
        patients: list[dict[str, Any]] = []
        seen_numbers: set[str] = set()
        for fields in rows:
            values = self._clean("Patient", fields, creating=True)
            if values.get("archived"):
                raise InvalidInput("archived", "a new patient cannot be archived")
            values["mobility_status"] = self.catalogue.term("mobilityStatus", values["mobility_status"])
            self._not_in_future("dateOfBirth", values.get("date_of_birth"))
            self._check_therapist(values["primary_therapist_id"])
            if values["patient_id"] in seen_numbers:
                raise InvalidInput("patientId", "appears twice in the import", code=137)
            seen_numbers.add(values["patient_id"])
            patients.append({"id": new_object_id(), "archived": False, "created_at": now,
                             "updated_at": now, "version": 1, **values})
        for chunk in _chunks(patients, batch):
            async with self._write() as tx:
                await tx.session.execute(insert(Patient), chunk)
                await tx.session.execute(insert(StatusHistory), [{
                    "id": new_object_id(), "patient_id": p["id"], "status_type": "mobilityStatus",
                    "from_value": None, "to_value": p["mobility_status"],
                    "changed_by_id": principal.user_id, "change_reason": "admitted", "sequence": 1,
                    "created_at": now, "updated_at": now} for p in chunk])
                tx.audit(principal, "import", "Patient", detail=f"import:{len(chunk)}")

                def register(chunk: list[dict[str, Any]] = chunk) -> None:
                    for p in chunk:
                        self.access.put_patient(p["id"], primary_therapist_id=p["primary_therapist_id"])

                tx.after_commit.append(register)
        return [p["id"] for p in patients]

    async def import_scores(self, *, principal: Principal | None,
                            rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> int:
        """Scores recorded by `principal`, who must be allowed to add records to each patient."""
        scores = [self._import_row(principal, "MobilityScore", fields) for fields in rows]
        for chunk in _chunks(scores, batch):
            async with self._write() as tx:
                await tx.session.execute(insert(MobilityScore), chunk)
                await _refresh(tx.session, "scores", {(r["patient_id"], r["score_type"]) for r in chunk})
                tx.audit(principal, "import", "MobilityScore", detail=f"import:{len(chunk)}")
        return len(scores)

    async def import_notes(self, *, principal: Principal | None,
                           rows: Iterable[Mapping[str, object]], batch: int = BATCH) -> int:
        notes = [self._import_row(principal, "SessionNote", fields) for fields in rows]
        for chunk in _chunks(notes, batch):
            async with self._write() as tx:
                await tx.session.execute(insert(SessionNote), chunk)
                await _refresh(tx.session, "notes", {(r["patient_id"],) for r in chunk})
                tx.audit(principal, "import", "SessionNote", detail=f"import:{len(chunk)}")
        return len(notes)

    def _import_row(self, principal: Principal | None, class_name: str,
                    fields: Mapping[str, object]) -> dict[str, Any]:
        """The same rules as a single create (records.py), as a row for a bulk INSERT."""
        values = self._new_record_values(principal, class_name, fields)
        if values.get("amends_id"):
            raise InvalidInput("amends", "an import cannot amend notes")
        now = self.clock()
        return {"id": new_object_id(), "created_at": now, "updated_at": now, "version": 1, **values}


async def _refresh(session: Any, what: str, keys: set[tuple[str, ...]]) -> None:
    """Keeps the caseload's read models exact, in the batch's own transaction."""
    for key in sorted(keys):
        if what == "scores":
            await refresh_score_summary(session, key[0], key[1])
        else:
            await refresh_patient_activity(session, key[0])
