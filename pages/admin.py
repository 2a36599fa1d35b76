"""Admin, for leads only: accounts (create, role, deactivate, unlock, ward names) and assignment.

The create form keeps what was typed on an error and shows each problem under its field. Every
change that takes access away or widens who sees names asks first, naming the consequence
(deactivating, a role, a primary therapist, a ward screen's full names); on Cancel the control
shows its old value again.
"""
from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui
from nicegui.events import ValueChangeEventArguments

from dashboard.access import Role
from dashboard.errors import InvalidInput, MissingField, NotAuthenticated, StoreError, Taken
from dashboard.record_types import UserRecord
from dashboard.store import CaseloadRow
from pages import auth
from pages.dialogs import cancel_keeping_typed, confirm, dialog, submit, toast
from pages.frame import PAGE_BUILD_TIMEOUT, ROLE_LABELS, frame, page_title, section

router = APIRouter()
PAGE_SIZE = 20

CSS = """
/* The last column holds Unlock, Reset password, Sign out everywhere and Deactivate. */
.ad-row { display: grid; grid-template-columns: minmax(140px, 1.2fr) minmax(160px, 1.4fr) 170px 130px 250px;
  gap: 10px; align-items: center; padding: 8px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.ad-pt { display: grid; grid-template-columns: minmax(160px, 1.3fr) 150px minmax(180px, 1fr); gap: 10px;
  align-items: center; padding: 8px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.ad-head { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--ot-muted); font-weight: 600; }
@media (max-width: 1023px) { .ad-row { grid-template-columns: minmax(110px, 1fr) 150px 120px 250px; }
  .ad-row > .c-email { display: none; } }
"""

# What each role sees (ACCESS.md), and what stepping down from it takes away.
ROLE_SEES = {
    Role.LEAD: "every patient and every record, and use Admin (accounts, roles and assignment)",
    Role.THERAPIST: "the patients they are primary therapist of and those whose care team they are on",
    Role.CONTRIBUTOR: "only the patients whose care team they are on",
    Role.VIEWER: "only the patients whose care team it is on, without session notes, and change nothing",
}
ROLE_LOSES = {
    Role.LEAD: "Admin and every patient they are neither primary therapist of nor on the care team of",
    Role.THERAPIST: "the patients they are primary therapist of, unless on the care team",
    Role.CONTRIBUTOR: "session notes and adding scores, notes and equipment",
}
RANK = (Role.VIEWER, Role.CONTRIBUTOR, Role.THERAPIST, Role.LEAD)
ROLE_OPTIONS = {r: ROLE_LABELS[r] for r in Role}


def role_consequence(username: str, old: str, new: str) -> str:
    """What a change of role does to that account, at once and on every open page."""
    lost = [ROLE_LOSES[r] for r in RANK[RANK.index(new) + 1: RANK.index(old) + 1] if r in ROLE_LOSES] \
        if old in RANK and new in RANK else []
    text = f"{username} will see {ROLE_SEES.get(new, 'what a ' + new + ' sees')}."
    return text + (f" {username} loses {'; and '.join(lost)}, at once." if lost else "")


