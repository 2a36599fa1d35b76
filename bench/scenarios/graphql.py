"""10. GraphQL, beside REST and live queries on the same server in the same run.

(a) A find of 100 MobilityScores with nested pointers (`patient { displayName primaryTherapist { username } }
recordedBy { username }`) as one `POST /graphql`, beside the same page through REST (`GET
/parse/classes/MobilityScore?where=…&limit=100&include=patient.primaryTherapist,recordedBy`): round trips at
concurrency 1 (p50 / p99 / max), then requests per second at concurrency 16 (16 accounts, one per
connection; `_concurrent` says how the rate is counted), phases G R R G so drift in the machine's load falls on both sides alike. Beside them, two
HTTP floors of the same run: the bare aiohttp server of the floor scenario (`/status`, no app) and this
server's own `GET /status` (one `SELECT 1`).

(b) Subscription fan-out: S GraphQL subscriptions (graphql-transport-ws at ws://SERVER/graphql, one socket
each, over the sessions of X's care team) on X's MobilityScore, REST creates one after another, each awaited
with all its deliveries; beside the live-query fan-out at the same S on the same server (phases L G G L,
live.py's `fanout_samples` measures both). A server that refuses the GraphQL websocket gets "not available"
for (b), not a failed scenario.
"""
from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from bench.clients import APP_ID, Arrivals, BenchError, LiveQueryClient, Subscribers, patient_query, pointer
from bench.scenarios.live import fanout_samples, fanout_summary
from bench.seed import PASSWORD, build_world, open_store, score_rows
from bench.server import Workspace
from bench.stats import summary_ms

PROTOCOL = "graphql-transport-ws"
NOT_AVAILABLE = "not available (no GraphQL websocket on this server)"
FIND = ("query Scores($pid: ID!) { mobilityScores(first: 100, where: {patient: {have: {objectId: {equalTo: $pid}}}}) "
        "{ edges { node { objectId scoreValue scoreDate patient { displayName primaryTherapist { username } } "
        "recordedBy { username } } } } }")
SUBSCRIPTION = ("subscription($pid: ID!) { mobilityScores(where: {patient: {have: {objectId: {equalTo: $pid}}}}) "
                "{ event objectId node { scoreValue } } }")
REST_INCLUDE = "patient.primaryTherapist,recordedBy"
EVENTS = frozenset({"CREATE", "ENTER", "UPDATE"})
WARM_UP = 20  # requests of each kind before anything is counted


class NoWebsocket(BenchError):
    """The server does not speak graphql-transport-ws at /graphql."""


# ---------------------------------------------------------------------------------------------- (a) finds
class Page:
    """One request for the page of 100 scores, as GraphQL or as REST; `prefix` is how a good answer begins
    (GraphQL puts `errors` before `data`, so `{"data":` means none)."""

    def __init__(self, kind: str, server_url: str, pid: str):
        self.kind = kind
        if kind == "graphql":
            self.method, self.url = "POST", f"{server_url}/graphql"
            self.body: bytes | None = json.dumps({"query": FIND, "variables": {"pid": pid}}).encode()
            self.prefix = b'{"data":'
        else:
            where = json.dumps({"patient": pointer("Patient", pid)}, separators=(",", ":"))
            query = urlencode({"where": where, "limit": "100", "include": REST_INCLUDE})
            self.method, self.url = "GET", f"{server_url}/parse/classes/MobilityScore?{query}"
            self.body = None
            self.prefix = b'{"results":'

    def headers(self, token: str) -> dict[str, str]:
        out = {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token}
        if self.body is not None:
            out["Content-Type"] = "application/json"
        return out

    def describe(self) -> str:
        return f"{self.method} {self.url}" + (f" {self.body.decode()}" if self.body else "")

    async def fetch(self, session: aiohttp.ClientSession, token: str) -> tuple[float, bytes]:
        """(seconds to the whole answer, the answer); BenchError with the request and answer on a bad one."""
        start = time.perf_counter()
        async with session.request(self.method, URL(self.url, encoded=True), data=self.body,
                                   headers=self.headers(token)) as response:
            raw = await response.read()
            elapsed = time.perf_counter() - start
            status = response.status
        if status != 200 or not raw.startswith(self.prefix):
            raise BenchError(f"{self.kind}: {self.describe()[:600]} answered HTTP {status} "
                             f"{raw[:1500].decode(errors='replace')}")
        return elapsed, raw


def _rows(kind: str, raw: bytes) -> list[dict]:
    data = json.loads(raw)
    if kind == "graphql":
        return [edge["node"] for edge in data["data"]["mobilityScores"]["edges"]]
    return data["results"]


