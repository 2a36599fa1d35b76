"""In-process publish/subscribe, routed by topic, with a per-recipient access check on delivery.

The change feed (changes.py) dispatches each committed change, in commit order. A write costs work in proportion to the subscribers of its
topics (its class, its patient, its patient and class), not to all subscribers: a subscription
pinned to one patient's scores is never visited by that patient's notes.

Every subscription has a sink, a function the hub calls in the publishing step with each delivery,
already access-checked and shaped for the recipient (no task per subscription: a thousand
subscribers cost a thousand function calls per event). A consumer that takes deliveries in its own
time (a page's task, a test) uses a `Mailbox` as the sink, as encode/broadcaster's `Subscriber`:
bounded, in order, dropping a patient's queued entries when access to it ends, and on overflow
holding a single resync, so a stuck reader never holds back the others.

Events come only from the change log, so another process on the same database dispatches the same
events in the same order from its own feed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dashboard.access import AccessIndex, Principal, Role
from dashboard.loop_tasks import ensure_running
from dashboard.record_types import Record
from dashboard.serialize import for_viewer, from_parse

# ("class", C), ("patient", P) or ("patient", P, C)
Topic = tuple[str, ...]
log = logging.getLogger("ot_tracker.hub")


class DeliveryKind(StrEnum):
    """What a delivery says. A StrEnum: it equals its string ("create" == DeliveryKind.CREATE)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ACCESS_GRANTED = "access_granted"
    ACCESS_ENDED = "access_ended"
    RESYNC = "resync"


CHANGES = frozenset({DeliveryKind.CREATE, DeliveryKind.UPDATE, DeliveryKind.DELETE})


def patient_topic(patient_id: str, class_name: str | None = None) -> Topic:
    """Everything about a patient; with `class_name`, only that class's records of the patient."""
    return ("patient", patient_id) if class_name is None else ("patient", patient_id, class_name)


def class_topic(class_name: str) -> Topic:
    return ("class", class_name)


