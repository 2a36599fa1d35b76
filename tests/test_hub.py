"""Live updates (ACCESS.md, "Live updates"): who receives what, when access ends, and hub hygiene.

Subscriptions here are what pages hold: a `Mailbox` as the hub's sink. The store publishes
synchronously right after each commit, so once a write has returned, every delivery it causes is
already in the mailbox: `drain()` returning [] is a real "nothing came".
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import event, select

from tests.support import World, mailbox
from dashboard.hub import RESYNC, Delivery, DeliveryKind, Event, Mailbox, class_topic, patient_topic
from dashboard.models import Patient, StatusHistory

ALL_CLASSES = ("Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory")


async def test_owner_score_reaches_lead_subscriber(world: World):
    store = world.store
    sub = mailbox(store.hub, world.lead, [patient_topic(world.patient.id)])
    score = await store.record_score(principal=world.owner, patient_id=world.patient.id,
                                     score_type="barthel", value=55)
    delivery = await sub.get(timeout=5)
    assert delivery is not None and delivery.kind == "create" and delivery.object_id == score.id
    assert delivery.data["scoreValue"] == 55


async def test_only_subscribers_who_may_read_receive_an_event(world: World):
    store, p = world.store, world.patient.id
    topics = [class_topic("MobilityScore"), class_topic("SessionNote")]
    lead = mailbox(store.hub, world.lead, topics)
    outsider = mailbox(store.hub, world.outsider, topics)
    other_therapist = mailbox(store.hub, world.other_therapist, topics)
    viewer = mailbox(store.hub, world.viewer, topics)

    score = await store.record_score(principal=world.owner, patient_id=p, score_type="berg", value=41)
    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Better today.")

    assert [d.object_id for d in lead.drain()] == [score.id, note.id]
    assert outsider.drain() == []
    assert other_therapist.drain() == []
    assert [d.object_id for d in viewer.drain()] == [score.id]  # a viewer never reads notes
    # Q's events reach Q's therapist, not P's team.
    q_score = await store.record_score(principal=world.lead, patient_id=world.other_patient.id,
                                       score_type="tug", value=11.5)
    assert [d.object_id for d in other_therapist.drain()] == [q_score.id]
    assert viewer.drain() == [] and outsider.drain() == []


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
    page = mailbox(store.hub, victim, [patient_topic(p)])  # an open patient page
    listing = mailbox(store.hub, victim, [class_topic(c) for c in ALL_CLASSES])  # a list page
    lead = mailbox(store.hub, world.lead, [patient_topic(p)])

    control = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=60)
    assert [d.object_id for d in page.drain()] == [control.id]
    assert [d.object_id for d in listing.drain()] == [control.id]
    lead.drain()

    # Queued while access still held, never read: must not be handed over once access has ended.
    await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=61)
    assert await revoke(world) == victim_kind

    for sub in (page, listing):
        got = sub.drain()
        assert {d.kind for d in got} == {"access_ended"}, [(d.kind, d.class_name) for d in got]
        assert p in {d.patient_id for d in got}
    after = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=62)
    await store.change_status(principal=world.lead, patient_id=p, status="dependent", reason=None)
    assert page.drain() == [] and listing.drain() == []
    assert after.id in {d.object_id for d in lead.drain()}  # the control: the lead still receives


async def test_logout_closes_the_subscriptions(world: World):
    hub = world.store.hub
    baseline = hub.subscription_count
    sub = mailbox(hub, world.team_contributor, [patient_topic(world.patient.id)])
    assert hub.subscription_count == baseline + 1
    await world.store.log_out(principal=world.team_contributor)
    assert sub.closed and sub.subscription.closed and hub.subscription_count == baseline
    assert [d.patient_id for d in sub.drain()] == [world.patient.id, None]
    assert await sub.get(timeout=5) is None  # closed: returns at once, nothing more


async def test_newly_assigned_therapist_is_granted_and_then_receives(world: World):
    store, p = world.store, world.patient.id
    newcomer = mailbox(store.hub, world.other_therapist, [class_topic("MobilityScore")])
    await store.assign_therapist(principal=world.lead, patient_id=p, therapist_id=world.users["other_therapist"].id)
    got = newcomer.drain()
    assert [(d.kind, d.patient_id) for d in got] == [("access_granted", p)]
    score = await store.record_score(principal=world.lead, patient_id=p, score_type="fac", value=4)
    assert [d.object_id for d in newcomer.drain()] == [score.id]


async def test_added_care_team_member_is_granted(world: World):
    store, p = world.store, world.patient.id
    outsider = mailbox(store.hub, world.outsider, [class_topic("MobilityScore")])
    await store.add_care_team_member(principal=world.owner, patient_id=p, user_id=world.users["outsider"].id)
    assert [(d.kind, d.patient_id) for d in outsider.drain()] == [("access_granted", p)]


# -- only committed writes are published --------------------------------------------------------
async def test_a_rolled_back_write_publishes_nothing(world: World):
    store, p = world.store, world.patient.id
    lead = mailbox(store.hub, world.lead, [patient_topic(p)] + [class_topic(c) for c in ALL_CLASSES])

    def refuse_history(*_args: object) -> None:
        raise RuntimeError("status_history insert failed")

    event.listen(StatusHistory, "before_insert", refuse_history)
    try:
        with pytest.raises(RuntimeError, match="status_history insert failed"):
            await store.change_status(principal=world.owner, patient_id=p, status="bed_bound", reason="x")
    finally:
        event.remove(StatusHistory, "before_insert", refuse_history)

    assert lead.drain() == []
    async with store.db.read() as session:
        assert (await session.get(Patient, p)).mobility_status == "supervision"
        assert list(await session.scalars(select(StatusHistory.to_value).where(
            StatusHistory.patient_id == p, StatusHistory.status_type == "mobilityStatus"))) == ["supervision"]
    # The store still works, and a committed change is published.
    await store.change_status(principal=world.owner, patient_id=p, status="bed_bound", reason="x")
    assert {d.class_name for d in lead.drain()} == {"Patient", "StatusHistory"}


# -- a stuck subscriber --------------------------------------------------------------------------
async def test_a_stuck_subscriber_does_not_delay_others_and_is_told_to_resync(world: World):
    store, p = world.store, world.patient.id
    stuck = mailbox(store.hub, world.lead, [class_topic("MobilityScore")], maxsize=3)
    healthy = [mailbox(store.hub, world.owner, [patient_topic(p)]),
               mailbox(store.hub, world.team_therapist, [class_topic("MobilityScore")])]
    count = 20

    async def write() -> list[str]:
        ids = []
        for i in range(count):
            ids.append((await store.record_score(principal=world.owner, patient_id=p, score_type="barthel",
                                                 value=i)).id)
        return ids

    async def read(sub: Mailbox) -> list[tuple[str, float]]:
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
    rest = stuck.drain()
    assert len(rest) <= 3 and all(d.kind == "create" for d in rest)
    assert [d.object_id for d in rest] == written[len(written) - len(rest):]


# -- hygiene -------------------------------------------------------------------------------------
async def test_closed_subscriptions_leave_nothing_behind(world: World):
    hub, p = world.store.hub, world.patient.id
    baseline = hub.subscription_count
    for i in range(100):
        sub = mailbox(hub, world.owner, [patient_topic(p), class_topic("MobilityScore")])
        if i == 50:
            await world.store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=50)
            assert (await sub.get(timeout=5)).kind == "create"
        sub.close()
        sub.close()  # closing twice is harmless
    assert hub.subscription_count == baseline
    assert hub._by_topic == {} and hub._by_user == {}  # no empty sets left to grow either
    # A closed subscription returns at once instead of waiting.
    assert await sub.get(timeout=5) is None


# -- routing by patient and class ----------------------------------------------------------------
async def test_a_write_of_one_class_on_a_patient_visits_no_subscriber_of_another_class(world: World, monkeypatch):
    """A subscription pinned to P's scores (a live query on one patient's scores) costs a note on P
    nothing: not one access check, not one call. A whole-patient page still gets the note."""
    from dashboard.access import Principal

    store, hub, p = world.store, world.store.hub, world.patient.id
    # The lead, who may read everything (so a visit would be a delivery), as an object of its own so
    # that the hub's access checks for these subscriptions can be counted.
    pinned = Principal(world.lead.user_id, world.lead.session_id, world.lead.username)
    checks = 0
    can_read = hub.access.can_read

    def counting(principal, *args, **kwargs):
        nonlocal checks
        checks += principal is pinned
        return can_read(principal, *args, **kwargs)

    monkeypatch.setattr(hub.access, "can_read", counting)
    visits: list[Delivery] = []
    pinned_subs = [hub.subscribe(pinned, [patient_topic(p, "MobilityScore")], sink=visits.append)
                   for _ in range(100)]
    whole = mailbox(hub, world.lead, [patient_topic(p)])

    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Walked to the door.")
    assert visits == [] and checks == 0
    assert note.id in {d.object_id for d in whole.drain()}

    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=45)
    assert [d.object_id for d in visits] == [score.id] * 100 and checks == 100  # the control
    assert score.id in {d.object_id for d in whole.drain()}
    # Routing by patient and class still knows which patient such a subscription watches.
    assert pinned_subs[0].watches_patient(p) and not pinned_subs[0].watches_patient(world.other_patient.id)
    for sub in pinned_subs:
        sub.close()


async def test_access_ended_reaches_a_patient_and_class_subscription(world: World):
    store, p = world.store, world.patient.id
    scores = mailbox(store.hub, world.team_therapist, [patient_topic(p, "MobilityScore")])
    await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=30)
    await store.remove_care_team_member(principal=world.owner, patient_id=p, user_id=world.users["team_therapist"].id)
    assert [(d.kind, d.patient_id) for d in scores.drain()] == [(DeliveryKind.ACCESS_ENDED, p)]
    await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=31)
    assert scores.drain() == []


# -- the mailbox -----------------------------------------------------------------------------------
async def test_a_mailbox_that_overflows_holds_one_resync_then_what_came_after(world: World):
    store, p = world.store, world.patient.id
    box = mailbox(store.hub, world.lead, [class_topic("MobilityScore")], maxsize=3)
    ids = [(await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=v)).id
           for v in range(10)]
    got = box.drain()
    assert got[0] == RESYNC and [d for d in got if d.kind == DeliveryKind.RESYNC] == [RESYNC]
    assert box.overflows == 3
    # What committed after the overflow follows the resync, in order.
    assert [d.object_id for d in got[1:]] == ids[len(ids) - len(got) + 1:] and len(got[1:]) <= 2
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=99)
    assert [d.object_id for d in box.drain()] == [score.id]  # it took a resync, not a closed door


async def test_access_that_ends_for_one_patient_drops_only_that_patients_queued_deliveries(world: World):
    store, p, q = world.store, world.patient.id, world.other_patient.id
    member = world.users["other_therapist"].id  # Q's therapist, for now also on P's care team
    await store.add_care_team_member(principal=world.owner, patient_id=p, user_id=member)
    listing = mailbox(store.hub, world.other_therapist, [class_topic("MobilityScore")])
    on_p = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=20)
    on_q = await store.record_score(principal=world.lead, patient_id=q, score_type="barthel", value=21)
    also_p = await store.record_score(principal=world.lead, patient_id=p, score_type="barthel", value=22)
    assert len(listing) == 3 and {on_p.id, also_p.id} < {d.object_id for d in listing._queue}
    await store.remove_care_team_member(principal=world.owner, patient_id=p, user_id=member)
    assert [(d.kind, d.object_id) for d in listing.drain()] == [("create", on_q.id), ("access_ended", p)]


def test_an_end_of_everything_keeps_only_the_access_ends():
    box = Mailbox(8)
    box(Delivery(DeliveryKind.CREATE, "MobilityScore", "s1", "P"))
    box(Delivery(DeliveryKind.ACCESS_ENDED, "Patient", "P", "P"))
    box(Delivery(DeliveryKind.CREATE, "MobilityScore", "s2", "Q"))
    box(Delivery(DeliveryKind.ACCESS_ENDED))
    assert [(d.kind, d.patient_id) for d in box.drain()] == [("access_ended", "P"), ("access_ended", None)]


async def test_at_once_applies_in_the_publishing_step_only_while_nothing_waits():
    """As a patient page: scores are applied in place at once, anything else waits for the batch."""
    applied: list[str] = []

    def scores_in_place(delivery: Delivery) -> bool:
        if delivery.class_name != "MobilityScore":
            return False
        applied.append(delivery.object_id)
        return True

    box = Mailbox(8, at_once=scores_in_place)
    box(Delivery(DeliveryKind.CREATE, "MobilityScore", "first", "P"))
    assert applied == ["first"] and len(box) == 0
    box(Delivery(DeliveryKind.CREATE, "SessionNote", "n1", "P"))
    batches = box.batches()
    assert [d.object_id for d in await anext(batches)] == ["n1"]
    # While that batch is being applied, a score waits its turn behind it, in order.
    box(Delivery(DeliveryKind.CREATE, "MobilityScore", "second", "P"))
    assert applied == ["first"] and len(box) == 1
    assert [d.object_id for d in await anext(batches)] == ["second"]
    box.close()
    assert [b async for b in batches] == []


async def test_subscriptions_are_context_managers(world: World):
    hub, p = world.store.hub, world.patient.id
    baseline = hub.subscription_count
    with mailbox(hub, world.lead, [patient_topic(p)]) as box:
        score = await world.store.record_score(principal=world.owner, patient_id=p, score_type="fac", value=3)
        assert [d.object_id for d in box.drain()] == [score.id]
    assert box.closed and hub.subscription_count == baseline
    seen: list[Delivery] = []
    with hub.subscribe(world.lead, [patient_topic(p)], sink=seen.append) as sub:
        assert hub.subscription_count == baseline + 1
    assert sub.closed and hub.subscription_count == baseline
    await world.store.record_score(principal=world.owner, patient_id=p, score_type="fac", value=4)
    assert seen == []


# -- records on deliveries -------------------------------------------------------------------------
async def test_a_delivery_carries_its_record_shaped_once_per_viewer_variant(world: World):
    from dashboard.record_types import ScoreRecord

    store, p = world.store, world.patient.id
    lead = mailbox(store.hub, world.lead, [patient_topic(p)])
    viewers = [mailbox(store.hub, world.viewer, [patient_topic(p)]) for _ in range(2)]
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=55,
                                     notes="Private score note.")
    (to_lead,) = [d for d in lead.drain() if d.class_name == "MobilityScore"]
    assert isinstance(to_lead.record, ScoreRecord)
    assert (to_lead.record.id, to_lead.record.score_value, to_lead.record.notes) == (score.id, 55.0,
                                                                                      "Private score note.")
    to_viewers = [d for box in viewers for d in box.drain() if d.class_name == "MobilityScore"]
    assert len(to_viewers) == 2 and to_viewers[0].record.notes is None  # a viewer's record: no private fields
    assert to_viewers[0].record is to_viewers[1].record  # one record per variant, however many receive it
    event = Event("create", "PatientActivity", p, p, {"className": "PatientActivity", "objectId": p})
    assert event.record("lead", False) is None  # a class without a record type
