"""Live sockets: Parse live queries over a websocket at /parse (PARSE-API.md, "Live queries"), and
the machinery GraphQL subscriptions share with them (dashboard/api/graphql/subscriptions.py).

`LiveConnection` is one socket of either protocol; a protocol subclass reads its client's messages
and writes each event in its own shape, everything else is here, once. `Connection` is Parse's.

Each subscription is a hub subscription (the same hub as the pages), so every delivery has already
passed the per-recipient access check at the moment of delivery, and is shaped for that recipient.
Here the events are computed per subscriber: the object before and after the change is tested
against the subscription's `where` and against what the subscriber could read:

    both -> update, only before -> leave, only after -> enter (create when new).

"Could read and matched before" is known exactly: each subscription tracks the objects currently in
its view (seeded by one store query when it starts, then kept by the events; bounded). When access
to a patient ends, the tracked objects of that patient leave.

The hub hands each delivery straight to its subscription's handler here (a sink: no task per
subscription), which works out the event and writes it to the socket in the same step when nothing
is queued ahead of it: a push to a thousand sockets is a thousand writes, not a thousand task
wake-ups (`start_now`, a fenced fast path). Only a socket whose client stops reading queues; a sender task,
started then, waits on it (with a time limit), so a slow socket only ever holds back itself. A
message that is still being made (a GraphQL execution waiting on store reads: `Deferred`) queues
the same way and is awaited by the sender in its turn, so a socket's messages keep their order. A
socket that falls SEND_QUEUE messages behind has its queued events dropped and its subscriptions
re-read from the store, and the difference is sent (resync).
When access to a patient ends, that patient's queued messages are dropped before they are sent.
Malformed messages get protocol errors (errors.LiveQueryCode: BAD_MESSAGE, NOT_CONNECTED or an
unknown subscription, UNKNOWN_OP, INVALID_KEY; a bad session ParseCode.INVALID_SESSION_TOKEN); nothing
a client sends ends the server or the handler. A subscription pinned to one patient is routed by
patient and class, so the patient's other classes never reach it.
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import secrets
import sys
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from dashboard import fast_paths
from dashboard.access import Principal
from dashboard.api import wire
from dashboard.api.matcher import Matcher
from dashboard.config import Settings
from dashboard.errors import LiveQueryCode, NotAuthenticated, ParseCode, StoreError
from dashboard.hub import CHANGES, RESYNC, Delivery, DeliveryKind, class_topic, patient_topic
from dashboard.schema import PATIENT_RECORDS
from dashboard.store import Store

log = logging.getLogger("ot_tracker.live_query")

MAX_MESSAGE_CHARS = 64_000
# A socket must say `connect` this soon after opening, or it is closed (idle sockets cost memory).
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_SUBSCRIPTIONS = 100
SNAPSHOT_LIMIT = 1000  # the store's largest page
MAX_TRACKED = 5000
SEND_QUEUE = 1000
SEND_TIMEOUT_SECONDS = 20.0
ALWAYS_SENT = ("className", "objectId", "createdAt", "updatedAt")


class ProtocolError(Exception):
    def __init__(self, code: int, message: str, *, request_id: object = None, reconnect: bool = False,
                 close: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.reconnect = reconnect
        self.close = close


def _error(code: int, message: str, request_id: object = None, reconnect: bool = False) -> str:
    body: dict[str, Any] = {"op": "error", "code": code, "error": message, "reconnect": reconnect}
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        body["requestId"] = request_id
    return json.dumps(body)


@dataclass
class Tracked:
    patient_id: str | None
    created_at: str
    updated_at: str


class Deferred:
    """A message still being made: `finish` turns what `awaitable` gives into the text to send (None:
    nothing). The sender awaits it in its turn; dropped unsent, it is closed unawaited."""

    __slots__ = ("awaitable", "finish")

    def __init__(self, awaitable: Awaitable[Any], finish: Callable[[Any], str | None]):
        self.awaitable = awaitable
        self.finish = finish

    async def text(self) -> str | None:
        return self.finish(await self.awaitable)

    def discard(self) -> None:
        if inspect.iscoroutine(self.awaitable):
            self.awaitable.close()


Outgoing = str | Deferred


def _discard(message: Outgoing) -> None:
    if isinstance(message, Deferred):
        message.discard()


@dataclass(slots=True)
class Queued:
    """A message waiting for its socket; an event's fields let it be dropped unsent and undone."""

    text: Outgoing
    key: int | str | None = None  # the subscription's (None: not an event)
    patient_id: str | None = None
    object_id: str | None = None
    prior: Tracked | None = None
    dropped: bool = False  # dropped while the sender was awaiting it


