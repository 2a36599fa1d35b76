"""StatusHistory: the store writes one row with every change of a status, in the same transaction."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.support import World, domain_snapshot
from dashboard.errors import Conflict
from dashboard.models import Patient, StatusHistory

STATUSES = ["independent", "modified_independent", "supervision", "minimal_assist", "moderate_assist",
            "maximal_assist", "dependent", "bed_bound"]


async def _history(world: World, patient_id: str, status_type: str = "mobilityStatus") -> list[StatusHistory]:
    async with world.store.db.read() as session:
        return list(await session.scalars(
            select(StatusHistory)
            .where(StatusHistory.patient_id == patient_id, StatusHistory.status_type == status_type)
            .order_by(StatusHistory.sequence)))


async def _current_status(world: World, patient_id: str) -> str:
    async with world.store.db.read() as session:
        return (await session.get(Patient, patient_id)).mobility_status


async def test_twenty_concurrent_status_changes_leave_an_unbroken_chain(world: World):
    store, p = world.store, world.patient.id
    targets = [STATUSES[(i * 3) % len(STATUSES)] for i in range(20)]
    results = await asyncio.gather(*(
        store.change_status(principal=world.lead if i % 2 else world.owner, patient_id=p, status=status,
                            reason=f"change {i}")
        for i, status in enumerate(targets)))
    assert len(results) == 20

    chain = await _history(world, p)
    assert chain[0].from_value is None and chain[0].to_value == "supervision"  # the admission row
    for previous, row in zip(chain, chain[1:]):
        assert row.from_value == previous.to_value, [(r.from_value, r.to_value) for r in chain]
        assert row.from_value != row.to_value
    assert chain[-1].to_value == await _current_status(world, p)
    sequences = [row.sequence for row in chain]
    assert sequences == sorted(set(sequences))
    # Each row after the admission is one of the 20 requests, recorded once, with its own target.
    reasons = [r.change_reason for r in chain[1:]]
    assert len(reasons) == len(set(reasons)) and len(reasons) >= 1
    for row in chain[1:]:
        i = int(row.change_reason.split()[-1])
        assert row.to_value == targets[i]
        assert row.changed_by_id == (world.lead if i % 2 else world.owner).user_id
    # Every real change bumped the patient's version exactly once, and every one left a row.
    async with store.db.read() as session:
        version = (await session.get(Patient, p)).version
    assert version == world.patient.version + len(chain) - 1


async def test_unchanged_status_writes_no_history_row(world: World):
    store, p = world.store, world.patient.id
    before = await _history(world, p)
    patient = await store.change_status(principal=world.owner, patient_id=p, status="supervision", reason=None)
    assert patient.mobility_status == "supervision"
    assert [r.id for r in await _history(world, p)] == [r.id for r in before]


async def test_a_change_records_who_from_what_to_what_and_why(world: World):
    store, p = world.store, world.patient.id
    await store.change_status(principal=world.owner, patient_id=p, status="minimal_assist",
                              reason="Fatigued after surgery")
    last = (await _history(world, p))[-1]
    assert (last.from_value, last.to_value) == ("supervision", "minimal_assist")
    assert last.changed_by_id == world.owner.user_id
    assert last.change_reason == "Fatigued after surgery"


async def test_stale_version_is_a_conflict_carrying_the_current_value_and_writes_nothing(world: World):
    store, p = world.store, world.patient.id
    seen_version = world.patient.version
    await store.change_status(principal=world.lead, patient_id=p, status="dependent", reason=None)
    before = await domain_snapshot(store.db)
    with pytest.raises(Conflict) as caught:
        await store.change_status(principal=world.owner, patient_id=p, status="independent", reason=None,
                                  expected_version=seen_version)
    assert caught.value.current == "dependent"
    assert caught.value.field == "mobilityStatus"
    assert caught.value.current_version != seen_version
    assert "dependent" in str(caught.value)
    assert await domain_snapshot(store.db) == before
    # With the current version the same change goes through.
    patient = await store.change_status(principal=world.owner, patient_id=p, status="independent", reason=None,
                                        expected_version=caught.value.current_version)
    assert patient.mobility_status == "independent"


async def test_equipment_check_out_and_return_are_recorded_as_equipment_status(world: World):
    store, p = world.store, world.patient.id
    log = await store.check_out_equipment(principal=world.team_contributor, patient_id=p, name="Wheelchair",
                                          serial_number="WC-17")
    await store.return_equipment(principal=world.owner, log_id=log.id)
    rows = [r for r in await _history(world, p, "equipmentStatus") if r.equipment_log_id == log.id]
    assert [(r.from_value, r.to_value, r.changed_by_id) for r in rows] == [
        (None, "checked_out", world.team_contributor.user_id),
        ("checked_out", "returned", world.owner.user_id),
    ]
    # The history is readable through the store like any record of the patient.
    found = await store.find(principal=world.team_contributor, class_name="StatusHistory",
                             where={"patient": p, "statusType": "equipmentStatus"})
    assert {r.id for r in found} == {r.id for r in rows}
    # Returning what is already returned changes nothing and records nothing.
    await store.return_equipment(principal=world.owner, log_id=log.id)
    assert len([r for r in await _history(world, p, "equipmentStatus") if r.equipment_log_id == log.id]) == 2
