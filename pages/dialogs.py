"""Dialogs and toasts shared by every page: confirmations that name the consequence, dialogs that
keep what was typed, and toasts placed where they never cover a form's Save button.

Every dialog here is persistent (a backdrop tap or Escape does not close it): a tap beside a
half-written reason must not throw it away. Dialogs are created on the page's layout, outside any
section a push rebuilds, so a live update never closes one mid-edit.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from nicegui import ui
from nicegui.events import ValueChangeEventArguments

from dashboard.errors import InvalidInput, StoreError
from pages.frame import Heading

TOAST_SECONDS = 3.0


def toast(message: str, kind: str = "positive") -> None:
    """A short confirmation at the top of the screen (forms and their buttons sit below it)."""
    ui.notify(message, type=kind, position="top", timeout=int(TOAST_SECONDS * 1000), group=False)


def refused(exc: StoreError) -> None:
    """What the store said no with (a stale version's Conflict too), as a toast."""
    toast(exc.message, "negative")


def refused_at(exc: StoreError, fields: Mapping[str, ui.element]) -> None:
    """A refusal under the field the store named (its rule), else as a toast; what was typed stays."""
    field = fields.get(exc.field or "") if isinstance(exc, InvalidInput) else None
    if field is not None:
        field.error = exc.rule or exc.message  # type: ignore[attr-defined]
    else:
        refused(exc)


async def submit(call: Awaitable[object], *, done: str | None = None, field: ui.element | None = None) -> bool:
    """Runs one action with no form of its own (a tap, a confirmation, an Admin control); True once
    the store took it. Any refusal is said under `field`, or as a toast, and the page stays as it
    was; `done` is the toast on success."""
    try:
        await call
    except StoreError as exc:
        if field is not None:
            field.error = exc.message  # type: ignore[attr-defined]
        else:
            refused(exc)
        return False
    if done:
        toast(done)
    return True


@contextmanager
def dialog(title: str, *, width: str = "520px", mark: str = "") -> Iterator[ui.dialog]:
    """A persistent, named dialog (aria-labelledby its title) on the page's layout; the body goes
    inside the `with`. Close it with `dialog.close()`; it is deleted once closed, and the keyboard
    focus goes back to the control it was opened from."""
    client = ui.context.client
    with client.layout:
        box = ui.dialog().props("persistent")
        box.props(f'aria-labelledby="dlg-{box.id}"')  # Quasar puts it on its role="dialog" element
        with box, ui.card().classes("gap-3").style(f"min-width: min({width}, 92vw)"):
            Heading(title, 2).classes("text-lg font-semibold").props(f'id="dlg-{box.id}"')
            if mark:
                box.mark(mark)
            yield box
    def closed(event: ValueChangeEventArguments) -> None:
        if event.value:
            return
        box.delete()
        # Deleted at once, the dialog never runs Quasar's own hide (which would refocus): the
        # frame's script does it, after the deletion has reached the browser (pages/frame.py).
        client.run_javascript("window.otRefocus && window.otRefocus()")

    box.on_value_change(closed)


async def confirm(title: str, consequence: str, action: str, *, danger: bool = True) -> bool:
    """Asks before a destructive or access-changing action; True only for an explicit yes."""
    with dialog(title, width="460px", mark="confirm-dialog") as box:
        ui.label(consequence).classes("ot-muted").props("data-testid=confirm-consequence").mark("confirm-consequence")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: box.submit(False)).props("flat data-testid=confirm-cancel").mark("confirm-cancel")
            ui.button(action, on_click=lambda: box.submit(True)) \
                .props(f"unelevated color={'negative' if danger else 'primary'} data-testid=confirm-yes").mark("confirm-yes")
    return bool(await box)


def typed(fields: Iterable[ui.element]) -> bool:
    """Whether any of these fields holds text someone typed."""
    return any(str(getattr(f, "value", "") or "").strip() for f in fields)


def cancel_keeping_typed(box: ui.dialog, fields: Callable[[], Iterable[ui.element]],
                         on_discard: Callable[[], None] | None = None) -> Callable[[], None]:
    """A Cancel handler: closes at once when nothing was typed, else asks "Discard?" first."""
    async def cancel() -> None:
        if typed(fields()) and not await confirm("Discard what you typed?",
                                                 "The text in this dialog will be lost.", "Discard"):
            return
        if on_discard is not None:
            on_discard()
        box.close()

    return cancel  # type: ignore[return-value]
