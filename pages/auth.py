"""Sessions for the pages: the signed cookie, the sign-in/sign-up/sign-out form posts, page gating.

NiceGUI event handlers run over the websocket and cannot set HttpOnly cookies, so signing in and out
goes through plain form posts that set or clear the cookie. A native post (no script) is answered
with a 303 redirect, its error as a code in the query (never what was typed). The sign-in and
sign-up pages' script posts the same form with fetch and `Accept: application/json`: it is answered
with JSON, each problem's words under the field it names, so the form keeps what was typed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dashboard import password_rules, runtime
from dashboard.access import Principal, Role
from dashboard.config import Settings
from dashboard.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidInput,
    MissingField,
    NotAuthenticated,
    RateLimited,
    StoreError,
    Taken,
)
from dashboard.passwords import CookieSigner
from dashboard.store import Store
from dashboard.errors import SessionNeedsNewPassword
from dashboard.store.rules import Permissions

COOKIE = "ot_session"
# With secure cookies, the __Host- prefix: the browser keeps it only if Secure, Path=/ and no Domain,
# so no sibling subdomain or plain-HTTP page can plant or overwrite it.
SECURE_COOKIE = "__Host-ot_session"
# The one page a session that must choose a new password (after a lead's reset) may open.
PASSWORD_PAGE = "/account"
# What a viewer (a shared ward screen) may open: the ward board, and the sign-in pages and sign-out,
# which only pass a signed-in session on. Every other page is not found for it (issue 16).
VIEWER_HOME = "/ward"
VIEWER_PATHS = frozenset({VIEWER_HOME, "/login", "/signup", "/logout"})
router = APIRouter()
_settings: Settings | None = None


@dataclass(frozen=True)
class PageSession:
    """Who is looking at a page: the principal, captured once when the page is built. What it may
    do is never captured: `permissions()` asks the store (the live role) where a page decides."""

    principal: Principal
    username: str
    token: str
    must_change_password: bool = False  # a lead reset it: only PASSWORD_PAGE opens, to choose a new one

    @property
    def store(self) -> Store:
        return runtime.store()

    def permissions(self, patient_id: str | None = None) -> Permissions:
        """The store's answer now; NotAuthenticated once the session ended, NotFound for a patient
        no longer visible."""
        return self.store.permissions(principal=self.principal, patient_id=patient_id)

    @property
    def role(self) -> Role:
        """The live role (for labels; decisions ask `permissions()`)."""
        return self.permissions().role

    @property
    def is_lead(self) -> bool:
        return self.permissions().is_lead


def configure(settings: Settings) -> None:
    global _settings
    _settings = settings


def cookie_name() -> str:
    return SECURE_COOKIE if settings().secure_cookies else COOKIE


def settings() -> Settings:
    if _settings is None:
        raise RuntimeError("pages.register(settings) was not called")
    return _settings


LOCAL_PATH = re.compile(r"^/(?!/)[A-Za-z0-9/_.~%?=&-]{0,300}$")


def safe_next(target: str | None) -> str:
    """Only a plain local path: never another site, a scheme-relative URL or markup."""
    if not target or not LOCAL_PATH.match(target) or target.startswith(("/login", "/signup", "/logout")):
        return "/"
    return target


def _signer() -> CookieSigner:
    return CookieSigner(settings().secret_key)


def _token_from(request: Request) -> str | None:
    return token_from_cookie(request.cookies.get(cookie_name()))


def token_from_cookie(raw: str | None) -> str | None:
    """The session token in a signed cookie value; None when absent, tampered with or too old."""
    if not raw:
        return None
    return _signer().unsign(raw, max_age_seconds=int(settings().session_lifetime.total_seconds()))


async def resolve(token: str | None) -> PageSession | None:
    """The page session behind a token, or None when it is absent, expired or revoked. A session
    that must choose a new password comes back marked so (`session_of` gates the pages on it)."""
    store = runtime.store()
    must_change = False
    try:
        try:
            principal = await store.resolve_session(token)
        except SessionNeedsNewPassword:
            principal = await store.resolve_session(token, password_change_page=True)
            must_change = True
    except NotAuthenticated:
        return None
    if token is None:
        return None
    try:
        store.permissions(principal=principal)  # a live session with a role
    except NotAuthenticated:
        return None
    return PageSession(principal, principal.username, token, must_change)


def may_open(permissions: Permissions, path: str) -> bool:
    """Whether a session with these (live) permissions may open the page at `path`: the one rule
    of which pages a role reaches. A viewer reaches only VIEWER_PATHS."""
    return not permissions.is_viewer or path in VIEWER_PATHS


def landing(permissions: Permissions, target: str) -> str:
    """Where a session goes once signed in: `target`, or for a page it may not open (a viewer sent
    to the caseload, the default) its home instead of a not-found."""
    return target if may_open(permissions, urlsplit(target).path) else VIEWER_HOME


async def session_of(request: Request) -> PageSession | None:
    """Every page's gate: the visitor's session, or None (the page then answers `to_login`). An
    account that must choose a new password gets None everywhere but PASSWORD_PAGE, and `to_login`
    sends it there. A page the session's role may not open (`may_open`) raises the app's one 404,
    the answer for an unknown address: a redirect to sign in would confirm the page. The one place
    these rules are enforced for pages, the downloads and the FHIR export's cookie included."""
    session = await resolve(_token_from(request))
    if session is None:
        return None
    if session.must_change_password:
        if request.url.path != PASSWORD_PAGE:
            request.state.must_change_password = True
            return None
        return session  # just the password form, for every role: else a reset viewer could never get back
    if not may_open(session.permissions(), request.url.path):
        raise HTTPException(status_code=404, detail="Not found")  # as if the page did not exist
    return session


