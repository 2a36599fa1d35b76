"""Drafts kept on the device: the server's side of assets/drafts.js.

The browser writes each form's draft to its own storage as it is typed (per user and patient), so a
push, a reload, a server restart or the idle lock never loses it. The page reads the drafts back
once connected, puts them into the fields and clears each one when its save is confirmed. A save
carries the draft's idempotency key: a save sent twice (tapped offline, answered after the
connection dropped) is stored once. Drafts travel only over the page's socket: never in a URL or
a log line.
"""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nicegui import app, ui

ASSETS = Path(__file__).parent / "assets"
ASSET_PATH = "/ot-assets"
KEY = re.compile(r"^[0-9a-f]{32}$")
FORM = re.compile(r"^[a-z]+(:[A-Za-z0-9_-]{1,32})?$")
MAX_VALUE = 25_000  # a little over the longest text the store takes: longer is refused by the form
LOAD_SECONDS = 5.0

Save = Callable[[str | None], Awaitable[bool]]  # True once stored


@dataclass(frozen=True)
class Draft:
    key: str
    values: dict[str, str | bool] = field(default_factory=dict)
    queued: bool = False


def install() -> None:
    """Serves the script and loads it on every page (sign-out clears drafts from any page)."""
    app.add_static_files(ASSET_PATH, ASSETS)
    version = int((ASSETS / "drafts.js").stat().st_mtime)
    ui.add_head_html(f'<script src="{ASSET_PATH}/drafts.js?v={version}"></script>', shared=True)


def new_key() -> str:
    return secrets.token_hex(16)


def key_from(args: Any) -> str | None:
    """The idempotency key a save click sent, if it is one the script makes."""
    return args if isinstance(args, str) and KEY.match(args) else None


def _draft(raw: Any) -> Draft | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not KEY.match(raw["key"]):
        return None
    values = raw.get("values") if isinstance(raw.get("values"), dict) else {}
    kept = {str(k)[:40]: v for k, v in values.items()
            if isinstance(v, bool) or (isinstance(v, str) and len(v) <= MAX_VALUE)}
    return Draft(raw["key"], kept, raw.get("queued") is True)


class Drafts:
    """One page's drafts: `scope` is the user and the patient they belong to."""

    def __init__(self, user_id: str, patient_id: str) -> None:
        self.scope = f"{user_id}:{patient_id}"
        # Drafts this page saw saved or discarded: a read of the device's drafts that crossed the
        # save on the wire still holds them, and must not put the saved text back in the field.
        self.settled: set[str] = set()

    def form(self, element: ui.element, name: str) -> ui.element:
        """The element holding one form's fields; its scope lets typing be kept before the page
        has even connected."""
        return element.props(f"data-draft-form={name} data-draft-scope={self.scope}")

    @staticmethod
    def field(element: ui.element, name: str, *, text: bool = True) -> ui.element:
        return element.props(f"data-draft-field={name}" + (" data-draft-text" if text else ""))

    @staticmethod
    def save_on(element: ui.element, form: str, save: Save, *, event: str = "click") -> ui.element:
        """`save(key)` runs on `event`; the key is the draft's (or None when nothing was typed).
        Offline, the tap queues the draft on the device; socket.io sends the tap on reconnect."""
        element.on(event, lambda e: save(key_from(e.args)),
                   js_handler=f"() => emit(window.OTDrafts ? window.OTDrafts.submit({json.dumps(form)}) : null)")
        if event == "click":
            element.props(f"data-draft-save={form}")
        return element

    async def load(self) -> dict[str, Draft]:
        """This user's drafts for this patient, from the browser (once the page is connected)."""
        try:
            raw = await ui.run_javascript(f"window.OTDrafts ? window.OTDrafts.load({json.dumps(self.scope)}) : {{}}",
                                          timeout=LOAD_SECONDS)
        except TimeoutError:
            return {}
        if not isinstance(raw, dict):
            return {}
        drafts = {}
        for name, value in raw.items():
            if isinstance(name, str) and FORM.match(name) and (draft := _draft(value)) is not None \
                    and draft.key not in self.settled:
                drafts[name] = draft
        return drafts

    @staticmethod
    def ready() -> None:
        ui.run_javascript("window.OTDrafts && window.OTDrafts.ready()")

    def done(self, form: str, key: str | None) -> None:
        if key is not None:
            self.settled.add(key)
        ui.run_javascript(f"window.OTDrafts && window.OTDrafts.done({json.dumps(form)}, {json.dumps(key)})")

    @staticmethod
    def focus_back(element: ui.element, form: str) -> None:
        """After a save the cursor goes back to the form's first field, unless the user has moved
        on to a field elsewhere meanwhile: a save answered late never pulls the cursor (and what
        is being typed) out of another form."""
        ui.run_javascript(f"window.OTDrafts && window.OTDrafts.focusBack({json.dumps(form)}, 'c{element.id}')")

    @staticmethod
    def unqueue(form: str) -> None:
        """A queued save the store refused: the draft stays, waiting for the user, not resent."""
        ui.run_javascript(f"window.OTDrafts && window.OTDrafts.unqueue({json.dumps(form)})")

    def discard(self, form: str) -> None:
        ui.run_javascript(f"window.OTDrafts && window.OTDrafts.discard({json.dumps(form)})")
