"""8. Resource limits (REVIEW-SECURITY.md H3 and H4): the server's resident memory under two attacks.

(a) Batched finds (H3). A contributor on one patient's care team adds N scores with long `notes` (through
REST, topped up through the store if the server refuses some), then K clients at once each POST one
/parse/batch of B × GET /parse/classes/MobilityScore {"limit": 1000}. A fresh server per K, so each peak is that
K's own (VmHWM is the kernel's high-water mark since the process started). Recorded: peak RSS, what the server
answered (HTTP status, bytes, sub-results that succeeded or failed), /status latency while it ran, and whether
the server was still up afterwards.

(b) Unauthenticated websockets (H4). S sockets on /parse that never send `connect`, then F sockets that each
send one oversized frame (16,000,000 chars, just under uvicorn's 16 MiB default), also without `connect`.
Recorded: RSS and open descriptors before / after / at the end of the hold, how many sockets the server still
holds open after the hold (15 s), what it answered to each frame, /status latency during the hold.

Safety: a thread reads /proc/<pid>/status every 20 ms; past the cap (6 GiB by default) or when the machine's
MemAvailable falls under 3 GiB, it SIGKILLs the server and the result says so (`aborted`). Loopback only,
every loop bounded, every wait with a timeout. Clients stream the answers and keep only counts.

`python -m bench --only resources [--quick]` runs it with the defaults; `python -m bench.scenarios.resources`
takes every knob (see --help) and writes its own JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import signal
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import APP_ID, date, pointer
from bench.seed import build_world, open_store
from bench.server import ROOT, BenchServer, Workspace, raise_fd_limit
from bench.stats import summary_ms

GIB = 1024 ** 3
MIB = 1024 ** 2


@dataclass
class Plan:
    scores: int = 1000
    note_chars: int = 19_000
    # Batch shapes, "FxL": F finds of limit L in one batch. 50x1000 is the review's; 5x1000 and 50x100 stay within
    # a 5,000-row budget per batch (and each answer of 50x100 within 16 MB), to see what a capped server still holds.
    shapes: list[str] = field(default_factory=lambda: ["50x1000", "5x1000", "50x100"])
    # Levels, "K" or "KxA": K batches at once, spread round robin over A contributor accounts (default 1).
    levels: list[str] = field(default_factory=lambda: ["1", "4", "20", "20x5"])
    attack_timeout: float = 300.0  # seconds for one level's batches
    sockets: int = 1000
    chatty: int = 20  # sockets that send a small non-connect message every `chatty_every` seconds
    chatty_every: float = 5.0
    spoofed: int = 50  # sockets with a different X-Forwarded-For each, opened after the idle ones
    frames: int = 20
    frame_chars: int = 16_000_000
    hold: float = 15.0
    rss_cap_gib: float = 6.0
    min_available_gib: float = 3.0
    settle: float = 1.0  # seconds the server is left alone before and after each measurement
    restart_after_seeding: bool = True  # the first level on a fresh server too (quick: on the seeding one)

    @classmethod
    def quick(cls) -> "Plan":
        return cls(scores=40, note_chars=2_000, shapes=["5x1000"], levels=["2x2"], attack_timeout=60, sockets=20,
                   chatty=2, chatty_every=1.0, spoofed=2, frames=2, frame_chars=1_000_000, hold=2.0, settle=0.3,
                   restart_after_seeding=False)


# ---------------------------------------------------------------------------------------------- the server
# What every bench server needs; any other OT_* setting bench/server.py gives (relaxed sign-in limits, socket caps
# for the thousand-subscriber scenarios, ...) is dropped, so the attacks meet the server's own defaults.
KEEP_ENV = {"OT_DATA_DIR", "OT_PORT", "OT_HOST", "OT_DATABASE_URL", "OT_SECRET_KEY"}


class DefaultsServer(BenchServer):
    @property
    def dropped(self) -> list[str]:
        return sorted(k for k in super().env() if k.startswith("OT_") and k not in KEEP_ENV and k not in os.environ)

    def env(self) -> dict[str, str]:
        dropped = set(self.dropped)
        return {k: v for k, v in super().env().items() if k not in dropped}


def start_server(ws: Workspace) -> DefaultsServer:
    assert ws.db is not None
    ws.server = DefaultsServer(ws.data_dir, ws.db.url)
    ws.server.start()
    return ws.server


# ---------------------------------------------------------------------------------------------- /proc readers
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of one process; {} once it is gone."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def mem_available_kib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


class Watchdog(threading.Thread):
    """Samples the server's RSS every `interval`; kills it past the cap or when the machine runs short."""

    def __init__(self, pid: int, cap_kib: int, min_available_kib: int, interval: float = 0.02):
        super().__init__(daemon=True, name="rss-watchdog")
        self.pid, self.cap_kib, self.min_available_kib, self.interval = pid, cap_kib, min_available_kib, interval
        self.peak_kib = 0
        self.hwm_kib = 0
        self.timeline: list[tuple[float, int]] = []  # (seconds since start, VmRSS kB), every ~0.5 s
        self.aborted: str | None = None
        self.started_at = time.perf_counter()
        self._halt = threading.Event()

    def run(self) -> None:
        last_point = -1.0
        n = 0
        while not self._halt.is_set():
            status = proc_status(self.pid)
            if not status:
                return  # the server is gone
            rss = status.get("VmRSS", 0)
            self.peak_kib = max(self.peak_kib, rss)
            self.hwm_kib = max(self.hwm_kib, status.get("VmHWM", 0))
            now = time.perf_counter() - self.started_at
            if now - last_point >= 0.5:
                self.timeline.append((round(now, 2), rss))
                last_point = now
            reason = None
            if rss > self.cap_kib:
                reason = f"server RSS {mib(rss)} MiB passed the cap of {mib(self.cap_kib)} MiB"
            elif n % 10 == 0:
                available = mem_available_kib()
                if available is not None and available < self.min_available_kib:
                    reason = (f"machine MemAvailable {mib(available)} MiB under {mib(self.min_available_kib)} MiB "
                              f"(server RSS {mib(rss)} MiB)")
            if reason:
                self.aborted = f"{reason}: server killed (SIGKILL) at {now:.1f}s"
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                print(f"[bench] resources: ABORTED, {self.aborted}", flush=True)
                return
            n += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class StatusProbe(threading.Thread):
    """GET /status every `interval` on a new connection (blocking, its own thread), timeout 10 s each."""

    def __init__(self, port: int, interval: float = 0.25):
        super().__init__(daemon=True, name="status-probe")
        self.port, self.interval = port, interval
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            ok, outcome, seconds = probe_status(self.port)
            self.outcomes[outcome] += 1
            if ok:
                self.latencies.append(seconds)
            self._halt.wait(self.interval)

    def stop(self) -> dict:
        self._halt.set()
        self.join(timeout=15)
        return {"probes": sum(self.outcomes.values()), "outcomes": dict(self.outcomes),
                "latency": summary_ms(self.latencies)}