@dataclass
class LiveSubscription:
    """One subscription of either protocol: its view (tracking) and its hub subscription."""

    key: int | str  # Parse's requestId, graphql-transport-ws's id
    class_name: str
    where: dict[str, Any]  # REST where
    principal: Principal
    keys: dict[str, Any] | None = None  # Parse's `keys`
    watch: frozenset[str] | None = None  # Parse's `watch`: an update of other fields is not sent
    operation: Any = None  # what the protocol needs to write its events (GraphQL: the validated operation)
    matcher: Matcher | None = None
    hub_sub: Any = None
    # Deliveries held while the view is being (re-)read from the store; None when live.
    pending: list[Delivery] | None = field(default_factory=list)
    tracked: dict[str, Tracked] = field(default_factory=dict)
    exact: bool = True  # tracked holds every object in view (false once it outgrew its bound)
    granted: set[str] = field(default_factory=set)  # patients gained since (used when not exact)


def _patient_of(class_name: str, data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    if class_name == "Patient":
        return data.get("objectId")
    pointer = data.get("patient")
    return pointer.get("objectId") if isinstance(pointer, Mapping) else None


def _one_id(value: Any) -> Any:
    """The one id a condition names: a value or pointer, `$eq` of one, `$in` of exactly one."""
    if isinstance(value, Mapping):
        if value.get("__type") == "Pointer":
            return value.get("objectId")
        if value.keys() == {"$eq"}:
            return _one_id(value["$eq"])
        if value.keys() == {"$in"} and isinstance(value["$in"], list) and len(value["$in"]) == 1:
            return _one_id(value["$in"][0])
        return None
    return value


def _pinned_patient(class_name: str, where: Mapping[str, Any]) -> str | None:
    """The one patient a `where` is about, when it says so with an equality (routes by patient topic)."""
    key = "objectId" if class_name == "Patient" else "patient"
    if class_name != "Patient" and class_name not in PATIENT_RECORDS:
        return None
    value = _one_id(where.get(key))
    return value if isinstance(value, str) else None


# -- writing in the delivering step (REVIEW-CODE.md section 3) ------------------------------------
# A socket write should start in the step that delivers the event, so that a push to a thousand
# sockets is a thousand writes, not a thousand task wake-ups. Python 3.12 does that publicly
# (`asyncio.Task(..., eager_start=True)`). On 3.11 the coroutine is stepped by hand, which relies on
# CPython's Future protocol (`Future._asyncio_future_blocking`); a check at import confirms it still
# works as assumed, or else every write becomes a plain task (correct, one wake-up per write), as it
# does when OT_FAST_PATHS_OFF names "live-query-write".
EAGER_TASK = "eager-task"  # Python >= 3.12: public
HAND_STEPPED = "hand-stepped"  # CPython 3.11, checked at import
PLAIN_TASK = "task"  # the fallback
FAST_PATH = "live-query-write"  # its name for OT_FAST_PATHS_OFF


def _hand_stepping_works() -> bool:
    """Steps two coroutines by hand on a scratch loop, as `_step_by_hand` does, and checks each step."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return False
    loop = asyncio.new_event_loop()
    try:
        async def instant() -> str:
            return "done"

        async def waits(future: asyncio.Future[str]) -> str:
            return await future

        done = instant()
        try:
            done.send(None)
            return False
        except StopIteration as stop:
            if stop.value != "done":
                return False
        future: asyncio.Future[str] = loop.create_future()
        coro = waits(future)
        yielded = coro.send(None)
        if yielded is not future or getattr(future, "_asyncio_future_blocking", None) is not True:
            coro.close()
            return False
        future._asyncio_future_blocking = False
        future.set_result("ok")
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value == "ok"
        coro.close()
        return False
    except Exception:  # noqa: BLE001 - any surprise means: do not step by hand
        return False
    finally:
        loop.close()


def _choose_send_path() -> str:
    """Which path writes start on in this process; reported through fast_paths (FAST-PATHS.md)."""
    fast, problem = (EAGER_TASK, None) if sys.version_info >= (3, 12) else (HAND_STEPPED, None)
    if fast_paths.switched_off(FAST_PATH):
        problem = f"{fast_paths.ENV} names it"
    elif fast == HAND_STEPPED and not _hand_stepping_works():
        problem = f"stepping a coroutine by hand is not checked for {sys.implementation.name} {sys.version.split()[0]}"
    fast_paths.report(FAST_PATH, problem, fast=fast, fallback=PLAIN_TASK)
    return PLAIN_TASK if problem else fast


SEND_PATH = _choose_send_path()


def start_now(coro: Coroutine[Any, Any, Any], path: str | None = None) -> asyncio.Task[Any] | None:
    """Runs `coro` up to its first suspension in this step. None when it finished (a socket write
    that did not have to wait; an exception it raised is raised here); else a task finishing it."""
    path = path or SEND_PATH
    loop = asyncio.get_running_loop()
    if path == HAND_STEPPED:
        return _step_by_hand(coro, loop)
    if path == EAGER_TASK:
        task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        if task.done():
            task.result()
            return None
        return task
    return loop.create_task(coro)


def _step_by_hand(coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop) -> asyncio.Task[None] | None:
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_finish(coro, waiting_on))


async def _finish(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    """Drives `coro` on as a Task would: wait for the future it yielded, then resume it."""
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield
            else:
                # The coroutine marked the future as awaited when it yielded it; a Task clears the
                # mark before waiting on it, and so do we.
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except BaseException:  # noqa: BLE001 - coro reads the same outcome from the future on resuming
            pass
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return


def _needs_reread(sub: "LiveSubscription") -> None:
    """Marks `sub`'s view to be read again before its held deliveries (also when a re-read was
    under way: read again)."""
    if sub.pending is None:
        sub.pending = [RESYNC]
    elif not sub.pending or sub.pending[0] is not RESYNC:
        sub.pending.insert(0, RESYNC)


class LiveConnection:
    """One websocket client of a live protocol. A subclass speaks the protocol: `accept`, `ready`,
    `ready_timeout`, `on_ready_timeout`, `on_message`, and the messages an event or an end is
    written as (`event_message`, `ended_message`, `session_ended_message`)."""

    # How the socket closes once its session is over (after the messages that say so).
    session_close: tuple[int, str] = (1000, "")

    def __init__(self, server: "LiveQueryServer", websocket: WebSocket):
        self.server = server
        self.ws = websocket
        self.principal: Principal | None = None
        self.ready = False  # the protocol's opening (connect, connection_init) is done
        self.subscriptions: dict[int | str, LiveSubscription] = {}
        self.outbox: deque[Queued] = deque()
        self._sender: asyncio.Task[None] | None = None  # runs only while writes are backed up
        self._drained = asyncio.Event()
        self._stalled: asyncio.Task[None] | None = None  # a write waiting for the client to read
        self._inflight: Queued | None = None  # a Deferred the sender is awaiting
        self._failed = False
        self._resyncing: asyncio.Task[None] | None = None
        self.closing = False
        self.close_code, self.close_reason = 1000, ""
        # The session, watched so that its end (idle, lifetime, logout) closes the socket.
        self._session_watch: Any = None
        self._ending = False

    @property
    def store(self) -> Store:
        return self.server.get_store()

    # ------------------------------------------------------------------ the protocol's part
    async def accept(self) -> bool:
        """Accepts the socket; False when it was refused (and closed) instead."""
        await self.ws.accept()
        return True

    def ready_timeout(self) -> float:
        raise NotImplementedError

    async def on_ready_timeout(self) -> None:
        raise NotImplementedError

    async def on_message(self, text: str | None) -> None:
        raise NotImplementedError

    def event_message(self, sub: LiveSubscription, op: str, obj: Mapping[str, Any],
                      original: Mapping[str, Any] | None, *, lost: bool = False) -> Outgoing | None:
        """An event for the client (None: not sent). op: create, enter, update, leave, delete.
        `lost`: a leave for an object no longer readable, `obj` is only className, objectId and dates."""
        raise NotImplementedError

    def ended_message(self, sub: LiveSubscription) -> str | None:
        """Says that `sub` ended with its session."""
        raise NotImplementedError

    def session_ended_message(self) -> str | None:
        """Says that the session is over, before the socket closes."""
        return None

    def close(self, code: int, reason: str = "") -> None:
        """Ends the connection: what is queued is sent, then the socket closes with `code`."""
        self.closing = True
        self.close_code, self.close_reason = code, reason

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        if not await self.accept():
            return
        # Counted from the opening, not per message: chatter before the opening keeps nothing open.
        ready_by = asyncio.get_running_loop().time() + self.ready_timeout()
        try:
            while not self.closing:
                if self.ready:
                    message = await self.ws.receive()
                else:
                    try:
                        async with asyncio.timeout_at(ready_by):
                            message = await self.ws.receive()
                    except TimeoutError:
                        await self.on_ready_timeout()
                        break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    try:
                        text = message["bytes"].decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
                await self.on_message(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closing = True
            if self._session_watch is not None:
                self._session_watch.close()
            for sub in list(self.subscriptions.values()):
                self._drop(sub)
            self.subscriptions.clear()
            if self._resyncing is not None:
                self._resyncing.cancel()
            if self._sender is not None:  # it sends what is queued, then ends
                try:
                    await asyncio.wait_for(self._sender, SEND_TIMEOUT_SECONDS)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass
            self._clear_outbox()
            if self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    await self.ws.close(code=self.close_code, reason=self.close_reason or None)
                except Exception:  # noqa: BLE001 - the client has gone already
                    pass

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        """Waits out a stalled write (or a message still being made), sends what queued behind it,
        and ends when nothing is left."""
        outbox = self.outbox
        try:
            while True:
                if self._stalled is not None:
                    async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                        await self._stalled
                    self._stalled = None
                if self._failed:
                    raise ConnectionError("live query: a write to the socket failed")
                if not outbox:
                    return
                item = outbox.popleft()
                text = item.text
                if isinstance(text, Deferred):
                    self._inflight = item
                    try:
                        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                            text = await text.text()
                    except TimeoutError:
                        raise  # stuck reads: as a stuck write, this connection ends
                    except Exception:  # noqa: BLE001 - one message that could not be made is skipped
                        log.exception("live query: could not make a message")
                        text = None
                    finally:
                        self._inflight = None
                    if text is None or item.dropped:
                        continue
                self._write(text)
        except Exception:  # noqa: BLE001 - a dead or stuck socket: end this connection only
            self.closing = True
            self._clear_outbox()
            if self._stalled is not None:
                self._stalled.cancel()
            try:
                await self.ws.close()
            except Exception:  # noqa: BLE001
                pass
        finally:
            self._sender = None
            self._drained.set()

    def _clear_outbox(self) -> None:
        for item in self.outbox:
            _discard(item.text)
        self.outbox.clear()

    def _write(self, text: str) -> None:
        """Writes now; a write that has to wait (the client is not reading) is left to the sender."""
        try:
            self._stalled = start_now(self.ws.send_text(text))
        except Exception:  # noqa: BLE001 - the socket is gone; the sender closes it
            self._failed = self.closing = True
            self._start_sender()
            return
        if self._stalled is not None:
            self._start_sender()

    def _enqueue(self, message: Outgoing, sub: LiveSubscription | None = None, patient_id: str | None = None,
                 object_id: str | None = None, prior: Tracked | None = None) -> None:
        """Queues a message. An event names its subscription, patient, object and what the
        subscription tracked of that object before it, so that dropping it unsent can be undone."""
        if self.closing:
            _discard(message)
            return
        if isinstance(message, str) and not self.outbox and self._stalled is None and self._inflight is None:
            self._write(message)  # nothing ahead of it
            return
        key = sub.key if sub is not None else None
        self.outbox.append(Queued(message, key, patient_id, object_id, prior))
        self._drained.clear()
        self._start_sender()
        if key is not None and len(self.outbox) > SEND_QUEUE:
            self._overflowed()

    async def send(self, text: str) -> None:
        """A reply to the client's own message; waits while this socket is behind (never anyone else's)."""
        while len(self.outbox) >= SEND_QUEUE and not self.closing:
            await self._drained.wait()
        self._enqueue(text)

    def _forget_queued(self, key: int | str, patient_id: str | None = None) -> None:
        """Drops a subscription's queued events (of one patient, or all): they may no longer be sent."""
        self._keep_queued(lambda q: q.key != key or (patient_id is not None and q.patient_id != patient_id))

    def _keep_queued(self, keep: Callable[["Queued"], bool]) -> None:
        """Drops unsent events; each subscription's tracking goes back to what its client was sent."""
        kept: list[Queued] = []
        dropped: list[Queued] = []
        inflight = self._inflight
        if inflight is not None and not inflight.dropped and not keep(inflight):
            inflight.dropped = True  # older than all that is queued; the sender skips it when made
            dropped.append(inflight)
        for item in self.outbox:
            (kept if keep(item) else dropped).append(item)
        self.outbox.clear()  # in place: the sender holds this deque
        self.outbox.extend(kept)
        for item in reversed(dropped):
            if item is not inflight:
                _discard(item.text)
            sub = self.subscriptions.get(item.key) if item.key is not None else None
            if sub is None or item.object_id is None:
                continue
            if item.prior is None:
                sub.tracked.pop(item.object_id, None)
            else:
                sub.tracked[item.object_id] = item.prior

    def _overflowed(self) -> None:
        """The socket fell too far behind: drop its queued events and re-read every subscription."""
        self._keep_queued(lambda q: q.key is None)
        for sub in self.subscriptions.values():
            _needs_reread(sub)
        self._schedule_resync()

    def _drop(self, sub: LiveSubscription) -> None:
        if sub.hub_sub is not None:
            sub.hub_sub.close()

    # ------------------------------------------------------------------ subscriptions
    def _watch_session(self, principal: Principal) -> None:
        self.principal = principal
        self._session_watch = self.store.hub.subscribe(principal, (), sink=self._on_session_event)

    async def _open(self, sub: LiveSubscription) -> None:
        """Registers `sub` with the hub and reads its view; its deliveries wait until `_go_live`.
        The store's error (a bad `where`) is raised with nothing left registered."""
        pinned = _pinned_patient(sub.class_name, sub.where)
        topic = patient_topic(pinned, sub.class_name) if pinned else class_topic(sub.class_name)
        # Subscribed before the view is read, so nothing committed in between is missed: deliveries
        # wait in `pending` until the view is seeded.
        sub.hub_sub = self.store.hub.subscribe(sub.principal, [topic], sink=lambda d: self._on_delivery(sub, d))
        try:
            # The store validates the query (fields, operators, depth) and seeds the view.
            await self._seed(sub)
            sub.matcher = self.server.matcher(sub.class_name, sub.where)
        except BaseException:
            sub.hub_sub.close()
            raise

    async def _seed(self, sub: LiveSubscription) -> dict[str, dict[str, Any]]:
        rows = await self.store.find(principal=sub.principal, class_name=sub.class_name, where=sub.where,
                                     limit=SNAPSHOT_LIMIT)
        current = {}
        for row in rows:
            data = self.server.to_parse(row)
            current[data["objectId"]] = data
        sub.tracked = {oid: Tracked(_patient_of(sub.class_name, d), d["createdAt"], d["updatedAt"])
                       for oid, d in current.items()}
        sub.exact = len(rows) < SNAPSHOT_LIMIT
        sub.granted.clear()
        return current

    def _go_live(self, sub: LiveSubscription) -> None:
        """Applies what arrived while the view was being read, then takes deliveries as they come."""
        while sub.pending:
            if sub.pending[0] is RESYNC:  # fell behind again meanwhile: read again first
                self._schedule_resync()
                return
            held, sub.pending = sub.pending, []
            for delivery in held:
                self._apply(sub, delivery)
        sub.pending = None

    def _schedule_resync(self) -> None:
        if self._resyncing is None or self._resyncing.done():
            self._resyncing = asyncio.get_running_loop().create_task(self._resync_all())

    def _on_delivery(self, sub: LiveSubscription, delivery: Delivery) -> None:
        """The hub's sink: called at once, with a delivery already checked against current access."""
        if delivery.kind == DeliveryKind.RESYNC:
            # The hub lost track (this instance's full resync): re-read the view, as after an overflow.
            _needs_reread(sub)
            self._schedule_resync()
            return
        if sub.pending is not None:
            sub.pending.append(delivery)
            return
        try:
            self._apply(sub, delivery)
        except Exception:  # noqa: BLE001 - one bad event never ends the subscription
            log.exception("live query: could not deliver an event")

    def _apply(self, sub: LiveSubscription, delivery: Delivery) -> None:
        kind = delivery.kind
        if kind == DeliveryKind.ACCESS_ENDED:
            self._access_ended(sub, delivery.patient_id)
            return
        if kind == DeliveryKind.ACCESS_GRANTED:
            if delivery.patient_id:
                sub.granted.add(delivery.patient_id)
            return
        if kind not in CHANGES or delivery.class_name != sub.class_name:
            return
        object_id = delivery.object_id
        before, after = delivery.before, delivery.data
        known = sub.tracked.get(object_id)
        if kind == DeliveryKind.CREATE:
            if known is not None:
                return  # already in the view read from the store (it committed before that read)
            was_in = False
        elif sub.exact:
            was_in = known is not None
        else:
            was_in = known is not None or (
                sub.matcher.matches(before) and delivery.patient_id not in sub.granted)  # type: ignore[union-attr]
        is_in = kind != DeliveryKind.DELETE and sub.matcher.matches(after)  # type: ignore[union-attr]
        if was_in and is_in:
            op = "update"
            if sub.watch and before is not None and after is not None and all(
                    before.get(f) == after.get(f) for f in sub.watch):
                op = ""
        elif was_in:
            op = "leave" if kind != DeliveryKind.DELETE else "delete"
        elif is_in:
            op = "create" if kind == DeliveryKind.CREATE else "enter"
        else:
            op = ""
        if is_in and after is not None:
            self._track(sub, object_id, after)
        else:
            sub.tracked.pop(object_id, None)
        if op:
            obj = after if op != "delete" else (before or after)
            original = before if op in ("update", "enter", "leave") else None
            message = self.event_message(sub, op, obj, original)  # type: ignore[arg-type]
            if message is not None:
                self._enqueue(message, sub, delivery.patient_id, object_id, known)

    def _track(self, sub: LiveSubscription, object_id: str, data: Mapping[str, Any]) -> None:
        if object_id not in sub.tracked and len(sub.tracked) >= MAX_TRACKED:
            sub.exact = False
            return
        sub.tracked[object_id] = Tracked(_patient_of(sub.class_name, data), data["createdAt"], data["updatedAt"])

    def _leave(self, sub: LiveSubscription, object_id: str, tracked: Tracked) -> None:
        """A leave for an object the subscriber may no longer see: nothing of it but its id and dates."""
        obj = {"className": sub.class_name, "objectId": object_id, "createdAt": tracked.created_at,
               "updatedAt": tracked.updated_at}
        message = self.event_message(sub, "leave", obj, None, lost=True)
        if message is not None:
            self._enqueue(message)

    def _on_session_event(self, delivery: Delivery) -> None:
        if delivery.kind == DeliveryKind.ACCESS_ENDED and delivery.patient_id is None:
            self._end_session()

    def _end_session(self) -> None:
        """The session is over (idle, lifetime, logout, deactivation): each subscription says so, then
        the socket closes."""
        if self.closing or self._ending:
            return
        self._ending = True
        for sub in list(self.subscriptions.values()):
            self._access_ended(sub, None)  # each subscription: its leaves, then its own end
        final = self.session_ended_message()
        if final is not None:
            self._enqueue(final)
        self.close(*self.session_close)
        asyncio.get_running_loop().create_task(self._close_when_sent())

    async def _close_when_sent(self) -> None:
        if self._sender is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), SEND_TIMEOUT_SECONDS)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        try:
            await self.ws.close(code=self.close_code, reason=self.close_reason or None)
        except Exception:  # noqa: BLE001 - the client has gone already
            pass

    def _access_ended(self, sub: LiveSubscription, patient_id: str | None) -> None:
        # Queued but unsent events of that patient are no longer this subscriber's to receive.
        self._forget_queued(sub.key, patient_id)
        leaving = [oid for oid, t in sub.tracked.items() if patient_id is None or t.patient_id == patient_id]
        for oid in leaving:
            self._leave(sub, oid, sub.tracked.pop(oid))
        if patient_id is not None:
            sub.granted.discard(patient_id)
        if patient_id is None and self.subscriptions.get(sub.key) is sub:
            # Logout or deactivation: the session is over, and so is the subscription.
            self.subscriptions.pop(sub.key, None)
            if sub.hub_sub is not None:
                sub.hub_sub.close()
            ended = self.ended_message(sub)
            if ended is not None:
                self._enqueue(ended)
            if not self.subscriptions and not self._ending and (
                    self.principal is None or self.store.access.role(self.principal) is None):
                self._end_session()

    async def _resync_all(self) -> None:
        """Re-reads every subscription that is waiting on it (this socket fell behind), one by one."""
        while not self.closing:
            waiting = [sub for sub in self.subscriptions.values() if sub.pending and sub.pending[0] is RESYNC]
            if not waiting:
                return
            for sub in waiting:
                if self.subscriptions.get(sub.key) is not sub:
                    continue
                sub.pending = []  # what arrives during the read is applied after it
                if await self._resync(sub) and not (sub.pending and sub.pending[0] is RESYNC):
                    self._go_live(sub)

    async def _resync(self, sub: LiveSubscription) -> bool:
        """Re-reads the view and sends the difference; False when the subscription has ended."""
        old = dict(sub.tracked)
        try:
            current = await self._seed(sub)
        except StoreError:
            sub.pending = None
            self._access_ended(sub, None)
            return False
        for oid, t in old.items():
            if oid not in current:
                self._leave(sub, oid, t)
        for oid, data in current.items():
            pid = _patient_of(sub.class_name, data)
            op = "enter" if oid not in old else "update" if old[oid].updated_at != data["updatedAt"] else ""
            if op:
                while len(self.outbox) >= SEND_QUEUE and not self.closing:
                    await self._drained.wait()  # a big difference goes out as fast as the socket takes it
                message = self.event_message(sub, op, data, None)
                if message is not None:
                    self._enqueue(message, sub, pid, oid, old.get(oid))
        return True


