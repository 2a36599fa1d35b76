"""Admitting, editing and discharging a patient: the caseload's "Admit patient" dialog, and the
patient page's "Edit profile" and "Discharge" dialogs with the discharged banner.

Each dialog is persistent and named (pages/dialogs.py), lives on the page's layout (a push never
rebuilds it), and calls the store, which decides: a refusal shows under the field the store named,
and every value typed stays. Who sees which button is the store's answer (`permissions`).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from nicegui import ui

from dashboard.access import Role
from dashboard.errors import Conflict, NotFound, StoreError
from dashboard.record_types import PatientRecord, UserRecord
from dashboard.schema import CLASSES
from dashboard.store.rules import Permissions
from pages import auth, dialogs
from pages.patient_forms import REASON_LIMIT, counted, stored, too_long

if TYPE_CHECKING:
    from pages.patient import PatientView

NAME_LIMIT = CLASSES["Patient"]["displayName"].max_length
ID_LIMIT = CLASSES["Patient"]["patientId"].max_length
BED_LIMIT = CLASSES["Patient"]["bed"].max_length


def day_problem(value: str | None, *, required: bool = False) -> str | None:
    """A date field's own rule, shown as typed (the store checks again on save)."""
    if not value:
        return "Enter a date" if required else None
    try:
        chosen = date.fromisoformat(value)
    except ValueError:
        return "Enter a date"
    return "Cannot be in the future" if chosen > date.today() else None


def birth_moment(value: str | None) -> datetime | None:
    """A date of birth as the store keeps it: midnight UTC of that day."""
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc) if value else None


def birth_text(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).date().isoformat() if moment else ""


async def therapist_options(session: auth.PageSession, perms: Permissions) -> dict[str, str]:
    """Who may be the primary therapist: any active therapist for a lead; a therapist admits as itself."""
    if perms.role == Role.THERAPIST:
        return {perms.user_id: session.username}
    users: list[UserRecord] = await session.store.list_users(principal=session.principal)
    return {u.id: u.username for u in users if u.role == Role.THERAPIST and u.active is not False}


def text_field(label: str, limit: int, value: str = "", mark: str = "") -> ui.input:
    return counted(ui.input(label, value=value, validation=lambda v: too_long(v, limit))
                   .props(f"outlined data-testid={mark}").classes("w-full").mark(mark), limit)


def date_field(label: str, value: str, mark: str, *, required: bool = False) -> ui.input:
    return ui.input(label, value=value, validation=lambda v: day_problem(v, required=required)) \
        .props(f"outlined type=date max={date.today().isoformat()} data-testid={mark}").classes("w-full").mark(mark)


def valid(fields: list[ui.element]) -> bool:
    """Every field's own rule, all of them said at once (not only the first)."""
    return all([f.validate() for f in fields if hasattr(f, "validate")])


def keep_with(view: PatientView, dialog: ProfileDialog | DischargeDialog) -> None:
    """The page closes its open dialogs when access ends (nothing of the patient stays on screen)."""
    view.open_dialogs.append(dialog)  # type: ignore[arg-type]
    dialog.box.on_value_change(lambda e: None if e.value else view.dialog_closed(dialog))  # type: ignore[arg-type]


class AdmitDialog:
    """A new patient: identifier, name, date of birth, mobility status, primary therapist."""

    def __init__(self, session: auth.PageSession, therapists: dict[str, str], *,
                 on_admitted: Callable[[PatientRecord], None] | None = None) -> None:
        self.session = session
        self.on_admitted = on_admitted
        statuses = {k: t.label for k, t in session.store.catalogue.vocabulary["mobilityStatus"].items()}
        with dialogs.dialog("Admit patient", mark="admit-dialog") as self.box:
            self.patient_id = text_field("Hospital identifier (patientId)", ID_LIMIT, mark="admit-patient-id")
            self.name = text_field("Display name", NAME_LIMIT, mark="admit-name")
            self.bed = text_field("Bed, bay or room (optional)", BED_LIMIT, mark="admit-bed")
            self.birth = date_field("Date of birth (optional)", "", "admit-birth")
            self.status = ui.select(statuses, label="Mobility status", value=next(iter(statuses))) \
                .props("outlined data-testid=admit-status").classes("w-full").mark("admit-status")
            only = next(iter(therapists)) if len(therapists) == 1 else None
            self.therapist = ui.select(therapists, label="Primary therapist", value=only) \
                .props("outlined data-testid=admit-therapist").classes("w-full").mark("admit-therapist")
            if only is not None and session.permissions().role == Role.THERAPIST:
                self.therapist.disable()  # a therapist admits as its own primary therapist
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialogs.cancel_keeping_typed(
                    self.box, lambda: [self.patient_id, self.name, self.bed, self.birth])) \
                    .props("flat").mark("admit-cancel")
                ui.button("Admit", icon="person_add", on_click=self.save) \
                    .props("unelevated color=primary data-testid=admit-save").classes("ot-save").mark("admit-save")
        for f in (self.status, self.therapist):
            f.on_value_change(lambda e, f=f: setattr(f, "error", None))
        self.box.open()

    @property
    def fields(self) -> dict[str, ui.element]:
        return {"patientId": self.patient_id, "displayName": self.name, "dateOfBirth": self.birth,
                "mobilityStatus": self.status, "primaryTherapist": self.therapist, "bed": self.bed}

    async def save(self) -> bool:
        if not valid([self.patient_id, self.name, self.bed, self.birth]):
            return False
        for field in (self.patient_id, self.name):
            if not (field.value or "").strip():
                field.error = "Required"
        if not self.therapist.value:
            self.therapist.error = "Choose the primary therapist"
        if any(getattr(f, "error", None) for f in self.fields.values()):
            return False
        fields: dict[str, object] = {
            "patientId": self.patient_id.value.strip(), "displayName": self.name.value.strip(),
            "mobilityStatus": self.status.value, "primaryTherapist": self.therapist.value}
        if self.birth.value:
            fields["dateOfBirth"] = birth_moment(self.birth.value)
        if (self.bed.value or "").strip():
            fields["bed"] = self.bed.value.strip()
        created: list[PatientRecord] = []

        async def admit() -> None:
            created.append(await self.session.store.create(principal=self.session.principal,
                                                           class_name="Patient", fields=fields))

        if not await stored(admit(), self.fields, self.patient_id):
            return False
        self.box.close()
        dialogs.toast("Patient admitted")
        if self.on_admitted is not None and created:
            self.on_admitted(created[0])
        return True