def probe_status(port: int, timeout: float = 10.0) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/status")
        response = conn.getresponse()
        response.read()
        return response.status == 200, str(response.status), time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a probe reports what happened
        return False, type(exc).__name__, time.perf_counter() - t0
    finally:
        conn.close()


def filler(chars: int, seed: int) -> str:
    """Plain ASCII prose-like text (no JSON escapes, nothing a counter below could mistake)."""
    words = [string.ascii_lowercase[(seed + i) % 26] * (3 + (seed * 7 + i) % 6) for i in range(40)]
    text = " ".join(words)
    return (text * (chars // len(text) + 1))[:chars]


# ---------------------------------------------------------------------------------------------- (a) batches
SUB_SUCCESS = re.compile(rb'[\[,]\s*\{\s*"success"\s*:')
SUB_ERROR = re.compile(rb'[\[,]\s*\{\s*"error"\s*:')


async def add_scores(server: BenchServer, token: str, patient: str, plan: Plan) -> dict:
    """The contributor's own REST creates, 16 at a time; stops after 50 refusals in a row."""
    statuses: Counter[str] = Counter()
    created = 0
    refused_in_row = 0
    sample = None
    headers = {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token, "Content-Type": "application/json"}
    now = datetime.now(timezone.utc)
    queue = list(range(plan.scores))
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            nonlocal created, refused_in_row, sample
            while queue and refused_in_row < 50:
                i = queue.pop()
                body = {"patient": pointer("Patient", patient), "scoreType": "barthel", "scoreValue": i % 101,
                        "scoreDate": date(now - timedelta(minutes=i)), "notes": filler(plan.note_chars, i)}
                try:
                    async with session.post(f"{server.url}/parse/classes/MobilityScore", data=json.dumps(body),
                                            headers=headers) as response:
                        text = await response.text()
                        statuses[str(response.status)] += 1
                        if response.status == 201:
                            created += 1
                            refused_in_row = 0
                        else:
                            refused_in_row += 1
                            sample = sample or text[:300]
                except Exception as exc:  # noqa: BLE001
                    statuses[type(exc).__name__] += 1
                    refused_in_row += 1

        await asyncio.gather(*(worker() for _ in range(16)))
    return {"created": created, "statuses": dict(statuses), "seconds": round(time.perf_counter() - t0, 2),
            "refusal_sample": sample}


async def top_up(ws: Workspace, principal: Any, patient: str, plan: Plan, start: int, count: int) -> int:
    now = datetime.now(timezone.utc)
    async with open_store(ws.db.url, ws.data_dir) as store:
        return await store.import_scores(principal=principal, rows=[
            {"patient": patient, "scoreType": "barthel", "scoreValue": i % 101,
             "scoreDate": now - timedelta(minutes=i), "notes": filler(plan.note_chars, i)}
            for i in range(start, start + count)])


async def one_batch(session: aiohttp.ClientSession, url: str, token: str, body: bytes) -> dict:
    headers = {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": token, "Content-Type": "application/json"}
    out: dict[str, Any] = {"status": None, "bytes": 0, "sub_success": 0, "sub_error": 0}
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            out["status"] = response.status
            out["ttfb_s"] = round(time.perf_counter() - t0, 2)
            head = b""
            tail = b""
            async for chunk in response.content.iter_chunked(1 << 20):
                out["bytes"] += len(chunk)
                if len(head) < 400:
                    head += chunk[:400 - len(head)]
                window = tail + chunk
                cut = len(tail)
                out["sub_success"] += sum(1 for m in SUB_SUCCESS.finditer(window) if m.end() > cut)
                for m in SUB_ERROR.finditer(window):
                    if m.end() > cut:
                        out["sub_error"] += 1
                        if "error_sample" not in out:
                            out["error_sample"] = window[m.start():m.start() + 300].decode("utf-8", "replace")
                tail = window[-32:]
            if response.status >= 300 or out["bytes"] < 400:
                out["body_sample"] = head.decode("utf-8", "replace")[:300]
    except Exception as exc:  # noqa: BLE001 - a refused, reset or timed-out batch is a result
        out["exception"] = type(exc).__name__
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def parse_shape(text: str) -> tuple[int, int]:
    finds, limit = text.lower().split("x")
    return int(finds), int(limit)


def parse_level(text: str) -> tuple[int, int]:
    k, _, accounts = text.lower().partition("x")
    return int(k), int(accounts or 1)


async def attack_level(ws: Workspace, tokens: list[str], plan: Plan, shape: str, level: str) -> dict:
    finds, limit = parse_shape(shape)
    k, accounts = parse_level(level)
    server = ws.server or await asyncio.to_thread(start_server, ws)
    pid, port = server.pid, server.port
    await asyncio.sleep(plan.settle)
    before = proc_status(pid)
    watchdog = Watchdog(pid, int(plan.rss_cap_gib * GIB / 1024), int(plan.min_available_gib * GIB / 1024))
    probe = StatusProbe(port)
    body = json.dumps({"requests": [{"method": "GET", "path": "/parse/classes/MobilityScore",
                                     "body": {"limit": limit}}] * finds}).encode()
    watchdog.start()
    probe.start()
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=plan.attack_timeout)) as session:
        batches = await asyncio.gather(*(one_batch(session, f"{server.url}/parse/batch", tokens[i % accounts], body)
                                         for i in range(k)))
    attack_s = time.perf_counter() - t0
    during = probe.stop()
    await asyncio.sleep(2 * plan.settle)  # let it settle; then is it up?
    alive = server.process is not None and server.process.poll() is None
    after_ok, after_outcome, after_s = probe_status(port)
    watchdog.stop()
    end = proc_status(pid)
    exit_code = None if alive else server.process.poll()
    for b in batches:
        b["outcome"] = (str(b["status"]) if b.get("exception") is None else
                        (f"{b['status']}+{b['exception']}" if b["status"] else b["exception"]))
    statuses = Counter(b["outcome"] for b in batches)
    samples: dict[str, str] = {}
    for b in batches:
        if "body_sample" in b:
            samples.setdefault(b["outcome"], b["body_sample"])
        if "error_sample" in b:
            samples.setdefault("sub-result error", b["error_sample"])
    result = {
        "shape": shape,
        "finds_per_batch": finds,
        "find_limit": limit,
        "concurrent_batches": k,
        "accounts": accounts,
        "rss_before_mib": mib(before.get("VmRSS")),
        "rss_peak_sampled_mib": mib(watchdog.peak_kib),
        "vmhwm_mib": mib(max(watchdog.hwm_kib, end.get("VmHWM", 0))),
        "rss_after_mib": mib(end.get("VmRSS")),
        "aborted": watchdog.aborted,
        "http_statuses": dict(statuses),
        "bytes_answered_total": sum(b["bytes"] for b in batches),
        "sub_results": {"success": sum(b["sub_success"] for b in batches),
                        "error": sum(b["sub_error"] for b in batches)},
        "samples": samples,
        "batch_seconds": sorted(b["seconds"] for b in batches),
        "attack_seconds": round(attack_s, 2),
        "status_during": during,
        "server_alive_after": alive,
        "server_exit_code": exit_code,
        "status_after": {"outcome": after_outcome, "ok": after_ok, "ms": round(after_s * 1000, 1)},
        "rss_timeline_mib": [(t, mib(v)) for t, v in watchdog.timeline],
        "server_env_relaxations_dropped": server.dropped,
    }
    if not alive and not watchdog.aborted:
        result["log_tail"] = server.log_tail(1500)
    await asyncio.to_thread(ws.server.stop)
    ws.server = None
    return result


async def batch_attack(ctx: Any, plan: Plan) -> dict:
    async with Workspace("resources-batch", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1, therapists=1,
                                      members=max(parse_level(level)[1] for level in plan.levels))
        member = world.members[0]
        server = await asyncio.to_thread(start_server, ws)
        seeding = await add_scores(server, member.token, world.x, plan)
        missing = plan.scores - seeding["created"]
        if plan.restart_after_seeding or missing > 0:
            await asyncio.to_thread(ws.server.stop)
            ws.server = None
        seeding["topped_up_through_store"] = (
            await top_up(ws, member.principal, world.x, plan, plan.scores, missing) if missing > 0 else 0)
        levels = []
        tokens = [m.token for m in world.members]
        for shape in plan.shapes:
            for level in plan.levels:
                k, accounts = parse_level(level)
                print(f"[bench] resources: batch attack, {k} at once over {accounts} account(s), each "
                      f"{shape.replace('x', ' × find(limit ')})", flush=True)
                levels.append(await attack_level(ws, tokens, plan, shape, level))
                print(f"[bench] resources:   {summarize_level(levels[-1])}", flush=True)
    return {"seeding": seeding, "levels": levels}


def summarize_level(r: dict) -> str:
    return (f"{r['shape']} K={r['concurrent_batches']} A={r['accounts']}: peak RSS {r['rss_peak_sampled_mib']} MiB "
            f"(VmHWM {r['vmhwm_mib']}, before {r['rss_before_mib']}), "
            f"statuses {r['http_statuses']}, answered {round(r['bytes_answered_total'] / MIB, 1)} MiB, "
            f"/status p50/max {r['status_during']['latency']['p50_ms']}/{r['status_during']['latency']['max_ms']} ms "
            f"{r['status_during']['outcomes']}, up after: {r['server_alive_after']}"
            + (f", ABORTED: {r['aborted']}" if r["aborted"] else ""))


# ---------------------------------------------------------------------------------------------- (b) websockets
class HeldSocket:
    """One websocket that never sends `connect`; remembers when and how the server ended it."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.headers = headers
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.opened_at: float | None = None
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.messages: list[str] = []
        self.reader: asyncio.Task | None = None
        self.open_error: str | None = None

    async def open(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            self.ws = await session.ws_connect(url, heartbeat=None, autoping=True, max_msg_size=0,
                                               headers=self.headers, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except aiohttp.WSServerHandshakeError as exc:
            self.open_error = f"handshake {exc.status}"
            return
        except Exception as exc:  # noqa: BLE001
            self.open_error = type(exc).__name__
            return
        self.opened_at = time.perf_counter()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        while True:
            message = await self.ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                if len(self.messages) < 3:
                    self.messages.append(message.data[:200])
                continue
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                self.closed_at = time.perf_counter()
                self.close_code = self.ws.close_code
                return

    @property
    def open_now(self) -> bool:
        return self.ws is not None and self.closed_at is None

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None and not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:  # noqa: BLE001
                pass


def group(sockets: list[HeldSocket], asked: int) -> dict:
    """What became of one group of sockets."""
    return {
        "asked": asked,
        "opened": sum(1 for s in sockets if s.ws is not None),
        "open_errors": dict(Counter(s.open_error for s in sockets if s.open_error)),
        "still_open_after_hold": sum(1 for s in sockets if s.open_now),
        "closed_by_server": sum(1 for s in sockets if s.closed_at is not None),
        "close_codes": dict(Counter(str(s.close_code) for s in sockets if s.closed_at is not None)),
        "first_close_after_s": min((round(s.closed_at - s.opened_at, 1) for s in sockets
                                    if s.closed_at and s.opened_at), default=None),
        "messages_sample": next((s.messages for s in sockets if s.messages), []),
    }


def point(pid: int) -> dict:
    s = proc_status(pid)
    return {"rss_mib": mib(s.get("VmRSS")), "fds": fd_count(pid)}


async def open_all(sockets: list[HeldSocket], session: aiohttp.ClientSession, url: str, watchdog: Watchdog) -> None:
    for start in range(0, len(sockets), 100):
        await asyncio.gather(*(s.open(session, url) for s in sockets[start:start + 100]))
        if watchdog.aborted:
            return


async def socket_attack(ctx: Any, plan: Plan) -> dict:
    """Sockets that send a small non-connect message every few seconds (a connect deadline must not restart with
    each message) and sockets for the oversized frames; then the idle ones; then sockets with a different
    X-Forwarded-For each (a per-address cap must not trust it from any peer); then the frames are sent. All are
    held `hold` seconds from the idle ones' opening; none ever sends `connect`."""
    async with Workspace("resources-sockets", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            await build_world(store, patients=1, therapists=1)
        server = await asyncio.to_thread(start_server, ws)
        pid = server.pid
        await asyncio.sleep(plan.settle)
        watchdog = Watchdog(pid, int(plan.rss_cap_gib * GIB / 1024), int(plan.min_available_gib * GIB / 1024))
        watchdog.start()
        points: dict[str, dict] = {"before": point(pid)}
        idle = [HeldSocket() for _ in range(plan.sockets)]
        chatty = [HeldSocket() for _ in range(plan.chatty)]
        spoofed = [HeldSocket({"X-Forwarded-For": f"10.{i // 250 % 250}.{i % 250}.{1 + i // 62500}"})
                   for i in range(plan.spoofed)]
        framed = [HeldSocket() for _ in range(plan.frames)]
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        timeout=aiohttp.ClientTimeout(total=None))
        probe = StatusProbe(server.port, interval=0.5)
        out: dict[str, Any] = {}
        chatter: asyncio.Task | None = None
        try:
            # The few first (so a per-address cap filled by the idle ones does not hide what they test), then the
            # idle flood, then the spoofed ones once the cap, if any, is full.
            await open_all(chatty + framed, session, server.ws_url, watchdog)
            t0 = time.perf_counter()
            await open_all(idle, session, server.ws_url, watchdog)
            out["idle_open_seconds"] = round(time.perf_counter() - t0, 2)
            opened_at = time.perf_counter()
            await open_all(spoofed, session, server.ws_url, watchdog)

            async def chat() -> None:
                for _ in range(int(plan.hold / plan.chatty_every) + 2):  # bounded: the hold's length
                    await asyncio.sleep(plan.chatty_every)
                    await asyncio.gather(*(s.ws.send_str('{"op":"unsubscribe","requestId":1}')
                                           for s in chatty if s.open_now), return_exceptions=True)

            chatter = asyncio.create_task(chat())
            await asyncio.sleep(plan.settle)
            points["idle_opened"] = point(pid)
            probe.start()
            # Oversized frames, all at once, each on its own socket that never sent connect.
            payload = "x" * plan.frame_chars
            t1 = time.perf_counter()

            async def send(s: HeldSocket) -> str:
                if s.ws is None:
                    return s.open_error or "not open"
                try:
                    await asyncio.wait_for(s.ws.send_str(payload), 60)
                    return "sent"
                except Exception as exc:  # noqa: BLE001
                    return type(exc).__name__

            sends = Counter(await asyncio.gather(*(send(s) for s in framed)))
            del payload
            # Wait (bounded) for each frame's answer: an error message or a close.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(s.open_now and not s.messages for s in framed):
                if watchdog.aborted:
                    break
                await asyncio.sleep(0.2)
            out["frames_seconds"] = round(time.perf_counter() - t1, 2)
            await asyncio.sleep(plan.settle)
            points["frames_answered"] = point(pid)
            # Hold until `hold` seconds after the idle sockets were open.
            remaining = plan.hold - (time.perf_counter() - opened_at)
            if remaining > 0 and not watchdog.aborted:
                await asyncio.sleep(remaining)
            held_s = time.perf_counter() - opened_at
            points["after_hold"] = point(pid)
            out["status_during"] = probe.stop()
            alive = server.process is not None and server.process.poll() is None
            ok, outcome, seconds = probe_status(server.port)
            out["status_after_hold"] = {"outcome": outcome, "ok": ok, "ms": round(seconds * 1000, 1)}
            out["server_alive"] = alive
            out["held_seconds"] = round(held_s, 1)
            out["idle"] = group(idle, plan.sockets)
            out["chatty"] = {**group(chatty, plan.chatty), "message_every_s": plan.chatty_every}
            out["spoofed_xff"] = group(spoofed, plan.spoofed)
            out["frames"] = {**group(framed, plan.frames), "chars": plan.frame_chars, "sends": dict(sends),
                             "answered_with_message": sum(1 for s in framed if s.messages)}
        finally:
            if chatter is not None:
                chatter.cancel()
            if probe.is_alive():
                probe.stop()
            await asyncio.gather(*(s.close() for s in idle + chatty + spoofed + framed), return_exceptions=True)
            await session.close()
        await asyncio.sleep(2 * plan.settle)
        points["after_close"] = point(pid)
        watchdog.stop()
        out["server_env_relaxations_dropped"] = server.dropped
        out["points"] = points
        out["rss_peak_sampled_mib"] = mib(watchdog.peak_kib)
        out["vmhwm_mib"] = mib(max(watchdog.hwm_kib, proc_status(pid).get("VmHWM", 0)))
        out["aborted"] = watchdog.aborted
        b, i = points["before"]["rss_mib"], points["idle_opened"]["rss_mib"]
        opened = sum(out.get(g, {}).get("opened") or 0 for g in ("idle", "chatty", "spoofed_xff", "frames"))
        if b is not None and i is not None and opened:
            out["kib_per_open_socket"] = round((i - b) * 1024 / opened, 1)
        f = points["frames_answered"]["rss_mib"]
        if f is not None and i is not None and plan.frames:
            out["mib_per_frame"] = round((f - i) / plan.frames, 1)
    return out


def summarize_sockets(r: dict) -> str:
    p = r["points"]

    def g(name: str) -> str:
        x = r[name]
        return (f"{name} {x['opened']}/{x['asked']} opened {x['open_errors'] or ''}, "
                f"{x['still_open_after_hold']} open after {r['held_seconds']}s, closes {x['close_codes']}")

    return (f"RSS before {p['before']['rss_mib']} → sockets open {p['idle_opened']['rss_mib']} → frames "
            f"{p['frames_answered']['rss_mib']} → after hold {p['after_hold']['rss_mib']} → closed "
            f"{p['after_close']['rss_mib']} MiB (peak {r['vmhwm_mib']}); fds {p['before']['fds']} → "
            f"{p['idle_opened']['fds']} → {p['after_hold']['fds']} → {p['after_close']['fds']}; "
            + "; ".join(g(n) for n in ("idle", "chatty", "spoofed_xff", "frames"))
            + f"; frames answered {r['frames']['answered_with_message']}"
            + (f", ABORTED: {r['aborted']}" if r["aborted"] else ""))


# ---------------------------------------------------------------------------------------------- entry points
def provenance() -> dict:
    import dashboard

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        head = None
    return {"root": str(ROOT), "git_head": head, "dashboard_module": dashboard.__file__}


async def run(ctx: Any, plan: Plan | None = None) -> dict:
    plan = plan or (Plan.quick() if ctx.quick else Plan())
    out: dict[str, Any] = {"plan": plan.__dict__, "code": provenance()}
    print(f"[bench] resources: code under test {out['code']}", flush=True)
    out["batch"] = await batch_attack(ctx, plan)
    print("[bench] resources: websockets", flush=True)
    out["sockets"] = await socket_attack(ctx, plan)
    print(f"[bench] resources:   {summarize_sockets(out['sockets'])}", flush=True)
    out["aborted"] = [r["aborted"] for r in out["batch"]["levels"] if r["aborted"]] + \
        ([out["sockets"]["aborted"]] if out["sockets"]["aborted"] else [])
    out["completed"] = True
    return out


def _words(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scenarios.resources", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Plan()
    parser.add_argument("--quick", action="store_true", help="tiny scale, a few seconds")
    parser.add_argument("--database-url", help="a PostgreSQL URL (a fresh database per part)")
    parser.add_argument("--only", choices=("batch", "sockets"), help="one of the two parts")
    parser.add_argument("--scores", type=int, help=f"scores with long notes ({d.scores})")
    parser.add_argument("--note-chars", type=int, help=f"characters per note ({d.note_chars}, at most 20000)")
    parser.add_argument("--shapes", type=_words, help=f"batch shapes FxL: F finds of limit L ({','.join(d.shapes)})")
    parser.add_argument("--levels", type=_words, help=f"K or KxA: K batches at once over A accounts, one fresh "
                                                      f"server each ({','.join(d.levels)})")
    parser.add_argument("--attack-timeout", type=float, help=f"seconds for one level's batches ({d.attack_timeout})")
    parser.add_argument("--sockets", type=int, help=f"idle websockets ({d.sockets})")
    parser.add_argument("--chatty", type=int, help=f"sockets sending a non-connect message now and then ({d.chatty})")
    parser.add_argument("--spoofed", type=int, help=f"sockets with their own X-Forwarded-For ({d.spoofed})")
    parser.add_argument("--frames", type=int, help=f"oversized frames, one socket each ({d.frames})")
    parser.add_argument("--frame-chars", type=int, help=f"characters per frame ({d.frame_chars})")
    parser.add_argument("--hold", type=float, help=f"seconds to hold the idle sockets ({d.hold})")
    parser.add_argument("--rss-cap-gib", type=float, help=f"kill the server past this RSS ({d.rss_cap_gib})")
    parser.add_argument("--out", help="JSON file (default bench/results/<timestamp>-resources.json)")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    for name in ("scores", "note_chars", "shapes", "levels", "attack_timeout", "sockets", "chatty",
                 "spoofed", "frames", "frame_chars", "hold", "rss_cap_gib"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))

    @dataclass
    class Ctx:
        quick: bool
        database_url: str | None

    ctx = Ctx(args.quick, args.database_url)

    async def go() -> dict:
        raise_fd_limit()
        if args.only is None:
            return await run(ctx, plan)
        out: dict[str, Any] = {"plan": plan.__dict__, "code": provenance()}
        print(f"[bench] resources: code under test {out['code']}", flush=True)
        if args.only == "batch":
            out["batch"] = await batch_attack(ctx, plan)
        else:
            out["sockets"] = await socket_attack(ctx, plan)
            print(f"[bench] resources:   {summarize_sockets(out['sockets'])}", flush=True)
        out["completed"] = True
        return out

    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    result = asyncio.run(go())
    result = {"started": started, "quick": args.quick, "cpus": os.cpu_count(), "loadavg_before": load_before,
              "loadavg_after": os.getloadavg(), **result}
    out = Path(args.out) if args.out else (ROOT / "bench" / "results" /
                                           f"{datetime.now():%Y%m%d-%H%M%S}-resources{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"[bench] wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
