"""Admission (the store's Patient create) and discharge (`Store.discharge_patient`): who may, what is
written (StatusHistory, audit) and pushed, and that bad input writes nothing. SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from dashboard.errors import Conflict, InvalidInput, MissingField, NotFound, PermissionDenied
from dashboard.hub import DeliveryKind, class_topic
from dashboard.models import AuditEvent, Patient, StatusHistory
from tests.support import World, domain_snapshot, eventually, mailbox

TODAY = date.today()


def admission(world: World, therapist: str = "owner", **overrides: object) -> dict[str, object]:
    return {"patientId": "ADM-1", "displayName": "Ada Admitted", "primaryTherapist": world.users[therapist].id,
            "mobilityStatus": "minimal_assist",
            "dateOfBirth": datetime(1950, 4, 2, tzinfo=timezone.utc), **overrides}


async def history(world: World, patient_id: str) -> list[StatusHistory]:
    async with world.store.db.read() as session:
        return list(await session.scalars(select(StatusHistory).where(StatusHistory.patient_id == patient_id)
                                          .order_by(StatusHistory.sequence)))


async def audit_rows(world: World, patient_id: str) -> list[AuditEvent]:
    await world.store.flush_audit()
    async with world.store.db.read() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.patient_ref == patient_id)
                                          .order_by(AuditEvent.id)))


async def caseload_ids(world: World, kind: str) -> set[str]:
    return {r.object_id for r in await world.store.caseload(principal=world.principal(kind))}


# -- admission ---------------------------------------------------------------------------------------
async def test_a_lead_admits_and_the_therapist_sees_the_patient_with_its_history_and_audit(world: World):
    created = await world.store.create(principal=world.lead, class_name="Patient", fields=admission(world))
    assert created.id in await caseload_ids(world, "owner")
    assert created.id not in await caseload_ids(world, "other_therapist")
    [row] = await history(world, created.id)
    assert (row.status_type, row.from_value, row.to_value, row.changed_by_id) == (
        "mobilityStatus", None, "minimal_assist", world.lead.user_id)
    assert [(a.action, a.outcome) for a in await audit_rows(world, created.id)][0] == ("create", "ok")


async def test_a_therapist_admits_only_as_its_own_primary_therapist(world: World):
    mine = await world.store.create(principal=world.owner, class_name="Patient",
                                    fields=admission(world, "owner"))
    assert mine.primary_therapist_id == world.users["owner"].id
    before = await domain_snapshot(world.store.db)
    with pytest.raises(PermissionDenied):
        await world.store.create(principal=world.owner, class_name="Patient",
                                 fields=admission(world, "other_therapist", patientId="ADM-2"))
    assert await domain_snapshot(world.store.db) == before


@pytest.mark.parametrize("kind", ["team_contributor", "outsider", "viewer"])
async def test_contributors_viewers_and_outsiders_cannot_admit(world: World, kind: str):
    before = await domain_snapshot(world.store.db)
    with pytest.raises(PermissionDenied):
        await world.store.create(principal=world.principal(kind), class_name="Patient", fields=admission(world))
    assert await domain_snapshot(world.store.db) == before


@pytest.mark.parametrize("field, value, rule", [
    ("patientId", "DEMO-P", "already belongs to another patient"),
    ("displayName", "x" * 1_000_000, "at most 200 characters"),
    ("mobilityStatus", "flying", "mobilityStatus"),
    ("dateOfBirth", datetime.now(timezone.utc) + timedelta(days=30), "cannot be in the future"),
    ("primaryTherapist", "nobody", "active therapist"),
])
async def test_bad_admissions_name_the_field_and_write_nothing(world: World, field: str, value: object, rule: str):
    before = await domain_snapshot(world.store.db)
    with pytest.raises(InvalidInput) as raised:
        await world.store.create(principal=world.lead, class_name="Patient", fields=admission(world, **{field: value}))
    assert raised.value.field == field
    assert rule in raised.value.message
    assert await domain_snapshot(world.store.db) == before


# -- discharge ---------------------------------------------------------------------------------------
async def test_a_discharge_archives_with_its_date_reason_history_and_audit(world: World):
    p = world.patient.id
    on = TODAY - timedelta(days=1)
    done = await world.store.discharge_patient(principal=world.lead, patient_id=p, reason="Home with family",
                                               date=on)
    assert done.archived is True
    async with world.store.db.read() as session:
        row = await session.get(Patient, p)
    assert (row.archived, row.discharged_on, row.discharge_reason) == (True, on, "Home with family")
    last = (await history(world, p))[-1]
    assert (last.status_type, last.from_value, last.to_value, last.change_reason, last.changed_by_id) == (
        "admission", "admitted", "discharged", "Home with family", world.lead.user_id)
    writes = [a for a in await audit_rows(world, p) if a.action == "update"]
    assert [(a.outcome, a.actor_id, a.detail) for a in writes] == [
        ("ok", world.lead.user_id, "archived,dischargedOn,dischargeReason")]


async def test_a_discharged_patient_leaves_the_caseloads_and_stays_readable_under_discharged(world: World):
    p = world.patient.id
    await world.store.discharge_patient(principal=world.lead, patient_id=p, reason="Transferred", date=TODAY)
    for kind in ("lead", "owner", "team_contributor", "viewer"):
        assert p not in await caseload_ids(world, kind)
    [listed] = await world.store.discharged_patients(principal=world.owner)
    assert (listed.object_id, listed.display_name, listed.discharged_on, listed.reason) == (
        p, "Pat Example", TODAY, "Transferred")
    [on_screen] = await world.store.discharged_patients(principal=world.viewer)
    assert (on_screen.display_name, on_screen.patient_number, on_screen.reason) == ("P.E.", None, None)
    assert await world.store.discharged_patients(principal=world.other_therapist) == []
    assert (await world.store.get(principal=world.owner, class_name="Patient", object_id=p)).archived
    found = await world.store.discharge_of(principal=world.owner, patient_id=p)
    assert (found.on, found.reason) == (TODAY, "Transferred")
    assert await world.store.discharge_of(principal=world.lead, patient_id=world.other_patient.id) is None
    with pytest.raises(NotFound):
        await world.store.discharge_of(principal=world.other_therapist, patient_id=p)


async def test_a_discharge_is_pushed_to_the_patients_readers_only(world: World):
    hub = world.store.hub
    with mailbox(hub, world.owner, [class_topic("Patient")]) as owner, \
            mailbox(hub, world.viewer, [class_topic("Patient")]) as ward, \
            mailbox(hub, world.other_therapist, [class_topic("Patient")]) as other:
        await world.store.discharge_patient(principal=world.lead, patient_id=world.patient.id,
                                            reason="Home", date=TODAY)
        got: list = []
        await eventually(lambda: got.extend(owner.drain()) or any(d.kind == DeliveryKind.UPDATE for d in got))
        [update] = [d for d in got if d.kind == DeliveryKind.UPDATE]
        assert update.patient_id == world.patient.id and update.record.archived is True
        seen: list = []
        await eventually(lambda: seen.extend(ward.drain()) or bool(seen))
        assert all("patientId" not in (d.data or {}) for d in seen)
        assert other.drain() == []


@pytest.mark.parametrize("kind", ["owner", "team_therapist", "team_contributor", "viewer"])
async def test_only_a_lead_discharges(world: World, kind: str):
    before = await domain_snapshot(world.store.db)
    with pytest.raises(PermissionDenied):
        await world.store.discharge_patient(principal=world.principal(kind), patient_id=world.patient.id,
                                            reason="Home", date=TODAY)
    assert await domain_snapshot(world.store.db) == before
    [refusal] = [a for a in await audit_rows(world, world.patient.id) if a.outcome == "denied"]
    assert refusal.actor_id == world.principal(kind).user_id


@pytest.mark.parametrize("kind", ["outsider", "other_therapist"])
async def test_an_unreadable_patient_is_not_found_for_a_discharge(world: World, kind: str):
    before = await domain_snapshot(world.store.db)
    for patient_id in (world.patient.id, "nosuchid"):
        with pytest.raises(NotFound) as raised:
            await world.store.discharge_patient(principal=world.principal(kind), patient_id=patient_id,
                                                reason="Home", date=TODAY)
        assert raised.value.message == "Object not found."
    assert await domain_snapshot(world.store.db) == before


@pytest.mark.parametrize("reason, day, field, rule", [
    ("Home", TODAY + timedelta(days=3), "date", "cannot be in the future"),
    ("Home", date(1940, 1, 1), "date", "cannot be before the date of birth"),
    ("Home", "yesterday", "date", "must be a date"),
    ("Home", None, "date", "required"),
    ("   ", TODAY, "reason", "required"),
    ("x" * 1_000_000, TODAY, "reason", "at most 2000 characters"),
    ("bad\x00byte", TODAY, "reason", ""),
])
async def test_bad_discharges_name_the_field_and_write_nothing(world: World, reason: object, day: object,
                                                               field: str, rule: str):
    p = world.patient.id
    await world.store.update(principal=world.lead, class_name="Patient", object_id=p,
                             changes={"dateOfBirth": datetime(1950, 1, 1, tzinfo=timezone.utc)})
    before = await domain_snapshot(world.store.db)
    with pytest.raises(InvalidInput) as raised:
        await world.store.discharge_patient(principal=world.lead, patient_id=p, reason=reason, date=day)
    assert raised.value.field == field
    assert rule in raised.value.message.lower()
    assert await domain_snapshot(world.store.db) == before
    assert p in await caseload_ids(world, "owner")


async def test_a_second_discharge_and_a_stale_version_are_refused(world: World):
    p = world.patient.id
    stale = world.patient.version
    await world.store.change_status(principal=world.lead, patient_id=p, status="independent", reason="better")
    with pytest.raises(Conflict):
        await world.store.discharge_patient(principal=world.lead, patient_id=p, reason="Home", date=TODAY,
                                            expected_version=stale)
    await world.store.discharge_patient(principal=world.lead, patient_id=p, reason="Home", date=TODAY)
    before = await domain_snapshot(world.store.db)
    with pytest.raises(InvalidInput) as raised:
        await world.store.discharge_patient(principal=world.lead, patient_id=p, reason="Again", date=TODAY)
    assert raised.value.field == "archived"
    assert await domain_snapshot(world.store.db) == before
    assert [h.to_value for h in await history(world, p) if h.status_type == "admission"] == ["discharged"]


async def test_a_missing_reason_is_a_missing_field(world: World):
    with pytest.raises(MissingField):
        await world.store.discharge_patient(principal=world.lead, patient_id=world.patient.id, reason=None,
                                            date=TODAY)


async def test_archived_set_through_update_is_recorded_as_a_discharge_and_a_readmission(world: World):
    """REST and GraphQL change `archived` through `update`: the same history, date and audit follow."""
    p = world.patient.id
    with pytest.raises(PermissionDenied):
        await world.store.update(principal=world.owner, class_name="Patient", object_id=p,
                                 changes={"archived": True}, reason="Home")
    await world.store.update(principal=world.lead, class_name="Patient", object_id=p,
                             changes={"archived": True}, reason="Home")
    assert p not in await caseload_ids(world, "owner")
    found = await world.store.discharge_of(principal=world.owner, patient_id=p)
    assert (found.on, found.reason) == (world.store.clock().date(), "Home")
    await world.store.update(principal=world.lead, class_name="Patient", object_id=p,
                             changes={"archived": False}, reason="Back on the ward")
    assert p in await caseload_ids(world, "owner")
    assert await world.store.discharge_of(principal=world.owner, patient_id=p) is None
    steps = [(h.from_value, h.to_value, h.change_reason) for h in await history(world, p)
             if h.status_type == "admission"]
    assert steps == [("admitted", "discharged", "Home"), ("discharged", "admitted", "Back on the ward")]
