"""The patient page's forms: score, session note, equipment check-out, and the status, addendum and
mark-in-error dialogs.

Each form is built once and never rebuilt by a push (the live regions beside it are). What is typed
is a draft on the device (pages/drafts.py) until the store confirms the save; a save carries that
draft's idempotency key, so one sent twice after a lost connection is stored once. After a save the
form clears quietly and the cursor goes back to its first field; on an error the values stay and the
message shows under the field the store named.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any

from nicegui import ui

from dashboard.errors import Conflict, InvalidInput, RepeatedRequest, StoreError
from dashboard.record_types import NoteRecord, ScoreRecord
from dashboard.schema import CLASSES
from pages import dialogs
from pages.display import datetime_text, short_name
from pages.drafts import Draft, Drafts, new_key

if TYPE_CHECKING:
    from pages.patient import PatientView

NOTE_LIMIT = CLASSES["SessionNote"]["noteText"].max_length
COMMENT_LIMIT = 2000
REASON_LIMIT = 2000  # the store's changeReason rule (Store.update)
NAME_LIMIT = CLASSES["EquipmentLog"]["equipmentName"].max_length
SERIAL_LIMIT = CLASSES["EquipmentLog"]["serialNumber"].max_length


def too_long(value: str | None, limit: int) -> str | None:
    """Never cut silently: over the limit is an error under the field, with both numbers."""
    length = len(value or "")
    return f"At most {limit:,} characters: this has {length:,}. Shorten it to save." if length > limit else None


def counted(element: ui.element, limit: int) -> ui.element:
    """A character counter under the field, and the limit said before it is reached."""
    return element.props(f'counter hint="Up to {limit:,} characters"')


def label_to_key(options: dict[str, str], label: Any) -> str | None:
    return next((k for k, v in options.items() if v == label), None)


async def stored(call: Awaitable[object], fields: dict[str, ui.element], fallback: ui.element, *,
                 on_conflict: Callable[[Conflict], None] = dialogs.refused) -> bool:
    """Runs one save; True once it is stored. A refusal shows under the field the store named (else
    under the form's main field), a stale version through `on_conflict`, or as a toast when no field
    is to blame; the values stay."""
    try:
        await call
    except RepeatedRequest:
        return True  # this very save reached the store before (its answer was lost): stored once
    except Conflict as exc:
        on_conflict(exc)
        return False
    except InvalidInput as exc:
        fields.get(exc.field or "", fallback).error = exc.rule or exc.message  # type: ignore[attr-defined]
        return False
    except StoreError as exc:
        dialogs.refused(exc)
        return False
    return True


class ScoreForm:
    """Measure, value, date (back-dating) and comment; Enter in Value or Comment saves."""

    name = "score"

    def __init__(self, view: PatientView) -> None:
        self.view = view
        measures = view.catalogue.measures
        self.options = {k: f"{m.name} — {m.range_text}" for k, m in measures.items()}
        with view.drafts.form(ui.column().classes("w-full gap-1"), self.name):
            with ui.row().classes("w-full items-start gap-2"):
                self.measure = Drafts.field(
                    ui.select(self.options, label="Measure", value="barthel").props("outlined")
                    .classes("grow").style("min-width: 240px").mark("score-measure"), "measure", text=False)
                self.value = Drafts.field(
                    ui.number("Value", validation=self.value_problem).props(
                        "outlined inputmode=decimal data-testid=score-value")
                    .style("width: 150px").mark("score-value"), "value")
            ui.label().bind_text_from(self.measure, "value", lambda k: f"Valid: {measures[k].range_text}; "
                                      f"{measures[k].better} is better" if k in measures else "") \
                .classes("ot-muted text-sm")
            with ui.row().classes("w-full items-start gap-2"):
                self.day = Drafts.field(
                    ui.input("Date of assessment", value=date.today().isoformat(), validation=self.day_problem)
                    .props(f"outlined type=date max={date.today().isoformat()}").style("width: 180px")
                    .mark("score-date"), "date", text=False)
                self.comment = Drafts.field(
                    counted(ui.input("Comment (optional)", validation=lambda v: too_long(v, COMMENT_LIMIT))
                            .props("outlined").classes("grow").mark("score-comment"), COMMENT_LIMIT), "comment")
                self.button = ui.button("Save score", icon="add").props(
                    "unelevated color=primary data-testid=score-save").classes("ot-save") \
                    .style("height: 56px").mark("score-save")
        self.measure.on_value_change(lambda: self.value.validate())
        Drafts.save_on(self.button, self.name, self.save)
        Drafts.save_on(self.value, self.name, self.save, event="keydown.enter")
        Drafts.save_on(self.comment, self.name, self.save, event="keydown.enter")

    def value_problem(self, value: float | None) -> str | None:
        """Out of range or not a whole number shows as typed; empty is said only on save."""
        if value is None:
            return None
        measure = self.view.catalogue.measures.get(self.measure.value)
        if measure is None:
            return None
        try:
            measure.validate(int(value) if measure.integer and float(value) == int(value) else float(value))
        except InvalidInput as exc:
            return exc.rule
        return None

    @staticmethod
    def day_problem(value: str | None) -> str | None:
        if not value:
            return None
        try:
            chosen = date.fromisoformat(value)
        except ValueError:
            return "Enter a date"
        return "Cannot be in the future" if chosen > date.today() else None

    def score_date(self) -> datetime | None:
        """Today: now. An earlier day: midday of it, local time (the store keeps UTC)."""
        chosen = date.fromisoformat(self.day.value) if self.day.value else date.today()
        if chosen >= date.today():
            return None
        return datetime.combine(chosen, time(12, 0)).astimezone().astimezone(timezone.utc)

    def restore(self, draft: Draft) -> None:
        values = draft.values
        if (key := label_to_key(self.options, values.get("measure"))) is not None:
            self.measure.value = key
        raw = values.get("value")
        if isinstance(raw, str) and raw.strip():
            try:
                self.value.value = float(raw)
            except ValueError:
                pass
        if isinstance(values.get("date"), str) and self.day_problem(values["date"]) is None and values["date"]:
            self.day.value = values["date"]
        if isinstance(values.get("comment"), str):
            self.comment.value = values["comment"]

    async def save(self, key: str | None) -> bool:
        if self.value.value is None:
            self.value.error = "Enter a value"
            self.value.run_method("focus")
            return False
        if not (self.value.validate() and self.day.validate() and self.comment.validate()):
            return False
        raw = float(self.value.value)
        measure = self.measure.value
        if not await stored(self.view.store.record_score(
                principal=self.view.session.principal, patient_id=self.view.pid, score_type=measure,
                value=int(raw) if raw.is_integer() else raw, score_date=self.score_date(),
                notes=(self.comment.value or "").strip() or None, request_key=key or new_key()),
                {"scoreValue": self.value, "scoreDate": self.day, "notes": self.comment}, self.value):
            return False
        self.view.drafts.done(self.name, key)
        self.value.value = None
        self.value.error = None
        self.comment.value = ""
        self.day.value = date.today().isoformat()
        Drafts.focus_back(self.value, self.name)
        dialogs.toast(f"{short_name(measure)} score saved")
        return True


class NoteForm:
    """A session note: type, follow-up and text; the text keeps its line breaks (no Enter submit)."""

    name = "note"

    def __init__(self, view: PatientView) -> None:
        self.view = view
        self.types = {k: t.label for k, t in view.catalogue.vocabulary["sessionType"].items()}
        with view.drafts.form(ui.column().classes("w-full gap-2"), self.name):
            with ui.row().classes("w-full gap-2 items-center"):
                self.kind = Drafts.field(ui.select(self.types, label="Session type", value="treatment")
                                         .props("outlined").classes("grow").mark("note-type"), "type", text=False)
                self.follow = Drafts.field(ui.checkbox("Follow-up needed").mark("note-follow-up"), "follow",
                                           text=False)
            self.text = Drafts.field(counted(
                ui.textarea("Session note", validation=lambda v: too_long(v, NOTE_LIMIT))
                .props("outlined autogrow").classes("w-full").mark("note-text"), NOTE_LIMIT), "text")
            with ui.row().classes("w-full justify-end"):
                self.button = ui.button("Save note", icon="save").props("unelevated color=primary") \
                    .classes("ot-save").mark("note-save")
        Drafts.save_on(self.button, self.name, self.save)

    def restore(self, draft: Draft) -> None:
        if (key := label_to_key(self.types, draft.values.get("type"))) is not None:
            self.kind.value = key
        if isinstance(draft.values.get("follow"), bool):
            self.follow.value = draft.values["follow"]
        if isinstance(draft.values.get("text"), str):
            self.text.value = draft.values["text"]

    async def save(self, key: str | None) -> bool:
        if not (self.text.value or "").strip():
            self.text.error = "Write the note first"
            self.text.run_method("focus")
            return False
        if not self.text.validate():
            return False
        if not await stored(self.view.store.add_note(
                principal=self.view.session.principal, patient_id=self.view.pid, session_type=self.kind.value,
                text=self.text.value.strip(), follow_up=bool(self.follow.value), request_key=key or new_key()),
                {"noteText": self.text, "sessionType": self.kind}, self.text):
            return False
        self.view.drafts.done(self.name, key)
        self.text.value = ""
        self.text.error = None
        self.follow.value = False
        Drafts.focus_back(self.kind, self.name)
        dialogs.toast("Note saved")
        return True


class EquipmentForm:
    """Check-out of one item: name and serial; Enter in either saves."""

    name = "equipment"

    def __init__(self, view: PatientView) -> None:
        self.view = view
        with view.drafts.form(ui.row().classes("w-full items-start gap-2"), self.name):
            self.item = Drafts.field(ui.input("Equipment", validation=lambda v: too_long(v, NAME_LIMIT))
                                     .props("outlined").classes("grow").mark("equipment-name"), "name")
            self.serial = Drafts.field(ui.input("Serial (optional)",
                                                validation=lambda v: too_long(v, SERIAL_LIMIT))
                                       .props("outlined").style("width: 190px").mark("equipment-serial"), "serial")
            self.button = ui.button("Check out", icon="output").props("unelevated color=primary") \
                .classes("ot-save").style("height: 56px").mark("equipment-check-out")
        Drafts.save_on(self.button, self.name, self.save)
        Drafts.save_on(self.item, self.name, self.save, event="keydown.enter")
        Drafts.save_on(self.serial, self.name, self.save, event="keydown.enter")

    def restore(self, draft: Draft) -> None:
        for field, element in (("name", self.item), ("serial", self.serial)):
            if isinstance(draft.values.get(field), str):
                element.value = draft.values[field]

    async def save(self, key: str | None) -> bool:
        if not (self.item.value or "").strip():
            self.item.error = "Name the equipment"
            self.item.run_method("focus")
            return False
        if not (self.item.validate() and self.serial.validate()):
            return False
        if not await stored(self.view.store.check_out_equipment(
                principal=self.view.session.principal, patient_id=self.view.pid, name=self.item.value.strip(),
                serial_number=(self.serial.value or "").strip() or None, request_key=key or new_key()),
                {"equipmentName": self.item, "serialNumber": self.serial}, self.item):
            return False
        self.view.drafts.done(self.name, key)
        self.item.value = self.serial.value = ""
        self.item.error = None
        Drafts.focus_back(self.item, self.name)
        dialogs.toast("Checked out")
        return True


def _notice(host: ui.column, text: str, mark: str) -> None:
    """Beside the form: what changed while it was open. The typed text stays."""
    host.clear()
    with host, ui.row().classes("w-full items-start gap-2 p-3 rounded-lg no-wrap").style(
            "background:#fff4e5;color:#6b3f00").props('role="status"').mark(mark):
        ui.icon("warning", size="20px")
        ui.label(text)


class StatusDialog:
    """Change of mobility status with its required reason. A push that changes the status while it
    is open is said beside the form; the reason typed stays."""

    name = "status"

    def __init__(self, view: PatientView, draft: Draft | None = None) -> None:
        self.view = view
        self.version = view.patient.version
        self.statuses = {k: t.label for k, t in view.catalogue.vocabulary["mobilityStatus"].items()}
        with dialogs.dialog("Change mobility status", mark="status-dialog") as self.box:
            self.current = ui.label().classes("ot-muted")
            self.notice = ui.column().classes("w-full")
            with view.drafts.form(ui.column().classes("w-full gap-3"), self.name):
                self.choice = Drafts.field(
                    ui.select(self.statuses, label="New status", value=view.patient.mobility_status)
                    .props("outlined data-testid=status-select").classes("w-full").mark("status-select"),
                    "status", text=False)
                self.reason = Drafts.field(counted(
                    ui.textarea("Reason (required)", validation=lambda v: too_long(v, REASON_LIMIT))
                    .props("outlined autogrow data-testid=status-reason").classes("w-full")
                    .mark("status-reason"), REASON_LIMIT), "reason")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialogs.cancel_keeping_typed(
                    self.box, lambda: [self.reason], lambda: self.view.drafts.discard(self.name))).props("flat data-testid=status-cancel") \
                    .mark("status-cancel")
                save = ui.button("Save status", icon="check").props(
                    "unelevated color=primary data-testid=status-save").classes("ot-save").mark("status-save")
        Drafts.save_on(save, self.name, self.save)
        self.choice.on_value_change(lambda: setattr(self.choice, "error", None))
        self.show_current()
        if draft is not None:
            if (key := label_to_key(self.statuses, draft.values.get("status"))) is not None:
                self.choice.value = key
            if isinstance(draft.values.get("reason"), str):
                self.reason.value = draft.values["reason"]
        self.box.on_value_change(lambda e: None if e.value else view.dialog_closed(self))
        self.box.open()

    def show_current(self) -> None:
        self.current.text = f"Current: {self.statuses.get(self.view.patient.mobility_status, '')}"

    def patient_changed(self, by: str) -> None:
        """The status changed under the open dialog (a push): say so; keep the choice and reason."""
        if self.view.patient.version == self.version:
            return
        self.version = self.view.patient.version
        now = self.statuses.get(self.view.patient.mobility_status, "")
        self.show_current()
        _notice(self.notice, f"{by} changed the status to {now} while this was open. Your reason is kept: "
                             "check the new status, then save again if your change is still right.",
                "status-stale")

    def conflict(self, exc: Conflict) -> None:
        """Someone saved first: nothing was saved here; say so, keep the reason, and let a second
        save (knowing the current status) go through."""
        self.version = exc.current_version
        now = self.statuses.get(str(exc.current), str(exc.current))
        self.current.text = f"Current: {now}"
        _notice(self.notice, f"Someone else changed the status to {now} while this dialog was open. "
                             "Nothing was saved. Review the current status and save again if your "
                             "change is still right.", "status-conflict")

    async def save(self, key: str | None) -> bool:
        if self.choice.value == self.view.patient.mobility_status:
            self.choice.error = "This is already the current status: choose another"
            return False
        if not (self.reason.value or "").strip():
            self.reason.error = "A reason is required"
            self.reason.run_method("focus")
            return False
        if not self.reason.validate():
            return False
        if not await stored(self.view.store.change_status(
                principal=self.view.session.principal, patient_id=self.view.pid, status=self.choice.value,
                reason=self.reason.value.strip(), expected_version=self.version, request_key=key or new_key()),
                {"mobilityStatus": self.choice, "changeReason": self.reason}, self.reason,
                on_conflict=self.conflict):
            return False
        self.view.drafts.done(self.name, key)
        self.box.close()
        dialogs.toast(f"Status changed to {self.statuses.get(self.choice.value, '')}")
        return True


class AddendumDialog:
    """An addendum to a note: its text only (the note's session type is kept). A push that adds
    another addendum to the same note while it is open is said beside the form."""

    def __init__(self, view: PatientView, note: NoteRecord, draft: Draft | None = None) -> None:
        self.view = view
        self.note = note
        self.name = f"addendum:{note.id}"
        self.seen = view.addenda_of(note.id)
        with dialogs.dialog("Add an addendum", width="560px", mark="addendum-dialog") as self.box:
            ui.label(f"To the note of {datetime_text(note.session_date)} by {view.name_of(note.author_id)}. "
                     "Notes are never edited; an addendum is kept under the note it corrects.") \
                .classes("ot-muted")
            self.notice = ui.column().classes("w-full")
            with view.drafts.form(ui.column().classes("w-full"), self.name):
                self.text = Drafts.field(counted(
                    ui.textarea("Addendum", validation=lambda v: too_long(v, NOTE_LIMIT))
                    .props("outlined autogrow").classes("w-full").mark("addendum-text"), NOTE_LIMIT), "text")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialogs.cancel_keeping_typed(
                    self.box, lambda: [self.text], lambda: self.view.drafts.discard(self.name))).props("flat data-testid=addendum-cancel") \
                    .mark("addendum-cancel")
                save = ui.button("Save addendum", icon="save").props("unelevated color=primary") \
                    .classes("ot-save").mark("addendum-save")
        Drafts.save_on(save, self.name, self.save)
        if draft is not None and isinstance(draft.values.get("text"), str):
            self.text.value = draft.values["text"]
        self.box.on_value_change(lambda e: None if e.value else view.dialog_closed(self))
        self.box.open()

    def notes_changed(self) -> None:
        now = self.view.addenda_of(self.note.id)
        new = [n for n in now if n.id not in {s.id for s in self.seen}]
        if not new:
            return
        self.seen = now
        latest = new[-1]
        _notice(self.notice, f"{self.view.name_of(latest.author_id)} added an addendum to this note at "
                             f"{datetime_text(latest.created_at)} while you were writing. Your text is kept: "
                             "read theirs under the note before saving.", "addendum-stale")

    async def save(self, key: str | None) -> bool:
        if not (self.text.value or "").strip():
            self.text.error = "Write the addendum first"
            return False
        if not self.text.validate():
            return False
        if not await stored(self.view.store.add_note(
                principal=self.view.session.principal, patient_id=self.view.pid,
                session_type=self.note.session_type, text=self.text.value.strip(), amends=self.note.id,
                request_key=key or new_key()), {"noteText": self.text}, self.text):
            return False
        self.view.drafts.done(self.name, key)
        self.box.close()
        dialogs.toast("Addendum saved")
        return True


class MarkErrorDialog:
    """Marks a score entered in error, with a required reason."""

    def __init__(self, view: PatientView, score: ScoreRecord, draft: Draft | None = None) -> None:
        self.view = view
        self.score = score
        self.name = f"error:{score.id}"
        with dialogs.dialog("Mark score entered in error", width="460px", mark="error-dialog") as self.box:
            ui.label("The score stays in the record, struck through, with your reason.").classes("ot-muted")
            with view.drafts.form(ui.column().classes("w-full"), self.name):
                self.reason = Drafts.field(ui.input("Reason (required)",
                                                    validation=lambda v: too_long(v, REASON_LIMIT))
                                           .props("outlined").classes("w-full").mark("error-reason"), "reason")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialogs.cancel_keeping_typed(
                    self.box, lambda: [self.reason], lambda: self.view.drafts.discard(self.name))).props("flat")
                save = ui.button("Mark in error").props("unelevated color=negative").mark("error-save")
        Drafts.save_on(save, self.name, self.save)
        Drafts.save_on(self.reason, self.name, self.save, event="keydown.enter")
        if draft is not None and isinstance(draft.values.get("reason"), str):
            self.reason.value = draft.values["reason"]
        self.box.open()

    async def save(self, key: str | None) -> bool:
        if not (self.reason.value or "").strip():
            self.reason.error = "A reason is required"
            return False
        if not self.reason.validate():
            return False
        if not await stored(self.view.store.mark_score_in_error(
                principal=self.view.session.principal, score_id=self.score.id, reason=self.reason.value.strip(),
                request_key=key or new_key()), {"errorReason": self.reason}, self.reason):
            return False
        self.view.drafts.done(self.name, key)
        self.box.close()
        dialogs.toast("Marked entered in error")
        return True
