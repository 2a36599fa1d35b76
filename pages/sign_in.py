"""Sign in and sign up. Both are native form posts to pages.auth, which sets the HttpOnly cookie."""
from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from dashboard import password_rules
from pages import auth

router = APIRouter()

SIGN_IN_ERRORS = {
    "invalid": "That username and password do not match. Check both and try again.",
    "missing": "Enter your username and your password.",
}


def _signup_error(code: str, rule: str = "", seconds: int = 0) -> str | None:
    minimum = auth.settings().min_password_length
    if code == "weak_password" and rule in password_rules.RULES:
        return f"That password {password_rules.RULES[rule]}."
    if code == "busy":
        return f"Too many attempts from here. Try again in {max(seconds, 1)} seconds."
    return {
        "taken_username": "That username is already taken. Choose another.",
        "taken_email": "An account with that email already exists.",
        "bad_password": f"The password is too short: use at least {minimum} characters.",
        "bad_username": "Usernames are 3 to 64 letters, digits, dots, dashes or underscores.",
        "bad_email": "Enter a valid email address.",
    }.get(code, "Sign-up failed. Check the fields and try again." if code else None)


def _shell(title: str, subtitle: str) -> ui.column:
    ui.colors(primary="#0b5563", secondary="#127b8c")
    with ui.column().classes("w-full min-h-screen items-center justify-center p-4").style(
            "background: radial-gradient(circle at 20% 10%, #e0f2f1 0, #f4f6f9 45%, #eef2f7 100%)"):
        with ui.row().classes("items-center gap-2 mb-2"):
            ui.icon("accessibility_new", size="34px").classes("text-primary")
            ui.label("OT Tracker").classes("text-2xl font-bold text-primary")
        card = ui.column().classes("ot-card gap-4").style("max-width: 420px; padding: 28px")
        with card:
            ui.label(title).classes("text-xl font-semibold")
            ui.label(subtitle).classes("ot-muted -mt-3")
    return card


def _error_banner(message: str) -> None:
    with ui.row().classes("w-full items-start gap-2 p-3 rounded-lg no-wrap").style(
            "background:#fdecea; color:#8a1c1c").props('role="alert"'):
        ui.icon("error_outline", size="20px")
        ui.label(message).classes("ot-error")


def _field(label: str, name: str, *, kind: str = "text", autocomplete: str = "") -> ui.input:
    field = ui.input(label).props(f'outlined name="{name}" type="{kind}" autocomplete="{autocomplete}"') \
        .classes("w-full")
    return field


@router.page("/login", title="Sign in · OT Tracker")
async def login_page(request: Request, next: str = "/", error: str = "", minutes: int = 0,
                     seconds: int = 0, signed_out: int = 0, expired: int = 0) -> RedirectResponse | None:
    target = auth.safe_next(next)
    if await auth.session_of(request) is not None:
        return RedirectResponse(target, status_code=303)
    card = _shell("Sign in", "Your team's live caseload, scores and equipment.")
    with card:
        if error == "locked":
            unit = "minute" if minutes == 1 else "minutes"
            _error_banner(f"This account is locked after repeated failed sign-ins. "
                          f"Try again in {max(minutes, 1)} {unit}, or ask a lead to unlock it.")
        elif error == "busy":
            unit = "second" if seconds == 1 else "seconds"
            _error_banner(f"Too many sign-in attempts from here. Try again in {max(seconds, 1)} {unit}.")
        elif error:
            _error_banner(SIGN_IN_ERRORS.get(error, SIGN_IN_ERRORS["invalid"]))
        elif signed_out:
            ui.label("You are signed out.").classes("ot-muted")
        elif expired:
            ui.label("Your session ended (inactivity, its time limit, or a sign-out elsewhere). "
                     "Sign in again to continue.").classes("ot-muted").props('role="status"')
        with ui.element("form").props('method="post" action="/login"').classes("w-full flex flex-col gap-3"):
            ui.element("input").props(f'type="hidden" name="next" value="{target}"')
            _field("Username", "username", autocomplete="username").props("autofocus")
            _field("Password", "password", kind="password", autocomplete="current-password")
            ui.button("Sign in", icon="login").props('type="submit" unelevated color="primary" size="lg"') \
                .classes("w-full")
        with ui.row().classes("w-full justify-center gap-1"):
            ui.label("New to the team?").classes("ot-muted")
            ui.link("Create an account", f"/signup?next={quote(target, safe='')}").classes("text-primary font-semibold")
    return None


@router.page("/signup", title="Sign up · OT Tracker")
async def signup_page(request: Request, next: str = "/", error: str = "", rule: str = "",
                      seconds: int = 0) -> RedirectResponse | None:
    target = auth.safe_next(next)
    if await auth.session_of(request) is not None:
        return RedirectResponse(target, status_code=303)
    minimum = auth.settings().min_password_length
    card = _shell("Create an account",
                  "New accounts see no patients until a lead or a therapist adds them to a care team.")
    with card:
        message = _signup_error(error, rule, seconds)
        if message:
            _error_banner(message)
        with ui.element("form").props('method="post" action="/signup"').classes("w-full flex flex-col gap-3"):
            ui.element("input").props(f'type="hidden" name="next" value="{target}"')
            _field("Username", "username", autocomplete="username")
            _field("Email", "email", kind="email", autocomplete="email")
            _field(f"Password (at least {minimum} characters)", "password", kind="password",
                   autocomplete="new-password")
            ui.button("Create account", icon="person_add").props(
                'type="submit" unelevated color="primary" size="lg"').classes("w-full")
        with ui.row().classes("w-full justify-center gap-1"):
            ui.label("Already have an account?").classes("ot-muted")
            ui.link("Sign in", f"/login?next={quote(target, safe='')}").classes("text-primary font-semibold")
    return None
