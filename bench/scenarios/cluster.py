"""11. cluster: three real instances (A, B, C) on one fresh PostgreSQL database (SCALE-OUT.md §7).

Every instance is `python -m dashboard serve` (`BenchServer`), all on the same database, with the same
OT_SECRET_KEY and their own OT_INSTANCE_ID and data dir. Writes go to A; readers sit on B and C.

- fan-out: S live-query subscribers on X's MobilityScore, half on B, half on C; W REST creates on A one
  after another, each awaited with all S deliveries. Latency from the POST's send and from its 201 to each
  receipt; lost and duplicates counted over all writes after a settle. Beside it, in the same run on the
  same database, everything on A (one PostgreSQL instance). Target: cross p99 ≤ 2 × one instance's.
- open pages: P headless NiceGUI pages on X's patient page, half on B, half on C; a marked score created
  through REST on A (scenario 2's machinery). Target p99 ≤ 200 ms.
- revocation lag: (a) a REST /parse/logout on A, the same token polled on B (GET /parse/users/me until
  refused) and a live-query subscription of it on B (until its error 209 / close); (b) a care-team removal
  committed by a store in the bench process (another writer on the same database), the member's token
  polled on B (GET /parse/classes/Patient/X until refused) and its subscription on B (until the leave).
- REST creates/s of MobilityScore through A at c1 and c16 (load.py's `burst`, wrk when on PATH), without and
  with 1,000 live-query subscribers on A of X's EquipmentLog (another class of the same patient); phases
  none, subs, subs, none. Targets: c16 ≥ 1,500/s; with subscribers ≥ 90% of without.
- floor: a bare PostgreSQL NOTIFY → LISTEN callback (+ one SELECT), and a bare single-row insert+commit at c1
  and c16, on the same server, beside the run's websocket floor (scenario 7).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from sqlalchemy.engine import make_url

from bench.clients import (APP_ID, Arrivals, LiveQueryClient, RestClient, Subscribers, new_score,
                           patient_query)
from bench.seed import PASSWORD, _account, build_world, open_store
from bench.server import DATA_FILES, ROOT, BenchDatabase, BenchServer
from bench.stats import ratio, summary_ms

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DELIVERY_TIMEOUT = 15.0
REFUSAL_TIMEOUT = 10.0


def postgres_base(ctx) -> str:
    url = getattr(ctx, "database_url", None)
    if url and "postgres" in url:
        return url
    return os.environ.get("OT_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES


async def postgres_answers(base_url: str, timeout: float = 3.0) -> str | None:
    """None when PostgreSQL answers at base_url, else why not."""
    import asyncpg

    parsed = make_url(base_url)
    try:
        conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username,
                                     password=parsed.password, database="postgres", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported as the reason the scenario did not run
        return f"PostgreSQL does not answer at {parsed.host}:{parsed.port or 5432}: {type(exc).__name__}: {exc}"[:300]
    await conn.close()
    return None


def _asyncpg_args(url: str) -> dict:
    parsed = make_url(url)
    return {"host": parsed.host, "port": parsed.port or 5432, "user": parsed.username,
            "password": parsed.password, "database": parsed.database}


# ------------------------------------------------------------------------------------------------ floor
async def postgres_floor(db_url: str, notifies: int, inserts: int) -> dict:
    """NOTIFY → LISTEN callback round trip (and with one SELECT after it), and single-row insert+commit
    at c1 and c16, on a scratch table of the run's database."""
    import asyncpg

    args = _asyncpg_args(db_url)
    listener, sender = await asyncpg.connect(**args), await asyncpg.connect(**args)
    got: asyncio.Queue = asyncio.Queue()
    try:
        await listener.add_listener("bench_floor", lambda *a: got.put_nowait(time.perf_counter()))
        notify, with_select = [], []
        for i in range(notifies + 20):
            t0 = time.perf_counter()
            await sender.execute("SELECT pg_notify('bench_floor', $1)", str(i))
            at = await asyncio.wait_for(got.get(), 5)
            await listener.fetchval("SELECT 1")
            t2 = time.perf_counter()
            if i >= 20:
                notify.append(at - t0)
                with_select.append(t2 - t0)
        await sender.execute("CREATE TABLE IF NOT EXISTS bench_floor_rows (id text PRIMARY KEY, patient text, "
                             "score int, at timestamptz DEFAULT now())")
        out = {"notify_callback": summary_ms(notify), "notify_callback_select": summary_ms(with_select)}
        t0 = time.perf_counter()
        for _ in range(inserts):
            await sender.execute("INSERT INTO bench_floor_rows (id, patient, score) VALUES ($1, 'p', 1)",
                                 uuid.uuid4().hex)
        out["insert_commit_c1_per_second"] = round(inserts / (time.perf_counter() - t0), 1)
        pool = await asyncpg.create_pool(**args, min_size=16, max_size=16)
        try:
            counter = iter(range(inserts * 4))

            async def worker() -> None:
                async with pool.acquire() as conn:
                    for _ in counter:
                        await conn.execute("INSERT INTO bench_floor_rows (id, patient, score) VALUES ($1, 'p', 1)",
                                           uuid.uuid4().hex)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(16)))
            out["insert_commit_c16_per_second"] = round(inserts * 4 / (time.perf_counter() - t0), 1)
        finally:
            await pool.close()
        await sender.execute("DROP TABLE bench_floor_rows")
        return out
    finally:
        await listener.close()
        await sender.close()


