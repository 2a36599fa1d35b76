"""The one way pages reach the hub: subscribe as the page's principal, apply batches, clean up.

`watch` captures the session's principal when the page is built. The hub hands each delivery to the
page in the publishing step, already checked against the principal's access at that moment and
shaped for its role. With `at_once`, the page may apply a delivery there and then (a push to P
pages then wakes no page task at all); otherwise, and for whatever arrives while a batch is being
applied, deliveries wait in order in the page's `Mailbox` (dashboard.hub) for the page's one task,
which hands each batch to the page inside its client context. An access end drops what still waits
for that patient; a page that falls too far behind gets a resync. The subscription closes when the client is deleted (tab closed, not reconnected).
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import quote

from nicegui import background_tasks, ui

from dashboard.errors import NotAuthenticated
from dashboard.hub import Delivery, DeliveryKind, Mailbox, Subscription, Topic
from pages.auth import PageSession, safe_next

log = logging.getLogger("ot_tracker.pages")
Batch = list[Delivery]
Handler = Callable[[Batch], Awaitable[None]]
AtOnce = Callable[[Delivery], bool]


def watch(session: PageSession, topics: Iterable[Topic], on_batch: Handler, *,
          at_once: AtOnce | None = None) -> Subscription:
    """Subscribes the current page; `on_batch` gets every delivery that waited together.
    `at_once(delivery)` may apply a delivery in the publishing step; it returns False to leave it
    to `on_batch`."""
    client = ui.context.client

    def apply_now(delivery: Delivery) -> bool:
        if client.is_deleted:
            return True  # a page that has gone takes nothing
        with client:
            try:
                return at_once(delivery)  # type: ignore[misc]
            except NotAuthenticated:
                return True  # the session ended meanwhile: end_with_session takes the page away
            except Exception:  # noqa: BLE001 - one failed refresh must not end the page's feed
                log.exception("live refresh failed on %s", client.page.path)
                return True

    box = Mailbox(session.store.hub.queue_size, at_once=apply_now if at_once is not None else None)
    sub = session.store.hub.subscribe(session.principal, topics, sink=box)

    # A page whose socket is gone (a closed tab, a tablet off the wifi) applies nothing until it is
    # back: NiceGUI keeps it RECONNECT_SECONDS, and 250 closed pages each re-reading a changed care
    # team held the instance's loop and connection pool for 10-20 s (REST and the change feed's
    # heartbeat queued behind them). Its deliveries wait in its mailbox meanwhile. Not
    # `client.connected()`: awaited during the page's build, that sends the page unfinished.
    live = asyncio.Event()
    if client.has_socket_connection:
        live.set()
    client.on_connect(live.set)
    page = weakref.ref(client)  # not the client itself: its handlers holding it would make a cycle

    def socket_gone() -> None:
        current = page()
        if current is None or not current.has_socket_connection:  # not when a new socket came first
            live.clear()

    client.on_disconnect(socket_gone)

    async def socket_live() -> None:
        await live.wait()

    async def pump() -> None:
        try:
            # A status change arrives as Patient + StatusHistory; they are applied as one batch.
            async for batch in box.batches(ready=socket_live):
                if client.is_deleted:
                    return
                with client:
                    try:
                        await on_batch(batch)
                    except NotAuthenticated:
                        pass  # the session ended meanwhile: end_with_session takes the page away
                    except Exception:  # noqa: BLE001 - one failed refresh must not end the page's feed
                        log.exception("live refresh failed on %s", client.page.path)
        finally:
            sub.close()

    task = background_tasks.create(pump(), name="live-page")

    def stop() -> None:
        sub.close()
        task.cancel()

    client.on_delete(stop)
    return sub


def end_with_session(session: PageSession) -> Subscription:
    """When the page's session ends (idle timeout, lifetime, sign-out elsewhere, deactivation), the
    page leaves for the sign-in page (after the idle timeout: the lock screen): nothing of the
    patient stays on screen, its handlers already refuse to act (the store finds no role for the
    session), and what was typed stays on the device as drafts for when the user signs in again."""
    client = ui.context.client

    def take(delivery: Delivery) -> None:
        if delivery.kind == DeliveryKind.ACCESS_ENDED and delivery.patient_id is None and not client.is_deleted:
            over = session.store.session_ended_because(principal=session.principal)
            # Idle: the lock screen (sign in again to continue; drafts stay on the device).
            reason = "locked=1" if over == "idle" else "expired=1"
            with client:  # back to this page once signed in again
                ui.navigate.to(f"/login?{reason}&next={quote(safe_next(client.request.url.path), safe='')}")

    sub = session.store.hub.subscribe(session.principal, (), sink=take)
    client.on_delete(sub.close)
    return sub
