"""Committed changes as data: the change log, and the one applier that feeds the index and the hub.

A write transaction collects its changes (record `Event`s and access `Mutation`s) and inserts them
as one `change_log` row, the last statement before COMMIT, so a rolled-back write leaves no row and
a committed one cannot lose its push. After the commit the writer hands its changes to the
`ChangeFeed` with the row's number; the feed applies them in number order: a mutation to the
access index (computing who gained or lost what at apply time), then an `AccessChange` to the hub;
an event to the hub. When the number is the next one, that is done from memory at once (today's
latency). A gap (a writer whose hand-off was lost, another process's write) is filled from the log:
`SELECT ... WHERE seq > applied`, on the next hand-off and on a heartbeat, so a crash between commit
and push loses nothing. Rows older than the retention window are pruned; the newest row pruned
stays as a mark, so an instance cut off for longer than the window finds, on its next read, that it
missed rows it can no longer read, and resyncs: it reloads the access index, tells the hub who
gained or lost what meanwhile, and has every subscription re-read (SCALE-OUT.md §4).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Text, bindparam, delete, func, insert, select, update

from dashboard.access import AccessIndex, Role
from dashboard.hub import AccessChange, Event, Hub
from dashboard.loop_tasks import cancel, ensure_running
from dashboard.models import CHANGE_LOG_NOTIFY_CHANNEL, ChangeLog, UTCDateTime, utcnow

log = logging.getLogger("ot_tracker.changes")
CHANGE_LOG = ChangeLog.__table__
HEARTBEAT_SECONDS = 1.0
RETENTION = timedelta(minutes=15)  # the default of OT_CHANGE_LOG_RETENTION_SECONDS
PRUNE_EVERY_SECONDS = 60.0  # or a quarter of a shorter retention
# The listener's connection is probed this often: a half-open TCP connection shows no other way.
LISTEN_PROBE_SECONDS = 5.0
# An instance that has not confirmed it holds the whole log for this long fails closed (503): a
# revoked session or a removed care-team member must not keep access on an instance cut off from
# the others' commits (SCALE-OUT.md §4 "Fail closed").
CURRENT_WITHIN_SECONDS = 5.0

MutationOp = Literal["put_user", "put_patient", "add_member", "remove_member", "revoke_sessions"]


@dataclass(frozen=True)
class Mutation:
    """An access-relevant change, applied to the index in log order (SCALE-OUT.md §4)."""

    op: MutationOp
    args: dict[str, Any] = field(default_factory=dict)


Change = Event | Mutation


def encode(changes: Sequence[Change]) -> str:
    out: list[dict[str, Any]] = []
    for change in changes:
        if isinstance(change, Mutation):
            out.append({"m": change.op, "a": change.args})
        else:
            out.append({"e": change.kind, "c": change.class_name, "o": change.object_id,
                        "p": change.patient_id, "d": change.data, "b": change.before})
    return json.dumps(out, separators=(",", ":"), default=str)


def decode(body: str) -> list[Change]:
    changes: list[Change] = []
    for item in json.loads(body):
        if "m" in item:
            changes.append(Mutation(item["m"], item.get("a") or {}))
        else:
            changes.append(Event(item["e"], item["c"], item["o"], item.get("p"), item.get("d"), item.get("b")))
    return changes


def change_row(changes: Sequence[Change]) -> dict[str, Any]:
    """The change_log row for one transaction's changes (the writer adds it last)."""
    return {"at": utcnow(), "body": encode(changes)}


INSERT_CHANGE = insert(ChangeLog).values(
    at=bindparam("at", type_=UTCDateTime), body=bindparam("body", type_=Text)).returning(ChangeLog.seq)
# The body of the newest pruned row, kept in its place: a reader that has not applied it missed rows
# that are gone. Every pruned row is numbered at or below it (the newest old row is the mark).
PRUNED_MARK = '[{"pruned":true}]'
NEWEST_OLD = select(func.max(ChangeLog.seq)).where(ChangeLog.at < bindparam("cutoff", type_=UTCDateTime))
PRUNE = delete(ChangeLog).where(ChangeLog.at < bindparam("cutoff", type_=UTCDateTime),
                                ChangeLog.seq < bindparam("mark"))
