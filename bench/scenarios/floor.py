"""7. The floor, in the same run: a bare websocket echo and fan-out on loopback, and a bare SQLite
insert + commit with the server's settings (WAL, synchronous=NORMAL, BEGIN IMMEDIATE)."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import aiohttp

from bench.server import ROOT, free_port, raise_fd_limit
from bench.stats import summary_ms
from dashboard.db import SQLITE_PRAGMAS


def sqlite_floor(n: int) -> dict:
    """n single-row transactions, one after another, on a fresh file with the server's pragmas."""
    with tempfile.TemporaryDirectory(prefix="ot-bench-floor-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.sqlite3", isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute("CREATE TABLE scores (id TEXT PRIMARY KEY, patient_id TEXT, score_type TEXT, "
                     "score_value REAL, score_date TEXT, created_at TEXT)")
        conn.execute("CREATE INDEX ix ON scores (patient_id, score_type, score_date)")
        durations = []
        started = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?)",
                         (uuid.uuid4().hex[:10], "p1", "barthel", float(i % 100), "2026-01-01", "2026-01-01"))
            conn.execute("COMMIT")
            durations.append(time.perf_counter() - t0)
        total = time.perf_counter() - started
        conn.close()
    return {**summary_ms(durations), "per_second": round(n / total, 1)}


class FloorServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "FloorServer":
        raise_fd_limit()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        self.process = subprocess.Popen([sys.executable, "-m", "bench.floor_server", str(self.port)],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)  # the port is not open yet
        raise TimeoutError("floor server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


async def ws_floor(port: int, *, echoes: int, fanout_sizes: list[int], messages: int) -> dict:
    url = f"ws://127.0.0.1:{port}/ws"
    payload = json.dumps({"op": "create", "clientId": "x", "requestId": 1,
                          "object": {"className": "MobilityScore", "objectId": "abcdefghij",
                                     "scoreType": "barthel", "scoreValue": 50}})
    out: dict = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        ws = await session.ws_connect(url)
        for _ in range(min(50, echoes)):  # warm-up
            await ws.send_str(payload)
            await ws.receive(timeout=5)
        rtts = []
        for _ in range(echoes):
            t0 = time.perf_counter()
            await ws.send_str(payload)
            await ws.receive(timeout=5)
            rtts.append(time.perf_counter() - t0)
        out["echo_rtt"] = summary_ms(rtts)
        for size in fanout_sizes:
            subs = []
            for start in range(0, size, 50):
                batch = await asyncio.gather(*(session.ws_connect(url) for _ in range(min(50, size - start))))
                for s in batch:
                    await s.send_str("sub")
                    await s.receive(timeout=5)
                subs.extend(batch)
            got: list[float] = []
            counter = {"n": 0}
            done = asyncio.Event()

            async def read(s: aiohttp.ClientWebSocketResponse) -> None:
                async for message in s:
                    got.append(time.perf_counter())
                    counter["n"] += 1
                    if counter["n"] >= size:
                        done.set()

            readers = [asyncio.create_task(read(s)) for s in subs]
            latencies: list[float] = []
            lost = 0
            for _ in range(messages):
                got.clear()
                counter["n"] = 0
                done.clear()
                t0 = time.perf_counter()
                await ws.send_str("b:" + payload)
                await ws.receive(timeout=10)  # "sent"
                try:
                    await asyncio.wait_for(done.wait(), 10)
                except TimeoutError:
                    pass
                lost += size - len(got)
                latencies.extend(t - t0 for t in got)
            for r in readers:
                r.cancel()
            await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
            out[f"fanout_{size}"] = {**summary_ms(latencies), "lost": lost}
        await ws.close()
    return out


async def run(ctx) -> dict:
    quick = ctx.quick
    sizes = sorted(set(ctx.fanout_sizes))
    with FloorServer() as server:
        ws = await ws_floor(server.port, echoes=200 if quick else 2000, fanout_sizes=sizes,
                            messages=5 if quick else 30)
    db = await asyncio.to_thread(sqlite_floor, 200 if quick else 2000)
    return {"completed": True, "websocket": ws, "sqlite_insert_commit": db}