class ProfileDialog:
    """Name and date of birth (a lead or the owning therapist); identifier and primary therapist (a
    lead). Only what changed is sent, with the version the dialog opened on."""

    def __init__(self, view: PatientView, therapists: dict[str, str]) -> None:
        self.view = view
        p = view.patient
        self.version = p.version
        self.lead = view.perms.can_assign
        with dialogs.dialog("Edit profile", mark="profile-dialog") as self.box:
            self.notice = ui.label().classes("text-sm").style("color: #8a1c1c").mark("profile-notice")
            self.name = text_field("Display name", NAME_LIMIT, p.display_name, "profile-name")
            self.birth = date_field("Date of birth", birth_text(p.date_of_birth), "profile-birth")
            self.bed = text_field("Bed, bay or room", BED_LIMIT, p.bed or "", "profile-bed")
            self.patient_id = self.therapist = None
            if self.lead:
                self.patient_id = text_field("Hospital identifier (patientId)", ID_LIMIT, p.patient_id or "",
                                             "profile-patient-id")
                self.therapist = ui.select(therapists, label="Primary therapist", value=p.primary_therapist_id) \
                    .props("outlined").classes("w-full").mark("profile-therapist")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.cancel).props("flat").mark("profile-cancel")
                ui.button("Save profile", icon="check", on_click=self.save) \
                    .props("unelevated color=primary").classes("ot-save").mark("profile-save")
        keep_with(view, self)
        self.box.open()

    def changes(self) -> dict[str, object]:
        """What differs from the patient as the page shows it (only that is sent)."""
        p = self.view.patient
        changes: dict[str, object] = {}
        if (self.name.value or "").strip() != p.display_name:
            changes["displayName"] = (self.name.value or "").strip()
        if (self.bed.value or "").strip() != (p.bed or ""):
            changes["bed"] = (self.bed.value or "").strip() or None  # emptied: no bed
        if (self.birth.value or "") != birth_text(p.date_of_birth):
            try:
                changes["dateOfBirth"] = birth_moment(self.birth.value)
            except ValueError:  # not a date: a save refuses it under the field before sending
                changes["dateOfBirth"] = self.birth.value
        if self.patient_id is not None and (self.patient_id.value or "").strip() != (p.patient_id or ""):
            changes["patientId"] = (self.patient_id.value or "").strip()
        if self.therapist is not None and self.therapist.value != p.primary_therapist_id:
            changes["primaryTherapist"] = self.therapist.value
        return changes

    async def cancel(self) -> None:
        if self.changes() and not await dialogs.confirm("Discard your changes?",
                                                        "The changes in this dialog will be lost.", "Discard"):
            return
        self.box.close()

    async def save(self) -> bool:
        if not valid([self.name, self.bed, self.birth, *([self.patient_id] if self.patient_id else [])]):
            return False
        changes = self.changes()
        if "primaryTherapist" in changes:
            if not await dialogs.confirm(
                    "Change the primary therapist?", "The previous therapist loses access to this patient at "
                    "once, unless they are on its care team.", "Change therapist"):
                return False
        if not changes:
            self.box.close()
            return True
        fields = {"displayName": self.name, "dateOfBirth": self.birth, "bed": self.bed}
        if self.patient_id is not None and self.therapist is not None:
            fields |= {"patientId": self.patient_id, "primaryTherapist": self.therapist}
        if not await stored(self.view.store.update(
                principal=self.view.session.principal, class_name="Patient", object_id=self.view.pid,
                changes=changes, expected_version=self.version), fields, self.name, on_conflict=self.conflict):
            return False
        self.box.close()
        dialogs.toast("Profile saved")
        return True

    def conflict(self, exc: Conflict) -> None:
        """Someone saved first: nothing was saved; say so and keep what was typed for a second save."""
        self.version = exc.current_version
        self.notice.text = ("Someone else changed this patient while the dialog was open. Nothing was saved; "
                            "check the page behind and save again if your change is still right.")


