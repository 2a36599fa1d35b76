"""Browser hardening headers on every HTTP response, and the one not-found answer of the pages.

`SecurityHeaders` is a pure ASGI middleware that dashboard.server.build puts outermost on the root
app, so it covers pages, NiceGUI's assets, /parse, /status, errors and 404s alike. Websockets (the
live-query push path and NiceGUI's socket.io) and lifespan events pass straight through: the only
per-request work is one closure and, on the response start, one header list extended by a list of
byte pairs computed once at start-up. Bodies are never looked at.

Why each Content-Security-Policy source is there (measured in Chromium: tests/e2e/test_csp.py
removes each relaxation in turn and shows the pages break):

- script-src 'unsafe-inline': NiceGUI's page template is inline scripts (the import map, the
  `createApp(...)` module carrying the page's elements, `addStyle`), and so is the frame's live
  indicator (pages/frame.py LIVE_JS). NiceGUI has no nonce support, and a nonce cannot be added
  here: NiceGUI gzips its pages inside its own mount, so the root sees compressed bytes.
- script-src 'unsafe-eval': Vue compiles NiceGUI's component templates (`template:` strings of
  ui.input, ui.header, ui.select, ...) at run time with `new Function`, and nicegui.js evaluates
  `:prop` values, JavaScript event handlers and `run_javascript` (pages/score_list.py) with
  `eval`. Without it the sign-in page renders nothing.
- style-src 'unsafe-inline': the template's <style> blocks and style="" attributes, `ui.add_css`,
  and the <style> elements Tailwind's browser build writes at run time.
- img-src data:: the favicon is an emoji, which NiceGUI serves as a data: SVG URL.
- connect-src 'self': socket.io (ws:/wss: to the same host, which CSP 3 'self' covers) and the
  live indicator's fetch('/status').
Everything else is 'self' (fonts and assets under /_nicegui) or 'none'; frame-ancestors 'none'
(with X-Frame-Options DENY for older browsers) stops clickjacking of Change status, care team and
Admin; form-action 'self' keeps the sign-in form posting here.

Referrer-Policy is `same-origin`: no other origin ever learns a URL of this app (not even the
origin, unlike strict-origin-when-cross-origin), while same-origin form posts keep a real `Origin`
header. `no-referrer` would make Chromium send `Origin: null` on this app's own POST /login,
/signup and /logout (Fetch standard, "append a request Origin header"), which breaks any
Origin-based CSRF check of those forms (review finding L1).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP_DIRECTIVES: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
CONTENT_SECURITY_POLICY = "; ".join(f"{name} {value}" for name, value in CSP_DIRECTIVES.items())

# Powerful features the app never uses, switched off for it and anything it might embed.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "geolocation", "gyroscope",
    "hid", "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
    "serial", "usb", "xr-spatial-tracking"))

HSTS = "max-age=31536000; includeSubDomains"  # only with settings.secure_cookies (served over HTTPS)
NO_STORE = (b"cache-control", b"no-store")
# Paths whose own caching is left alone: NiceGUI's versioned assets are "immutable" for a year
# (its SetCacheControlMiddleware), the favicon holds nothing private. Every other answer (pages,
# /parse, /status, redirects, errors) may carry patient data or session state: no-store unless the
# route chose otherwise.
CACHEABLE_PREFIXES = ("/_nicegui/", "/favicon.ico")


def response_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers added to every HTTP response, as ASGI byte pairs."""
    headers = {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
        "permissions-policy": PERMISSIONS_POLICY,
    }
    if hsts:
        headers["strict-transport-security"] = HSTS
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


class SecurityHeaders:
    """Adds `response_headers` to every HTTP response; websockets and lifespan pass untouched.

    A header the application already set is kept as it is (one of each name, never two).
    """

    __slots__ = ("app", "headers", "names")

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = response_headers(hsts=hsts)
        self.names = frozenset(name for name, _ in self.headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = not scope["path"].startswith(CACHEABLE_PREFIXES)
        added, names = self.headers, self.names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or ())
                present = {name.lower() for name, _ in headers}
                if present.isdisjoint(names):
                    headers.extend(added)
                else:
                    headers.extend(pair for pair in added if pair[0] not in present)
                if no_store and b"cache-control" not in present:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- the one not-found answer ------------------------------------------------------------------------