# ------------------------------------------------------------------------------------------- the cluster
class Cluster:
    """A fresh PostgreSQL database, the seeded world, and instances A, B, C on it."""

    NAMES = ("A", "B", "C")

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.root = Path(tempfile.mkdtemp(prefix="ot-bench-cluster-"))
        self.db: BenchDatabase | None = None
        self.servers: dict[str, BenchServer] = {}

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        for file in DATA_FILES:
            shutil.copy(ROOT / "data" / file, path / file)
        return path

    async def __aenter__(self) -> "Cluster":
        self.db = await BenchDatabase.create(self._dir("seed"), self.base_url, "cluster")
        from dashboard.migrate import upgrade

        await asyncio.to_thread(upgrade, self.db.url)
        return self

    async def start(self) -> None:
        assert self.db is not None
        for name in self.NAMES:
            self.servers[name] = BenchServer(self._dir(name), self.db.url, settings={"OT_INSTANCE_ID": name})
        await asyncio.gather(*(asyncio.to_thread(s.start, 120) for s in self.servers.values()))
        await self.wait_listening()

    async def wait_listening(self, timeout: float = 60) -> dict:
        """Every instance's /status says it is LISTENing for the others' commits and current (it has
        confirmed it holds the whole log: else it fails closed, 503 and websocket handshakes refused)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                states = {}
                for name, server in self.servers.items():
                    try:
                        async with http.get(f"{server.url}/status") as response:
                            states[name] = await response.json(content_type=None)
                    except aiohttp.ClientError as exc:
                        states[name] = {"error": str(exc)}
                if all((s.get("changes") or {}).get("listening") and (s.get("changes") or {}).get("current", True)
                       for s in states.values()):
                    return states
                if time.monotonic() > deadline:
                    raise TimeoutError(f"instances not listening in {timeout}s: {states}")
                await asyncio.sleep(0.1)  # /status is the only readiness signal there is

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(asyncio.to_thread(s.stop) for s in self.servers.values()), return_exceptions=True)
        if self.db is not None:
            await self.db.drop()
        keep = os.environ.get("BENCH_LOG_DIR")
        for name, server in self.servers.items():
            if keep and server.log_path.exists():
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(server.log_path, Path(keep) / f"{self.root.name}-{name}-server.log")
        if exc[0] is None:
            shutil.rmtree(self.root, ignore_errors=True)

    def logged_errors(self) -> dict[str, list]:
        return {name: s.logged_errors()[:5] for name, s in self.servers.items() if s.logged_errors()}


class Spread:
    """Live-query subscribers spread round robin over several instances, one `Arrivals` for all."""

    def __init__(self, ws_urls: list[str], arrivals: Arrivals):
        self.arrivals = arrivals
        self.parts = [Subscribers(url, arrivals) for url in ws_urls]

    async def open(self, plan: list[tuple[str, dict]]) -> None:
        n = len(self.parts)
        await asyncio.gather(*(part.open(plan[i::n]) for i, part in enumerate(self.parts)))

    @property
    def errors(self) -> list[dict]:
        return [e for p in self.parts for e in p.errors]

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.parts), return_exceptions=True)


async def _fanout_phase(rest: RestClient, ws_urls: list[str], world, subscribers: int, writes: int) -> dict:
    arrivals = Arrivals(expected=subscribers)
    subs = Spread(ws_urls, arrivals)
    token = world.therapists[0].token
    try:
        t0 = time.perf_counter()
        await subs.open([(world.members[i % len(world.members)].token, patient_query(world.x))
                         for i in range(subscribers)])
        subscribe_s = time.perf_counter() - t0
        sent: list[tuple[str, float, float]] = []
        for i in range(writes + 3):  # the first 3 are a warm-up
            start, end, body = await rest.create("MobilityScore", new_score(world.x, i % 101), token)
            await arrivals.wait(body["objectId"], DELIVERY_TIMEOUT)
            if i >= 3:
                sent.append((body["objectId"], start, end))
        await asyncio.sleep(0.5)  # a duplicate would still be on its way
        from_send, from_201 = [], []
        lost = duplicates = 0
        for oid, start, end in sent:
            got = arrivals.times.get(oid, [])
            lost += max(0, subscribers - len(got))
            duplicates += max(0, len(got) - subscribers)
            from_send.extend(t - start for t in got)
            from_201.extend(t - end for t in got)
        errors = subs.errors
    finally:
        await subs.close()
    return {"subscribers": subscribers, "writes": writes, "instances": len(ws_urls),
            "subscribe_all_s": round(subscribe_s, 3), "expected_deliveries": subscribers * writes,
            "delivered": len(from_send), "lost": lost, "duplicates": duplicates,
            "latency": summary_ms(from_send), "latency_from_201": summary_ms(from_201),
            "post_roundtrip": summary_ms([e - s for _, s, e in sent]),
            "all_delivered": lost == 0 and duplicates == 0 and not errors, "errors": errors[:5]}


async def fanout(cluster: Cluster, world, sizes: list[int], writes: int) -> dict:
    a, b, c = (cluster.servers[n] for n in Cluster.NAMES)
    rest = RestClient(a.url, connections=1)
    out: dict = {}
    try:
        for size in sizes:
            cross = await _fanout_phase(rest, [b.ws_url, c.ws_url], world, size, writes)
            local = await _fanout_phase(rest, [a.ws_url], world, size, writes)
            p99s = (cross["latency"]["p99_ms"], local["latency"]["p99_ms"])
            out[f"s{size}"] = {"cross": cross, "one_instance": local,
                               "cross_vs_one_p99": ratio(*p99s)}
    finally:
        await rest.close()
    return out


# ---------------------------------------------------------------------------------------------- pages
async def pages(cluster: Cluster, world, count: int, writes: int) -> dict:
    from bench.pages_client import MarkerLog, login_cookies
    from bench.scenarios.pages import UPDATE_TIMEOUT, marked_score

    a, b, c = (cluster.servers[n] for n in Cluster.NAMES)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    rest = RestClient(a.url, connections=1)
    log = MarkerLog()
    lists: dict[str, list] = {"B": [], "C": []}
    retried: list[dict] = []
    try:
        path = f"/patient/{world.x}"
        t0 = time.perf_counter()
        for name, server in (("B", b), ("C", c)):
            cookies = []
            for account in world.members[:5]:
                async with aiohttp.ClientSession() as jar:
                    got = await login_cookies(jar, server.url, account.username)
                if got is None:
                    return {"completed": False, "blocked": "no sign-in route on the pages"}
                cookies.append(got)
            share = count // 2 + (count % 2 if name == "B" else 0)
            await _open_pages(server, path, cookies, share, log, http, lists[name], retried)
        open_s = time.perf_counter() - t0
        clients = lists["B"] + lists["C"]
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        lost = 0
        for i in range(writes + 1):  # the first is a warm-up
            marker = f"bench-{uuid.uuid4().hex[:12]}"
            log.arm(marker, len(clients))
            start, _, _ = await rest.create("MobilityScore", marked_score(world.x, marker), world.therapists[0].token)
            try:
                await asyncio.wait_for(log.done.wait(), UPDATE_TIMEOUT)
            except TimeoutError:
                pass
            if i:
                latencies.extend(t - start for t in log.first.values())
                lost += len(clients) - len(log.first)
        from collections import Counter

        dropped = sum(1 for cl in clients if cl.disconnected_at is not None)
        reasons = dict(Counter(cl.disconnect_reason for cl in clients if cl.disconnected_at is not None))
        return {"pages": len(clients), "on_b": len(lists["B"]), "on_c": len(lists["C"]), "writes": writes,
                "open_all_s": round(open_s, 1), "open_retries": len(retried), "open_failures": retried[:5],
                "lost": lost, "disconnected": dropped, "disconnect_reasons": reasons,
                "latency": summary_ms(latencies), "all_delivered": lost == 0}
    finally:
        await asyncio.gather(*(cl.close() for cl in lists["B"] + lists["C"]), return_exceptions=True)
        await rest.close()
        await http.close()


async def _open_pages(server: BenchServer, path: str, cookies: list, count: int, log, http: aiohttp.ClientSession,
                      into: list, retried: list[dict], attempts: int = 3) -> None:
    """pages.py's open_pages, 25 at a time, with a page whose socket.io connect fails opened again (up to
    `attempts` times); each failure is kept with the instance's /status at that moment."""
    from bench.pages_client import PageClient

    async def one(i: int) -> PageClient:
        for attempt in range(attempts):
            client = PageClient(server.url, path, cookies[i % len(cookies)], log)
            try:
                await client.open(http)
                return client
            except Exception as exc:  # noqa: BLE001 - kept, with the instance's own view of itself
                await client.close()
                try:
                    async with http.get(f"{server.url}/status") as response:
                        status = {"http": response.status, **(await response.json(content_type=None))}
                except Exception as status_exc:  # noqa: BLE001
                    status = {"error": repr(status_exc)}
                retried.append({"error": f"{type(exc).__name__}: {exc}"[:200], "status": status})
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    for start in range(len(into), count, 25):
        into.extend(await asyncio.gather(*(one(i) for i in range(start, min(count, start + 25)))))


