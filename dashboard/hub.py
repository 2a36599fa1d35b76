"""In-process publish/subscribe, routed by topic, with a per-recipient access check on delivery.

The store publishes after commit. A write costs work in proportion to the subscribers of its
topics (its patient, its class), not to all subscribers. Each subscription has a bounded buffer;
one that overflows is emptied and told to resync, so a stuck reader never holds back the others.

A subscription either buffers (pages: a task per page takes batches) or has a sink, a function the
hub calls at once with each delivery, already access-checked and shaped (live-query sockets: no task
per subscription, so a thousand subscribers cost a thousand function calls per event).

`publish` hands events to a bridge. The local bridge delivers in this process; a cross-process one
(PostgreSQL LISTEN/NOTIFY) would carry the same events between servers without changing callers.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dashboard.access import VIEWER, AccessIndex, Principal
from dashboard.serialize import for_viewer

Topic = tuple[str, str]
log = logging.getLogger("ot_tracker.hub")


def patient_topic(patient_id: str) -> Topic:
    return ("patient", patient_id)


def class_topic(class_name: str) -> Topic:
    return ("class", class_name)


@dataclass(eq=False)
class Event:
    """A committed change. `data` and `before` are Parse-shaped objects (before is None on create)."""

    kind: str  # create | update | delete
    class_name: str
    object_id: str
    patient_id: str | None
    data: dict[str, Any] | None
    before: dict[str, Any] | None = None
    published_at: float = field(default_factory=time.perf_counter)
    _viewer_views: dict[bool, tuple[dict | None, dict | None]] = field(default_factory=dict, repr=False)

    @property
    def topics(self) -> tuple[Topic, ...]:
        topics = [class_topic(self.class_name)]
        if self.patient_id:
            topics.append(patient_topic(self.patient_id))
        return tuple(topics)

    def view(self, role: str, full_names: bool) -> tuple[dict | None, dict | None]:
        """(data, before) as this role may receive it; computed once per event and variant."""
        if role != VIEWER:
            return self.data, self.before
        views = self._viewer_views.get(full_names)
        if views is None:
            views = tuple(  # type: ignore[assignment]
                None if d is None else for_viewer(d, full_names=full_names) for d in (self.data, self.before)
            )
            self._viewer_views[full_names] = views  # type: ignore[assignment]
        return views  # type: ignore[return-value]


@dataclass(frozen=True)
class AccessChange:
    """A user gained or lost sight of patients (reassignment, care team, role, deactivation)."""

    user_id: str
    gained: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()
    session_id: str | None = None  # a logout ends one session's subscriptions
    ended: bool = False  # deactivation or logout: everything ends


@dataclass(frozen=True)
class Delivery:
    """What a subscriber receives. kind: create, update, delete, access_granted, access_ended, resync."""

    kind: str
    class_name: str = ""
    object_id: str = ""
    patient_id: str | None = None
    data: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    published_at: float = 0.0


RESYNC = Delivery("resync")
Sink = Callable[[Delivery], None]
# How often subscriptions are checked for sessions that ran out (idle timeout, lifetime): their
# pushes stop at once (the check at delivery); the sweep tells them they ended.
SWEEP_SECONDS = 1.0
PRUNE_EVERY_SWEEPS = 60


class Subscription:
    def __init__(self, hub: "Hub", principal: Principal, topics: frozenset[Topic], maxsize: int,
                 sink: Sink | None = None):
        self.hub = hub
        self.sink = sink
        self.principal = principal
        self.topics = topics
        self.maxsize = maxsize
        self._buffer: deque[Delivery | Event] = deque()
        self._wakeup = asyncio.Event()
        self.closed = False
        self.overflows = 0

    @property
    def watches_classes(self) -> bool:
        return any(kind == "class" for kind, _ in self.topics)

    def watches_patient(self, patient_id: str) -> bool:
        return self.watches_classes or patient_topic(patient_id) in self.topics

    def _offer(self, item: Delivery | Event) -> None:
        if self.closed:
            return
        if self.sink is not None:
            delivery = self._deliverable(item)
            if delivery is not None:
                self._sink(delivery)
            return
        if len(self._buffer) >= self.maxsize:
            self._buffer.clear()
            self._buffer.append(RESYNC)
            self.overflows += 1
        else:
            self._buffer.append(item)
        self._wakeup.set()

    def _deliverable(self, item: Delivery | Event) -> Delivery | None:
        """Checks access at the moment of delivery, and shapes the payload for the recipient."""
        if isinstance(item, Delivery):
            return item
        access = self.hub.access
        if not access.can_read(self.principal, item.class_name, item.patient_id, item.object_id):
            return None
        role = access.role(self.principal) or VIEWER
        data, before = item.view(role, access.full_names(self.principal))
        return Delivery(item.kind, item.class_name, item.object_id, item.patient_id, data, before,
                        item.published_at)

    def _sink(self, delivery: Delivery) -> None:
        try:
            self.sink(delivery)  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - one subscriber's fault never stops delivery to the others
            log.exception("hub: a subscriber's sink failed")

    def _end(self, final: list[Delivery]) -> None:
        """Access is gone: nothing still queued is deliverable; `final` says what ended, then it closes."""
        self._buffer.clear()
        self.closed = True
        self.hub._remove(self)
        if self.sink is not None:
            for delivery in final:
                self._sink(delivery)
        else:
            self._buffer.extend(final)
        self._wakeup.set()

    def get_nowait(self) -> Delivery | None:
        while self._buffer:
            delivery = self._deliverable(self._buffer.popleft())
            if delivery is not None:
                return delivery
        self._wakeup.clear()
        return None

    async def get(self, timeout: float | None = None) -> Delivery | None:
        """The next delivery; None when closed (or on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.closed:
            delivery = self.get_nowait()
            if delivery is not None:
                return delivery
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return None
        return self.get_nowait()

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while True:
            delivery = await self.get()
            if delivery is None:
                return
            yield delivery

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            self.hub._remove(self)
        # A sink is a closure over its page: dropped, a closed page is freed by reference counting
        # at once, not at the next full collection.
        self.sink = None


class Bridge(Protocol):
    def send(self, item: Event | AccessChange) -> None: ...


class LocalBridge:
    def __init__(self, hub: "Hub"):
        self.hub = hub

    def send(self, item: Event | AccessChange) -> None:
        self.hub.dispatch(item)


class Hub:
    def __init__(self, access: AccessIndex, *, queue_size: int = 256):
        self.access = access
        self.queue_size = queue_size
        self._by_topic: dict[Topic, set[Subscription]] = {}
        self._by_user: dict[str, set[Subscription]] = {}
        self.bridge: Bridge = LocalBridge(self)
        self._sweeper: asyncio.Task[None] | None = None

    def subscribe(self, principal: Principal, topics: Iterable[Topic], *,
                  maxsize: int | None = None, sink: Sink | None = None) -> Subscription:
        """A buffered subscription, or with `sink`, one whose deliveries are handed over at once."""
        sub = Subscription(self, principal, frozenset(topics), maxsize or self.queue_size, sink)
        for topic in sub.topics:
            self._by_topic.setdefault(topic, set()).add(sub)
        self._by_user.setdefault(principal.user_id, set()).add(sub)
        self._start_sweeper()
        return sub

    # -- sessions that run out ------------------------------------------------------------------
    def _start_sweeper(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = self._sweeper
        if task is None or task.done() or task.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep_loop(), name="hub-session-sweep")

    async def _sweep_loop(self) -> None:
        sweeps = 0
        while self._by_user:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
                sweeps += 1
                if sweeps % PRUNE_EVERY_SWEEPS == 0:
                    self.access.prune_sessions()
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("hub: session sweep failed")

    def sweep(self) -> int:
        """Ends the subscriptions of sessions that are over (idle, past their lifetime): the same
        end as a logout (access_ended, then closed). Returns how many sessions ended."""
        role = self.access.role
        over = {(sub.principal.user_id, sub.principal.session_id)
                for subs in self._by_user.values() for sub in subs
                if sub.principal.session_id is not None and role(sub.principal) is None}
        for user_id, session_id in over:
            self._dispatch_access(AccessChange(user_id, session_id=session_id, ended=True))
        return len(over)

    def _remove(self, sub: Subscription) -> None:
        for topic in sub.topics:
            subs = self._by_topic.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_topic[topic]
        subs = self._by_user.get(sub.principal.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_user[sub.principal.user_id]

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def publish(self, item: Event | AccessChange) -> None:
        """Call only after the commit that made the change."""
        self.bridge.send(item)

    def dispatch(self, item: Event | AccessChange) -> None:
        if isinstance(item, AccessChange):
            self._dispatch_access(item)
            return
        groups = [subs for topic in item.topics if (subs := self._by_topic.get(topic))]
        if not groups:
            return
        # A subscription on both topics gets the event once. list(): a sink may unsubscribe.
        subscribers = list(groups[0]) if len(groups) == 1 else list(set().union(*groups))
        can_read = self.access.can_read
        for sub in subscribers:
            # Buffered subscriptions: a cheap filter now; the authoritative check runs at delivery.
            # A sink's delivery is now, and `_offer` checks then.
            if sub.sink is not None or can_read(sub.principal, item.class_name, item.patient_id, item.object_id):
                sub._offer(item)

    def _dispatch_access(self, change: AccessChange) -> None:
        for sub in list(self._by_user.get(change.user_id, ())):
            if change.session_id is not None and sub.principal.session_id != change.session_id:
                continue
            if change.ended:
                # Nothing still queued is deliverable now. Name each patient the subscription was
                # watching, so an open patient page knows it is its access that ended; then end it.
                patients = set(change.lost) | {pid for kind, pid in sub.topics if kind == "patient"}
                if sub.watches_classes:
                    patients |= self.access.visible_for_user(change.user_id)
                sub._end([Delivery("access_ended", "Patient", pid, pid) for pid in sorted(patients)]
                         + [Delivery("access_ended")])
                continue
            for patient_id in sorted(change.lost):
                if sub.watches_patient(patient_id):
                    sub._offer(Delivery("access_ended", "Patient", patient_id, patient_id))
            if sub.watches_classes:
                for patient_id in sorted(change.gained):
                    sub._offer(Delivery("access_granted", "Patient", patient_id, patient_id))
