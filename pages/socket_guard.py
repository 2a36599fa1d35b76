"""Each page's socket is bound to the session that loaded the page, counts as that session's activity,
and a page whose socket never connects is let go within seconds.

NiceGUI routes a socket.io `event` by the `client_id` written in the message, not by the socket it
came on; that id travels in the socket.io query string, so whoever read it (a proxy log) could drive
the page as its user. Here:
- a handshake is refused unless the socket's own cookie resolves to the session that built the page;
- events, JavaScript answers and acks are taken only from a socket that handshook for that client;
- every event is activity of the page's session (its idle timeout starts again), and none is taken
  once the session is over;
- a page whose response was sent but whose socket never connected is deleted after
  UNCONNECTED_SECONDS (NiceGUI's own pruning waits 60-70 s), releasing its memory and hub subscription.

This leans on NiceGUI's socket.io handlers and Client internals, so it installs only on the NiceGUI
minor versions it was checked against (as pages/outbox.py); elsewhere only the public parts remain:
the binding check on `app.on_connect` and NiceGUI's public `Client.prune_instances`.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
import weakref
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from nicegui import Client, app, core
from socketio.exceptions import ConnectionRefusedError

from dashboard import runtime
from dashboard.access import Principal
from pages import auth

CHECKED_NICEGUI = ("3.18.",)
UNCONNECTED_SECONDS = 5.0
# A page whose build never produced a response (it raised a not-found, say) is let go after this;
# longer than any build (pages/frame.py's PAGE_BUILD_TIMEOUT).
ABANDONED_BUILD_SECONDS = 30.0
PRUNE_EVERY_SECONDS = 1.0
log = logging.getLogger("ot_tracker.pages")

# The principal each signed-in page was built for (set by frame()); weak, so a deleted client goes.
_bound: weakref.WeakKeyDictionary[Client, Principal] = weakref.WeakKeyDictionary()
_unconnected_since: weakref.WeakKeyDictionary[Client, float] = weakref.WeakKeyDictionary()
_installed: str | None = None


def bind(client: Client, principal: Principal) -> None:
    _bound[client] = principal


def bound(client: Client) -> Principal | None:
    return _bound.get(client)


def installable() -> bool:
    names = core.sio.handlers.get("/", {})
    return importlib.metadata.version("nicegui").startswith(CHECKED_NICEGUI) and \
        all(n in names for n in ("connect", "handshake", "event"))


def active_path() -> str | None:
    """Which path is installed: "internals" (the full guard), "public" (fallback) or None."""
    return _installed


async def _socket_session(environ: dict[str, Any] | None) -> Principal | None:
    """The session of the socket's own cookie (sent with the socket.io upgrade request)."""
    if not environ:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no session
        return None
    morsel = cookies.get(auth.cookie_name())
    if morsel is None:
        return None
    token = auth.token_from_cookie(morsel.value)
    if token is None:
        return None
    session = await auth.resolve(token)
    return session.principal if session else None


def _same_session(page: Principal | None, socket: Principal | None) -> bool:
    return page is None or (socket is not None and socket.session_id == page.session_id)


def install() -> str:
    """Installs the guard; returns which path is active."""
    global _installed
    if _installed:
        return _installed
    if not installable():
        log.warning("pages: NiceGUI %s is not one the socket guard was checked against; only the "
                    "public checks apply", importlib.metadata.version("nicegui"))
        _install_public()
        _installed = "public"
        return _installed
    sio = core.sio
    handlers = sio.handlers["/"]
    original_connect = handlers["connect"]
    original_handshake = handlers["handshake"]
    original_event = handlers["event"]
    originals = {name: handlers[name] for name in ("javascript_response", "ack", "log") if name in handlers}

    async def handshake(sid: str, data: dict[str, Any]) -> bool:
        client = Client.instances.get(data.get("client_id", "")) if isinstance(data, dict) else None
        if client is not None and not sid.startswith("test-"):  # NiceGUI's simulated user has no socket
            if not _same_session(bound(client), await _socket_session(sio.get_environ(sid))):
                return False
        return await original_handshake(sid, data)

    async def connect(sid: str, environ: dict[str, Any], auth_data: Any = None) -> Any:
        # NiceGUI's implicit handshake (in the connect query) calls its handshake function directly.
        query = parse_qs(environ.get("QUERY_STRING", "")) if isinstance(environ, dict) else {}
        client = Client.instances.get((query.get("client_id") or [""])[0])
        if client is not None and not sid.startswith("test-") and \
                not _same_session(bound(client), await _socket_session(environ)):
            raise ConnectionRefusedError("Implicit handshake failed")  # the page reloads, then signs in
        return await original_connect(sid, environ, auth_data)

    def owns(sid: str, msg: object) -> Client | None:
        if not isinstance(msg, dict):
            return None
        client = Client.instances.get(msg.get("client_id", ""))
        if client is None:
            return None
        if not sid.startswith("test-") and client.id not in sio.rooms(sid):
            return None  # a socket that did not handshake for this client drives nothing
        return client

    def event(sid: str, msg: dict) -> None:
        client = owns(sid, msg)
        if client is None:
            return
        principal = bound(client)
        if principal is not None and not runtime.store().note_activity(principal):
            return  # the session is over: its page's handlers do not act
        original_event(sid, msg)

    def guarded(original):  # type: ignore[no-untyped-def]
        def handler(sid: str, msg: dict) -> None:
            if owns(sid, msg) is not None:
                original(sid, msg)
        return handler

    sio.on("connect", connect)
    sio.on("handshake", handshake)
    sio.on("event", event)
    for name, original in originals.items():
        sio.on(name, guarded(original))
    app.on_startup(_prune_loop)
    _installed = "internals"
    return _installed


def _install_public() -> None:
    async def check(client: Client) -> None:
        principal = bound(client)
        if principal is not None and client.request is not None:
            socket_principal = await auth.session_of(client.request)
            if socket_principal is None or socket_principal.principal.session_id != principal.session_id:
                client.delete()

    app.on_connect(check)


async def _prune_loop() -> None:
    while True:
        await asyncio.sleep(PRUNE_EVERY_SECONDS)
        try:
            prune_unconnected()
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("pages: pruning unconnected pages failed")


def prune_unconnected(now: float | None = None) -> int:
    """Deletes pages sent more than UNCONNECTED_SECONDS ago whose socket never connected."""
    now = time.monotonic() if now is None else now
    deleted = 0
    for client in list(Client.instances.values()):
        if client._num_connections or client._delete_tasks or client.has_socket_connection:  # noqa: SLF001
            _unconnected_since.pop(client, None)
            continue
        if not client._response_built:  # noqa: SLF001 - still building, or abandoned mid-build (a 404)
            if client.created < time.time() - ABANDONED_BUILD_SECONDS:
                client.delete()
                deleted += 1
            continue
        since = _unconnected_since.setdefault(client, now)
        if now - since >= UNCONNECTED_SECONDS:
            client.delete()
            deleted += 1
    return deleted
