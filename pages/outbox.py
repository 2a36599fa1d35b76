"""NiceGUI's per-client outbox, made cheap to wake: what a push costs each open page.

A push to P open pages wakes P outbox loops. NiceGUI's loop waits with `asyncio.wait_for(..., 1.0)`
(a task and a timer per wait, and a wake-up per page every second even when idle) and sends each
message through `sio.emit`, which makes a task per recipient and waits on it. Here the loop waits
on its event alone (`stop()` sets it, so no timeout is needed) and a message is encoded and queued
on the client's engine.io socket directly, which never suspends: an iteration runs start to end, so
messages still leave in order, with the same ids and history (replayed after a reconnect).

`install()` makes NiceGUI create this outbox for every client; everything else is NiceGUI's own.
It leans on NiceGUI's and python-socketio's internals, so it only installs on the exact NiceGUI
versions it was checked against (a patch release may fix NiceGUI's loop or its history replay); on any
other, or with OT_FAST_PATHS_OFF=outbox, the pages keep NiceGUI's outbox (slower, same result).
`nicegui_problem()` is the version gate that pages/score_list.py's raw path shares.
"""
from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
import time

from nicegui import client as nicegui_client
from nicegui import core
from nicegui import outbox as nicegui_outbox
from nicegui.dependencies import JsComponent
from socketio import packet

from dashboard import fast_paths

NAME = "outbox"
NAMESPACE = "/"
CHECKED_NICEGUI = ("3.18.0",)  # exact versions whose outbox and socket.io use this was checked against
log = logging.getLogger("ot_tracker.pages")


class Outbox(nicegui_outbox.Outbox):
    async def loop(self) -> None:
        self._enqueue_event = asyncio.Event()
        self._enqueue_event.set()
        while not self._should_stop:
            try:
                if not self._enqueue_event.is_set():
                    await self._enqueue_event.wait()
                    continue
                client = self.client
                if not client or not client.has_socket_connection:
                    await asyncio.sleep(0.1)
                    continue
                self._enqueue_event.clear()
                await self._flush(client)
            except asyncio.CancelledError:
                break
            except Exception as e:  # noqa: BLE001 - as NiceGUI's loop: report and carry on
                core.app.handle_exception(e)
                await asyncio.sleep(0.1)

    async def _flush(self, client: nicegui_client.Client) -> None:
        """One iteration of NiceGUI's loop: element updates first, then messages."""
        messages = []
        if self.updates:
            data = {
                element_id: None if element is nicegui_outbox.deleted else element._to_dict()  # noqa: SLF001
                for element_id, element in self.updates.items()
            }
            js_components = [
                component
                for element in self.updates.values()
                if not isinstance(element, nicegui_outbox.Deleted)
                and isinstance((component := element.component), JsComponent)
                and component.name not in self._loaded_components
            ]
            if js_components:
                messages.append((client.id, "load_js_components", {
                    "components": [{"key": c.key, "tag": c.tag} for c in js_components],
                }))
                self._loaded_components.update(c.name for c in js_components)
            messages.append((client.id, "update", data))
            self.updates.clear()
        if self.messages:
            messages.extend(self.messages)
            self.messages.clear()
        for message in messages:
            try:
                await self._emit(message)
            except Exception as e:  # noqa: BLE001
                core.app.handle_exception(e)

    async def _emit(self, message: nicegui_outbox.Message) -> None:
        client_id, message_type, data = message
        data["_id"] = self.next_message_id
        sio = core.sio
        # sio.emit without its task per recipient: the engine.io send only appends to a queue.
        pkt = sio.packet_class(packet.EVENT, namespace=NAMESPACE, data=[message_type, data])
        for _, eio_sid in sio.manager.get_participants(NAMESPACE, client_id):
            await sio._send_packet(eio_sid, pkt)  # noqa: SLF001
        if core.air is not None and core.air.is_air_target(client_id):
            await core.air.emit(message_type, data, room=client_id)

        client = self._client()
        if client:
            now = time.time()
            self.message_history.append((self.next_message_id, now, message))
            max_age = core.sio.eio.ping_interval + core.sio.eio.ping_timeout + client.page.resolve_reconnect_timeout()
            while self.message_history and self.message_history[0][1] < now - max_age:
                self.message_history.popleft()
            while len(self.message_history) > core.app.config.message_history_length:
                self.message_history.popleft()
        self.next_message_id += 1


@functools.cache
def nicegui_problem() -> str | None:
    """Why the installed NiceGUI is not one the pages' raw paths were checked against (None: it is)."""
    version = importlib.metadata.version("nicegui")
    if version not in CHECKED_NICEGUI:
        return f"NiceGUI {version} is not one of {', '.join(CHECKED_NICEGUI)}"
    return None


def _problem() -> str | None:
    if fast_paths.switched_off(NAME):
        return f"{fast_paths.ENV} names it"
    if problem := nicegui_problem():
        return problem
    sio = core.sio
    # python-socketio moves independently of NiceGUI (within NiceGUI's and our pins).
    for owner, name in ((sio, "_send_packet"), (sio, "packet_class"), (sio.manager, "get_participants")):
        if not callable(getattr(owner, name, None)):
            return f"python-socketio has no {type(owner).__name__}.{name}"
    return None


def installable() -> bool:
    return _problem() is None


def install() -> bool:
    """Every client created from now on gets this outbox; False (NiceGUI's own stays) on a NiceGUI
    this was not checked against, or when switched off."""
    problem = _problem()
    fast_paths.report(NAME, problem, fast="the pages' outbox (pages/outbox.py)", fallback="NiceGUI's outbox")
    if problem:
        return False
    nicegui_client.Outbox = Outbox  # type: ignore[misc]
    return True
