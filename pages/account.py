"""/account, for every signed-in user: change one's password, one's email, and see one's sessions.

A new password ends every other session of the user (their pages and sockets, on every instance,
through the store's change log); this page's session stays. After a lead's reset this is the only
page the account may open (pages.auth.session_of), showing just the password form. Every refusal
shows under the field that caused it, and what was typed stays in the fields.
"""
from __future__ import annotations

import functools

import ua_parser
from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard.errors import InvalidInput, MissingField, NotAuthenticated, StoreError, Taken
from dashboard.store.accounts import OwnSession
from pages import auth
from pages.dialogs import toast
from pages.display import ago, datetime_text
from pages.frame import PAGE_BUILD_TIMEOUT, frame, page_title, section

router = APIRouter()

MISSING = {"current_password": "Enter your current password.", "new_password": "Enter a new password.",
           "email": "Enter your email address."}


@functools.lru_cache(maxsize=512)
def device_text(user_agent: str | None) -> str:
    """'Chrome 131 on Mac OS X', 'Mobile Safari 17 on iOS (iPhone)', or the client's own name."""
    if not user_agent:
        return "Unknown device"
    parsed = ua_parser.parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else None
    if browser and parsed.user_agent and parsed.user_agent.major:
        browser = f"{browser} {parsed.user_agent.major}"
    system = parsed.os.family if parsed.os and parsed.os.family != "Other" else None
    device = parsed.device.family if parsed.device and parsed.device.family not in ("Other", "Mac") else None
    if not browser or browser.startswith("Other"):
        return user_agent.split(" ", 1)[0][:60]  # an API client: "ParseSDK/8", "python-httpx/0.27"
    text = f"{browser} on {system}" if system else browser
    return f"{text} ({device})" if device and device != system else text


def problem_text(problem: StoreError) -> str:
    """What to show under the field a refusal names."""
    field = getattr(problem, "field", "")
    if isinstance(problem, MissingField) and field in MISSING:
        return MISSING[field]
    if isinstance(problem, Taken):
        return "An account with that email already exists."
    if field == "current_password":
        return "That is not your current password."
    if field == "email":
        return "Enter a valid email address."
    rule = getattr(problem, "rule", problem.message)
    return f"That password {rule}."