# A missing route, /admin for a non-lead and a patient that does not exist or may not be read all
# answer with these exact bytes (ACCESS.md "What a denial looks like"), so the sentence says nothing
# of whether a record exists. It is static: NiceGUI's own 404 page is a whole client (its id differs
# on every answer, it holds memory until pruned, and it prints the exception, "HTTPException: 404:
# Not found" vs "...Not Found"). It looks like the app's frame (pages/frame.py: the teal header with
# the brand, the page's h1 in the main column, the same focus ring and skip link) without knowing
# who asks: no user name, no navigation that would differ by role. The CSP's style-src
# 'unsafe-inline' covers its <style>; it has no script.
# Its way back is /login: it sends a signed-in visitor to that account's start page (a viewer's is
# the ward board; "/" would be another not-found for it) and a signed-out one to sign in.
NOT_FOUND_HTML = """<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="theme-color" content="#0b5563">
<title>Page not found · OT Tracker</title>
<style>
html, body { margin: 0; background: #f4f6f9; color: #102a43;
  font-family: "Inter", "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif;
  line-height: 1.5; }
header { display: flex; align-items: center; gap: 12px; min-height: 60px; padding: 0 16px;
  background: linear-gradient(90deg, #0b5563, #127b8c); box-shadow: 0 1px 6px rgba(16,42,67,.25); }
.brand { color: #fff; font-weight: 700; font-size: 1.15rem; letter-spacing: .01em; text-decoration: none;
  min-height: 44px; display: inline-flex; align-items: center; border-radius: 10px; padding: 0 6px; }
main { max-width: 1440px; margin: 0 auto; padding: 20px 24px 40px; box-sizing: border-box; }
main:focus { outline: none; }
.card { max-width: 640px; margin: 40px auto; background: #fff; border: 1px solid #e3e8ef; border-radius: 14px;
  box-shadow: 0 1px 2px rgba(16,42,67,.05); padding: 28px; text-align: center; }
h1 { font-size: 1.5rem; font-weight: 700; letter-spacing: -.01em; margin: 0 0 8px; }
p { color: #486581; margin: 0 0 24px; }
.back { display: inline-flex; align-items: center; min-height: 44px; padding: 0 18px; border-radius: 10px;
  background: #0b5563; color: #fff; font-weight: 600; text-decoration: none; }
.back:hover { background: #127b8c; }
.skip:not(:focus) { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
  white-space: nowrap; }
.skip:focus { position: absolute; left: 12px; top: 8px; z-index: 10; background: #fff; color: #0b5563;
  padding: 10px 16px; border-radius: 10px; font-weight: 700; box-shadow: 0 2px 10px rgba(16,42,67,.35); }
:focus-visible { outline: 3px solid #102a43; outline-offset: 2px; }
header :focus-visible { outline-color: #fff; }
header .skip:focus-visible { outline-color: #102a43; }
@media (max-width: 1023px) { main { padding: 14px 14px 32px; } }
</style>
</head>
<body>
<header>
<a class="skip" href="#main">Skip to main content</a>
<a class="brand" href="/login">OT Tracker</a>
</header>
<main id="main" tabindex="-1">
<div class="card">
<h1>Page not found</h1>
<p>This page does not exist, or you do not have access to it.</p>
<a class="back" href="/login">Back to OT Tracker</a>
</div>
</main>
</body>
</html>
"""


async def not_found(request: Request, exc: Exception) -> Response:  # noqa: ARG001 - one answer for all
    """The exception handler for 404 on NiceGUI's app. It logs nothing: NiceGUI's handler logged
    the full URL with its query string (review finding M3)."""
    return HTMLResponse(NOT_FOUND_HTML, status_code=404)
