"""The one-machine scale-out harness (SCALE-OUT.md §6): a private PostgreSQL, N real instances
(bench.server.Server) on it, HAProxy with deploy/haproxy.cfg in front, and clients that talk to
them the way users' programs and browsers do.

- `PrivatePostgres`: initdb in a temp dir (as the postgres user when we are root), pg_ctl on a free
  port with its socket in that dir, so a restart or a terminated backend touches nothing else.
- `Cluster`: instances a, b, c ... (distinct OT_INSTANCE_ID, one OT_SECRET_KEY, HAProxy trusted
  for X-Forwarded-For), started together, and the balancer (dashboard.cluster.Balancer) with an
  admin socket; kill -9 and revive an instance; one cached sign-in per demo user.
- `LiveQuery`: one Parse live-query socket that keeps every message it gets (events, leave, errors).
- `PageView`: one page held open like a browser tab that never reconnects: its element tree from the
  HTML and the socket's updates (NiceGUI's protocol), so a test can read what the page shows.
"""
from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bench.server import DATA_FILES, ROOT, Server, free_port
from dashboard.cluster import NODE_NAMES, Balancer, get_status
from tests.support import TEST_SETTINGS, LiveServer

PG_BIN = Path(os.environ.get("OT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
DEMO_PASSWORD = "demo-password-2026"  # data/demo.json
APP_ID = "ot-tracker"
# What every instance runs with: the suite's test settings, but the real sign-in limits (10 a minute
# per account, 40 per address: scenario 4 measures them), HAProxy on this host trusted for
# X-Forwarded-For, and a short wait for the pages' sockets.
CLUSTER_SETTINGS = {**TEST_SETTINGS, "OT_SECRET_KEY": "cluster-test-secret", "OT_PARSE_APP_ID": APP_ID,
                    "OT_LOGIN_RATE_PER_MINUTE": "10", "OT_LOGIN_ADDRESS_RATE_PER_MINUTE": "40",
                    "OT_LOCKOUT_ATTEMPTS": "1000", "OT_TRUSTED_PROXIES": "127.0.0.1",
                    "OT_PRESENCE_TTL_SECONDS": "6",  # scenario 5 waits for a dead instance's viewers to expire
                    # Scenario 8 waits for rows to be pruned; well above a PostgreSQL restart's outage
                    # (scenario 7: about 2 s), so no other test sees a row pruned before it is read.
                    "OT_CHANGE_LOG_RETENTION_SECONDS": "8"}


def why_unavailable() -> str | None:
    """Why the cluster tests cannot run here, or None."""
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (tests/install.sh installs it)"
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (set OT_TEST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    return None


# ---------------------------------------------------------------------------------------------- PostgreSQL
class PrivatePostgres:
    """A PostgreSQL server of our own in a temp dir, on a free port (trust auth, user postgres)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ot-cluster-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o755)

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}{self.log_tail()}")
        return done

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log_text()[-2000:]

    @property
    def options(self) -> str:
        # fsync off: a test server, never an OS crash to survive; the socket stays in our dir. Commits
        # stay synchronous: `pg_ctl restart -m immediate` is a crash, and an acknowledged commit whose
        # WAL was still in shared memory would be gone after it.
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c full_page_writes=off -c max_connections=200")

    def start(self) -> None:
        if not self.data.exists():
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", self.options, "-l", str(self.log), "-w", "start")

    def restart(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", self.options, "-l", str(self.log),
                  "-m", mode, "-w", "restart")

    def stop(self) -> None:
        if self.data.exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def connect(self, database: str):  # noqa: ANN201 - an asyncpg connection
        import asyncpg

        return await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database=database)

    async def create_database(self, name: str) -> str:
        conn = await self.connect("postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


# ---------------------------------------------------------------------------------------------- instances
@dataclass
class Cluster:
    root: Path
    pg: PrivatePostgres
    database_url: str
    size: int = 3
    servers: dict[str, LiveServer] = field(default_factory=dict)
    balancer: Balancer | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in NODE_NAMES[: self.size]:
            data_dir = self.root / name
            data_dir.mkdir(parents=True, exist_ok=True)
            server = Server(data_dir, database_url=self.database_url,
                            settings={**CLUSTER_SETTINGS, "OT_INSTANCE_ID": name})
            self.servers[name] = LiveServer(server)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        first = next(iter(self.servers.values()))
        first.server.load_demo()  # migrates the shared database and loads the demo once
        for live in list(self.servers.values())[1:]:
            for name in (*DATA_FILES, "demo.json"):
                shutil.copy(ROOT / "data" / name, live.data_dir / name)
        with ThreadPoolExecutor(len(self.servers)) as pool:  # the instances start side by side
            list(pool.map(lambda s: s.start(), self.servers.values()))
        self.balancer = Balancer(f"127.0.0.1:{free_port()}", [f"127.0.0.1:{s.port}" for s in self.servers.values()],
                                 log_path=self.root / "haproxy.log", stats_socket=str(self.root / "haproxy.sock"))
        self.balancer.start()
        self.wait_balanced()

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        errors = []
        for live in self.servers.values():
            try:
                live.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            raise AssertionError("\n".join(errors))

    @property
    def lb(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    def url(self, name: str) -> str:
        return self.servers[name].url

    def ws(self, name: str | None = None) -> str:
        """A live-query socket's address: an instance's, or the balancer's (its api backend)."""
        return (self.url(name) if name else self.lb).replace("http://", "ws://") + "/parse"

    def kill(self, name: str) -> None:
        """kill -9: no shutdown of any kind."""
        process = self.servers[name].process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def freeze(self, name: str) -> None:
        """SIGSTOP: the instance reads nothing (log, notifications, requests) until `thaw`."""
        os.kill(self.servers[name].process.pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        os.kill(self.servers[name].process.pid, signal.SIGCONT)

    def revive(self, name: str) -> None:
        live = self.servers[name]
        if live.process is None or live.process.poll() is not None:
            live.server.process = None
            live.start()

    def running(self, name: str) -> bool:
        process = self.servers[name].process
        return process is not None and process.poll() is None

    def states(self, backend: str = "api") -> dict[str, str]:
        assert self.balancer is not None
        return self.balancer.server_states(backend)

    def wait_balanced(self, timeout: float = 30) -> None:
        """Every instance answers /status 200 and HAProxy has every one UP in both backends."""
        deadline = time.monotonic() + timeout
        while True:
            ok = all(get_status(f"{s.url}/status") == 200 for s in self.servers.values())
            states = {**{f"pages/{k}": v for k, v in self.states("pages").items()},
                      **{f"api/{k}": v for k, v in self.states("api").items()}}
            if ok and all(v == "UP" for v in states.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not healthy in {timeout}s: {states}")
            time.sleep(0.1)  # HAProxy's checks run every second: nothing to wait on but them

    def status(self, name: str) -> tuple[int | None, dict]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url(name)}/status", timeout=3) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except OSError:
            return None, {}

    # -- who is who -----------------------------------------------------------------------------
    async def token(self, username: str) -> str:
        """One sign-in per demo user for the whole run (the sign-in limit is 10 a minute per account)."""
        if username not in self.tokens:
            self.tokens[username] = await log_in(self.url("a"), username)
        return self.tokens[username]

    async def patient_ids(self) -> dict[str, str]:
        """DEMO-000N -> objectId."""
        conn = await self.pg.connect(self.database_url.rsplit("/", 1)[1])
        try:
            rows = await conn.fetch("SELECT patient_id, id FROM patients")
        finally:
            await conn.close()
        return {r["patient_id"]: r["id"] for r in rows}

    async def listener_pid(self, name: str) -> int | None:
        """The PostgreSQL backend of instance `name`'s LISTEN connection (by its application_name)."""
        rows = await self.sql("SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                              f"ot-tracker listen {name}")
        return rows[0]["pid"] if rows else None

    async def sql(self, query: str, *args: Any) -> list:
        conn = await self.pg.connect(self.database_url.rsplit("/", 1)[1])
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


# ---------------------------------------------------------------------------------------------- clients
def parse_headers(token: str | None = None) -> dict[str, str]:
    out = {"X-Parse-Application-Id": APP_ID, "Content-Type": "application/json"}
    if token:
        out["X-Parse-Session-Token"] = token
    return out


def session_from(address: str | None = None) -> aiohttp.ClientSession:
    """An HTTP client; with `address` (127.0.0.2, ...) its connections come from that loopback address."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0) if address else None, force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30),
                                 cookie_jar=aiohttp.DummyCookieJar())


async def rest(session: aiohttp.ClientSession, method: str, url: str, token: str | None = None,
               body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body, default=str)
    async with session.request(method, url, data=data, headers={**parse_headers(token), **(headers or {})}) as r:
        text = await r.text()
        try:
            payload = json.loads(text) if text else {}
        except ValueError:  # HAProxy's own pages (502, 503) are HTML
            payload = {"text": text[:200]}
        return r.status, payload if isinstance(payload, dict) else {"value": payload}


async def log_in(base: str, username: str, password: str = DEMO_PASSWORD) -> str:
    async with session_from() as session:
        status, body = await rest(session, "POST", f"{base}/parse/login",
                                  body={"username": username, "password": password})
    assert status == 200, f"sign-in of {username} at {base}: {status} {body}"
    return body["sessionToken"]


async def page_sign_in(session: aiohttp.ClientSession, base: str, username: str, *, node: str | None = None,
                       password: str = DEMO_PASSWORD) -> tuple[int, dict[str, str]]:
    """The pages' sign-in form (as its script posts it); (status, cookies set). `node` pins the post to
    one instance through the balancer (its ot_node cookie)."""
    headers = {"Accept": "application/json"}
    if node:
        headers["Cookie"] = f"ot_node={node}"
    async with session.post(f"{base}/login", data={"username": username, "password": password, "next": "/"},
                            headers=headers, allow_redirects=False) as response:
        await response.read()
        return response.status, {k: v.value for k, v in response.cookies.items()}


async def wait_on(changed: asyncio.Event, condition: Callable[[], Any], timeout: float) -> bool:
    """Waits until condition() is true, re-checking each time `changed` is set (by whoever adds what
    it looks at: a socket's reader); False on timeout."""
    deadline = time.perf_counter() + timeout
    while not condition():
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return False
        changed.clear()
        if condition():
            return True
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            return bool(condition())
    return True


class LiveQuery:
    """One Parse live-query socket and subscription; keeps every message with its arrival time."""

    def __init__(self, ws_url: str, token: str, query: dict, *, name: str = ""):
        self.ws_url, self.token, self.query, self.name = ws_url, token, query, name
        self.messages: list[tuple[float, dict]] = []
        self.changed = asyncio.Event()
        self.closed_at: float | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None

    async def open(self, timeout: float = 15) -> "LiveQuery":
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, heartbeat=None, max_msg_size=0)
        self.reader = asyncio.create_task(self._read())
        await self.ws.send_str(json.dumps({"op": "connect", "applicationId": APP_ID, "sessionToken": self.token,
                                           "installationId": str(uuid.uuid4())}))
        await self.wait(lambda: self.ops("connected") or self.ops("error"), timeout)
        assert self.ops("connected"), f"live query {self.name}: {self.messages}"
        await self.ws.send_str(json.dumps({"op": "subscribe", "requestId": 1, "query": self.query,
                                           "sessionToken": self.token}))
        await self.wait(lambda: self.ops("subscribed") or self.ops("error"), timeout)
        assert self.ops("subscribed"), f"live query {self.name}: {self.messages}"
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            self.messages.append((time.perf_counter(), json.loads(message.data)))
            self.changed.set()
        self.closed_at = time.perf_counter()
        self.changed.set()

    def ops(self, *ops: str) -> list[dict]:
        return [m for _, m in self.messages if m.get("op") in ops]

    def events(self) -> list[tuple[float, str, str]]:
        """(arrival, op, objectId) of each object event."""
        return [(t, m["op"], m["object"]["objectId"]) for t, m in self.messages
                if m.get("op") in ("create", "enter", "update", "leave", "delete")]

    async def wait(self, condition: Callable[[], Any], timeout: float) -> bool:
        """Waits (on arrivals, no polling) until condition() is true; False on timeout."""
        return await wait_on(self.changed, condition, timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
        if self.session is not None:
            await self.session.close()


QUERY_RE = re.compile(r'prefix: "[^"]*",\s*query:\s*(\{.*?\}),\s*\n')
ELEMENTS_RE = re.compile(r"parseElements\(String\.raw`(.*?)`\)", re.S)


def _unescape(raw: str) -> str:
    for escaped, plain in (("&#36;", "$"), ("&#96;", "`"), ("&gt;", ">"), ("&lt;", "<"), ("&amp;", "&")):
        raw = raw.replace(escaped, plain)
    return raw


class PageView:
    """One open page through `base` (the balancer or an instance): GET with `cookies`, then NiceGUI's
    socket.io with the same cookies (ot_node included, as a browser sends it). It never reconnects.
    `elements` is the page's element tree as the browser holds it (HTML, then each update)."""

    def __init__(self, base: str, path: str, cookies: dict[str, str]):
        self.base, self.path, self.cookies = base, path, dict(cookies)
        self.elements: dict[str, dict | None] = {}
        self.changed = asyncio.Event()
        self.disconnected_at: float | None = None
        self.status = 0
        self.set_cookies: dict[str, str] = {}
        self.sio = None
        self.http: aiohttp.ClientSession | None = None
        self.ws_http: aiohttp.ClientSession | None = None
        self.query: dict[str, str] = {}  # the socket's: client, tab and document ids, as the browser keeps them

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    async def open(self, timeout: float = 20) -> "PageView":
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        async with self.http.get(self.base + self.path, headers={"Cookie": self.cookie_header()},
                                 allow_redirects=False) as response:
            html = await response.text()
            self.status = response.status
            self.set_cookies = {k: v.value for k, v in response.cookies.items()}
        assert self.status == 200, f"GET {self.path}: HTTP {self.status}"
        self.cookies.update(self.set_cookies)  # a browser keeps the ot_node the balancer gave it
        elements = ELEMENTS_RE.search(html)
        assert elements, "no elements in the page's HTML"
        self.elements.update(json.loads(_unescape(elements.group(1))))
        query = ast.literal_eval(QUERY_RE.search(html).group(1))
        query.update(document_id=str(uuid.uuid4()), tab_id=str(uuid.uuid4()), old_tab_id="",
                     implicit_handshake="true")
        self.query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query.items()}
        await self._connect(timeout)
        return self

    async def _connect(self, timeout: float) -> None:
        import socketio

        # Its own jar: engine.io moves the Cookie header into the session's jar (a dummy one drops it).
        self.ws_http = aiohttp.ClientSession()
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self.ws_http)
        self.sio.on("update", self._update)
        self.sio.on("disconnect", self._disconnect)
        await asyncio.wait_for(self.sio.connect(
            f"{self.base}?{urlencode(self.query)}", socketio_path="/_nicegui_ws/socket.io", transports=["websocket"],
            headers={"Cookie": self.cookie_header()}, wait_timeout=timeout), timeout)

    async def drop(self) -> None:
        """The socket goes (a tablet off the wifi); the page, kept by the server for its reconnect
        window, can come back with `reconnect`."""
        await self._close_socket()
        self.disconnected_at = None

    async def reconnect(self, timeout: float = 20) -> "PageView":
        """A new socket for the same page, as nicegui.js reconnects: the same client, tab and
        document ids, and the next message id it expects (the server replays what it missed)."""
        if isinstance(self.elements.get("_id"), int):
            self.query["next_message_id"] = str(self.elements["_id"] + 1)
        await self._connect(timeout)
        return self

    async def _update(self, data=None) -> None:  # noqa: ANN001
        for key, element in (data or {}).items():
            self.elements[str(key)] = element
        self.changed.set()

    async def _disconnect(self, reason=None) -> None:  # noqa: ANN001
        self.disconnected_at = self.disconnected_at or time.perf_counter()
        self.changed.set()

    def texts(self) -> list[str]:
        """Every text the page shows (each element's `text`, in no particular order)."""
        return [str(e["text"]) for e in self.elements.values() if isinstance(e, dict) and e.get("text")]

    def shows(self, fragment: str) -> bool:
        return any(fragment in t for t in self.texts())

    async def wait(self, condition: Callable[[], Any], timeout: float) -> bool:
        """Waits (on arrivals, no polling) until condition() is true; False on timeout."""
        return await wait_on(self.changed, condition, timeout)

    async def _close_socket(self) -> None:
        if self.sio is not None:
            try:
                await asyncio.wait_for(self.sio.disconnect(), 5)
            except Exception:  # noqa: BLE001 - the server may be gone
                pass
        if self.ws_http is not None:
            await self.ws_http.close()
        self.sio = self.ws_http = None

    async def close(self) -> None:
        await self._close_socket()
        if self.http is not None:
            await self.http.close()


async def poll(check: Callable[[], Any], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `check()` (or its coroutine) is true, polling every `interval` (for effects with
    no event to wait on: another process's state); None on timeout."""
    start = time.perf_counter()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            return None
        await asyncio.sleep(interval)