class DischargeDialog:
    """The discharge date (today unless changed) and a required reason."""

    def __init__(self, view: PatientView) -> None:
        self.view = view
        self.version = view.patient.version
        with dialogs.dialog("Discharge patient", mark="discharge-dialog") as self.box:
            ui.label("The patient leaves the caseload and the ward screen for everyone; the record stays "
                     "readable under Discharged on the caseload.").classes("ot-muted")
            self.notice = ui.label().classes("text-sm").style("color: #8a1c1c").mark("discharge-notice")
            self.day = date_field("Discharge date", date.today().isoformat(), "discharge-date", required=True)
            self.reason = counted(ui.textarea("Reason (required)", validation=lambda v: too_long(v, REASON_LIMIT))
                                  .props("outlined autogrow data-testid=discharge-reason").classes("w-full")
                                  .mark("discharge-reason"),
                                  REASON_LIMIT)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialogs.cancel_keeping_typed(self.box, lambda: [self.reason])) \
                    .props("flat").mark("discharge-cancel")
                ui.button("Discharge", icon="logout", on_click=self.save) \
                    .props("unelevated color=negative data-testid=discharge-save").classes("ot-save") \
                    .mark("discharge-save")
        keep_with(view, self)
        self.box.open()

    async def save(self) -> bool:
        if not valid([self.day, self.reason]):
            return False
        if not (self.reason.value or "").strip():
            self.reason.error = "A reason is required"
            return False
        if not await stored(self.view.store.discharge_patient(
                principal=self.view.session.principal, patient_id=self.view.pid, reason=self.reason.value,
                date=date.fromisoformat(self.day.value), expected_version=self.version),
                {"date": self.day, "reason": self.reason, "archived": self.day}, self.reason,
                on_conflict=self.conflict):
            return False
        self.box.close()
        dialogs.toast("Patient discharged")
        return True

    def conflict(self, exc: Conflict) -> None:
        self.version = exc.current_version
        self.notice.text = ("Someone else changed this patient while the dialog was open. Nothing was saved; "
                            "your reason is kept. Save again if the discharge is still right.")


class ProfileControls:
    """The patient page's "Edit profile" and "Discharge" buttons and its discharged banner."""

    def __init__(self, view: PatientView) -> None:
        self.view = view
        with ui.row().classes("items-center gap-2"):
            self.edit = ui.button("Edit profile", icon="edit", on_click=self.open_profile) \
                .props("outline color=primary data-testid=edit-profile").mark("edit-profile")
            self.discharge = ui.button("Discharge", icon="logout", on_click=self.open_discharge) \
                .props("outline color=negative data-testid=discharge").mark("discharge")
        self.show()

    def build_banner(self) -> None:
        """Under the header: said only for a discharged patient."""
        self.banner = ui.row().classes("w-full items-center gap-2").props("data-testid=discharged-banner") \
            .mark("discharged-banner")
        self.banner.set_visibility(False)

    def show(self) -> None:
        """The buttons as the store's answer allows, for an admitted patient only."""
        admitted = not self.view.patient.archived
        self.edit.set_visibility(admitted and self.view.perms.can_manage)
        self.discharge.set_visibility(admitted and self.view.perms.can_assign)

    async def refresh_banner(self) -> None:
        if not hasattr(self, "banner"):
            return
        self.show()
        if not self.view.patient.archived:
            self.banner.set_visibility(False)
            return
        try:
            found = await self.view.store.discharge_of(principal=self.view.session.principal,
                                                      patient_id=self.view.pid, live_refresh=self.view.opened)
        except (NotFound, StoreError):
            return  # the page's own access handling says so
        self.banner.clear()
        with self.banner:
            ui.icon("logout", size="20px").classes("text-negative")
            when = found.on.strftime("%d %b %Y") if found and found.on else "—"
            ui.label(f"Discharged on {when}" + (f": {found.reason}" if found and found.reason else "")) \
                .classes("font-medium").mark("discharged-text")
        self.banner.set_visibility(True)

    async def open_profile(self) -> None:
        therapists = await therapist_options(self.view.session, self.view.perms) if self.view.perms.can_assign else {}
        ProfileDialog(self.view, therapists)

    def open_discharge(self) -> None:
        DischargeDialog(self.view)