def shape(kind: str, raw: bytes) -> dict:
    """What one answer holds: rows, and how many of their nested pointers came back unresolved."""
    rows = _rows(kind, raw)

    def name(obj, *path: str):
        for key in path:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    return {"rows": len(rows), "bytes": len(raw),
            "without_patient_name": sum(1 for r in rows if not name(r, "patient", "displayName")),
            "without_therapist_username": sum(1 for r in rows if not name(r, "patient", "primaryTherapist", "username")),
            "without_recorder_username": sum(1 for r in rows if not name(r, "recordedBy", "username"))}


async def _c1(page: Page, token: str, count: int) -> list[float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        times = []
        for _ in range(count):
            elapsed, _ = await page.fetch(session, token)
            times.append(elapsed)
        return times


async def _get_c1(url: str, count: int) -> list[float]:
    """Plain GETs one after another (the HTTP floors), after as many again (at most WARM_UP) not counted."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        times = []
        warm_up = min(WARM_UP, count)
        for i in range(count + warm_up):
            start = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise BenchError(f"GET {url}: HTTP {response.status}")
            if i >= warm_up:
                times.append(time.perf_counter() - start)
        return times


def http_floor(count: int) -> list[float]:
    """GET /status of the floor scenario's bare aiohttp server (no app, no database), one after another."""
    from bench.scenarios.floor import FloorServer

    with FloorServer() as floor:
        return asyncio.run(_get_c1(f"http://127.0.0.1:{floor.port}/status", count))


async def _concurrent(page: Page, tokens: list[str], concurrency: int, seconds: float) -> dict:
    """`concurrency` workers, each with its own account (REST allows 4 finds at once per account), asking
    for the page again as soon as it has come, for `seconds`. The rate is counted between answers of the
    steady state: from the `concurrency`-th answer (the first round fills the server) to the last that
    came before the deadline (after it, the workers stop asking and the last ones drain faster).
    An aiohttp client, not wrk: these answers cost the server tens of milliseconds each and the client
    well under one, and wrk gives no time per answer to count a steady state by (its answers over its
    duration miss the requests still in flight at its end: up to 16 of 100 in a 5 s phase at 20 answers/s)."""
    bad = 0
    errors: list[str] = []
    latencies: list[float] = []
    done_at: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(k: int) -> None:
            nonlocal bad
            while time.perf_counter() < deadline:
                try:
                    elapsed, _ = await page.fetch(session, tokens[k % len(tokens)])
                    latencies.append(elapsed)
                    done_at.append(time.perf_counter())
                except BenchError as exc:
                    bad += 1
                    if len(errors) < 3:
                        errors.append(str(exc)[:600])

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        drained = time.perf_counter()
    steady = [t for t in done_at[concurrency - 1:] if t <= deadline]
    window = steady[-1] - steady[0] if len(steady) >= 2 else 0.0
    lat = summary_ms(latencies)
    return {"ok": len(latencies), "bad": bad, "seconds": round(drained - started, 3),
            "steady_answers": max(0, len(steady) - 1), "steady_seconds": round(window, 3),
            "per_second": round((len(steady) - 1) / window, 1) if window > 0 else None,
            "latency_p50_ms": lat["p50_ms"], "latency_p99_ms": lat["p99_ms"], "latency_max_ms": lat["max_ms"],
            "errors": errors}


def _side(phases: list[dict]) -> dict:
    answers = sum(p["steady_answers"] for p in phases)
    seconds = sum(p["steady_seconds"] for p in phases)
    return {"ok": sum(p["ok"] for p in phases), "bad": sum(p["bad"] for p in phases), "steady_answers": answers,
            "steady_seconds": round(seconds, 3), "per_second": round(answers / seconds, 1) if seconds else None,
            "phases_per_second": [p["per_second"] for p in phases],
            "latency_p50_ms": [p["latency_p50_ms"] for p in phases],
            "latency_p99_ms": [p["latency_p99_ms"] for p in phases],
            "errors": [e for p in phases for e in p["errors"]][:3]}


async def finds(server, world, tokens: list[str], c1_requests: int, c16_seconds: float,
                concurrency: int = 16) -> dict:
    pages = {kind: Page(kind, server.url, world.x) for kind in ("graphql", "rest")}
    owner = tokens[0]  # the patient's own therapist
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        shapes = {}
        for kind, page in pages.items():
            _, raw = await page.fetch(session, owner)
            shapes[kind] = shape(kind, raw)
            for token in tokens[1:2]:  # a therapist on the care team reads the same page
                _, raw = await page.fetch(session, token)
                shapes[f"{kind}_team_member"] = shape(kind, raw)
    for page in pages.values():
        await _c1(page, owner, min(WARM_UP, c1_requests))
    status = await _get_c1(f"{server.url}/status", c1_requests // 2)
    half = max(1, c1_requests // 2)
    c1: dict[str, list[float]] = {"graphql": [], "rest": []}
    c1_phases: dict[str, list] = {"graphql": [], "rest": []}
    for kind in ("graphql", "rest", "rest", "graphql"):
        times = await _c1(pages[kind], owner, half)
        c1[kind] += times
        c1_phases[kind].append(summary_ms(times)["p50_ms"])
    c16: dict[str, list[dict]] = {"graphql": [], "rest": []}
    for kind in ("graphql", "rest"):  # warm-up, not counted
        await _concurrent(pages[kind], tokens, concurrency, min(1.0, c16_seconds / 2))
    for kind in ("graphql", "rest", "rest", "graphql"):
        c16[kind].append(await _concurrent(pages[kind], tokens, concurrency, c16_seconds))
    g, r = _side(c16["graphql"]), _side(c16["rest"])
    return {"shapes": shapes, "server_status_c1": summary_ms(status),
            "c1": {kind: {**summary_ms(times), "phases_p50_ms": c1_phases[kind]} for kind, times in c1.items()},
            "c1_order": "G R R G",
            f"c{concurrency}": {"graphql": g, "rest": r, "seconds_per_phase": c16_seconds,
                                "accounts": len(tokens), "order": "G R R G",
                                "graphql_vs_rest_pct": round(100 * g["per_second"] / r["per_second"], 1)
                                if g["per_second"] and r["per_second"] else None},
            "concurrency": concurrency, "requests": {k: p.describe() for k, p in pages.items()}}


# ---------------------------------------------------------------------------------------------- (b) fan-out
class GraphQLSubscriber(LiveQueryClient):
    """One graphql-transport-ws socket with one subscription; records each event's arrival into `arrivals`."""

    async def open(self, session: aiohttp.ClientSession, query: dict, *, timeout: float = 20) -> None:
        url = self.ws_url
        try:
            self.ws = await session.ws_connect(url, protocols=(PROTOCOL,), heartbeat=None, max_msg_size=0,
                                               timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            raise NoWebsocket(f"{url}: handshake answered HTTP {exc.status} {exc.message}") from None
        if self.ws.protocol != PROTOCOL:
            await self.ws.close()
            raise NoWebsocket(f"{url}: the server did not choose {PROTOCOL} (it chose {self.ws.protocol!r})")
        await self.ws.send_str(json.dumps({"type": "connection_init", "payload": {
            "X-Parse-Application-Id": self.app_id, "X-Parse-Session-Token": self.token}}))
        await self._expect("connection_ack", timeout)
        await self.ws.send_str(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
        # graphql-ws has no "subscribed": the server handles a socket's messages in order, so the pong
        # to a ping sent after `subscribe` says the subscription is live (or its `error` comes first).
        await self.ws.send_str('{"type":"ping"}')
        await self._expect("pong", timeout)
        self.reader = asyncio.create_task(self._read())

    async def _expect(self, kind: str, timeout: float) -> dict:
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        for _ in range(100):  # bounded: a handful of messages at most before the answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = await self.ws.receive(timeout=remaining)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise BenchError(f"GraphQL socket: expected {kind}, socket said {message.type.name} "
                                 f"{self.ws.close_code} {message.extra or ''}")
            data = json.loads(message.data)
            if data.get("type") == kind:
                return data
            if data.get("type") == "ping":
                await self.ws.send_str('{"type":"pong"}')
            elif data.get("type") in ("error", "complete", "next"):
                raise BenchError(f"GraphQL socket: expected {kind}, got {message.data[:1000]}")
        raise BenchError(f"GraphQL socket: no {kind} within {timeout}s")

    async def _read(self) -> None:
        assert self.ws is not None
        arrivals = self.arrivals
        async for message in self.ws:
            at = time.perf_counter()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            kind = data.get("type")
            if kind == "next":
                payload = data.get("payload") or {}
                if payload.get("errors"):
                    self.errors.append(data)
                for event in (payload.get("data") or {}).values():
                    if isinstance(event, dict) and event.get("event") in EVENTS:
                        self.received += 1
                        arrivals.add(event["objectId"], at)
            elif kind == "ping":
                await self.ws.send_str('{"type":"pong"}')
            elif kind != "pong":
                self.errors.append(data)
        if self.ws.close_code is not None and self.ws.close_code != 1000:
            self.errors.append({"closed": self.ws.close_code})


class GraphQLSubscribers(Subscribers):
    """`Subscribers` whose clients speak graphql-transport-ws; opened in batches as the live-query ones."""

    async def open(self, tokens_and_queries: list[tuple[str, dict]], *, batch: int = 50) -> None:
        for start in range(0, len(tokens_and_queries), batch):
            part = tokens_and_queries[start:start + batch]
            chunk = [GraphQLSubscriber(self.ws_url, token, self.arrivals) for token, _ in part]
            self.clients.extend(chunk)  # closed by close() whatever happened
            outcomes = await asyncio.gather(*(c.open(self.session, q) for c, (_, q) in zip(chunk, part)),
                                            return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:
                raise next((f for f in failed if isinstance(f, NoWebsocket)), failed[0])


def _merge(parts: list[dict]) -> dict:
    return {"latency": [x for p in parts for x in p["latency"]], "post": [x for p in parts for x in p["post"]],
            "lost": sum(p["lost"] for p in parts), "duplicates": sum(p["duplicates"] for p in parts),
            "writes": sum(p["writes"] for p in parts), "subscribe_all_s": [p["subscribe_all_s"] for p in parts],
            "errors": [e for p in parts for e in p["errors"]]}


async def fanouts(server, world, subscribers: int, writes: int) -> dict:
    """Live queries and GraphQL subscriptions at the same S, phases L G G L of writes/2 creates each."""
    graphql_url = server.url.replace("http://", "ws://") + "/graphql"
    gql_query = {"query": SUBSCRIPTION, "variables": {"pid": world.x}}
    half = max(1, writes // 2)
    parts: dict[str, list[dict]] = {"live": [], "graphql": []}
    unavailable: str | None = None
    for kind in ("live", "graphql", "graphql", "live"):
        arrivals = Arrivals(expected=subscribers)
        if kind == "live":
            parts[kind].append(await fanout_samples(Subscribers(server.ws_url, arrivals), server.url, world,
                                                    subscribers, half, patient_query(world.x)))
        elif unavailable is None:
            try:
                parts[kind].append(await fanout_samples(GraphQLSubscribers(graphql_url, arrivals), server.url,
                                                        world, subscribers, half, gql_query))
            except NoWebsocket as exc:
                unavailable = str(exc)
    def phases(kind: str) -> dict:
        return {"phases_p50_ms": [summary_ms(p["latency"])["p50_ms"] for p in parts[kind]],
                "phases_p99_ms": [summary_ms(p["latency"])["p99_ms"] for p in parts[kind]]}

    out: dict = {"subscribers": subscribers, "order": "L G G L",
                 "live": {**fanout_summary(subscribers, _merge(parts["live"])), **phases("live")}}
    if unavailable is not None:
        out["graphql"] = {"available": False, "result": NOT_AVAILABLE, "refusal": unavailable[:500],
                          "all_delivered": True}
    else:
        out["graphql"] = {"available": True, **fanout_summary(subscribers, _merge(parts["graphql"])),
                          **phases("graphql")}
    return out


# ---------------------------------------------------------------------------------------------- the scenario
async def _log_in(server_url: str, usernames: list[str]) -> list[str]:
    """Session tokens through POST /parse/login, as a client gets them."""
    tokens = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for username in usernames:
            async with session.post(f"{server_url}/parse/login", json={"username": username, "password": PASSWORD},
                                    headers={"X-Parse-Application-Id": APP_ID}) as response:
                body = await response.json(content_type=None)
                if response.status != 200 or "sessionToken" not in body:
                    raise BenchError(f"POST /parse/login {username}: HTTP {response.status} {str(body)[:300]}")
                tokens.append(body["sessionToken"])
    return tokens


async def run(ctx, c1_requests: int, c16_seconds: float, subscribers: int, writes: int, concurrency: int = 16,
              scores: int = 200) -> dict:
    floor = await asyncio.to_thread(http_floor, max(50, c1_requests // 2))
    async with Workspace("graphql", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            # therapist 0 owns X; the other therapists are on its care team (one account per connection
            # at c16: REST allows 4 finds at once per account); the members hold the subscriptions.
            world = await build_world(store, patients=1, therapists=concurrency, members=min(subscribers, 20))
            for t in world.therapists[1:]:
                await store.add_care_team_member(principal=world.lead.principal, patient_id=world.x,
                                                 user_id=t.user_id)
            await store.import_scores(principal=world.lead.principal, rows=score_rows([world.x], scores))
        server = await asyncio.to_thread(ws.start_server)
        tokens = await _log_in(server.url, [t.username for t in world.therapists])
        found = await finds(server, world, tokens, c1_requests, c16_seconds, concurrency)
        fan = await fanouts(server, world, subscribers, writes)
    bad = found[f"c{concurrency}"]["graphql"]["bad"] + found[f"c{concurrency}"]["rest"]["bad"]
    return {"completed": True, "scores_of_patient": scores, "http_floor_c1": summary_ms(floor), **found,
            "fanout": fan, "refused_concurrent": bad,
            "all_delivered": bad == 0 and fan["live"]["all_delivered"] and fan["graphql"]["all_delivered"]}