class Connection(LiveConnection):
    """One Parse live-query client (PARSE-API.md)."""

    def __init__(self, server: "LiveQueryServer", websocket: WebSocket):
        super().__init__(server, websocket)
        self.client_id = secrets.token_hex(8)

    # ------------------------------------------------------------------ the protocol's part
    def ready_timeout(self) -> float:
        return CONNECT_TIMEOUT_SECONDS

    async def on_ready_timeout(self) -> None:
        await self.send(_error(LiveQueryCode.BAD_MESSAGE,
                               f"Send connect within {CONNECT_TIMEOUT_SECONDS:g} s of opening"))

    def event_message(self, sub: LiveSubscription, op: str, obj: Mapping[str, Any],
                      original: Mapping[str, Any] | None, *, lost: bool = False) -> Outgoing | None:
        return self.server.event_message(op, self.client_id, sub, obj, original)

    def ended_message(self, sub: LiveSubscription) -> str | None:
        return _error(ParseCode.INVALID_SESSION_TOKEN, "The session has ended", sub.key)

    def session_ended_message(self) -> str | None:
        return _error(ParseCode.INVALID_SESSION_TOKEN, "The session has ended; sign in again")

    # ------------------------------------------------------------------ messages
    async def on_message(self, text: str | None) -> None:
        request_id: object = None
        try:
            if text is None or len(text) > MAX_MESSAGE_CHARS:
                raise ProtocolError(LiveQueryCode.BAD_MESSAGE,
                                    f"Messages must be JSON text of at most {MAX_MESSAGE_CHARS} characters")
            try:
                message = json.loads(text, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "The message is not valid JSON") from None
            if not isinstance(message, dict):
                raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "The message must be a JSON object")
            request_id = message.get("requestId")
            op = message.get("op")
            handler = {"connect": self._connect, "subscribe": self._subscribe, "update": self._update,
                       "unsubscribe": self._unsubscribe}.get(op) if isinstance(op, str) else None
            if handler is None:
                raise ProtocolError(LiveQueryCode.UNKNOWN_OP, f"Unknown op {str(op)[:40]!r}", request_id=request_id)
            if op != "connect" and not self.ready:
                raise ProtocolError(LiveQueryCode.NOT_CONNECTED, "Not connected: send connect first",
                                    request_id=request_id)
            if op != "connect" and self.principal is not None and not await self.store.touch_session(self.principal):
                self._end_session()  # a message is activity, but not on a session that is over
                return
            await handler(message)
        except ProtocolError as exc:
            await self.send(_error(exc.code, exc.message, exc.request_id, exc.reconnect))
            if exc.close:
                self.closing = True
        except StoreError as exc:
            await self.send(_error(exc.parse_code, exc.message, request_id))
        except Exception:  # noqa: BLE001 - a handler fault is reported, never fatal
            log.exception("live query: unexpected error")
            await self.send(_error(LiveQueryCode.BAD_MESSAGE, "The message could not be handled", request_id))

    async def _resolve(self, token: object, request_id: object = None) -> Principal:
        if not isinstance(token, str) or not token:
            raise ProtocolError(ParseCode.INVALID_SESSION_TOKEN, "Invalid session token", request_id=request_id)
        try:
            return await self.store.resolve_session(token)
        except NotAuthenticated as exc:
            raise ProtocolError(ParseCode.INVALID_SESSION_TOKEN, exc.message, request_id=request_id) from None

    async def _connect(self, message: dict[str, Any]) -> None:
        if self.ready:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "Already connected")
        unknown = message.keys() - {"op", "applicationId", "sessionToken", "installationId", "clientKey",
                                    "javascriptKey", "masterKey", "restAPIKey", "windowsKey"}
        if unknown:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, f"{sorted(unknown)[0][:40]} is not a connect field")
        app_id = message.get("applicationId")
        if not isinstance(app_id, str) or not hmac.compare_digest(
                app_id.encode("utf-8", "surrogatepass"), self.server.settings.parse_app_id.encode()):
            raise ProtocolError(LiveQueryCode.INVALID_KEY, "Key in request is not valid", close=True)
        if message.get("masterKey"):
            raise ProtocolError(LiveQueryCode.INVALID_KEY, "Key in request is not valid", close=True)
        token = message.get("sessionToken")
        if token is not None:
            try:
                principal = await self._resolve(token)
            except ProtocolError as exc:
                exc.close = True
                raise
            self._watch_session(principal)
        self.ready = True
        await self.send(json.dumps({"op": "connected", "clientId": self.client_id}))

    def _parse_query(self, message: dict[str, Any]) -> tuple[int, str, dict[str, Any], dict[str, Any] | None, frozenset[str] | None]:
        request_id = message.get("requestId")
        if not isinstance(request_id, int) or isinstance(request_id, bool) or not 0 < request_id < 2**53:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "requestId must be a positive whole number")
        unknown = message.keys() - {"op", "requestId", "query", "sessionToken"}
        if unknown:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, f"{sorted(unknown)[0][:40]} is not a subscribe field",
                                request_id=request_id)
        query = message.get("query")
        if not isinstance(query, dict):
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "query must be an object with className and where",
                                request_id=request_id)
        if "fields" in query:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "query.fields is not supported; use keys",
                                request_id=request_id)
        unknown = query.keys() - {"className", "where", "keys", "watch"}
        if unknown:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, f"query.{sorted(unknown)[0][:40]} is not supported",
                                request_id=request_id)
        class_name = query.get("className")
        if not isinstance(class_name, str) or not class_name or len(class_name) > 64:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "query.className must name a class", request_id=request_id)
        where = query.get("where") or {}
        if not isinstance(where, dict):
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "query.where must be an object", request_id=request_id)
        try:
            keys = wire.parse_keys(class_name, query.get("keys"))
            watch_tree = wire.parse_keys(class_name, query.get("watch"), "watch")
        except StoreError as exc:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, exc.message, request_id=request_id) from None
        watch = frozenset(watch_tree) if watch_tree else None
        return request_id, class_name, where, keys, watch


    async def _subscribe(self, message: dict[str, Any], *, replacing: bool = False) -> None:
        request_id, class_name, where, keys, watch = self._parse_query(message)
        if not replacing:
            if request_id in self.subscriptions:
                raise ProtocolError(LiveQueryCode.BAD_MESSAGE, "requestId is already in use on this connection",
                                    request_id=request_id)
            if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                raise ProtocolError(LiveQueryCode.BAD_MESSAGE,
                                    f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                                    request_id=request_id)
        token = message.get("sessionToken")
        principal = await self._resolve(token, request_id) if token is not None else self.principal
        if principal is None:
            raise ProtocolError(ParseCode.INVALID_SESSION_TOKEN, "A session token is required", request_id=request_id)
        sub = LiveSubscription(request_id, class_name, where, principal, keys=keys, watch=watch)
        try:
            await self._open(sub)
        except StoreError as exc:
            raise ProtocolError(exc.parse_code, exc.message, request_id=request_id) from None
        if replacing:
            old = self.subscriptions.pop(request_id, None)
            if old is not None:
                self._drop(old)
        self.subscriptions[request_id] = sub
        await self.send(json.dumps({"op": "subscribed", "clientId": self.client_id, "requestId": request_id}))
        self._go_live(sub)

    async def _update(self, message: dict[str, Any]) -> None:
        request_id = message.get("requestId")
        if not isinstance(request_id, int) or request_id not in self.subscriptions:
            raise ProtocolError(LiveQueryCode.NOT_CONNECTED, "No subscription with this requestId",
                                request_id=request_id)
        await self._subscribe(message, replacing=True)

    async def _unsubscribe(self, message: dict[str, Any]) -> None:
        request_id = message.get("requestId")
        unknown = message.keys() - {"op", "requestId"}
        if unknown:
            raise ProtocolError(LiveQueryCode.BAD_MESSAGE, f"{sorted(unknown)[0][:40]} is not an unsubscribe field",
                                request_id=request_id)
        sub = self.subscriptions.pop(request_id, None) if isinstance(request_id, int) else None
        if sub is None:
            raise ProtocolError(LiveQueryCode.NOT_CONNECTED, "No subscription with this requestId",
                                request_id=request_id)
        self._drop(sub)
        await self.send(json.dumps({"op": "unsubscribed", "clientId": self.client_id, "requestId": request_id}))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class LiveQueryServer:
    """Hosts the live sockets of both protocols (the per-address cap counts them together) and
    serves Parse's at /parse."""

    def __init__(self, settings: Settings, get_store: Callable[[], Store]):
        self.settings = settings
        self.get_store = get_store
        # An event's object is serialized once per shape (keys), however many subscribers get it.
        self._encoded: OrderedDict[tuple[int, Any], tuple[Mapping[str, Any], str]] = OrderedDict()
        self.connections: set[LiveConnection] = set()
        self._per_address: dict[str, int] = {}  # open sockets per client address (capped)
        # Subscriptions with the same query share a matcher, so an event is matched once per query.
        self._matchers: weakref.WeakValueDictionary[str, Matcher] = weakref.WeakValueDictionary()

    def matcher(self, class_name: str, where: Mapping[str, Any]) -> Matcher:
        key = json.dumps([class_name, where], sort_keys=True, default=str)
        shared = self._matchers.get(key)
        if shared is None:
            shared = self._matchers[key] = Matcher(class_name, where)
        return shared

    @staticmethod
    def to_parse(row: Any) -> dict[str, Any]:
        from dashboard.serialize import to_parse

        return to_parse(row)

    def encoded(self, data: Mapping[str, Any], keys: dict[str, Any] | None) -> str:
        signature = None if keys is None else tuple(sorted(keys))
        cache_key = (id(data), signature)
        hit = self._encoded.get(cache_key)
        if hit is not None and hit[0] is data:
            self._encoded.move_to_end(cache_key)
            return hit[1]
        shaped = dict(data) if keys is None else {k: v for k, v in data.items() if k in ALWAYS_SENT or k in keys}
        shaped.pop("__type", None)
        text = json.dumps(shaped, separators=(",", ":"))
        self._encoded[cache_key] = (data, text)
        while len(self._encoded) > 1024:
            self._encoded.popitem(last=False)
        return text

    def event_message(self, op: str, client_id: str, sub: LiveSubscription, obj: Mapping[str, Any],
                      original: Mapping[str, Any] | None) -> str:
        # op is ours, client_id is hex and the key a checked int: nothing here needs escaping.
        parts = [f'{{"op":"{op}","clientId":"{client_id}","requestId":{sub.key:d}',
                 ',"object":', self.encoded(obj, sub.keys)]
        if original is not None:
            parts += [',"original":', self.encoded(original, sub.keys)]
        parts.append("}")
        return "".join(parts)

    async def serve(self, websocket: WebSocket) -> None:
        await self.host(websocket, lambda ws: Connection(self, ws))

    async def host(self, websocket: WebSocket, connection_for: Callable[[WebSocket], LiveConnection]) -> None:
        """Runs one socket of either protocol, within the per-address cap."""
        address = websocket.client.host if websocket.client else "unknown"
        if self._per_address.get(address, 0) >= self.settings.sockets_per_address:
            await websocket.close(code=1008)  # before accepting: the handshake is refused (HTTP 403)
            return
        self._per_address[address] = self._per_address.get(address, 0) + 1
        connection = connection_for(websocket)
        self.connections.add(connection)
        try:
            await connection.run()
        except Exception:  # noqa: BLE001 - never let one client's failure escape into the server
            log.exception("live query: connection failed")
        finally:
            self.connections.discard(connection)
            left = self._per_address.pop(address, 1) - 1
            if left > 0:
                self._per_address[address] = left
