"""The ward board's read model: ordered by bed, "seen today", "last updated", falls-risk cut-offs,
and nothing a viewer may not learn (no identifier, no staff username, no note date)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from dashboard.catalogue import default_catalogue
from dashboard.errors import InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from tests.support import PASSWORD, World


async def admit(world: World, name: str, bed: str | None) -> str:
    fields = {"patientId": f"W-{name}", "displayName": name, "primaryTherapist": world.users["owner"].id,
              "mobilityStatus": "supervision"}
    if bed is not None:
        fields["bed"] = bed
    patient = await world.store.create(principal=world.lead, class_name="Patient", fields=fields)
    await world.store.add_care_team_member(principal=world.lead, patient_id=patient.id,
                                           user_id=world.users["viewer"].id)
    return patient.id


async def test_the_board_is_ordered_by_bed_as_a_person_reads_it(world: World):
    for name, bed in [("Ann Ten", "Bay 2 bed 10"), ("Bob Nine", "Bay 2 bed 9"), ("Cy One", "Bay 1 bed 1"),
                      ("Di None", None)]:
        await admit(world, name, bed)
    board = await world.store.ward_board(principal=world.lead)
    beds = [w.row.bed for w in board]
    # Pat Example and Quinn Sample (the world's) have no bed either: after every bed, by name.
    assert beds == ["Bay 1 bed 1", "Bay 2 bed 9", "Bay 2 bed 10", None, None, None]
    assert [w.row.display_name for w in board][3:] == ["Di None", "Pat Example", "Quinn Sample"]


async def test_the_owner_sets_the_bed_and_a_contributor_may_not(world: World):
    store, pid = world.store, world.patient.id
    await store.update(principal=world.owner, class_name="Patient", object_id=pid, changes={"bed": "Room 4"})
    [row] = [w.row for w in await store.ward_board(principal=world.viewer) if w.row.object_id == pid]
    assert row.bed == "Room 4"
    with pytest.raises(PermissionDenied):
        await store.update(principal=world.team_contributor, class_name="Patient", object_id=pid,
                           changes={"bed": "Room 5"})
    with pytest.raises(InvalidInput) as refused:
        await store.update(principal=world.owner, class_name="Patient", object_id=pid, changes={"bed": "B" * 33})
    assert refused.value.field == "bed"
    await store.update(principal=world.owner, class_name="Patient", object_id=pid, changes={"bed": None})
    assert (await store.get(principal=world.owner, class_name="Patient", object_id=pid)).bed is None


async def test_seen_today_and_last_updated_follow_the_records(world: World):
    store, pid = world.store, world.patient.id
    [before] = [w for w in await store.ward_board(principal=world.viewer) if w.row.object_id == pid]
    assert before.seen_today is False
    assert before.last_updated == world.patient.updated_at
    yesterday = datetime.now(timezone.utc) - timedelta(days=2)
    await store.create(principal=world.owner, class_name="MobilityScore", fields={
        "patient": pid, "scoreType": "berg", "scoreValue": 40, "scoreDate": yesterday})
    [old] = [w for w in await store.ward_board(principal=world.viewer) if w.row.object_id == pid]
    assert old.seen_today is False, "a score dated two days ago is not today's therapy"
    assert old.last_updated > before.last_updated
    note = await store.create(principal=world.owner, class_name="SessionNote", fields={
        "patient": pid, "sessionType": "treatment", "noteText": "Walked the corridor",
        "followUpNeeded": True, "sessionDate": datetime.now(timezone.utc)})
    [now] = [w for w in await store.ward_board(principal=world.viewer) if w.row.object_id == pid]
    assert now.seen_today is True
    assert now.last_updated == note.updated_at
    assert now.row.open_follow_ups == 1


async def test_a_viewer_board_carries_no_identifier_username_or_note_date(world: World):
    store, pid = world.store, world.patient.id
    await store.create(principal=world.owner, class_name="SessionNote", fields={
        "patient": pid, "sessionType": "treatment", "noteText": "x", "followUpNeeded": False,
        "sessionDate": datetime.now(timezone.utc)})
    [viewer_row] = [w.row for w in await store.ward_board(principal=world.viewer)]
    assert viewer_row.object_id == pid  # only its team's patient
    assert viewer_row.patient_number is None
    assert viewer_row.primary_therapist == ""
    assert viewer_row.last_session is None
    assert viewer_row.display_name == "P.E."
    [lead_row] = [w.row for w in await store.ward_board(principal=world.lead) if w.row.object_id == pid]
    assert lead_row.primary_therapist == "owner" and lead_row.patient_number == "DEMO-P"


async def test_one_patient_refresh_reads_only_that_patient(world: World):
    other = await admit(world, "Eve Two", "Bay 3")
    found = await world.store.ward_board(principal=world.viewer, patient_id=other, live_refresh=True)
    assert [w.row.object_id for w in found] == [other]


def test_the_catalogue_knows_the_falls_risk_cut_offs():
    measures = default_catalogue().measures
    assert measures["berg"].falls_risk(44) and not measures["berg"].falls_risk(45)
    assert measures["tug"].falls_risk(12.5) and not measures["tug"].falls_risk(12)
    assert not measures["barthel"].falls_risk(0)


async def test_a_lead_signs_a_ward_account_out_and_nobody_else_may(world: World):
    store = world.store
    tv = await store.log_in(username="viewer", password=PASSWORD)  # a second screen on the account
    with pytest.raises(PermissionDenied):
        await store.sign_out_user(principal=world.owner, user_id=world.users["viewer"].id)
    await store.resolve_session(tv.token)  # still signed in after the refusal
    assert await store.sign_out_user(principal=world.lead, user_id=world.users["viewer"].id) == 2
    with pytest.raises(NotAuthenticated):
        await store.resolve_session(tv.token)
    with pytest.raises(NotAuthenticated):
        store.permissions(principal=world.viewer)  # the world's own session ended too
    with pytest.raises(NotFound):
        await store.sign_out_user(principal=world.lead, user_id="nosuchuser0")


async def test_a_viewer_lists_only_itself_and_another_account_does_not_exist_for_it(world: World):
    store = world.store
    assert [u.username for u in await store.list_users(principal=world.viewer)] == ["viewer"]
    assert len(await store.list_users(principal=world.owner)) == 7  # staff still list each other
    with pytest.raises(NotFound):  # not "permission denied": that would confirm the account
        await store.update_user(principal=world.viewer, user_id=world.users["owner"].id, changes={"role": "lead"})


async def test_a_viewers_discharged_rows_name_no_therapist(world: World):
    await world.store.discharge_patient(principal=world.lead, patient_id=world.patient.id, reason="Home",
                                       date=datetime.now().date())  # the ward's local day
    [row] = await world.store.discharged_patients(principal=world.viewer)
    assert row.primary_therapist == "" and row.reason is None and row.patient_number is None
    [lead_row] = [r for r in await world.store.discharged_patients(principal=world.lead)
                  if r.object_id == world.patient.id]
    assert lead_row.primary_therapist == "owner"
