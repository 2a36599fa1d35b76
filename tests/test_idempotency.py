"""A save's request key (Parse's X-Parse-Request-Id): a save sent again with it is stored once.

The repeat raises RepeatedRequest naming the first request's record and writes, publishes and
audits-as-done nothing; keys are the acting user's own; a refused save does not use its key up;
concurrent duplicates end as one row and one RepeatedRequest on both databases; keys last 24 hours.
"""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from dashboard.record_types import ScoreRecord
from dashboard.errors import Conflict, InvalidInput, MissingField, NotFound, PermissionDenied, RepeatedRequest
from dashboard.hub import class_topic, patient_topic
from dashboard.models import MobilityScore, RequestKey, SessionNote, StatusHistory
from dashboard.store.request_keys import REQUEST_KEY_LIFETIME
from tests.api.conftest import api  # noqa: F401 - the REST client fixture, on both databases
from tests.api.test_rest import pointer, score_body
from tests.support import domain_snapshot, mailbox

KEY = "0f6c7a46-6c1f-4b1a-9d7c-5f1f1f1f1f1f"  # what the SDKs send: a UUID


async def _count(store, model, **where) -> int:
    async with store.db.read() as session:
        statement = select(func.count()).select_from(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return int(await session.scalar(statement) or 0)


# What each save needs that a previous one makes (a score to mark, a note to clear, a log to return).
async def _score(w):
    return await w.store.record_score(principal=w.owner, patient_id=w.patient.id, score_type="barthel", value=40)


async def _note(w):
    return await w.store.add_note(principal=w.owner, patient_id=w.patient.id, session_type="review",
                                  text="Seen.", follow_up=True)


async def _log(w):
    return await w.store.check_out_equipment(principal=w.owner, patient_id=w.patient.id, name="Frame")


async def _nothing(w):
    return None


# name: (the audit action, what the save needs first, the save with a key)
SAVES = {
    "record_score": ("create", _nothing, lambda w, _, k: w.store.record_score(
        principal=w.owner, patient_id=w.patient.id, score_type="barthel", value=45, request_key=k)),
    "add_note": ("create", _nothing, lambda w, _, k: w.store.add_note(
        principal=w.owner, patient_id=w.patient.id, session_type="review", text="Walked.", request_key=k)),
    "check_out_equipment": ("create", _nothing, lambda w, _, k: w.store.check_out_equipment(
        principal=w.owner, patient_id=w.patient.id, name="Wheelchair", request_key=k)),
    "change_status": ("update", _nothing, lambda w, _, k: w.store.change_status(
        principal=w.owner, patient_id=w.patient.id, status="dependent", reason="Fell", request_key=k)),
    "return_equipment": ("update", _log, lambda w, log, k: w.store.return_equipment(
        principal=w.owner, log_id=log.id, request_key=k)),
    "mark_score_in_error": ("update", _score, lambda w, score, k: w.store.mark_score_in_error(
        principal=w.owner, score_id=score.id, reason="Wrong patient", request_key=k)),
    "clear_follow_up": ("update", _note, lambda w, note, k: w.store.clear_follow_up(
        principal=w.owner, note_id=note.id, request_key=k)),
}


@pytest.mark.parametrize("save", list(SAVES))
async def test_a_repeated_save_is_stored_published_and_audited_once(world, save):
    store, (action, prepare, do) = world.store, SAVES[save]
    target = await prepare(world)
    sub = mailbox(store.hub, world.lead, [class_topic(c) for c in
                                           ("MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory",
                                            "Patient")] + [patient_topic(world.patient.id)])
    trail_before = len(await store.audit_trail(principal=world.lead, limit=1000))

    first = await do(world, target, KEY)
    after_first = await domain_snapshot(store.db)
    published = sub.drain()
    assert any(d.object_id == first.id for d in published)

    with pytest.raises(RepeatedRequest) as repeat:
        await do(world, target, KEY)
    assert (repeat.value.class_name, repeat.value.object_id) == (first.class_name, first.id)
    assert (repeat.value.parse_code, repeat.value.http_status, repeat.value.message) == (159, 400, "Duplicate request")
    assert await domain_snapshot(store.db) == after_first  # not one row, nor one column, written again
    assert sub.drain() == []  # the hub published the save once

    trail = await store.audit_trail(principal=world.lead, limit=1000)
    new = trail[:len(trail) - trail_before]  # newest first
    assert [(e.action, e.outcome, e.object_id) for e in new if e.object_id == first.id] == [
        (action, "repeat", first.id), (action, "ok", first.id)]
    assert not any(e.outcome in ("denied", "not_found", "invalid") for e in new)


async def test_the_same_key_is_each_users_own(world):
    store, p = world.store, world.patient.id
    mine = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=40,
                                    request_key=KEY)
    theirs = await store.record_score(principal=world.team_therapist, patient_id=p, score_type="barthel",
                                      value=40, request_key=KEY)
    assert mine.id != theirs.id
    assert await _count(store, MobilityScore, patient_id=p) == 2
    with pytest.raises(RepeatedRequest) as repeat:
        await store.add_note(principal=world.team_therapist, patient_id=p, session_type="review", text="x",
                             request_key=KEY)
    assert repeat.value.object_id == theirs.id  # a key names one save whatever is sent with it again


