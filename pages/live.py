"""The one way pages reach the hub: subscribe as the page's principal, apply batches, clean up.

`watch` captures the session's principal when the page is built, runs one task per page that waits
on the subscription, hands each batch of deliveries to the page inside its client context, and
closes the subscription when the client is deleted (tab closed and not reconnected).

With `at_once`, the hub hands each delivery (access-checked at that moment) to the page in the
publishing step, and the page may apply it there and then: a push to P pages then wakes no page
task at all. What it does not take, and whatever arrives while a batch is being applied, waits
in order for the page's task.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from nicegui import Client, background_tasks, ui

from dashboard.hub import RESYNC, Delivery, Subscription, Topic
from pages.auth import PageSession

log = logging.getLogger("ot_tracker.pages")
Batch = list[Delivery]
Handler = Callable[[Batch], Awaitable[None]]
AtOnce = Callable[[Delivery], bool]


def watch(session: PageSession, topics: Iterable[Topic], on_batch: Handler, *,
          at_once: AtOnce | None = None) -> Subscription:
    """Subscribes the current page; `on_batch` gets every delivery that arrived together.
    `at_once(delivery)` may apply a delivery in the publishing step; it returns False to leave it
    to `on_batch`."""
    if at_once is not None:
        return _watch_at_once(session, topics, on_batch, at_once)
    client = ui.context.client
    sub = session.store.hub.subscribe(session.principal, topics)

    async def pump() -> None:
        try:
            while True:
                first = await sub.get()
                if first is None or client.is_deleted:
                    return
                batch = [first]
                # A status change arrives as Patient + StatusHistory; apply them as one refresh.
                while (more := sub.get_nowait()) is not None:
                    batch.append(more)
                with client:
                    try:
                        await on_batch(batch)
                    except Exception:  # noqa: BLE001 - one failed refresh must not end the page's feed
                        log.exception("live refresh failed on %s", client.page.path)
        finally:
            sub.close()

    task = background_tasks.create(pump(), name="live-page")

    def stop() -> None:
        sub.close()
        task.cancel()
        _listeners.pop(client.id, None)

    client.on_delete(stop)
    return sub


def _watch_at_once(session: PageSession, topics: Iterable[Topic], on_batch: Handler, at_once: AtOnce) -> Subscription:
    client = ui.context.client
    pending: deque[Delivery] = deque()
    wake = asyncio.Event()
    busy = False
    limit = session.store.hub.queue_size

    def take(delivery: Delivery) -> None:
        if client.is_deleted:
            return
        if delivery.kind == "access_ended":
            # What waits for this patient is no longer deliverable (as in the hub's own buffers).
            kept = [d for d in pending if delivery.patient_id is not None and d.patient_id != delivery.patient_id]
            pending.clear()
            pending.extend(kept)
        elif not pending and not busy:
            with client:
                try:
                    if at_once(delivery):
                        return
                except Exception:  # noqa: BLE001 - one failed refresh must not end the page's feed
                    log.exception("live refresh failed on %s", client.page.path)
                    return
        if len(pending) >= limit:
            pending.clear()
            pending.append(RESYNC)
        else:
            pending.append(delivery)
        wake.set()

    sub = session.store.hub.subscribe(session.principal, topics, sink=take)

    async def pump() -> None:
        nonlocal busy
        try:
            while True:
                if not pending:
                    if sub.closed:
                        return
                    wake.clear()
                    await wake.wait()
                    continue
                if client.is_deleted:
                    return
                batch = list(pending)
                pending.clear()
                busy = True
                with client:
                    try:
                        await on_batch(batch)
                    except Exception:  # noqa: BLE001 - one failed refresh must not end the page's feed
                        log.exception("live refresh failed on %s", client.page.path)
                    finally:
                        busy = False
        finally:
            sub.close()

    task = background_tasks.create(pump(), name="live-page")

    def stop() -> None:
        sub.close()
        task.cancel()
        _listeners.pop(client.id, None)

    client.on_delete(stop)
    return sub


# -- page-to-page signals for what the hub does not carry (care team lists) -------------------------
# Process-local like the hub's local bridge. A signal only says "re-read this"; each page re-reads
# through the store as its own principal, so nothing is shown that the store would not return.
_listeners: dict[str, tuple[Client, str, Callable[[], Awaitable[None]]]] = {}


def on_team_change(patient_id: str, refresh: Callable[[], Awaitable[None]]) -> None:
    client = ui.context.client
    _listeners[client.id] = (client, patient_id, refresh)


def team_changed(patient_id: str) -> None:
    for client_id, (client, pid, refresh) in list(_listeners.items()):
        if pid != patient_id or client.is_deleted:
            continue

        async def run(client: Client = client, refresh: Callable[[], Awaitable[None]] = refresh) -> None:
            with client:
                try:
                    await refresh()
                except Exception:  # noqa: BLE001
                    log.exception("care team refresh failed")

        background_tasks.create(run(), name=f"team-{client_id}")
