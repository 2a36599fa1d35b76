"""Presence across instances on one PostgreSQL (dashboard/presence.py): a viewer on A is seen on B
within half a second, leaving clears it, and an instance that stops being heard (killed) has its
viewers forgotten after the expiry. PostgreSQL only: SQLite is one process."""
from __future__ import annotations

import dataclasses

import pytest

from dashboard.db import Database
from dashboard.store import Store
from tests.support import eventually

NURSE = ("u-1", "therapist", "therapist")


@pytest.fixture
async def instances(world, database_url: str):
    if world.store.db.is_sqlite:
        pytest.skip("SQLite is one process: there is no other instance to tell")
    made = []
    for name in ("a:1", "b:2"):
        db = Database(database_url)
        settings = dataclasses.replace(world.store.settings, instance_id=name, presence_ttl_seconds=2)
        store = Store(db, settings=settings)
        await store.start()
        made.append((store, db))
    for store, _ in made:
        await eventually(lambda s=store: s.feed.listening, timeout=5)
    yield [store for store, _ in made]
    for store, db in made:
        await store.stop()
        await db.dispose()


async def test_a_viewer_on_one_instance_is_seen_on_the_other_and_leaves(instances, world):
    a, b = instances
    changed: list[str] = []
    b.presence.listeners.add(changed.append)
    pid = world.patient.id
    a.presence.publish(pid, frozenset({NURSE}))
    await eventually(lambda: b.presence.elsewhere(pid) == {NURSE}, timeout=0.5)
    assert changed == [pid] and a.presence.elsewhere(pid) == frozenset()  # not its own echo
    a.presence.publish(pid, frozenset())
    await eventually(lambda: b.presence.elsewhere(pid) == frozenset(), timeout=0.5)


async def test_a_silent_instance_s_viewers_expire_and_a_new_one_hears_the_others(instances, world, database_url):
    a, b = instances
    pid = world.patient.id
    b.presence.publish(pid, frozenset({NURSE}))
    await eventually(lambda: a.presence.elsewhere(pid) == {NURSE}, timeout=0.5)
    # A newcomer hears who is already viewing.
    db = Database(database_url)
    c = Store(db, settings=dataclasses.replace(a.settings, instance_id="c:3", presence_ttl_seconds=30))
    await c.start()
    try:
        await eventually(lambda: c.presence.elsewhere(pid) == {NURSE}, timeout=3)
    finally:
        await c.stop()
        await db.dispose()
    await b.presence.stop()  # B goes silent, as a killed instance would: it never says goodbye
    b.presence.feed = None
    await eventually(lambda: a.presence.elsewhere(pid) == frozenset(), timeout=4)