def must_change_password(request: Request) -> bool:
    """Whether this request's `session_of` found a session that must choose a new password first."""
    return bool(getattr(request.state, "must_change_password", False))


def to_login(request: Request) -> RedirectResponse:
    """Sends a signed-out visitor to sign in, and back here afterwards (a session that must choose a
    new password first: to the password page)."""
    if must_change_password(request):
        return RedirectResponse(PASSWORD_PAGE, status_code=303)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(here), safe='')}", status_code=303)


def _set_cookie(response: Response, token: str) -> None:
    # No Max-Age: the cookie ends with the browser session; the server ends the session itself
    # (idle timeout, lifetime, sign-out) whatever the cookie says.
    response.set_cookie(cookie_name(), _signer().sign(token), httponly=True, samesite="lax",
                        secure=settings().secure_cookies, path="/")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_agent(request: Request) -> str | None:
    """Kept on the session for the user's list of sessions (/account)."""
    return request.headers.get("user-agent")


def cross_site(request: Request) -> bool:
    """A form post another site made the browser send (CSRF): its Origin is not this server's.

    Browsers send Origin (and Sec-Fetch-Site) with every POST; a client that sends neither is not a
    browser a third-party page could drive.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()
    return request.headers.get("sec-fetch-site") not in (None, "same-origin", "none")


def _refuse_cross_site() -> Response:
    return Response("Cross-site form posts are refused.", status_code=403, media_type="text/plain")


def _back(page: str, next_path: str, **params: str) -> RedirectResponse:
    query = urlencode({**params, "next": next_path})
    return RedirectResponse(f"{page}?{query}", status_code=303)


def wants_json(request: Request) -> bool:
    """The pages' own script posting the form (fetch): it shows the answer without a reload."""
    return "application/json" in request.headers.get("accept", "")


# -- what each refusal says: the native post's page and the script's JSON use the same words -------
SIGN_IN_ERRORS = {
    "invalid": "That username and password do not match. Check both and try again.",
    "missing": "Enter your username and your password.",
}
MISSING = {"username": "Enter your username.", "password": "Enter your password.",
           "email": "Enter your email address."}


def _count(n: int, unit: str) -> str:
    n = max(n, 1)
    return f"{n} {unit}{'' if n == 1 else 's'}"


def sign_in_message(code: str, *, minutes: int = 0, seconds: int = 0) -> str:
    if code == "locked":
        return (f"This account is locked after repeated failed sign-ins. "
                f"Try again in {_count(minutes, 'minute')}, or ask a lead to unlock it.")
    if code == "busy":
        return f"Too many sign-in attempts from here. Try again in {_count(seconds, 'second')}."
    return SIGN_IN_ERRORS.get(code, SIGN_IN_ERRORS["invalid"])


_FIELD_ERRORS = {
    "taken_username": "That username is already taken. Choose another.",
    "taken_email": "An account with that email already exists.",
    "bad_username": "Usernames are 3 to 64 letters, digits, dots, dashes or underscores.",
    "bad_email": "Enter a valid email address.",
}


def signup_message(code: str, rule: str = "", seconds: int = 0) -> str | None:
    """The words for a sign-up error code (as carried in the native post's redirect)."""
    if code == "weak_password" and rule in password_rules.RULES:
        return f"That password {password_rules.RULES[rule]}."
    if code == "busy":
        return f"Too many attempts from here. Try again in {_count(seconds, 'second')}."
    if code == "bad_password":
        return f"The password is too short: use at least {settings().min_password_length} characters."
    return _FIELD_ERRORS.get(code, "Sign-up failed. Check the fields and try again." if code else None)