async def test_a_refused_save_does_not_use_its_key_up(world):
    store, p, q = world.store, world.patient.id, world.other_patient.id
    # Refused before its transaction: a value out of range.
    with pytest.raises(InvalidInput):
        await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=999,
                                 request_key="score-1")
    score = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=99,
                                     request_key="score-1")
    with pytest.raises(RepeatedRequest):
        await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=99,
                                 request_key="score-1")

    # Refused inside its transaction, after the key was claimed: an amendment of another patient's note.
    elsewhere = await store.add_note(principal=world.lead, patient_id=q, session_type="review", text="Stable.")
    with pytest.raises(NotFound):
        await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Amended.",
                             amends=elsewhere.id, request_key="note-1")
    note = await store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.",
                                request_key="note-1")
    assert note.amends_id is None

    # An update refused inside its transaction (no reason), and one refused as stale (Conflict).
    with pytest.raises(MissingField):
        await store.mark_score_in_error(principal=world.owner, score_id=score.id, reason=" ",
                                        request_key="mark-1")
    marked = await store.mark_score_in_error(principal=world.owner, score_id=score.id, reason="Typo",
                                             request_key="mark-1")
    assert marked.entered_in_error
    version = world.patient.version
    await store.change_status(principal=world.lead, patient_id=p, status="independent", reason=None)
    with pytest.raises(Conflict):
        await store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="Fell",
                                  expected_version=version, request_key="status-1")
    changed = await store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="Fell",
                                        expected_version=version + 1, request_key="status-1")
    # The repeat is a repeat, not a Conflict, although its version is stale now.
    with pytest.raises(RepeatedRequest) as repeat:
        await store.change_status(principal=world.owner, patient_id=p, status="dependent", reason="Fell",
                                  expected_version=version + 1, request_key="status-1")
    assert repeat.value.object_id == changed.id == p
    # Refused as not allowed, after the claim: the same key then serves what the user may do.
    with pytest.raises(PermissionDenied):
        await store.update(principal=world.team_contributor, class_name="Patient", object_id=p,
                           changes={"displayName": "Pat E."}, request_key="perm-1")
    await store.add_note(principal=world.team_contributor, patient_id=p, session_type="review", text="Seen.",
                         request_key="perm-1")
    async with store.db.read() as session:
        keys = set(await session.execute(select(RequestKey.user_id, RequestKey.key)))
    owner, contributor = world.owner.user_id, world.team_contributor.user_id
    assert keys == {(owner, "score-1"), (owner, "note-1"), (owner, "mark-1"), (owner, "status-1"),
                    (contributor, "perm-1")}


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "naïve", "a/b", "line\n", 42])
async def test_a_key_that_is_not_1_to_64_letters_digits_or_dashes_is_refused(world, bad):
    store = world.store
    before = await domain_snapshot(store.db)
    with pytest.raises(InvalidInput) as refused:
        await store.record_score(principal=world.owner, patient_id=world.patient.id, score_type="barthel",
                                 value=40, request_key=bad)
    assert refused.value.field == "requestId" and "64" in refused.value.rule
    with pytest.raises(InvalidInput):
        await store.clear_follow_up(principal=world.owner, note_id="whatever", request_key=bad)
    assert await domain_snapshot(store.db) == before
    longest = await store.record_score(principal=world.owner, patient_id=world.patient.id, score_type="barthel",
                                       value=40, request_key="A_z-9" * 12 + "abcd")
    assert longest.id


