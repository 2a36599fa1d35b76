"""Who else has a patient's page open right now: on this server process, and on the others
(dashboard/presence.py carries each process's set to the rest).

Presence holds only usernames and roles of people already allowed to open the page; a page joins
when built and leaves when its client is deleted or its access ends.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from nicegui import Client, ui

from dashboard import runtime


@dataclass(frozen=True)
class Viewer:
    client_id: str
    user_id: str
    username: str
    role: str


_open: dict[str, dict[str, Viewer]] = {}  # patient object id -> client id -> viewer
_renderers: dict[str, tuple[Client, Callable[[], None]]] = {}
# Pages show distinct people, so tabs coming and going change nothing unless the people change;
# announcements are also coalesced, or N pages opening at once would render N² times.
_announced: dict[str, frozenset[tuple[str, str, str]]] = {}
_scheduled: set[str] = set()
ANNOUNCE_DELAY = 0.25  # seconds


def viewers(patient_id: str) -> list[Viewer]:
    """This process's viewers and the other instances' (whose client ids name no client here)."""
    here = list(_open.get(patient_id, {}).values())
    elsewhere = [Viewer(f"elsewhere:{user_id}", user_id, username, role)
                 for user_id, username, role in runtime.store().presence.elsewhere(patient_id)]
    return sorted(here + elsewhere, key=lambda v: v.username)


def _people(patient_id: str) -> frozenset[tuple[str, str, str]]:
    return frozenset((v.user_id, v.username, v.role) for v in _open.get(patient_id, {}).values())


def _schedule(patient_id: str) -> None:
    if patient_id not in _scheduled:
        _scheduled.add(patient_id)
        asyncio.get_running_loop().call_later(ANNOUNCE_DELAY, _announce, patient_id)


def _announce(patient_id: str) -> None:
    _scheduled.discard(patient_id)
    people = _people(patient_id)
    if _announced.get(patient_id) == people:
        return
    if people:
        _announced[patient_id] = people
    else:
        _announced.pop(patient_id, None)
    try:
        runtime.store().presence.publish(patient_id, people)
    except RuntimeError:  # the store stopped while this waited: the process is shutting down
        return
    _render(patient_id)


def _render(patient_id: str) -> None:
    """Re-renders this process's pages of the patient (also when the other instances' set changed)."""
    for client_id in list(_open.get(patient_id, {})):
        entry = _renderers.get(client_id)
        if entry is None or entry[0].is_deleted:
            continue
        client, render = entry
        with client:
            render()


def join(patient_id: str, viewer: Viewer, render: Callable[[], None]) -> None:
    client = ui.context.client
    runtime.store().presence.listeners.add(_render)  # a set: once per store
    _open.setdefault(patient_id, {})[client.id] = viewer
    _renderers[client.id] = (client, render)
    client.on_delete(lambda: leave(patient_id, client.id))
    render()  # the joining page shows who is here at once
    _schedule(patient_id)


def leave(patient_id: str, client_id: str) -> None:
    _renderers.pop(client_id, None)
    here = _open.get(patient_id)
    if here is None or here.pop(client_id, None) is None:
        return
    if not here:
        del _open[patient_id]
    _schedule(patient_id)