class AccountView:
    def __init__(self, session: auth.PageSession):
        self.session = session
        self.store = session.store
        self.accounts = session.store.accounts

    async def build(self) -> None:
        forced = self.session.must_change_password
        page_title("Account")
        if forced:
            with ui.row().classes("ot-card items-start gap-2 no-wrap").props('role="alert"').mark("must-change"):
                ui.icon("key", size="22px").classes("text-primary")
                ui.label("A lead reset your password. Choose a new one before you continue: type the temporary "
                         "password as your current password.")
        self.build_password(forced)
        if forced:
            return
        self.build_email(await self.store.get_user(principal=self.session.principal,
                                                   user_id=self.session.principal.user_id))
        self.sessions_card = section("Where you are signed in", "devices").mark("sessions")
        await self.render_sessions()

    def build_password(self, forced: bool) -> None:
        minimum = auth.settings().min_password_length
        with section("Change password", "password"), ui.column().classes("w-full gap-2").style("max-width: 480px"):
            self.password = {
                "current_password": ui.input("Current password" if not forced else "Temporary password",
                                             password=True).props('outlined autocomplete="current-password"')
                .classes("w-full").mark("current-password"),
                "new_password": ui.input(f"New password (at least {minimum} characters)", password=True)
                .props('outlined autocomplete="new-password"').classes("w-full").mark("new-password"),
                "repeat": ui.input("New password again", password=True)
                .props('outlined autocomplete="new-password"').classes("w-full").mark("repeat-password"),
            }
            for field in self.password.values():  # an edited field's error goes away
                field.on_value_change(lambda e: setattr(e.sender, "error", None))
                field.on("keydown.enter", self.change_password)
            ui.label("Every other place you are signed in is signed out; this one stays.").classes("ot-muted text-sm")
            ui.button("Change password", icon="key", on_click=self.change_password) \
                .props("unelevated color=primary").mark("change-password")

    async def change_password(self) -> None:
        fields = self.password
        for field in fields.values():
            field.error = None
        current, new, repeat = (fields[n].value or "" for n in ("current_password", "new_password", "repeat"))
        if new and repeat != new:
            fields["repeat"].error = "The two new passwords differ."
            return
        try:
            ended = await self.accounts.change_password(principal=self.session.principal,
                                                        current_password=current, new_password=new)
        except InvalidInput as exc:
            target = fields.get(exc.field, fields["new_password"])
            target.error = problem_text(exc)
            target.run_method("focus")
            return
        except NotAuthenticated:
            ui.navigate.to("/login?expired=1")
            return
        except StoreError as exc:
            toast(exc.message, "negative")
            return
        for field in fields.values():
            field.value = ""
        if self.session.must_change_password:
            ui.navigate.to("/")
            return
        toast("Password changed." + (f" Signed out of {ended} other session{'s' if ended != 1 else ''}."
                                     if ended else ""))
        await self.render_sessions()

    def build_email(self, user) -> None:  # noqa: ANN001 - a UserRecord
        with section("Email", "mail"), ui.row().classes("w-full items-start gap-2").style("max-width: 640px"):
            self.email = ui.input("Email", value=user.email or "").props('outlined type=email autocomplete="email"') \
                .classes("grow").mark("email")
            self.email.on_value_change(lambda e: setattr(e.sender, "error", None))
            self.email.on("keydown.enter", self.change_email)
            ui.button("Save email", icon="save", on_click=self.change_email).props("unelevated color=primary") \
                .style("height:56px").mark("save-email")

    async def change_email(self) -> None:
        self.email.error = None
        try:
            user = await self.accounts.change_email(principal=self.session.principal,
                                                    email=(self.email.value or "").strip())
        except (InvalidInput, Taken) as exc:
            self.email.error = problem_text(exc)
            return
        except StoreError as exc:
            toast(exc.message, "negative")
            return
        self.email.value = user.email or ""
        toast("Email saved.")

    async def render_sessions(self) -> None:
        sessions: list[OwnSession] = await self.accounts.own_sessions(principal=self.session.principal)
        card = self.sessions_card
        for child in list(card.default_slot.children)[1:]:
            card.remove(child)
        with card:
            for own in sessions:
                with ui.row().classes("w-full items-center gap-3 no-wrap py-1") \
                        .mark("session-current" if own.current else "session-other"):
                    ui.icon("computer" if own.user_agent else "devices_other", size="22px").classes("text-primary")
                    with ui.column().classes("gap-0 grow"):
                        with ui.row().classes("items-center gap-2"):
                            ui.label(device_text(own.user_agent)).classes("font-medium")
                            if own.current:
                                ui.badge("This session", color="green-1", text_color="green-10").props("rounded")
                        ui.label(f"From {own.address or 'an unknown address'} · signed in "
                                 f"{datetime_text(own.created_at)} · last active {ago(own.last_seen_at)}"
                                 ).classes("text-sm ot-muted")
            others = sum(not s.current for s in sessions)
            ui.button("Sign out everywhere else", icon="logout", on_click=self.sign_out_elsewhere) \
                .props("outline color=negative" + ("" if others else " disable")).mark("sign-out-elsewhere")

    async def sign_out_elsewhere(self) -> None:
        try:
            ended = await self.accounts.sign_out_other_sessions(principal=self.session.principal)
        except StoreError as exc:
            toast(exc.message, "negative")
            return
        toast(f"Signed out of {ended} other session{'s' if ended != 1 else ''}.")
        await self.render_sessions()


@router.page(auth.PASSWORD_PAGE, title="Account · OT Tracker", response_timeout=PAGE_BUILD_TIMEOUT)
async def account_page(request: Request) -> RedirectResponse | None:
    session = await auth.session_of(request)
    if session is None:
        return auth.to_login(request)
    try:
        session.permissions()
    except NotAuthenticated:
        return auth.to_login(request)
    with frame(session, "account"):
        await AccountView(session).build()
    return None
