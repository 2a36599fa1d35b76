"""Sessions for the pages: the signed cookie, the sign-in/sign-up/sign-out form posts, page gating.

NiceGUI event handlers run over the websocket and cannot set HttpOnly cookies, so signing in and out
goes through plain form posts that set or clear the cookie and answer with a 303 redirect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dashboard import password_rules, runtime
from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.errors import (
    AccountLocked,
    InvalidCredentials,
    InvalidInput,
    NotAuthenticated,
    RateLimited,
    StoreError,
    Taken,
)
from dashboard.passwords import CookieSigner
from dashboard.store import Store

COOKIE = "ot_session"
# With secure cookies, the __Host- prefix: the browser keeps it only if Secure, Path=/ and no Domain,
# so no sibling subdomain or plain-HTTP page can plant or overwrite it.
SECURE_COOKIE = "__Host-ot_session"
router = APIRouter()
_settings: Settings | None = None


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
    # No Max-Age: the cookie ends with the browser session; the server ends the session itself
    # (idle timeout, lifetime, sign-out) whatever the cookie says.
    response.set_cookie(cookie_name(), _signer().sign(token), httponly=True, samesite="lax",
                        secure=settings().secure_cookies, path="/")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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


@router.post("/login", include_in_schema=False)
async def login(request: Request, username: str = Form(""), password: str = Form(""),
                next: str = Form("/")) -> Response:
    target = safe_next(next)
    if cross_site(request):
        return _refuse_cross_site()
    try:
        signed_in = await runtime.store().log_in(username=username.strip(), password=password,
                                                 address=_address(request))
    except RateLimited as exc:
        return _back("/login", target, error="busy", seconds=str(exc.seconds))
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
async def signup(request: Request, username: str = Form(""), email: str = Form(""),
                 password: str = Form(""), next: str = Form("/")) -> Response:
    target = safe_next(next)
    if cross_site(request):
        return _refuse_cross_site()
    try:
        signed_in = await runtime.store().sign_up(username=username.strip(), email=email.strip(),
                                                  password=password, address=_address(request))
    except RateLimited as exc:
        return _back("/signup", target, error="busy", seconds=str(exc.seconds))
    except Taken as exc:
        return _back("/signup", target, error=f"taken_{exc.field}")
    except InvalidInput as exc:
        if exc.field == "password" and password_rules.rule_code(exc.rule):
            return _back("/signup", target, error="weak_password", rule=password_rules.rule_code(exc.rule) or "")
        return _back("/signup", target, error=f"bad_{exc.field}")
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, signed_in.token)
    return response


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
