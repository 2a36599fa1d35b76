"""Bulk imports (for migrations from the old template, and the benchmarks) obey the create rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard.errors import InvalidInput, NotFound


def _scores(patient_id: str, values: list[float]) -> list[dict[str, object]]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [{"patient": patient_id, "scoreType": "berg", "scoreValue": v, "scoreDate": start + timedelta(days=i)}
            for i, v in enumerate(values)]


async def test_imported_scores_show_on_the_caseload_with_their_trend(world):
    store = world.store
    assert await store.import_scores(principal=world.owner, rows=_scores(world.patient.id, [30, 42, 38])) == 3
    (row,) = await store.caseload(principal=world.owner)
    assert (row.latest["berg"].value, row.latest["berg"].previous, row.latest["berg"].trend) == (38, 42, "worse")


async def test_one_bad_row_refuses_the_whole_import_and_names_the_field(world):
    store = world.store
    with pytest.raises(InvalidInput) as refused:
        await store.import_scores(principal=world.owner, rows=_scores(world.patient.id, [30, 57, 38]))
    assert refused.value.field == "scoreValue" and "0 to 56" in refused.value.message
    assert await store.count(principal=world.lead, class_name="MobilityScore") == 0


async def test_an_import_into_a_patient_the_principal_cannot_see_is_not_found(world):
    with pytest.raises(NotFound):
        await world.store.import_scores(principal=world.outsider, rows=_scores(world.patient.id, [30]))
    assert await world.store.count(principal=world.lead, class_name="MobilityScore") == 0