async def test_concurrent_duplicates_end_as_one_row_and_one_repeat(world):
    store, p = world.store, world.patient.id
    sub = mailbox(store.hub, world.lead, [class_topic("MobilityScore"), class_topic("Patient"),
                                           class_topic("StatusHistory")])
    score = lambda: store.record_score(principal=world.owner, patient_id=p, score_type="barthel",  # noqa: E731
                                       value=55, request_key="same-score")
    results = await asyncio.gather(score(), score(), return_exceptions=True)
    [made] = [r for r in results if isinstance(r, ScoreRecord)]
    [repeat] = [r for r in results if not isinstance(r, ScoreRecord)]
    assert isinstance(repeat, RepeatedRequest), repeat  # never an IntegrityError
    assert repeat.object_id == made.id
    assert await _count(store, MobilityScore, patient_id=p) == 1

    status = lambda: store.change_status(principal=world.owner, patient_id=p, status="dependent",  # noqa: E731
                                         reason="Fell", request_key="same-status")
    results = await asyncio.gather(status(), status(), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["PatientRecord", "RepeatedRequest"], results
    assert await _count(store, StatusHistory, patient_id=p, to_value="dependent") == 1
    published = sub.drain()
    assert [d.object_id for d in published if d.class_name == "MobilityScore"] == [made.id]
    assert len([d for d in published if d.class_name == "Patient"]) == 1


async def test_on_postgresql_the_primary_key_decides_between_open_transactions(world):
    """A save whose key another open transaction has claimed waits for it: a repeat once it commits,
    stored once it rolls back."""
    store, p = world.store, world.patient.id
    if store.db.is_sqlite:
        pytest.skip("SQLite has one writer: a second transaction cannot hold a claim meanwhile")

    def claim(key: str):
        return insert(RequestKey).values(user_id=world.owner.user_id, key=key, class_name="SessionNote",
                                         object_id="firstnote1", created_at=store.clock())

    def note():
        return store.add_note(principal=world.owner, patient_id=p, session_type="review", text="Seen.",
                              request_key="held")

    async with store.db.write_engine.connect() as other:
        await other.begin()
        await other.execute(claim("held"))
        pending = asyncio.ensure_future(note())
        done, _ = await asyncio.wait([pending], timeout=0.5)
        assert not done, "the save did not wait for the transaction holding its key"
        await other.commit()
    with pytest.raises(RepeatedRequest) as repeat:
        await pending
    assert repeat.value.object_id == "firstnote1"
    assert await _count(store, SessionNote, patient_id=p) == 0

    async with store.db.write_engine.connect() as other:
        await other.begin()
        await other.execute(claim("rolled-back"))
        pending = asyncio.ensure_future(store.add_note(principal=world.owner, patient_id=p, session_type="review",
                                                       text="Seen.", request_key="rolled-back"))
        done, _ = await asyncio.wait([pending], timeout=0.5)
        assert not done
        await other.rollback()
    made = await pending
    assert await _count(store, SessionNote, patient_id=p) == 1 and made.patient_id == p


async def test_a_key_lasts_24_hours_and_old_keys_are_pruned(world):
    store, p, owner = world.store, world.patient.id, world.owner.user_id
    now = store.clock()
    async with store.db.write() as session:
        for key, age in (("expired", REQUEST_KEY_LIFETIME + timedelta(minutes=1)), ("old-other", timedelta(days=3)),
                         ("recent", REQUEST_KEY_LIFETIME - timedelta(minutes=1))):
            session.add(RequestKey(user_id=owner, key=key, class_name="MobilityScore", object_id="oldscore01",
                                   created_at=now - age))
        session.add(RequestKey(user_id=world.lead.user_id, key="lead-old", class_name="MobilityScore",
                               object_id="oldscore02", created_at=now - timedelta(days=3)))
        await session.commit()
    with pytest.raises(RepeatedRequest) as repeat:
        await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=40,
                                 request_key="recent")
    assert repeat.value.object_id == "oldscore01"
    made = await store.record_score(principal=world.owner, patient_id=p, score_type="barthel", value=40,
                                    request_key="expired")
    async with store.db.read() as session:
        rows = {(r.user_id, r.key): r.object_id for r in await session.scalars(select(RequestKey))}
    # The owner's old keys went with the owner's save; another user's wait for that user's next save.
    assert rows == {(owner, "expired"): made.id, (owner, "recent"): "oldscore01",
                    (world.lead.user_id, "lead-old"): "oldscore02"}