MARK = update(ChangeLog).where(ChangeLog.seq == bindparam("mark")).values(body=PRUNED_MARK)


def is_pruned_mark(body: str) -> bool:
    return '"pruned"' in body and any(isinstance(i, dict) and i.get("pruned") for i in json.loads(body))


class ChangeFeed:
    """The single applier. `applied` is the highest number whose changes this process applied."""

    def __init__(self, db: Any, access: AccessIndex, hub: Hub, *,
                 clock: Callable[[], float] = time.monotonic, retention: timedelta = RETENTION,
                 instance_id: str = ""):
        self.db = db
        self.clock = clock
        self.retention = retention
        self.prune_every = min(PRUNE_EVERY_SECONDS, max(retention.total_seconds() / 4, HEARTBEAT_SECONDS))
        # In pg_stat_activity as the LISTEN connection's application_name (an operator, or a test,
        # finds and terminates it by name); PostgreSQL keeps 63 bytes of it.
        self.application_name = f"ot-tracker listen {instance_id}".strip()[:63]
        self.resyncs = 0  # full resyncs: this instance was cut off past the retention window
        self._resyncing = False
        # When a read of the log last came back whole (so `applied` was its head then); None
        # until the first. SQLite is one process: every commit is applied here, always current.
        self.confirmed_at: float | None = None
        self.head = 0  # the highest row number seen: read, notified or handed off
        self.access = access
        self.hub = hub
        self.applied = 0
        self._pending: dict[int, list[Change]] = {}
        self._reading = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.caught_up_from_log = 0  # changes applied from the log rather than from memory
        self.woken_reads = 0  # log reads a NOTIFY caused (another instance's commit, not our own)
        self._listener: asyncio.Task[None] | None = None
        self.listening = False  # PostgreSQL: LISTENing for other instances' commits right now
        self._wake_scheduled = False
        self._notified_up_to = 0  # the highest row number a notification named
        self._woken: set[asyncio.Task[None]] = set()
        # Other channels riding on the listener's connection (presence): name -> callback(payload).
        self._channels: dict[str, Callable[[str], None]] = {}
        self._conn: Any = None
        self._conn_busy = asyncio.Lock()  # one operation at a time on an asyncpg connection

    # -- start ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Loads the access index and the log position from one snapshot: the index then holds
        every change up to `applied`, and the feed applies what commits after it."""
        started = self.clock()
        self.applied = await self._snapshot(self.access)
        self._pending.clear()
        self.head = max(self.head, self.applied)
        self.confirmed_at = started

    async def _snapshot(self, index: AccessIndex) -> int:
        """Loads `index` and answers the log's head, both from one snapshot."""
        async with self.db.read() as session:
            if not self.db.is_sqlite:
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            head = int(await session.scalar(select(func.coalesce(func.max(ChangeLog.seq), 0))) or 0)
            await index.load(session)
        return head

    @property
    def notified_up_to(self) -> int:
        """The newest change-log number a NOTIFY has told this instance of."""
        return self._notified_up_to

    # -- fail closed ----------------------------------------------------------------------------
    @property
    def current(self) -> bool:
        """Whether this instance may answer access-checked requests: it read the whole log within
        CURRENT_WITHIN_SECONDS (the heartbeat reads every second while the database answers)."""
        if self.db.is_sqlite:
            return True
        confirmed = self.confirmed_at
        return confirmed is not None and self.clock() - confirmed <= CURRENT_WITHIN_SECONDS

    def status(self) -> dict[str, Any]:
        """The feed's position for /status: numbers and flags only, no data."""
        confirmed = self.confirmed_at
        return {"applied": self.applied, "head": self.head, "lag": max(self.head - self.applied, 0),
                "listening": self.listening, "current": self.current, "from_log": self.caught_up_from_log,
                "resyncs": self.resyncs,
                "confirmed_ms_ago": None if confirmed is None else round((self.clock() - confirmed) * 1000)}

    def start_heartbeat(self) -> None:
        task = ensure_running(self._heartbeat, self._beat, "change-feed-heartbeat")
        if task is not self._heartbeat:  # a new beat: it watches a new stop signal
            self._stopping = asyncio.Event()
        self._heartbeat = task

    def start_listening(self) -> None:
        """PostgreSQL: LISTEN for the commits of other instances (SCALE-OUT.md §3), reconnecting
        when the connection drops; call after `start_heartbeat` (they stop together)."""
        if not self.db.is_sqlite:
            self._listener = ensure_running(self._listener, self._listen, "change-feed-listener")

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Another channel on the same connection (call before `start_listening`)."""
        self._channels[channel] = callback

    async def send(self, channel: str, payload: str) -> bool:
        """pg_notify on the listener's connection; False when it is down (the caller re-sends)."""
        conn = self._conn
        if conn is None or not self.listening:
            return False
        try:
            async with self._conn_busy:
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
        except Exception:  # noqa: BLE001 - the listener reconnects; presence is re-sent on a period
            log.warning("change feed: a notification on %s could not be sent", channel)
            return False
        return True

    async def stop(self) -> None:
        """Ends the heartbeat between beats and the listener: a catch-up in progress finishes its
        read first (a read cancelled mid-statement would answer a closed event loop from the
        driver's thread)."""
        tasks = [t for t in (self._heartbeat, self._listener) if t is not None]
        self._heartbeat = self._listener = None
        self._stopping.set()
        for task in tasks:
            if not task.done() and task.get_loop() is asyncio.get_running_loop():
                try:
                    await asyncio.wait_for(asyncio.shield(task), HEARTBEAT_SECONDS * 5)
                except TimeoutError:
                    await cancel(task)

    async def _beat(self) -> None:
        since_prune = 0.0
        stopping = self._stopping
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), HEARTBEAT_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await self.catch_up()
                since_prune += HEARTBEAT_SECONDS
                if since_prune >= self.prune_every:
                    since_prune = 0.0
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next beat tries again; nothing is lost meanwhile
                log.warning("change feed: catch-up failed; retrying", exc_info=True)

    # -- the wake-up from other instances (PostgreSQL) -------------------------------------------
    async def _listen(self) -> None:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(self.db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        stopping = self._stopping
        while not stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(dsn, timeout=5,
                                             server_settings={"application_name": self.application_name})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(CHANGE_LOG_NOTIFY_CHANNEL, self._notified)
                for channel, callback in self._channels.items():
                    await conn.add_listener(channel, lambda _c, _p, _ch, payload, cb=callback: cb(payload))
                self._conn = conn
                # LISTEN first, then read: whatever committed before it is in the log.
                await self.catch_up()
                self.listening = True
                while not stopping.is_set() and not lost.is_set():
                    try:
                        await asyncio.wait_for(stopping.wait(), LISTEN_PROBE_SECONDS)
                    except TimeoutError:
                        async with self._conn_busy:
                            await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_PROBE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the heartbeat still reads the log meanwhile
                log.warning("change feed: the listener's connection failed; reconnecting", exc_info=True)
            finally:
                self.listening = False
                self._conn = None
                if conn is not None and not conn.is_closed():
                    try:
                        await conn.close(timeout=2)
                    except Exception:  # noqa: BLE001 - a dead connection needs no goodbye
                        conn.terminate()
            try:
                await asyncio.wait_for(stopping.wait(), HEARTBEAT_SECONDS)
            except TimeoutError:
                pass

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """A commit somewhere: read the log unless its row is applied already (our own write)."""
        try:
            seq = int(payload)
        except ValueError:
            seq = self.applied + 1  # not a number: read to be sure
        self._notified_up_to = max(self._notified_up_to, seq)
        self.head = max(self.head, seq)
        if seq <= self.applied:
            return
        if self._wake_scheduled:
            return  # the catch-up about to run reads this row too
        self._wake_scheduled = True
        task = asyncio.ensure_future(self._wake())
        self._woken.add(task)
        task.add_done_callback(self._woken.discard)

    async def _wake(self) -> None:
        self._wake_scheduled = False  # a notification from here on schedules the next read
        # A NOTIFY of our own commit often comes in before the commit's answer: let that batch
        # hand its changes off first, and its rows need no read.
        await self.db.batch_settled()
        if self._notified_up_to <= self.applied:
            return  # our own commit, applied from memory while this waited its turn: nothing to read
        self.woken_reads += 1
        try:
            await self.catch_up()
        except Exception:  # noqa: BLE001 - the next wake-up or the heartbeat tries again
            log.warning("change feed: catch-up after a notification failed", exc_info=True)

    # -- after a commit -------------------------------------------------------------------------
    async def committed(self, seq: int | None, changes: list[Change]) -> None:
        """The writer's hand-off, right after its commit. Returns once its changes are applied
        (read-your-writes: the writer's own access change holds when its call returns)."""
        if seq is None or seq <= self.applied:
            return
        self.head = max(self.head, seq)
        self._pending[seq] = changes
        self._apply_pending()
        if seq > self.applied:
            await self.catch_up()

    def _apply_pending(self) -> None:
        if self._resyncing:
            return  # held for after the reload (the rows at or below its head are in it)
        while (changes := self._pending.pop(self.applied + 1, None)) is not None:
            self.applied += 1
            self._apply(changes)

    async def catch_up(self) -> int:
        """Applies, in order, whatever the log holds beyond `applied`. Returns how many rows."""
        async with self._reading:
            read_at = self.clock()  # before the read: what committed by then is in it
            async with self.db.read() as session:
                rows = (await session.execute(
                    select(ChangeLog.seq, ChangeLog.body).where(ChangeLog.seq > self.applied)
                    .order_by(ChangeLog.seq))).all()
            if any(seq > self.applied and is_pruned_mark(body) for seq, body in rows):
                return await self._resync(read_at)
            count = 0
            for seq, body in rows:
                if seq <= self.applied:  # applied from memory while this read was running
                    continue
                changes = self._pending.pop(seq, None)
                if changes is None:
                    changes = decode(body)
                    self.caught_up_from_log += 1
                self.applied = seq  # a skipped number is a rolled-back write: a permanent hole
                self._apply(changes)
                count += 1
            for stale in [s for s in self._pending if s <= self.applied]:
                del self._pending[stale]
            self._apply_pending()
            self.head = max(self.head, self.applied)
            self.confirmed_at = read_at  # everything committed before the read is applied now
            return count

    async def _resync(self, read_at: float) -> int:
        """Rows this instance had not applied were pruned: what they did is unknowable from the log.
        Reload the index from a snapshot (keeping this process's session clocks), dispatch the
        difference as access changes (a revoked session, a lost patient end their subscriptions),
        then have every subscription re-read. Returns 0 (no row applied)."""
        log.warning("change feed: rows after %s were pruned before this instance read them; "
                    "reloading access and re-reading every subscription", self.applied)
        index = self.access
        self._resyncing = True
        try:
            fresh = AccessIndex(clock=index.clock, idle_timeout=index.idle_timeout,
                                viewer_exempt=index.viewer_exempt)
            head = await self._snapshot(fresh)
        finally:
            self._resyncing = False
        users = index.user_ids() | fresh.user_ids()
        before = {uid: index.visible_for_user(uid) for uid in users}
        was_active = {uid for uid in users if (u := index.user(uid)) is not None and u.active}
        revoked = fresh.revoked_sessions() - index.revoked_sessions()
        index.replace_from(fresh)  # at once (no await), beside the session clocks of this process
        self.applied = max(self.applied, head)
        for stale in [s for s in self._pending if s <= self.applied]:
            del self._pending[stale]
        self.resyncs += 1
        for uid in sorted(users):
            after = index.visible_for_user(uid)
            lost, gained = before[uid] - after, after - before[uid]
            ended = uid in was_active and not ((u := index.user(uid)) is not None and u.active)
            if lost or gained or ended:
                self.hub.dispatch(AccessChange(uid, frozenset(gained), frozenset(lost), ended=ended))
        for sid in sorted(revoked):
            clock = index.session_clock(sid)
            if clock is not None:  # a session this process never tracked has nothing here to end
                self.hub.dispatch(AccessChange(clock.user_id, session_id=sid, ended=True))
        self.hub.resync_all()  # the events in the pruned rows: every view re-read
        self._apply_pending()
        self.head = max(self.head, self.applied)
        self.confirmed_at = read_at
        return 0

    async def prune(self) -> int:
        """Deletes rows older than the retention window but the newest of them, which becomes the
        mark (PRUNED_MARK); returns the mark's number, or 0 when no row was old enough."""
        cutoff = utcnow() - self.retention

        def job(w: Any) -> int:
            [(mark,)] = w.fetch(NEWEST_OLD, {"cutoff": cutoff})
            if mark is None:
                return 0
            w.fetch(PRUNE, {"cutoff": cutoff, "mark": mark})
            w.fetch(MARK, {"mark": mark})
            return int(mark)
        return await self.db.transact(job)

    # -- applying -------------------------------------------------------------------------------
    def _apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            try:
                if isinstance(change, Mutation):
                    self._mutate(change)
                else:
                    self.hub.dispatch(change)
            except Exception:  # noqa: BLE001 - one bad change must not stop the feed for the rest
                log.exception("change feed: a change could not be applied")

    def _mutate(self, mutation: Mutation) -> None:
        index, args = self.access, mutation.args
        if mutation.op == "put_user":
            affected = {args["user_id"]}
            ended = not args["active"]
            apply = lambda: index.put_user(args["user_id"], role=args["role"], active=args["active"],  # noqa: E731
                                           username=args["username"], full_names=args.get("full_names", False))
        elif mutation.op == "put_patient":
            current = index.primary_therapist(args["patient_id"])
            affected = {args["primary_therapist_id"]} | ({current} if current else index.active_leads())
            ended = False
            apply = lambda: index.put_patient(args["patient_id"],  # noqa: E731
                                              primary_therapist_id=args["primary_therapist_id"])
        elif mutation.op in ("add_member", "remove_member"):
            affected, ended = {args["user_id"]}, False
            method = index.add_member if mutation.op == "add_member" else index.remove_member
            apply = lambda: method(args["patient_id"], args["user_id"])  # noqa: E731
        elif mutation.op == "revoke_sessions":
            affected, ended = {args["user_id"]}, True
            apply = lambda: [index.revoke_session(s) for s in args["session_ids"]]  # noqa: E731
        else:  # pragma: no cover - ops are a closed set
            raise ValueError(f"unknown mutation {mutation.op!r}")
        before = {uid: index.visible_for_user(uid) for uid in affected}
        apply()
        for uid in affected:
            after = index.visible_for_user(uid)
            lost, gained = before[uid] - after, after - before[uid]
            if lost or gained or ended:
                self.hub.dispatch(AccessChange(uid, frozenset(gained), frozenset(lost), ended=ended))


def user_mutation(user_id: str, *, role: Role | str, active: bool, username: str,
                  full_names: bool = False) -> Mutation:
    return Mutation("put_user", {"user_id": user_id, "role": str(role), "active": active,
                                 "username": username, "full_names": full_names})


def patient_mutation(patient_id: str, primary_therapist_id: str) -> Mutation:
    return Mutation("put_patient", {"patient_id": patient_id, "primary_therapist_id": primary_therapist_id})


def member_mutation(op: Literal["add_member", "remove_member"], patient_id: str, user_id: str) -> Mutation:
    return Mutation(op, {"patient_id": patient_id, "user_id": user_id})


def revoke_mutation(user_id: str, session_ids: Sequence[str]) -> Mutation:
    return Mutation("revoke_sessions", {"user_id": user_id, "session_ids": list(session_ids)})