# ----------------------------------------------------------------------------------------- revocation
class Watched(LiveQueryClient):
    """A live-query client that stamps its session's end (error), leaves and the socket's close."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ended_at: float | None = None
        self.left_at: float | None = None
        self.closed_at: float | None = None
        self.signal = asyncio.Event()
        self.attempts = 1

    def seen(self, op: str | None, at: float) -> None:
        if op == "leave" and self.left_at is None:
            self.left_at = at
        elif op == "error" and self.ended_at is None:
            self.ended_at = at
        self.signal.set()

    def closed(self, at: float) -> None:
        self.closed_at = at
        self.signal.set()


async def _until_refused(http: aiohttp.ClientSession, url: str, token: str, stop: asyncio.Event) -> dict:
    """GET url with the token one request after another until it is refused: when and how."""
    headers = {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token}
    polls = 0
    first = time.perf_counter()
    deadline = first + REFUSAL_TIMEOUT
    while time.perf_counter() < deadline and not stop.is_set():
        sent = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            body = await response.json(content_type=None)
            at = time.perf_counter()
        polls += 1
        if response.status != 200:
            return {"at": at, "sent": sent, "status": response.status, "code": (body or {}).get("code"),
                    "polls": polls, "poll_ms": (at - first) * 1000 / polls}
    return {"at": None, "polls": polls, "poll_ms": (time.perf_counter() - first) * 1000 / max(1, polls)}


def _lag_summary(kind: str, samples: list[dict]) -> dict:
    def pick(key: str) -> list[float]:
        return [s[key] for s in samples if s.get(key) is not None]

    refused = pick("rest_lag")
    return {"kind": kind, "trials": len(samples), "refused": len(refused),
            "not_refused": len(samples) - len(refused),
            "rest_lag": summary_ms(refused), "rest_lag_from_send": summary_ms(pick("rest_lag_from_send")),
            "live_lag": summary_ms(pick("live_lag")),
            "live_missing": sum(1 for s in samples if s.get("live_lag") is None),
            "refusals": sorted({f"{s.get('status')}/{s.get('code')}" for s in samples if s.get("status")}),
            "poll_ms": round(sum(pick("poll_ms")) / max(1, len(pick("poll_ms"))), 3),
            "commit_roundtrip": summary_ms(pick("commit")),
            # Each trial's figures (ms), in order: which trial was slow, and whether the push was too.
            "trials_ms": [{k: round(v * 1000, 1) if isinstance(v, float) and k != "poll_ms" else v
                           for k, v in s.items() if k in ("rest_lag", "live_lag", "commit", "poll_ms", "status")}
                          for s in samples]}


async def revocation(cluster: Cluster, world, leavers: list, trials: int) -> dict:
    a, b = cluster.servers["A"], cluster.servers["B"]
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    headers = {"X-Parse-Application-Id": APP_ID, "Content-Type": "application/json"}
    out: dict = {}
    try:
        # (a) logout on A, refused on B.
        samples = []
        for i in range(trials):
            account = leavers[i]  # a logout ends every session of its user: accounts of their own
            async with http.post(f"{a.url}/parse/login", headers=headers,
                                 data=json.dumps({"username": account.username, "password": PASSWORD})) as r:
                token = (await r.json(content_type=None))["sessionToken"]
            signed_in = time.perf_counter()
            watched = await _open_when_known(b.ws_url, token, http, patient_query(world.x))
            known = time.perf_counter() - signed_in
            stop = asyncio.Event()
            poll = asyncio.create_task(_until_refused(http, f"{b.url}/parse/users/me", token, stop))
            await asyncio.sleep(0.02)  # the poll is under way (and answering 200) before the logout
            t0 = time.perf_counter()
            async with http.post(f"{a.url}/parse/logout", headers={**headers, "X-Parse-Session-Token": token}) as r:
                await r.read()
                t1 = time.perf_counter()
                assert r.status == 200, r.status
            try:
                await asyncio.wait_for(_first(watched, "ended_at"), REFUSAL_TIMEOUT)
            except TimeoutError:
                pass
            got = await poll
            stop.set()
            live_at = watched.ended_at or watched.closed_at
            samples.append({"commit": t1 - t0, "rest_lag": None if got["at"] is None else got["at"] - t1,
                            "rest_lag_from_send": None if got["at"] is None else got["at"] - t0,
                            "live_lag": None if live_at is None else live_at - t1,
                            "status": got.get("status"), "code": got.get("code"), "poll_ms": got["poll_ms"],
                            "sign_in_known_on_b": known, "sign_in_attempts": watched.attempts})
            await watched.close()
        out["logout"] = _lag_summary("REST /parse/logout on A → refused on B", samples)
        # A session signed in on A, until B accepts it (the live-query connect on B, retried on 209).
        out["logout"]["sign_in_known_on_b"] = summary_ms([s["sign_in_known_on_b"] for s in samples])
        out["logout"]["sign_in_refused_first"] = sum(1 for s in samples if s["sign_in_attempts"] > 1)

        # (b) a care-team removal committed by another writer, refused on B.
        samples = []
        fail_closed: list[dict] = []
        rest = RestClient(a.url, connections=1)
        async with open_store(cluster.db.url, cluster.root / "seed") as store:
            lead = (await store.log_in(username=world.lead.username, password=PASSWORD)).principal
            for i in range(trials):
                account = world.members[i % len(world.members)]
                watched = Watched(b.ws_url, account.token, Arrivals(expected=1))
                try:
                    await watched.open(http, patient_query(world.x))
                except aiohttp.WSServerHandshakeError as exc:
                    # B refused the handshake: it failed closed (not current). Counted, waited out, again.
                    t_wait = time.perf_counter()
                    status = await cluster.wait_listening()
                    fail_closed.append({"trial": i, "refused": exc.status,
                                        "waited_s": round(time.perf_counter() - t_wait, 2),
                                        "b_after": (status.get("B") or {}).get("changes")})
                    watched = Watched(b.ws_url, account.token, Arrivals(expected=1))
                    await watched.open(http, patient_query(world.x))
                # One score it sees first, so that the removal has something to leave.
                _, _, body = await rest.create("MobilityScore", new_score(world.x, i), world.therapists[0].token)
                await watched.arrivals.wait(body["objectId"], DELIVERY_TIMEOUT)
                stop = asyncio.Event()
                poll = asyncio.create_task(_until_refused(http, f"{b.url}/parse/classes/Patient/{world.x}",
                                                          account.token, stop))
                await asyncio.sleep(0.02)
                t0 = time.perf_counter()
                await store.remove_care_team_member(principal=lead, patient_id=world.x, user_id=account.user_id)
                t1 = time.perf_counter()
                try:
                    await asyncio.wait_for(_first(watched, "left_at"), REFUSAL_TIMEOUT)
                except TimeoutError:
                    pass
                got = await poll
                stop.set()
                samples.append({"commit": t1 - t0, "rest_lag": None if got["at"] is None else got["at"] - t1,
                                "rest_lag_from_send": None if got["at"] is None else got["at"] - t0,
                                "live_lag": None if watched.left_at is None else watched.left_at - t1,
                                "status": got.get("status"), "code": got.get("code"), "poll_ms": got["poll_ms"]})
                await watched.close()
                await store.add_care_team_member(principal=lead, patient_id=world.x, user_id=account.user_id)
        await rest.close()
        out["team_removal"] = _lag_summary("care-team removal (store in the bench process) → refused on B", samples)
        out["team_removal"]["b_failed_closed"] = fail_closed
        await asyncio.sleep(0.5)  # the re-grants reach every instance before the next part
    finally:
        await http.close()
    return out


async def _open_when_known(ws_url: str, token: str, http: aiohttp.ClientSession, query: dict,
                           timeout: float = REFUSAL_TIMEOUT) -> Watched:
    """A Watched subscription on ws_url; a session just signed in on another instance may be refused
    (209) until this one has it: retried until accepted, the attempts counted."""
    from bench.clients import BenchError

    deadline = time.perf_counter() + timeout
    attempts = 0
    while True:
        attempts += 1
        watched = Watched(ws_url, token, Arrivals(expected=1))
        try:
            await watched.open(http, query)
            watched.attempts = attempts
            return watched
        except BenchError as exc:
            await watched.close()
            if "209" not in str(exc) or time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.005)


async def _first(watched: Watched, attr: str) -> None:
    while getattr(watched, attr) is None and watched.closed_at is None:
        watched.signal.clear()
        await watched.signal.wait()


# ---------------------------------------------------------------------------------------------- creates
async def creates(cluster: Cluster, world, driver: str, subscribers: int, counts: dict[int, int]) -> dict:
    from bench.scenarios.load import burst

    a = cluster.servers["A"]
    token = world.therapists[0].token
    phases: list[tuple[str, int, dict]] = []

    async def phase(name: str) -> None:
        for level, count in counts.items():
            b = await burst(driver, a.url, "MobilityScore", world.x, token, count, level)
            phases.append((name, level, b.as_dict()))

    for level in counts:  # warm-up, not counted
        await burst(driver, a.url, "MobilityScore", world.x, token, min(100, counts[level]), level)
    arrivals = Arrivals(expected=subscribers)
    subs = Subscribers(a.ws_url, arrivals)
    await phase("none")
    try:
        t0 = time.perf_counter()
        await subs.open([(world.members[i % len(world.members)].token,
                          patient_query(world.x, "EquipmentLog")) for i in range(subscribers)])
        subscribe_s = time.perf_counter() - t0
        await phase("subs")
        await phase("subs")
        await asyncio.sleep(0.3)
        leaked = sum(len(t) for t in arrivals.times.values())
        errors = subs.errors
    finally:
        await subs.close()
    await phase("none")
    out: dict = {"driver": driver, "subscribers": subscribers, "subscriber_class": "EquipmentLog",
                 "written_class": "MobilityScore", "subscribe_all_s": round(subscribe_s, 3),
                 "order": [f"{n} c{lv}" for n, lv, _ in phases], "events_to_subscribers": leaked}
    for level in counts:
        for name in ("none", "subs"):
            mine = [p for n, lv, p in phases if n == name and lv == level]
            created, seconds = sum(p["created"] for p in mine), sum(p["seconds"] for p in mine)
            out[f"c{level}_{name}"] = {"created": created, "seconds": round(seconds, 3),
                                       "per_second": round(created / seconds, 1) if seconds else None,
                                       "phases_per_second": [p["per_second"] for p in mine],
                                       "latency_p50_ms": [p["latency_p50_ms"] for p in mine],
                                       "latency_p99_ms": [p["latency_p99_ms"] for p in mine]}
        none, subs_ = out[f"c{level}_none"]["per_second"], out[f"c{level}_subs"]["per_second"]
        out[f"c{level}_subs_vs_none_pct"] = round(100 * subs_ / none, 1) if none and subs_ else None
    out["refused"] = sum(p["answers"] - p["created"] for _, _, p in phases)
    out["request_errors"] = [e for _, _, p in phases for e in p["errors"]][:5]
    out["errors"] = errors[:5]
    out["ok"] = out["refused"] == 0 and not out["request_errors"] and leaked == 0 and not errors
    return out


# ------------------------------------------------------------------------------------------------- run
async def run(ctx, sizes: list[int], writes: int, page_count: int, page_writes: int, trials: int,
              subscribers: int, counts: dict[int, int]) -> dict:
    from bench.scenarios.load import pick_driver

    base = postgres_base(ctx)
    why = await postgres_answers(base)
    if why:
        return {"completed": False, "blocked": why}
    driver = pick_driver(getattr(ctx, "driver", None))
    load = {"before": [round(x, 2) for x in os.getloadavg()]}
    out: dict = {"completed": False, "database": "postgresql", "instances": list(Cluster.NAMES), "driver": driver}
    async with Cluster(base) as cluster:
        out["floor"] = await postgres_floor(cluster.db.url, 50 if ctx.quick else 500, 100 if ctx.quick else 1000)
        async with open_store(cluster.db.url, cluster.root / "seed") as store:
            world = await build_world(store, patients=1, therapists=1, members=20)
            # The logout trials' accounts, on X's care team (a logout ends all of its user's sessions).
            leavers = []
            for i in range(trials):
                leavers.append(await _account(store, world.lead.principal, f"bench-r{i}", "contributor"))
                await store.add_care_team_member(principal=world.lead.principal, patient_id=world.x,
                                                 user_id=leavers[-1].user_id)
        await cluster.start()
        steps = (("fanout", lambda: fanout(cluster, world, sizes, writes)),
                 ("pages", lambda: pages(cluster, world, page_count, page_writes)),
                 ("revocation", lambda: revocation(cluster, world, leavers, trials)),
                 ("creates", lambda: creates(cluster, world, driver, subscribers, counts)))
        for name, step in steps:
            t0 = time.perf_counter()
            ready = time.perf_counter()
            await cluster.wait_listening()  # e.g. after 250 pages closed on B and C (see the README)
            out[f"{name}_waited_current_s"] = round(time.perf_counter() - ready, 2)
            try:
                out[name] = await step()
            except Exception as exc:  # noqa: BLE001 - this figure failed; the others are still measured
                import traceback

                out[name] = {"failed": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()[-3000:]}
            load[f"after_{name}"] = [round(x, 2) for x in os.getloadavg()]
            out[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
            print(f"[bench] cluster: {name} in {out[f'{name}_seconds']}s, load {load[f'after_{name}']}", flush=True)
        out["status"] = await cluster.wait_listening()
        out["logged_errors"] = cluster.logged_errors()
    out["loadavg"] = load
    failed = {name: out[name]["failed"] for name, _ in steps if "failed" in out[name]}
    if failed:
        out["error"] = "; ".join(f"{k}: {v}" for k, v in failed.items())[:2000]
        return out  # completed False: the figures that were measured are in the JSON and the table
    fan_ok = all(v["cross"]["all_delivered"] and v["one_instance"]["all_delivered"]
                 for v in out["fanout"].values())
    rev_ok = all(r["not_refused"] == 0 and r["live_missing"] == 0 and not r.get("b_failed_closed")
                 for r in out["revocation"].values())
    out["all_delivered"] = (fan_ok and out["pages"].get("all_delivered", False) and rev_ok and out["creates"]["ok"]
                            and not out["logged_errors"])
    out["completed"] = True
    return out


# ------------------------------------------------------------------------------------------ table rows
def _verdict(value, target, lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    return "meets" if (value <= target if lower_is_better else value >= target) else "MISSES"


def table_rows(r: dict, scenarios: dict) -> list[tuple]:
    """The cluster's rows for bench/report.py's table."""
    if r.get("blocked"):
        return [("cluster (3 instances on PostgreSQL)", "BLOCKED", "", "", "", r["blocked"])]
    if not r.get("completed") and not any(isinstance(r.get(k), dict) for k in ("fanout", "pages", "revocation",
                                                                               "creates")):
        return []
    rows: list[tuple] = []
    for name in ("fanout", "pages", "revocation", "creates"):
        if isinstance(r.get(name), dict) and "failed" in r[name]:
            rows.append((f"cluster {name}", "FAILED", "", "", "", r[name]["failed"][:200]))
    floor = scenarios.get("floor", {})
    pg = r.get("floor") or {}
    notify = (pg.get("notify_callback") or {}).get("p50_ms")
    notify_select = (pg.get("notify_callback_select") or {}).get("p50_ms")
    load = r.get("loadavg", {})
    note = f" [load {load.get('before')} → {load.get('after_creates')}]"
    for key in sorted((k for k in r.get("fanout", {}) if k[1:].isdigit()), key=lambda k: int(k[1:])):
        f = r["fanout"][key]
        cross, one = f["cross"], f["one_instance"]
        size = int(key[1:])
        lat, lat201 = cross["latency"], cross["latency_from_201"]
        bare = (floor.get("websocket") or {}).get(f"fanout_{size}") or {}
        inproc = ((scenarios.get("fanout") or {}).get(key) or {}).get("latency") or {}
        beside = f"one PostgreSQL instance {one['latency']['p50_ms']} / {one['latency']['p99_ms']}"
        if inproc:
            beside += f"; in-process SQLite (fanout, same run) {inproc.get('p50_ms')} / {inproc.get('p99_ms')}"
        beside += f"; NOTIFY→callback+SELECT {notify_select}"
        if bare:
            beside += f"; bare fan-out {bare.get('p50_ms')} / {bare.get('p99_ms')}"
        bad = cross["lost"] or cross["duplicates"] or one["lost"] or one["duplicates"]
        rows.append((f"cluster fan-out {size} subs on B+C, writes on A: p50 / p99 / max ms from send "
                     f"(from 201: p50 / p99){note if key == 's50' else ''}",
                     f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['max_ms']} ({lat201['p50_ms']} / {lat201['p99_ms']}; "
                     f"lost {cross['lost']}, dup {cross['duplicates']})",
                     "p99 ≤ 2 × one instance; lost 0, dup 0", beside,
                     f"{f.get('cross_vs_one_p99')} × one instance",
                     "MISSES" if bad else _verdict(f.get("cross_vs_one_p99"), 2.0)))
    p = r.get("pages") or {}
    if p.get("blocked"):
        rows.append(("cluster open pages on B+C", "BLOCKED", "p99 ≤ 200", "", "", p["blocked"]))
    elif p and "failed" not in p:
        inproc = ((scenarios.get("pages") or {}).get(f"p{p['pages']}") or {}).get("latency") or {}
        rows.append((f"cluster open pages {p['pages']} on B+C, writes on A: p50 / p99 ms",
                     f"{p['latency']['p50_ms']} / {p['latency']['p99_ms']} (lost {p['lost']})", "p99 ≤ 200",
                     f"in-process SQLite (pages, same run) {inproc.get('p50_ms')} / {inproc.get('p99_ms')}"
                     if inproc else "", "",
                     "MISSES" if p["lost"] else _verdict(p["latency"]["p99_ms"], 200)))
    for name, v in (r.get("revocation") or {}).items():
        if not isinstance(v, dict):
            continue
        rest, live = v["rest_lag"], v["live_lag"]
        bad = v["not_refused"] or v["live_missing"]
        rows.append((f"cluster revocation lag, {v['kind']} ({v['trials']} trials): REST p50 / p99 ms; "
                     f"live query p50 / p99 ms",
                     f"{rest['p50_ms']} / {rest['p99_ms']}; {live['p50_ms']} / {live['p99_ms']} "
                     f"(refused {v['refused']}/{v['trials']} as {', '.join(v['refusals'])}; poll every "
                     f"{v['poll_ms']} ms" + (f"; B failed closed {len(v['b_failed_closed'])}× between trials"
                                             if v.get("b_failed_closed") else "") + ")",
                     "p99 ≤ 1000 (the heartbeat); all refused",
                     f"NOTIFY→callback {notify}", "",
                     "MISSES" if bad else _verdict(max(rest["p99_ms"] or 0, live["p99_ms"] or 0), 1000)))
    c = r.get("creates") or {}
    floor_rate = pg.get("insert_commit_c16_per_second")
    for key in sorted((k for k in c if k.endswith("_none")), key=lambda k: int(k[1:].split("_")[0])):
        level = key.split("_")[0]
        none, subs = c[key]["per_second"], c[f"{level}_subs"]["per_second"]
        pct = c.get(f"{level}_subs_vs_none_pct")
        floor_here = pg.get(f"insert_commit_{level}_per_second")
        rows.append((f"cluster REST MobilityScore creates {level} /s through A (PostgreSQL), without → with "
                     f"{c['subscribers']} EquipmentLog subs [{c['driver']}]",
                     f"{none} → {subs} ({pct}%)" + (f"; refused {c['refused']}" if c.get("refused") else ""),
                     "≥ 1500; with ≥ 90% of without" if level == "c16" else "with ≥ 90% of without",
                     f"bare PostgreSQL insert+commit {level} {floor_here}/s",
                     f"{ratio(floor_here, none)} / {ratio(floor_here, subs)}",
                     "MISSES" if not c.get("ok") else
                     ("meets" if (pct or 0) >= 90 and (level != "c16" or (none or 0) >= 1500) else "MISSES")))
    if floor_rate is not None:
        rows.append(("floor: PostgreSQL NOTIFY→callback p50 / p99 ms; + one SELECT p50; insert+commit c1 / c16 /s",
                     f"{notify} / {(pg.get('notify_callback') or {}).get('p99_ms')}; {notify_select}; "
                     f"{pg.get('insert_commit_c1_per_second')} / {floor_rate}", "", "", "", "floor"))
    if r.get("logged_errors"):
        rows.append(("cluster: server log errors", str(r["logged_errors"])[:200], "none", "", "", "MISSES"))
    return rows