class AdminView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.user_page = 1
        self.patient_page = 1
        self.usernames: dict[str, str] = {}  # every account's, for the reassign confirmation

    async def build(self) -> None:
        ui.add_css(CSS)
        page_title("Admin")
        self.create_card = section("Create an account", "person_add")
        with self.create_card, ui.row().classes("w-full items-start gap-2"):
            self.new = {
                "username": ui.input("Username").props("outlined").classes("grow").mark("new-username"),
                "email": ui.input("Email").props("outlined type=email").classes("grow").mark("new-email"),
                "password": ui.input("Initial password", password=True).props("outlined").classes("grow")
                .mark("new-password"),
                "role": ui.select(ROLE_OPTIONS, value=Role.CONTRIBUTOR, label="Role")
                .props("outlined").style("min-width: 160px").mark("new-role"),
            }
            for field in self.new.values():  # an edited field's error goes away
                field.on_value_change(lambda e: setattr(e.sender, "error", None))
            for name in ("username", "email", "password"):  # Enter in a single-line field creates
                self.new[name].on("keydown.enter", self.create)
            ui.button("Create", icon="add", on_click=self.create).props("unelevated color=primary") \
                .style("height:56px").mark("create-user")
        self.users_card = section("Accounts", "manage_accounts").mark("users")
        self.patients_card = section("Primary therapist assignment", "assignment_ind").mark("assignment")
        await self.render_users()
        await self.render_patients()

    async def create(self) -> None:
        """Creates the account; on a refusal every field keeps its value and shows its problems."""
        username, email, password = (self.new[n].value.strip() if n != "password" else self.new[n].value
                                     for n in ("username", "email", "password"))
        try:
            await self.store.create_user(principal=self.session.principal, username=username, email=email,
                                         password=password, role=self.new["role"].value)
        except (InvalidInput, Taken) as exc:
            problems = await self.store.new_account_problems(username=username, email=email, password=password)
            errors: dict[str, list[str]] = {}
            for problem in problems:
                errors.setdefault(problem.field, []).append(auth.problem_text(problem))
            errors.setdefault(exc.field, [auth.problem_text(exc)])  # a rule the check does not know
            for name, field in self.new.items():
                field.error = " ".join(errors[name]) if name in errors else None
            if not set(errors) & set(self.new):
                toast(exc.message, "negative")
            return
        except StoreError as exc:
            toast(exc.message, "negative")
            return
        for name in ("username", "email", "password"):
            self.new[name].value = ""
        for field in self.new.values():
            field.error = None
        self.new["username"].run_method("focus")
        toast(f"Account {username} created")
        await self.render_users()

    def _clear(self, card: ui.column) -> None:
        for child in list(card.default_slot.children)[1:]:
            card.remove(child)

    async def render_users(self) -> None:
        users = await self.store.list_users(principal=self.session.principal)
        pages = max(1, (len(users) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.user_page = min(self.user_page, pages)
        shown = users[(self.user_page - 1) * PAGE_SIZE: self.user_page * PAGE_SIZE]
        locks = {u.id: await self.store.lock_state(principal=self.session.principal, user_id=u.id) for u in shown}
        self._clear(self.users_card)
        with self.users_card:
            with ui.element("div").classes("ad-row ad-head"):
                for cls, text in (("", "User"), ("c-email", "Email"), ("", "Role"), ("", "State"), ("", "")):
                    ui.label(text).classes(cls)
            for user in shown:
                me = user.id == self.session.principal.user_id
                with ui.element("div").classes("ad-row").mark(f"user-{user.username}"):
                    with ui.column().classes("gap-0"):
                        ui.label(user.username).classes("font-medium")
                        if user.role == Role.VIEWER:  # a ward screen
                            ui.switch("Full names on ward", value=bool(user.show_full_names),
                                      on_change=lambda e, u=user: self.full_names(u, e)) \
                                .props("dense").classes("text-xs").mark(f"names-{user.username}")
                    ui.label(user.email or "").classes("c-email text-sm ot-muted")
                    ui.select(ROLE_OPTIONS, value=user.role,
                              on_change=lambda e, u=user: self.change_role(u, e)) \
                        .props("outlined dense" + (" disable" if me else "")).mark(f"role-{user.username}")
                    with ui.column().classes("gap-1"):
                        ui.badge("Active" if user.active else "Deactivated",
                                 color="green-1" if user.active else "grey-3",
                                 text_color="green-10" if user.active else "grey-8").props("rounded")
                        if locks[user.id]:
                            ui.badge(f"Locked · {locks[user.id]} min", color="red-1", text_color="red-10") \
                                .props("rounded").mark(f"locked-{user.username}")
                    with ui.row().classes("gap-1 no-wrap"):
                        if locks[user.id]:
                            ui.button(icon="lock_open", on_click=lambda u=user: self.unlock(u.id)) \
                                .props('flat round color=primary aria-label="Unlock"').tooltip("Unlock") \
                                .mark(f"unlock-{user.username}")
                        if not me:
                            ui.button(icon="key", on_click=lambda u=user: self.reset_password(u)) \
                                .props('flat round color=primary aria-label="Reset password"') \
                                .tooltip("Reset password").mark(f"reset-{user.username}")
                            ui.button(icon="logout", on_click=lambda u=user: self.sign_out(u)) \
                                .props('flat round color=primary aria-label="Sign out everywhere"') \
                                .tooltip("Sign out everywhere").mark(f"sign-out-{user.username}")
                            if user.active:
                                ui.button("Deactivate", on_click=lambda u=user: self.deactivate(u)) \
                                    .props("flat dense color=negative").mark(f"deactivate-{user.username}")
                            else:
                                ui.button("Reactivate", on_click=lambda u=user: self.change(
                                    u.id, {"active": True}, f"{u.username} can sign in again")) \
                                    .props("flat dense color=primary").mark(f"reactivate-{user.username}")
            if pages > 1:
                ui.pagination(1, pages, value=self.user_page, direction_links=True,
                              on_change=lambda e: self.users_to(e.value))

    async def users_to(self, page: int) -> None:
        self.user_page = page
        await self.render_users()

    async def change(self, user_id: str, changes: dict, done: str) -> None:
        await submit(self.store.update_user(principal=self.session.principal, user_id=user_id, changes=changes),
                     done=done)
        await self.render_users()
        if "role" in changes or "active" in changes:
            await self.render_patients()

    async def deactivate(self, user: UserRecord) -> None:
        if await confirm(f"Deactivate {user.username}?",
                         f"{user.username} is signed out everywhere and can no longer sign in.", "Deactivate"):
            await self.change(user.id, {"active": False}, f"{user.username} is deactivated")

    async def sign_out(self, user: UserRecord) -> None:
        """Ends the account's sessions: how a ward TV (no sign-out on screen) is signed out."""
        if not await confirm(f"Sign {user.username} out everywhere?",
                             f"Every open page and screen of {user.username} goes to the sign-in page.", "Sign out"):
            return
        ended: list[int] = []

        async def sign_out() -> None:
            ended.append(await self.store.sign_out_user(principal=self.session.principal, user_id=user.id))

        if await submit(sign_out()):
            toast(f"{user.username} is signed out ({ended[0]} session{'s' if ended[0] != 1 else ''} ended)")

    def reset_password(self, user: UserRecord) -> None:
        """A temporary password for another account: its sessions end at once, and its next sign-in
        must choose a new password before anything else. The lead tells the user the temporary one."""
        minimum = auth.settings().min_password_length
        with dialog(f"Reset {user.username}'s password", mark="reset-dialog") as box:
            ui.label(f"{user.username} is signed out everywhere at once, and must choose a new password "
                     "at the next sign-in with the temporary one you set here.").classes("ot-muted")
            field = ui.input(f"Temporary password (at least {minimum} characters)", password=True,
                             password_toggle_button=True).props('outlined autocomplete="new-password"') \
                .classes("w-full").mark("temporary-password")
            field.on_value_change(lambda e: setattr(e.sender, "error", None))

            async def reset() -> None:
                try:
                    ended = await self.store.accounts.reset_password(
                        principal=self.session.principal, user_id=user.id, temporary_password=field.value or "")
                except InvalidInput as exc:
                    field.error = (auth.MISSING["password"] if isinstance(exc, MissingField)
                                   else f"That password {exc.rule}.")
                    return
                except StoreError as exc:
                    toast(exc.message, "negative")
                    return
                toast(f"{user.username}'s password is reset; {ended} session{'s' if ended != 1 else ''} ended")
                box.close()  # after the toast: it is shown from this dialog's context

            field.on("keydown.enter", reset)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=cancel_keeping_typed(box, lambda: [field])).props("flat") \
                    .mark("reset-cancel")
                ui.button("Reset password", icon="key", on_click=reset).props("unelevated color=negative") \
                    .mark("reset-confirm")
        box.open()

    async def change_role(self, user: UserRecord, event: ValueChangeEventArguments) -> None:
        new = event.value
        if new == user.role:  # unchanged, or put back after a Cancel
            return
        label = ROLE_LABELS.get(new, new)
        if not await confirm(f"Make {user.username} {label}?", role_consequence(user.username, user.role, new),
                             "Change role"):
            event.sender.value = user.role
            return
        await self.change(user.id, {"role": new}, f"{user.username} is now {label}")

    async def full_names(self, user: UserRecord, event: ValueChangeEventArguments) -> None:
        """Turning names on asks first (anyone near the screen reads them); back to initials does not."""
        if event.value == bool(user.show_full_names):
            return
        if event.value and not await confirm(
                f"Show full names on {user.username}?",
                f"The ward screen {user.username} will show patients' full names to anyone who can see it.",
                "Show full names"):
            event.sender.value = False
            return
        await self.change(user.id, {"showFullNames": event.value},
                          f"{user.username} shows {'full names' if event.value else 'initials only'}")

    async def unlock(self, user_id: str) -> None:
        await submit(self.store.unlock_user(principal=self.session.principal, user_id=user_id))
        await self.render_users()

    async def render_patients(self) -> None:
        rows = await self.store.caseload(principal=self.session.principal)
        users = await self.store.list_users(principal=self.session.principal)
        therapists = {u.id: u.username for u in users if u.role == Role.THERAPIST and u.active}
        self.usernames = {u.id: u.username for u in users}
        pages = max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE)
        self.patient_page = min(self.patient_page, pages)
        self._clear(self.patients_card)
        with self.patients_card:
            with ui.element("div").classes("ad-pt ad-head"):
                for text in ("Patient", "Identifier", "Primary therapist"):
                    ui.label(text)
            for row in rows[(self.patient_page - 1) * PAGE_SIZE: self.patient_page * PAGE_SIZE]:
                with ui.element("div").classes("ad-pt").mark(f"assign-{row.object_id}"):
                    ui.link(row.display_name, f"/patient/{row.object_id}").classes("text-primary font-medium")
                    ui.label(row.patient_number or "").classes("text-sm ot-muted")
                    options = dict(therapists)
                    options.setdefault(row.primary_therapist_id, row.primary_therapist)
                    ui.select(options, value=row.primary_therapist_id,
                              on_change=lambda e, r=row: self.assign(r, e)) \
                        .props(f"outlined dense data-testid=therapist-{row.object_id}").mark(f"therapist-{row.object_id}")
            if pages > 1:
                ui.pagination(1, pages, value=self.patient_page, direction_links=True,
                              on_change=lambda e: self.patients_to(e.value))

    async def patients_to(self, page: int) -> None:
        self.patient_page = page
        await self.render_patients()

    async def reassign_consequence(self, row: CaseloadRow, new: str) -> str:
        old, patient = row.primary_therapist, row.display_name
        try:
            team = {u.id for u, _ in await self.store.care_team(principal=self.session.principal,
                                                                 patient_id=row.object_id)}
        except StoreError:
            return f"{old} loses access to {patient} at once unless on the care team; {new} gains it."
        if row.primary_therapist_id in team:
            return f"{old} keeps access to {patient} as a member of the care team; {new} gains it."
        return f"{old} loses access to {patient} at once; {new} gains it."

    async def assign(self, row: CaseloadRow, event: ValueChangeEventArguments) -> None:
        therapist_id = event.value
        if therapist_id == row.primary_therapist_id:  # unchanged, or put back after a Cancel
            return
        new = self.usernames.get(therapist_id, "The new therapist")
        if not await confirm(f"Make {new} primary therapist of {row.display_name}?",
                             await self.reassign_consequence(row, new), "Reassign"):
            event.sender.value = row.primary_therapist_id
            return
        await submit(self.store.assign_therapist(principal=self.session.principal, patient_id=row.object_id,
                                                 therapist_id=therapist_id),
                     done=f"{new} is now primary therapist of {row.display_name}")
        await self.render_patients()


@router.page("/admin", title="Admin · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def admin_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    try:
        is_lead = session.permissions().is_lead
    except NotAuthenticated:
        return auth.to_login(request)
    if not is_lead:
        raise HTTPException(status_code=404, detail="Not found")  # as if it did not exist
    with frame(session, "admin"):
        await AdminView(session).build()
    return None
