"""Who has a patient's page open on the other instances (SCALE-OUT.md §4 "Presence").

Not in the change log: presence is not a committed change, never replayed or audited. Each
instance sends its full set of viewers per patient with pg_notify('ot_presence', ...) when it
changes, and re-sends every non-empty set every third of the expiry; receivers drop another
instance's set when it has not been heard for `ttl` seconds, so the viewers of a killed instance
vanish. An instance that (re)connects says hello, and the others re-send. The sets hold what a
patient page already shows: user ids, usernames and roles of people allowed to open it.
SQLite is one process: nothing is sent, and `elsewhere` is always empty.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from dashboard.loop_tasks import cancel, ensure_running

log = logging.getLogger("ot_tracker.presence")
CHANNEL = "ot_presence"
MAX_PEOPLE = 100  # per patient and instance: a notification payload stays under PostgreSQL's 8000 bytes
Person = tuple[str, str, str]  # user id, username, role


class PresenceBoard:
    def __init__(self, instance_id: str, *, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.instance_id = instance_id
        self.ttl = ttl
        self.clock = clock
        self.local: dict[str, frozenset[Person]] = {}
        self.remote: dict[str, dict[str, tuple[frozenset[Person], float]]] = {}  # patient -> instance -> set, heard
        self.listeners: set[Callable[[str], None]] = set()  # called with a patient id when `elsewhere` changed
        self.feed: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    def attach(self, feed: Any) -> None:
        """Rides on the change feed's LISTEN connection (PostgreSQL only)."""
        if not feed.db.is_sqlite:
            self.feed = feed
            feed.listen(CHANNEL, self._received)

    def start(self) -> None:
        if self.feed is not None:
            self._task = ensure_running(self._task, self._tick, "presence")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel(task)
        for send in list(self._sends):
            await cancel(send)

    # -- this instance's viewers ----------------------------------------------------------------
    def publish(self, patient_id: str, people: frozenset[Person]) -> None:
        if people:
            self.local[patient_id] = people
        else:
            self.local.pop(patient_id, None)
        self._send({"i": self.instance_id, "p": patient_id, "v": sorted(people)[:MAX_PEOPLE]})

    def elsewhere(self, patient_id: str) -> frozenset[Person]:
        now = self.clock()
        sets = self.remote.get(patient_id, {})
        return frozenset().union(*(people for people, heard in sets.values() if now - heard <= self.ttl))

    # -- transport ------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        if self.feed is None:
            return
        task = asyncio.ensure_future(self.feed.send(CHANNEL, json.dumps(message, separators=(",", ":"))))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _resend_all(self) -> None:
        for patient_id, people in list(self.local.items()):
            self._send({"i": self.instance_id, "p": patient_id, "v": sorted(people)[:MAX_PEOPLE]})

    def _received(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            instance = str(message["i"])
            if instance == self.instance_id:
                return
            if message.get("hello"):
                self._resend_all()
                return
            patient_id = str(message["p"])
            people = frozenset((str(u), str(n), str(r)) for u, n, r in message["v"])
        except (ValueError, KeyError, TypeError):
            log.warning("presence: a malformed notification was ignored")
            return
        before = self.elsewhere(patient_id)
        sets = self.remote.setdefault(patient_id, {})
        if people:
            sets[instance] = (people, self.clock())
        else:
            sets.pop(instance, None)
            if not sets:
                del self.remote[patient_id]
        if self.elsewhere(patient_id) != before:
            self._changed(patient_id)

    def _changed(self, patient_id: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(patient_id)
            except Exception:  # noqa: BLE001 - one page's failure must not stop the others' updates
                log.exception("presence: a listener failed")

    async def _tick(self) -> None:
        was_listening = False
        since_resend = 0.0
        step = min(1.0, self.ttl / 6)
        while True:
            await asyncio.sleep(step)  # a period, not a wait for a condition
            listening = bool(self.feed.listening)
            if listening and not was_listening:  # (re)connected: say hello, and be heard again
                self._send({"i": self.instance_id, "hello": True})
                self._resend_all()
                since_resend = 0.0
            was_listening = listening
            since_resend += step
            if since_resend >= self.ttl / 3:
                since_resend = 0.0
                self._resend_all()
            now = self.clock()
            for patient_id, sets in list(self.remote.items()):
                gone = [i for i, (_, heard) in sets.items() if now - heard > self.ttl]
                for instance in gone:
                    del sets[instance]
                if not sets:
                    del self.remote[patient_id]
                if gone:
                    self._changed(patient_id)