async def test_rest_answers_a_repeated_request_id_with_159(api):  # noqa: F811 - the fixture
    pid = api.world.patient.id
    headers = {"X-Parse-Request-Id": KEY}
    first = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid), headers=headers)
    assert first.status_code == 201, first.text
    again = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid), headers=headers)
    assert again.status_code == 400 and again.json() == {"code": 159, "error": "Duplicate request"}
    # The JS SDK's body style: _RequestId among the body's meta fields.
    sdk = await api.sdk("classes/MobilityScore", {**score_body(pid), "_RequestId": KEY}, "owner")
    assert sdk.status_code == 400 and sdk.json()["code"] == 159
    found = await api.call("GET", "classes/MobilityScore", "owner",
                           params={"where": json.dumps({"patient": pointer("Patient", pid)})})
    assert [r["objectId"] for r in found.json()["results"]] == [first.json()["objectId"]]

    # An update, and the same key from another user: their own.
    change = {"mobilityStatus": "dependent", "changeReason": "Fell"}
    r = await api.call("PUT", f"classes/Patient/{pid}", "owner", json=change, headers={"X-Parse-Request-Id": "put-1"})
    assert r.status_code == 200, r.text
    before = await api.counts()
    r = await api.call("PUT", f"classes/Patient/{pid}", "owner", json=change, headers={"X-Parse-Request-Id": "put-1"})
    assert r.status_code == 400 and r.json() == {"code": 159, "error": "Duplicate request"}
    assert await api.counts() == before
    r = await api.call("POST", "classes/MobilityScore", "team_therapist", json=score_body(pid), headers=headers)
    assert r.status_code == 201

    # Without the header, as before: two creates are two rows. A malformed id is bad input (111).
    for _ in range(2):
        r = await api.call("POST", "classes/SessionNote", "owner", json={
            "patient": pointer("Patient", pid), "sessionType": "review", "noteText": "Seen.",
            "followUpNeeded": False, "sessionDate": {"__type": "Date", "iso": "2026-01-02T03:04:05.006Z"}})
        assert r.status_code == 201
    assert await _count(api.store, SessionNote, patient_id=pid) == 2
    r = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid),
                       headers={"X-Parse-Request-Id": "not a uuid"})
    assert r.status_code == 400 and r.json()["code"] == 111 and r.json()["error"].startswith("requestId:")
