"""Sessions for the pages: the signed cookie, the sign-in/sign-up/sign-out form posts, page gating.

NiceGUI event handlers run over the websocket and cannot set HttpOnly cookies, so signing in and out
goes through plain form posts that set or clear the cookie and answer with a 303 redirect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard import runtime
from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.errors import AccountLocked, InvalidCredentials, InvalidInput, NotAuthenticated, StoreError, Taken
from dashboard.passwords import CookieSigner
from dashboard.rate_limit import LoginLimiter
from dashboard.store import Store

COOKIE = "ot_session"
router = APIRouter()
_settings: Settings | None = None
_limiter: LoginLimiter | None = None


@dataclass(frozen=True)
class PageSession:
    """Who is looking at a page: captured once when the page is built."""

    principal: Principal
    role: str
    username: str
    token: str

    @property
    def store(self) -> Store:
        return runtime.store()

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"


def configure(settings: Settings) -> None:
    global _settings, _limiter
    _settings = settings
    # The same limits as the API's sign-in: per account and per client address.
    _limiter = LoginLimiter(settings.login_rate_per_minute, settings.login_address_rate_per_minute)


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
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    return _signer().unsign(raw, max_age_seconds=int(settings().session_lifetime.total_seconds()))


async def resolve(token: str | None) -> PageSession | None:
    """The page session behind a token, or None when it is absent, expired or revoked."""
    store = runtime.store()
    try:
        principal = await store.resolve_session(token)
    except NotAuthenticated:
        return None
    role = store.access.role(principal)
    if role is None or token is None:
        return None
    return PageSession(principal, role, principal.username, token)


async def session_of(request: Request) -> PageSession | None:
    return await resolve(_token_from(request))


def to_login(request: Request) -> RedirectResponse:
    """Sends a signed-out visitor to sign in, and back here afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(safe_next(here), safe='')}", status_code=303)


def _set_cookie(response: Response, token: str) -> None:
    s = settings()
    response.set_cookie(COOKIE, _signer().sign(token), httponly=True, samesite="lax",
                        secure=s.secure_cookies, path="/",
                        max_age=int(s.session_lifetime.total_seconds()))


def _back(page: str, next_path: str, **params: str) -> RedirectResponse:
    query = urlencode({**params, "next": next_path})
    return RedirectResponse(f"{page}?{query}", status_code=303)


@router.post("/login", include_in_schema=False)
async def login(request: Request, username: str = Form(""), password: str = Form(""),
                next: str = Form("/")) -> Response:
    target = safe_next(next)
    if _limiter is None:
        raise RuntimeError("pages.register(settings) was not called")
    wait = _limiter.check(username=username.strip(), address=request.client.host if request.client else None)
    if wait:
        return _back("/login", target, error="busy", seconds=str(wait))
    try:
        signed_in = await runtime.store().log_in(username=username.strip(), password=password)
    except AccountLocked as exc:
        return _back("/login", target, error="locked", minutes=str(exc.minutes))
    except InvalidCredentials:
        return _back("/login", target, error="invalid")
    except StoreError:
        return _back("/login", target, error="missing")
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, signed_in.token)
    return response


@router.post("/signup", include_in_schema=False)
async def signup(username: str = Form(""), email: str = Form(""), password: str = Form(""),
                 next: str = Form("/")) -> Response:
    target = safe_next(next)
    try:
        signed_in = await runtime.store().sign_up(username=username.strip(), email=email.strip(),
                                                  password=password)
    except Taken as exc:
        return _back("/signup", target, error=f"taken_{exc.field}")
    except InvalidInput as exc:
        return _back("/signup", target, error=f"bad_{exc.field}")
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, signed_in.token)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    session = await session_of(request)
    if session is not None:
        await runtime.store().log_out(principal=session.principal)
    response = RedirectResponse("/login?signed_out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax",
                           secure=settings().secure_cookies)
    return response
