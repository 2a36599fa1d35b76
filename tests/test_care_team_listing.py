"""The care-team listing every open patient page shows: one read of the team serves all of that
patient's pages after a change (250 pages each reading it held an instance's connection pool for
seconds), and it is never stale: a member added, removed or whose role changed is listed so at once."""
from __future__ import annotations

import asyncio

from tests.support import World
from tests.test_caseload import count_statements


def listed(team) -> list[tuple[str, str]]:
    return [(m.user.username, m.user.role) for m in team]


async def test_the_pages_of_one_patient_share_one_read_of_its_team(world: World):
    store, pid = world.store, world.patient.id
    readers = [world.lead, world.owner, world.team_therapist, world.team_contributor] * 10
    with count_statements(world) as seen:
        teams = await asyncio.gather(*(store.care_team(principal=p, patient_id=pid) for p in readers))
    assert len([s for s in seen if "care_team" in s]) == 1, seen
    assert all(listed(t) == [("team-contributor", "contributor"), ("team-therapist", "therapist"),
                             ("viewer", "viewer")] for t in teams)
    assert all(m.user.email is None for t in teams for m in t)  # username and role only, leads too


async def test_the_listing_follows_a_removal_an_addition_and_a_role_change(world: World):
    store, pid, lead = world.store, world.patient.id, world.lead
    await store.care_team(principal=world.owner, patient_id=pid)
    await store.remove_care_team_member(principal=lead, patient_id=pid, user_id=world.users["team_therapist"].id)
    assert listed(await store.care_team(principal=world.owner, patient_id=pid)) == [
        ("team-contributor", "contributor"), ("viewer", "viewer")]
    await store.add_care_team_member(principal=lead, patient_id=pid, user_id=world.users["outsider"].id)
    await store.update_user(principal=lead, user_id=world.users["team_contributor"].id, changes={"role": "therapist"})
    assert listed(await store.care_team(principal=world.owner, patient_id=pid)) == [
        ("outsider", "contributor"), ("team-contributor", "therapist"), ("viewer", "viewer")]


async def test_a_viewer_finds_only_itself_on_the_team(world: World):
    team = await world.store.care_team(principal=world.viewer, patient_id=world.patient.id)
    assert listed(team) == [("viewer", "viewer")]


async def test_a_member_removed_and_added_back_unseen_is_listed_since_the_new_grant(world: World):
    store, pid, lead = world.store, world.patient.id, world.lead
    therapist = world.users["team_therapist"].id
    [before] = [m for m in await store.care_team(principal=world.owner, patient_id=pid) if m.user.id == therapist]
    await store.remove_care_team_member(principal=lead, patient_id=pid, user_id=therapist)
    await store.add_care_team_member(principal=lead, patient_id=pid, user_id=therapist)  # nobody read between
    [after] = [m for m in await store.care_team(principal=world.owner, patient_id=pid) if m.user.id == therapist]
    assert after.granted_at > before.granted_at
