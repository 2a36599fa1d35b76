"""The audit trail: who did what to which record, when and with what outcome; never a PHI value."""
from __future__ import annotations

import pytest

from dashboard.errors import NotFound


async def _trail(world):
    return await world.store.audit_trail(principal=world.lead, limit=1000)


async def test_reads_writes_and_refusals_are_audited_without_phi(world):
    store = world.store
    before = len(await _trail(world))
    await store.get(principal=world.owner, class_name="Patient", object_id=world.patient.id)
    await store.change_status(principal=world.owner, patient_id=world.patient.id, status="dependent",
                              reason="Fell on the ward overnight")
    with pytest.raises(NotFound):
        await store.get(principal=world.outsider, class_name="Patient", object_id=world.patient.id)
    new = (await _trail(world))[: len(await _trail(world)) - before]
    kinds = {(e.action, e.outcome, e.actor_id) for e in new}
    assert ("read", "ok", world.owner.user_id) in kinds
    assert ("update", "ok", world.owner.user_id) in kinds
    assert ("read", "not_found", world.outsider.user_id) in kinds
    assert all(e.patient_ref in (world.patient.id, None) for e in new)
    text = " ".join(f"{e.detail} {e.object_id} {e.class_name}" for e in await _trail(world))
    for phi in ("Pat Example", "DEMO-P", "Fell on the ward"):
        assert phi not in text


async def test_a_live_refresh_of_an_open_view_adds_no_audit_row_but_still_checks_access(world):
    store = world.store
    before = len(await _trail(world))
    await store.find(principal=world.owner, class_name="MobilityScore", where={"patient": world.patient.id},
                     live_refresh=True)
    await store.caseload(principal=world.owner, patient_id=world.patient.id, live_refresh=True)
    assert len(await _trail(world)) == before
    assert await store.find(principal=world.outsider, class_name="Patient", live_refresh=True) == []


async def test_only_a_lead_reads_the_audit_trail(world):
    from dashboard.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        await world.store.audit_trail(principal=world.owner)
