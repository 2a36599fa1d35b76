"""Admin, for leads only: accounts (create, role, deactivate, unlock, ward names) and assignment."""
from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.access import LEAD
from dashboard.errors import StoreError
from dashboard.models import ROLES
from pages import auth
from pages.frame import PAGE_BUILD_TIMEOUT, ROLE_LABELS, frame, section

router = APIRouter()
PAGE_SIZE = 20

CSS = """
.ad-row { display: grid; grid-template-columns: minmax(140px, 1.2fr) minmax(160px, 1.4fr) 170px 150px 140px;
  gap: 10px; align-items: center; padding: 8px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.ad-pt { display: grid; grid-template-columns: minmax(160px, 1.3fr) 150px minmax(180px, 1fr); gap: 10px;
  align-items: center; padding: 8px 4px; border-bottom: 1px solid var(--ot-line); width: 100%; }
.ad-head { font-size: .78rem; text-transform: uppercase; letter-spacing: .05em; color: var(--ot-muted); font-weight: 600; }
@media (max-width: 1023px) { .ad-row { grid-template-columns: minmax(120px, 1fr) 150px 130px 120px; }
  .ad-row > .c-email { display: none; } }
"""


class AdminView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.user_page = 1
        self.patient_page = 1

    async def build(self) -> None:
        ui.add_css(CSS)
        ui.label("Admin").classes("ot-page-title")
        self.create_card = section("Create an account", "person_add")
        with self.create_card, ui.row().classes("w-full items-start gap-2"):
            username = ui.input("Username").props("outlined").classes("grow").mark("new-username")
            email = ui.input("Email").props("outlined type=email").classes("grow").mark("new-email")
            password = ui.input("Initial password", password=True).props("outlined").classes("grow") \
                .mark("new-password")
            role = ui.select({r: ROLE_LABELS[r] for r in ROLES}, value="contributor", label="Role") \
                .props("outlined").style("min-width: 160px").mark("new-role")

            async def create() -> None:
                try:
                    await self.store.create_user(principal=self.session.principal, username=username.value.strip(),
                                                 email=email.value.strip(), password=password.value,
                                                 role=role.value)
                except StoreError as exc:
                    ui.notify(exc.message, type="negative")
                    return
                ui.notify(f"Account {username.value.strip()} created", type="positive")
                username.value = email.value = password.value = ""
                await self.render_users()

            ui.button("Create", icon="add", on_click=create).props("unelevated color=primary") \
                .style("height:56px").mark("create-user")
        self.users_card = section("Accounts", "manage_accounts").mark("users")
        self.patients_card = section("Primary therapist assignment", "assignment_ind").mark("assignment")
        await self.render_users()
        await self.render_patients()

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
                        if user.role == "viewer":
                            ui.switch("Full names on ward", value=bool(user.show_full_names),
                                      on_change=lambda e, u=user: self.change(u.id, {"showFullNames": e.value})) \
                                .props("dense").classes("text-xs").mark(f"names-{user.username}")
                    ui.label(user.email or "").classes("c-email text-sm ot-muted")
                    ui.select({r: ROLE_LABELS[r] for r in ROLES}, value=user.role,
                              on_change=lambda e, u=user: self.change(u.id, {"role": e.value})) \
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
                            if user.active:
                                ui.button("Deactivate", on_click=lambda u=user: self.change(u.id, {"active": False})) \
                                    .props("flat dense color=negative").mark(f"deactivate-{user.username}")
                            else:
                                ui.button("Reactivate", on_click=lambda u=user: self.change(u.id, {"active": True})) \
                                    .props("flat dense color=primary").mark(f"reactivate-{user.username}")
            if pages > 1:
                ui.pagination(1, pages, value=self.user_page, direction_links=True,
                              on_change=lambda e: self.users_to(e.value))

    async def users_to(self, page: int) -> None:
        self.user_page = page
        await self.render_users()

    async def change(self, user_id: str, changes: dict) -> None:
        try:
            await self.store.update_user(principal=self.session.principal, user_id=user_id, changes=changes)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")
        else:
            ui.notify("Saved", type="positive")
        await self.render_users()
        if "role" in changes or "active" in changes:
            await self.render_patients()

    async def unlock(self, user_id: str) -> None:
        try:
            await self.store.unlock_user(principal=self.session.principal, user_id=user_id)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")
        await self.render_users()

    async def render_patients(self) -> None:
        rows = await self.store.caseload(principal=self.session.principal)
        users = await self.store.list_users(principal=self.session.principal)
        therapists = {u.id: u.username for u in users if u.role == "therapist" and u.active}
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
                              on_change=lambda e, r=row: self.assign(r.object_id, e.value)) \
                        .props(f"outlined dense data-testid=therapist-{row.object_id}").mark(f"therapist-{row.object_id}")
            if pages > 1:
                ui.pagination(1, pages, value=self.patient_page, direction_links=True,
                              on_change=lambda e: self.patients_to(e.value))

    async def patients_to(self, page: int) -> None:
        self.patient_page = page
        await self.render_patients()

    async def assign(self, patient_id: str, therapist_id: str) -> None:
        try:
            await self.store.assign_therapist(principal=self.session.principal, patient_id=patient_id,
                                              therapist_id=therapist_id)
        except StoreError as exc:
            ui.notify(exc.message, type="negative")
            await self.render_patients()
            return
        ui.notify("Primary therapist changed", type="positive")


@router.page("/admin", title="Admin · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def admin_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    if session.store.access.role(session.principal) != LEAD:
        raise HTTPException(status_code=404, detail="Not found")  # as if it did not exist
    with frame(session, "admin"):
        await AdminView(session).build()
    return None
