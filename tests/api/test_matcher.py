"""The live-query matcher agrees with the store's SQL for the same `where` (both databases)."""
from __future__ import annotations

import pytest

from dashboard.api.matcher import Matcher
from dashboard.serialize import to_parse

WHERES = [
    {}, {"scoreValue": 30}, {"scoreValue": {"$gt": 20, "$lte": 50}}, {"scoreValue": {"$ne": 30}},
    {"scoreType": {"$in": ["berg", "tug"]}}, {"scoreType": {"$nin": ["berg"]}}, {"notes": {"$exists": True}},
    {"notes": {"$exists": False}}, {"notes": None}, {"notes": {"$ne": "a"}}, {"notes": {"$nin": ["a"]}},
    {"scoreType": {"$regex": "^B", "$options": "i"}}, {"notes": {"$regex": "x"}},
    {"$or": [{"scoreValue": 10}, {"notes": "a"}]},
    {"scoreDate": {"$gte": {"__type": "Date", "iso": "2026-01-02T00:00:00.000Z"}}},
    {"createdAt": {"$lt": {"__type": "Date", "iso": "2000-01-01T00:00:00.000Z"}}},
    {"enteredInError": False}, {"notes": {"$ne": None}},
    # what GraphQL's where turns into (dashboard/api/graphql/where.py)
    {"scoreValue": {"$eq": 30}}, {"notes": {"$eq": None}}, {"notes": {"$eq": "a"}},
    {"$and": [{"scoreValue": {"$gt": 5}}, {"scoreType": "berg"}]},
    {"$nor": [{"scoreValue": {"$lt": 20}}, {"notes": {"$regex": "x"}}]},
    {"$nor": [{"notes": "a"}]}, {"$and": [{"$or": [{"scoreValue": 10}, {"scoreValue": 50}]}, {"notes": {"$exists": False}}]},
]


@pytest.mark.parametrize("where", WHERES, ids=[str(w) for w in WHERES])
async def test_matcher_agrees_with_the_store(world, where):
    from datetime import datetime, timezone

    store, w = world.store, world
    for i, (value, kind, notes) in enumerate([(10, "berg", None), (30, "barthel", "a"), (50, "berg", "xa"), (3, "tug", None)]):
        await store.record_score(principal=w.lead, patient_id=w.patient.id, score_type=kind, value=value, notes=notes,
                                 score_date=datetime(2026, 1, 1 + i, tzinfo=timezone.utc))
    rows = await store.find(principal=w.lead, class_name="MobilityScore", limit=100)
    expected = {r.id for r in await store.find(principal=w.lead, class_name="MobilityScore", where=where, limit=100)}
    matcher = Matcher("MobilityScore", where)
    got = {r.id for r in rows if matcher.matches(to_parse(r))}
    assert got == expected