def problem_code(problem: InvalidInput | Taken) -> dict[str, str]:
    """A new account's problem as the code (and rule) of signup_message."""
    if isinstance(problem, Taken):
        return {"code": f"taken_{problem.field}"}
    rule = password_rules.rule_code(problem.rule) if problem.field == "password" else None
    return {"code": "weak_password", "rule": rule} if rule else {"code": f"bad_{problem.field}"}


def problem_text(problem: InvalidInput | Taken) -> str:
    """What to show under the field a new account's problem names (sign-up and Admin's create)."""
    if isinstance(problem, MissingField) and problem.field in MISSING:
        return MISSING[problem.field]
    code = problem_code(problem)
    rule = getattr(problem, "rule", "")
    if code["code"] in _FIELD_ERRORS or code["code"] == "weak_password" or rule.startswith("must be at least"):
        return signup_message(**code) or problem.message
    return f"{rule[:1].upper()}{rule[1:]}."  # a rule no code names (too long, a role): the store's words


def _refused(status: int, *, form: str | None = None, fields: dict[str, list[str]] | None = None) -> JSONResponse:
    """The script's answer to a refused post: `form` for the banner, `fields` under each field."""
    return JSONResponse({"form": form, "fields": fields or {}}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _signed_in(request: Request, target: str, token: str) -> Response:
    response: Response = (JSONResponse({"next": target}, headers={"Cache-Control": "no-store"})
                          if wants_json(request) else RedirectResponse(target, status_code=303))
    _set_cookie(response, token)
    return response


@router.post("/login", include_in_schema=False)
async def login(request: Request, username: str = Form(""), password: str = Form(""),
                next: str = Form("/")) -> Response:
    target = safe_next(next)
    if cross_site(request):
        return _refuse_cross_site()
    as_json = wants_json(request)
    try:
        signed_in = await runtime.store().log_in(username=username.strip(), password=password,
                                                 address=_address(request), user_agent=_user_agent(request),
                                                 password_change_page=True)
    except RateLimited as exc:
        if as_json:
            return _refused(429, form=sign_in_message("busy", seconds=exc.seconds))
        return _back("/login", target, error="busy", seconds=str(exc.seconds))
    except AccountLocked as exc:
        if as_json:
            return _refused(403, form=sign_in_message("locked", minutes=exc.minutes))
        return _back("/login", target, error="locked", minutes=str(exc.minutes))
    except InvalidCredentials:
        if as_json:
            return _refused(401, fields={"password": [sign_in_message("invalid")]})
        return _back("/login", target, error="invalid")
    except StoreError as exc:
        if as_json:
            blank = {"username": username.strip(), "password": password}
            missing = [name for name, value in blank.items() if not value] or \
                [exc.field if isinstance(exc, MissingField) else "username"]
            return _refused(400, fields={name: [MISSING[name]] for name in missing})
        return _back("/login", target, error="missing")
    if signed_in.must_change_password:  # a lead reset it: a new one before anything else
        target = PASSWORD_PAGE
    else:
        target = landing(runtime.store().permissions(principal=signed_in.principal), target)
    return _signed_in(request, target, signed_in.token)


@router.post("/signup", include_in_schema=False)
async def signup(request: Request, username: str = Form(""), email: str = Form(""),
                 password: str = Form(""), next: str = Form("/")) -> Response:
    target = safe_next(next)
    if cross_site(request):
        return _refuse_cross_site()
    store = runtime.store()
    username, email = username.strip(), email.strip()
    try:
        signed_in = await store.sign_up(username=username, email=email, password=password,
                                        address=_address(request), user_agent=_user_agent(request))
    except RateLimited as exc:
        if wants_json(request):
            return _refused(429, form=signup_message("busy", seconds=exc.seconds))
        return _back("/signup", target, error="busy", seconds=str(exc.seconds))
    except (Taken, InvalidInput) as exc:
        if not wants_json(request):
            return _back("/signup", target, **{("error" if k == "code" else k): v
                                               for k, v in problem_code(exc).items()})
        problems = await store.new_account_problems(username=username, email=email, password=password) or [exc]
        fields: dict[str, list[str]] = {}
        for problem in problems:
            fields.setdefault(problem.field, []).append(problem_text(problem))
        return _refused(400, fields=fields)
    return _signed_in(request, target, signed_in.token)


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    if cross_site(request):
        return _refuse_cross_site()
    session = await session_of(request)
    if session is not None:
        await runtime.store().log_out(principal=session.principal)
    response = RedirectResponse("/login?signed_out=1", status_code=303)
    response.delete_cookie(cookie_name(), path="/", httponly=True, samesite="lax",
                           secure=settings().secure_cookies)
    return response