@dataclass(eq=False)
class Event:
    """A committed change. `data` and `before` are Parse-shaped objects (before is None on create)."""

    kind: DeliveryKind  # CREATE | UPDATE | DELETE (a string is turned into the kind)
    class_name: str
    object_id: str
    patient_id: str | None
    data: dict[str, Any] | None
    before: dict[str, Any] | None = None
    published_at: float = field(default_factory=time.perf_counter)
    _viewer_views: dict[bool, tuple[dict | None, dict | None]] = field(default_factory=dict, repr=False)
    # The delivered data as a record, per variant: None (every role but viewer) or full_names.
    _records: dict[bool | None, Record | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.kind = DeliveryKind(self.kind)

    @property
    def topics(self) -> tuple[Topic, ...]:
        if not self.patient_id:
            return (class_topic(self.class_name),)
        return (class_topic(self.class_name), patient_topic(self.patient_id),
                patient_topic(self.patient_id, self.class_name))

    def view(self, role: str, full_names: bool) -> tuple[dict | None, dict | None]:
        """(data, before) as this role may receive it; computed once per event and variant."""
        if role != Role.VIEWER:
            return self.data, self.before
        views = self._viewer_views.get(full_names)
        if views is None:
            views = tuple(  # type: ignore[assignment]
                None if d is None else for_viewer(d, full_names=full_names) for d in (self.data, self.before)
            )
            self._viewer_views[full_names] = views  # type: ignore[assignment]
        return views  # type: ignore[return-value]

    def record(self, role: str, full_names: bool) -> Record | None:
        """`view`'s data as a frozen record (None for a class without one); once per event and variant."""
        variant = full_names if role == Role.VIEWER else None
        if variant in self._records:
            return self._records[variant]
        record = self._records[variant] = from_parse(self.class_name, self.view(role, full_names)[0])
        return record


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
    """What a subscriber receives: a change (data and before as Parse objects shaped for the
    recipient, record as the same data's frozen record), an access change, or a resync."""

    kind: DeliveryKind
    class_name: str = ""
    object_id: str = ""
    patient_id: str | None = None
    data: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    published_at: float = 0.0
    record: Record | None = None


RESYNC = Delivery(DeliveryKind.RESYNC)
Sink = Callable[[Delivery], None]
AtOnce = Callable[[Delivery], bool]
# How often subscriptions are checked for sessions that ran out (idle timeout, lifetime): their
# pushes stop at once (the check at delivery); the sweep tells them they ended.
SWEEP_SECONDS = 1.0
PRUNE_EVERY_SWEEPS = 60
MAILBOX_SIZE = 256


def _ended(patient_id: str | None = None) -> Delivery:
    if patient_id is None:
        return Delivery(DeliveryKind.ACCESS_ENDED)
    return Delivery(DeliveryKind.ACCESS_ENDED, "Patient", patient_id, patient_id)


class Mailbox:
    """A sink that queues deliveries for a consumer that takes them in its own time.

    In order and bounded: past `maxsize` it empties and holds a single resync (the consumer re-reads;
    what arrives after that queues behind it). An access end for a patient drops what waits for that
    patient (an end of everything drops all but the access ends). `at_once(delivery)`, when given, is
    offered each delivery that arrives while nothing waits and no batch is out; it returns True when
    it applied the delivery there and then. A Mailbox given to `Hub.subscribe` is closed with its
    subscription, and closing it closes the subscription; a closed mailbox still hands over what it
    holds, then ends (get returns None, iteration stops).
    """

    def __init__(self, maxsize: int = MAILBOX_SIZE, *, at_once: AtOnce | None = None):
        self.maxsize = maxsize
        self.at_once = at_once
        self.subscription: Subscription | None = None
        self.closed = False
        self.overflows = 0
        self._queue: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._busy = False  # a batch from `batches()` is being applied

    def __len__(self) -> int:
        return len(self._queue)

    def __call__(self, delivery: Delivery) -> None:
        if self.closed:
            return
        queue = self._queue
        if delivery.kind == DeliveryKind.ACCESS_ENDED:
            gone = delivery.patient_id
            if queue:
                kept = [d for d in queue if d.kind == DeliveryKind.ACCESS_ENDED
                        or (gone is not None and d.patient_id != gone)]
                queue.clear()
                queue.extend(kept)
        elif self.at_once is not None and not queue and not self._busy:
            if self.at_once(delivery):
                return
        if len(queue) >= self.maxsize:
            queue.clear()
            queue.append(RESYNC)
            self.overflows += 1
        else:
            queue.append(delivery)
        self._wakeup.set()

    def get_nowait(self) -> Delivery | None:
        if self._queue:
            return self._queue.popleft()
        return None

    def drain(self) -> list[Delivery]:
        """Everything queued now, oldest first (the store publishes in the writing step, so after a
        write has returned, what it caused is here)."""
        out = list(self._queue)
        self._queue.clear()
        return out

    async def _wait(self, deadline: float | None) -> bool:
        """Until something is queued (True), or closed or past the deadline (False)."""
        while not self._queue:
            if self.closed:
                return False
            self._wakeup.clear()
            if deadline is None:
                await self._wakeup.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return bool(self._queue)
        return True

    async def get(self, timeout: float | None = None) -> Delivery | None:
        """The next delivery; None once closed and empty (or on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._queue.popleft() if await self._wait(deadline) else None

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Delivery]:
        while (delivery := await self.get()) is not None:
            yield delivery

    async def batches(self, ready: Callable[[], Awaitable[object]] | None = None) -> AsyncIterator[list[Delivery]]:
        """Everything that waited, together; while the consumer applies a batch (until it asks for
        the next), `at_once` is not offered anything, so deliveries stay in order.

        `ready`, when given, is awaited before each batch is taken (a page waits for its socket):
        meanwhile what arrives stays queued here, in order, an access end dropping what it ends and
        an overflow becoming one resync, so a consumer that is away owes at most one batch."""
        while await self._wait(None):
            if ready is not None:
                await ready()
                if not self._queue:
                    continue
            batch = self.drain()
            self._busy = True
            try:
                yield batch
            finally:
                self._busy = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.at_once = None  # often a closure over a page: dropped, the page is freed at once
            self._wakeup.set()
        if self.subscription is not None:
            self.subscription.close()

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Subscription:
    """A principal's interest in some topics; the hub hands each delivery it may receive to `sink`.
    A context manager: `with hub.subscribe(...) as sub:` closes it on leaving."""

    def __init__(self, hub: "Hub", principal: Principal, topics: frozenset[Topic], sink: Sink):
        self.hub = hub
        self.sink: Sink | None = sink
        self.principal = principal
        self.topics = topics
        self.watches_classes = any(t[0] == "class" for t in topics)
        self.patients = frozenset(t[1] for t in topics if t[0] == "patient")
        self.closed = False
        if isinstance(sink, Mailbox):
            sink.subscription = self

    def watches_patient(self, patient_id: str) -> bool:
        """Whether deliveries about this patient reach it (any class, whole patient, or patient+class)."""
        return self.watches_classes or patient_id in self.patients

    def _offer(self, item: Delivery | Event) -> None:
        if self.closed:
            return
        delivery = self._deliverable(item)
        if delivery is not None:
            self._sink(delivery)

    def _deliverable(self, item: Delivery | Event) -> Delivery | None:
        """Checks access at the moment of delivery, and shapes the payload for the recipient."""
        if isinstance(item, Delivery):
            return item
        access = self.hub.access
        if not access.can_read(self.principal, item.class_name, item.patient_id, item.object_id):
            return None
        role = access.role(self.principal) or Role.VIEWER
        full_names = access.full_names(self.principal)
        data, before = item.view(role, full_names)
        return Delivery(item.kind, item.class_name, item.object_id, item.patient_id, data, before,
                        item.published_at, item.record(role, full_names))

    def _sink(self, delivery: Delivery) -> None:
        sink = self.sink
        if sink is None:
            return
        try:
            sink(delivery)
        except Exception:  # noqa: BLE001 - one subscriber's fault never stops delivery to the others
            log.exception("hub: a subscriber's sink failed")

    def _end(self, final: list[Delivery]) -> None:
        """Access is gone: `final` says what ended (a mailbox drops what it still held), then it closes."""
        self.closed = True
        self.hub._remove(self)
        for delivery in final:
            self._sink(delivery)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)
        sink, self.sink = self.sink, None
        # A sink is often a closure over its page: dropped, a closed page is freed by reference
        # counting at once, not at the next full collection.
        if isinstance(sink, Mailbox):
            sink.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Hub:
    def __init__(self, access: AccessIndex, *, queue_size: int = MAILBOX_SIZE):
        self.access = access
        self.queue_size = queue_size  # the size of the pages' mailboxes
        self._by_topic: dict[Topic, set[Subscription]] = {}
        self._by_user: dict[str, set[Subscription]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def subscribe(self, principal: Principal, topics: Iterable[Topic], *, sink: Sink) -> Subscription:
        """Hands `sink` each delivery on `topics` that `principal` may receive, in the publishing
        step. Pass a `Mailbox` to take them later instead."""
        sub = Subscription(self, principal, frozenset(topics), sink)
        for topic in sub.topics:
            self._by_topic.setdefault(topic, set()).add(sub)
        self._by_user.setdefault(principal.user_id, set()).add(sub)
        self._start_sweeper()
        return sub

    # -- sessions that run out ------------------------------------------------------------------
    def _start_sweeper(self) -> None:
        self._sweeper = ensure_running(self._sweeper, self._sweep_loop, "hub-session-sweep")

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
        """Call only after the commit that made the change. (An alias of `dispatch`.)"""
        self.dispatch(item)

    def resync_all(self) -> None:
        """Tells every subscription to re-read its view (the events it would have had are lost)."""
        for subs in list(self._by_user.values()):
            for sub in list(subs):
                sub._offer(RESYNC)

    def dispatch(self, item: Event | AccessChange) -> None:
        """Delivers a committed change to the subscribers of its topics (or an access change to the
        user's subscriptions). Call only after the commit that made it."""
        if isinstance(item, AccessChange):
            self._dispatch_access(item)
            return
        by_topic = self._by_topic
        groups = [subs for topic in item.topics if (subs := by_topic.get(topic))]
        if not groups:
            return
        # A subscription on several of the topics gets the event once. list(): a sink may unsubscribe.
        subscribers = list(groups[0]) if len(groups) == 1 else list(set().union(*groups))
        for sub in subscribers:
            sub._offer(item)

    def _dispatch_access(self, change: AccessChange) -> None:
        for sub in list(self._by_user.get(change.user_id, ())):
            if change.session_id is not None and sub.principal.session_id != change.session_id:
                continue
            if change.ended and sub.principal.session_id is not None and self.access.role(sub.principal) is not None:
                continue  # some of the user's sessions ended (a new password), not this one
            if change.ended:
                # Nothing still queued is deliverable now. Name each patient the subscription was
                # watching, so an open patient page knows it is its access that ended; then end it.
                patients = set(change.lost) | sub.patients
                if sub.watches_classes:
                    patients |= self.access.visible_for_user(change.user_id)
                sub._end([_ended(pid) for pid in sorted(patients)] + [_ended()])
                continue
            for patient_id in sorted(change.lost):
                if sub.watches_patient(patient_id):
                    sub._offer(_ended(patient_id))
            if sub.watches_classes:
                for patient_id in sorted(change.gained):
                    sub._offer(Delivery(DeliveryKind.ACCESS_GRANTED, "Patient", patient_id, patient_id))
