"""Live updates (ACCESS.md, "Live updates"): who receives what, when access ends, and hub hygiene.

The store publishes synchronously right after each commit, so once a write has returned, every
delivery it causes is already queued: `get_nowait()` returning None is a real "nothing came".
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event, select

from tests.support import World
from dashboard.hub import Delivery, Subscription, class_topic, patient_topic
from dashboard.models import Patient, StatusHistory

ALL_CLASSES = ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory")


def drain(sub: Subscription) -> list[Delivery]:
    out = []
    while (delivery := sub.get_nowait()) is not None:
        out.append(delivery)
    return out


async def test_owner_score_reaches_lead_subscriber(world: World):
    store = world.store
    sub = store.hub.subscribe(world.lead, [patient_topic(world.patient.id)])
    score = await store.record_score(principal=world.owner, patient_id=world.patient.id,
                                     score_type="barthel", value=55)
    delivery = await sub.get(timeout=5)
    assert delivery is not None and delivery.kind == "create" and delivery.object_id == score.id
    assert delivery.data["scoreValue"] == 55


async def test_only_subscribers_who_may_read_receive_an_event(world: World):
    store, p = world.store, world.patient.id
    topics = [class_topic("MobilityScore"), class_topic("SessionNote")]
    lead = store.hub.subscribe(world.lead, topics)
    outsider = store.hub.subscribe(world.outsider, topics)
    other_therapist = store.hub.subscribe(world.other_therapist, topics)
    viewer = store.hub.subscribe(world.viewer, topics)

    score = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=41)
    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Better today.")

    assert [d.object_id for d in drain(lead)] == [score.id, note.id]
    assert drain(outsider) == []
    assert drain(other_therapist) == []
    assert [d.object_id for d in drain(viewer)] == [score.id]  # a viewer never reads notes
    # Q's events reach Q's therapist, not P's team.
    q_score = await store.record_score(principal=world.lead, patient_id=world.other_patient.id,
                                       score_type="tug", value=11.5)
    assert [d.object_id for d in drain(other_therapist)] == [q_score.id]
    assert drain(viewer) == [] and drain(outsider) == []


# -- access that ends ----------------------------------------------------------------------------
async def _remove_from_team(w: World) -> str:
    await w.store.remove_care_team_member(principal=w.owner, patient_id=w.patient.id,
                                          user_id=w.users["team_therapist"].id)
    return "team_therapist"


async def _reassign(w: World) -> str:
    await w.store.assign_therapist(principal=w.lead, patient_id=w.patient.id,
                                   therapist_id=w.users["other_therapist"].id)
    return "owner"


async def _change_role(w: World) -> str:
    await w.store.update_user(principal=w.lead, user_id=w.users["owner"].id, changes={"role": "contributor"})
    return "owner"


async def _deactivate(w: World) -> str:
    await w.store.update_user(principal=w.lead, user_id=w.users["team_therapist"].id, changes={"active": False})
    return "team_therapist"


async def _log_out(w: World) -> str:
    await w.store.log_out(principal=w.team_contributor)
    return "team_contributor"


REVOCATIONS: dict[str, tuple[str, Callable[[World], Awaitable[str]]]] = {
    "care-team-removal": ("team_therapist", _remove_from_team),
    "reassignment": ("owner", _reassign),
    "role-change": ("owner", _change_role),
    "deactivation": ("team_therapist", _deactivate),
    "logout": ("team_contributor", _log_out),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
async def test_access_that_ends_stops_delivery_at_once_and_says_so(world: World, how: str):
    store, p = world.store, world.patient.id
    victim_kind, revoke = REVOCATIONS[how]
    victim = getattr(world, victim_kind)
    page = store.hub.subscribe(victim, [patient_topic(p)])  # an open patient page
    listing = store.hub.subscribe(victim, [class_topic(c) for c in ALL_CLASSES])  # a list page
    lead = store.hub.subscribe(world.lead, [patient_topic(p)])

    control = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=60)
    assert [d.object_id for d in drain(page)] == [control.id]
    assert [d.object_id for d in drain(listing)] == [control.id]
    drain(lead)

    # Queued while access still held, never read: must not be handed over once access has ended.
    await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=61)
    assert await revoke(world) == victim_kind

    for sub in (page, listing):
        got = drain(sub)
        assert {d.kind for d in got} == {"access_ended"}, [(d.kind, d.class_name) for d in got]
        assert p in {d.patient_id for d in got}
    after = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=62)
    await store.change_status(principal=world.lead, patient_id=p, status="dependent", reason=None)
    assert drain(page) == [] and drain(listing) == []
    assert after.id in {d.object_id for d in drain(lead)}  # the control: the lead still receives


async def test_logout_closes_the_subscriptions(world: World):
    hub = world.store.hub
    baseline = hub.subscription_count
    sub = hub.subscribe(world.team_contributor, [patient_topic(world.patient.id)])
    assert hub.subscription_count == baseline + 1
    await world.store.log_out(principal=world.team_contributor)
    assert sub.closed and hub.subscription_count == baseline
    assert [d.patient_id for d in drain(sub)] == [world.patient.id, None]
    assert await sub.get(timeout=5) is None  # closed: returns at once, nothing more


async def test_newly_assigned_therapist_is_granted_and_then_receives(world: World):
    store, p = world.store, world.patient.id
    newcomer = store.hub.subscribe(world.other_therapist, [class_topic("MobilityScore")])
    await store.assign_therapist(principal=world.lead, patient_id=p, therapist_id=world.users["other_therapist"].id)
    got = drain(newcomer)
    assert [(d.kind, d.patient_id) for d in got] == [("access_granted", p)]
    score = await store.record_score(principal=world.lead, patient_id=p, score_type="fac", value=4)
    assert [d.object_id for d in drain(newcomer)] == [score.id]


async def test_added_care_team_member_is_granted(world: World):
    store, p = world.store, world.patient.id
    outsider = store.hub.subscribe(world.outsider, [class_topic("MobilityScore")])
    await store.add_care_team_member(principal=world.owner, patient_id=p, user_id=world.users["outsider"].id)
    assert [(d.kind, d.patient_id) for d in drain(outsider)] == [("access_granted", p)]


# -- only committed writes are published --------------------------------------------------------
async def test_a_rolled_back_write_publishes_nothing(world: World):
    store, p = world.store, world.patient.id
    lead = store.hub.subscribe(world.lead, [patient_topic(p)] + [class_topic(c) for c in ALL_CLASSES])

    def refuse_history(*_args: object) -> None:
        raise RuntimeError("status_history insert failed")

    event.listen(StatusHistory, "before_insert", refuse_history)
    try:
        with pytest.raises(RuntimeError, match="status_history insert failed"):
            await store.change_status(principal=world.owner, patient_id=p, status="bed_bound", reason="x")
    finally:
        event.remove(StatusHistory, "before_insert", refuse_history)

    assert drain(lead) == []
    async with store.db.read() as session:
        assert (await session.get(Patient, p)).mobility_status == "supervision"
        assert list(await session.scalars(select(StatusHistory.to_value).where(
            StatusHistory.patient_id == p, StatusHistory.status_type == "mobilityStatus"))) == ["supervision"]
    # The store still works, and a committed change is published.
    await store.change_status(principal=world.owner, patient_id=p, status="bed_bound", reason="x")
    assert {d.class_name for d in drain(lead)} == {"Patient", "StatusHistory"}


# -- a stuck subscriber --------------------------------------------------------------------------
async def test_a_stuck_subscriber_does_not_delay_others_and_is_told_to_resync(world: World):
    store, p = world.store, world.patient.id
    stuck = store.hub.subscribe(world.lead, [class_topic("MobilityScore")], maxsize=3)
    healthy = [store.hub.subscribe(world.owner, [patient_topic(p)]),
               store.hub.subscribe(world.team_therapist, [class_topic("MobilityScore")])]
    count = 20

    async def write() -> list[str]:
        ids = []
        for i in range(count):
            ids.append((await store.record_score(principal=world.owner, patient_id=p, score_type="barthel",
                                                 value=i)).id)
        return ids

    async def read(sub: Subscription) -> list[tuple[str, float]]:
        got = []
        while len(got) < count:
            delivery = await sub.get(timeout=10)
            assert delivery is not None, f"only {len(got)} of {count} arrived"
            got.append((delivery.object_id, time.perf_counter() - delivery.published_at))
        return got

    written, *received = await asyncio.gather(write(), *(read(s) for s in healthy))
    for got in received:
        assert [object_id for object_id, _ in got] == written
        assert max(latency for _, latency in got) < 2.0  # delivered as written, not held back
    assert stuck.overflows >= 1

    first = await stuck.get(timeout=5)
    assert first is not None and first.kind == "resync"
    rest = drain(stuck)
    assert len(rest) <= 3 and all(d.kind == "create" for d in rest)
    assert [d.object_id for d in rest] == written[len(written) - len(rest):]


# -- hygiene -------------------------------------------------------------------------------------
async def test_closed_subscriptions_leave_nothing_behind(world: World):
    hub, p = world.store.hub, world.patient.id
    baseline = hub.subscription_count
    for i in range(100):
        sub = hub.subscribe(world.owner, [patient_topic(p), class_topic("MobilityScore")])
        if i == 50:
            await world.store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=50)
            assert (await sub.get(timeout=5)).kind == "create"
        sub.close()
        sub.close()  # closing twice is harmless
    assert hub.subscription_count == baseline
    assert hub._by_topic == {} and hub._by_user == {}  # no empty sets left to grow either
    # A closed subscription returns at once instead of waiting.
    assert await sub.get(timeout=5) is None
