"""Bursts of REST creates at a fixed concurrency, for the throughput scenarios (3b isolation-writes, 9 growth).

Two drivers, the same request each time (one static JSON body, the same headers):

- `wrk` (a C load generator, `apt-get install wrk`), when it is on PATH: a Lua script sets the POST body and
  the Parse headers, counts the answers per status and stops each thread after its share of `count`
  answers. The load generator then costs the two shared cores far less than a Python client.
- `aiohttp`: the bench's own `RestClient`, `concurrency` workers sharing one counter.

`Burst` is what either measured: answers seen, how many were 201, the wall time of the burst and the rate
of 201s over it. With wrk, requests still in flight when a thread stops (at most concurrency - 1) are
created on the server but not counted. wrk's main thread sleeps for its whole `-d` whatever its threads
do, so each thread prints a line when it has its share and the bench then sends wrk SIGINT (wrk's own
way to end a run early; its duration then ends a few milliseconds after the last answer).
"""
from __future__ import annotations

import asyncio
import json
import math
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.clients import APP_ID, BenchError, RestClient, date, pointer

DRIVERS = ("auto", "wrk", "aiohttp")


def pick_driver(wanted: str | None) -> str:
    wanted = wanted or "auto"
    if wanted == "auto":
        return "wrk" if shutil.which("wrk") else "aiohttp"
    if wanted == "wrk" and not shutil.which("wrk"):
        raise BenchError("--driver wrk: wrk is not on PATH (apt-get install -y wrk)")
    return wanted


def note_body(patient_id: str) -> dict[str, Any]:
    from datetime import datetime, timedelta, timezone

    # sessionDate may not be in the future: a minute ago, fixed for the burst.
    return {"patient": pointer("Patient", patient_id), "sessionType": "treatment",
            "noteText": "Bench session note: transfers practised, tolerated well.", "followUpNeeded": False,
            "sessionDate": date(datetime.now(timezone.utc) - timedelta(minutes=1))}


def score_body(patient_id: str) -> dict[str, Any]:
    from datetime import datetime, timedelta, timezone

    return {"patient": pointer("Patient", patient_id), "scoreType": "barthel", "scoreValue": 55,
            "scoreDate": date(datetime.now(timezone.utc) - timedelta(minutes=1))}


BODIES = {"SessionNote": note_body, "MobilityScore": score_body}


@dataclass
class Burst:
    driver: str
    class_name: str
    concurrency: int
    answers: int
    created: int
    seconds: float
    errors: list[str] = field(default_factory=list)
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def per_second(self) -> float:
        return round(self.created / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3), "per_second": self.per_second}


async def burst(driver: str, server_url: str, class_name: str, patient_id: str, token: str, count: int,
                concurrency: int = 16) -> Burst:
    body = BODIES[class_name](patient_id)
    if driver == "wrk":
        return await _wrk(server_url, class_name, body, token, count, concurrency)
    return await _aiohttp(server_url, class_name, body, token, count, concurrency)


async def _aiohttp(server_url: str, class_name: str, body: dict, token: str, count: int,
                   concurrency: int) -> Burst:
    rest = RestClient(server_url, connections=concurrency)
    created = answers = 0
    errors: list[str] = []
    counter = iter(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal created, answers
        for _ in counter:  # shared iterator: `count` creates across the workers
            try:
                start, end, _ = await rest.create(class_name, body, token)
                created += 1
                latencies.append(end - start)
            except BenchError as exc:
                if len(errors) < 5:
                    errors.append(str(exc)[:300])
            answers += 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await rest.close()
    from bench.stats import percentile

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return Burst("aiohttp", class_name, concurrency, answers, created, elapsed, errors,
                 ms(percentile(latencies, 50)), ms(percentile(latencies, 99)))


WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = __BODY__
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Parse-Application-Id"] = __APP__
wrk.headers["X-Parse-Session-Token"] = __TOKEN__

local limits = __LIMITS__
local threads = {}
local index = 0

function setup(thread)
  index = index + 1
  thread:set("limit", limits[index])
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  if status == 201 then
    ok = ok + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 200) end
  end
  if ok + bad == limit then
    -- wrk's main thread sleeps for -d whatever its threads do: say so, and the bench sends SIGINT
    io.write("WRKDONE\n")
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    local fb = t:get("first_bad")
    if fb ~= "" then io.write("WRKBAD " .. fb .. "\n") end
  end
  io.write(string.format('WRKJSON {"ok": %d, "bad": %d, "duration_us": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %.1f, "p99_us": %.1f}\n',
    o, b, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _lua(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII text


async def _wrk(server_url: str, class_name: str, body: dict, token: str, count: int, concurrency: int) -> Burst:
    threads = max(1, min(2, concurrency, count))
    connections = max(concurrency, threads)
    share = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    script = (WRK_SCRIPT.replace("__BODY__", _lua(json.dumps(body))).replace("__APP__", _lua(APP_ID))
              .replace("__TOKEN__", _lua(token)).replace("__LIMITS__", "{" + ", ".join(map(str, share)) + "}"))
    # A ceiling, not the measure: each thread stops itself after its share of answers.
    ceiling = max(60, math.ceil(count / 20))
    with tempfile.TemporaryDirectory(prefix="ot-bench-wrk-") as tmp:
        path = Path(tmp) / "create.lua"
        path.write_text(script)
        process = await asyncio.create_subprocess_exec(
            "wrk", f"-t{threads}", f"-c{connections}", f"-d{ceiling}s", "--timeout", "30s", "-s", str(path),
            f"{server_url}/parse/classes/{class_name}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert process.stdout is not None
        lines: list[bytes] = []
        done = 0
        try:
            async with asyncio.timeout(ceiling + 30):
                while done < threads:
                    line = await process.stdout.readline()
                    if not line:
                        break  # wrk ended on its own: its ceiling, or an error
                    lines.append(line)
                    done += line.startswith(b"WRKDONE")
                if process.returncode is None:
                    try:
                        process.send_signal(signal.SIGINT)
                    except ProcessLookupError:
                        pass  # it has just exited
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    text = b"".join(lines).decode(errors="replace") + out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("WRKJSON ")), None)
    if process.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({process.returncode}): {text[-1500:]} {err.decode(errors='replace')[-1500:]}")
    r = json.loads(line[len("WRKJSON "):])
    errors = [ln[len("WRKBAD "):] for ln in text.splitlines() if ln.startswith("WRKBAD ")][:5]
    socket_errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    if socket_errors:
        errors.append(f"wrk socket errors: connect {r['connect_errors']}, read {r['read_errors']}, "
                      f"write {r['write_errors']}, timeout {r['timeouts']}")
    if r["ok"] + r["bad"] < count:
        errors.append(f"wrk stopped at its {ceiling}s ceiling after {r['ok'] + r['bad']} of {count} answers")
    return Burst("wrk", class_name, concurrency, r["ok"] + r["bad"], r["ok"], r["duration_us"] / 1e6, errors,
                 round(r["p50_us"] / 1000, 3), round(r["p99_us"] / 1000, 3))


# ---------------------------------------------------------------------------------------------- on its own
async def rest_creates(database_url: str | None, class_name: str, levels: list[int], count: int, rounds: int,
                       driver: str | None = None, on_server=None) -> dict:
    """REST creates of `class_name` at each concurrency in `levels`, `rounds` times in turn, on one server
    (SQLite, or a fresh PostgreSQL database beside `database_url`). A warm-up burst is not counted.
    `on_server(server)` is called once the server is up (a profiler attaching to its pid)."""
    import os

    from bench.seed import build_world, open_store
    from bench.server import Workspace

    driver = pick_driver(driver)
    out: dict = {"driver": driver, "class": class_name, "count": count, "loadavg_before": os.getloadavg()}
    async with Workspace("rest", database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1 + max(levels), therapists=1)
        server = await asyncio.to_thread(ws.start_server)
        token = world.lead.token
        await burst(driver, server.url, class_name, world.patients[0], token, min(500, count), max(levels))
        if on_server is not None:
            on_server(server)
        for _ in range(rounds):
            for level in levels:
                b = await burst(driver, server.url, class_name, world.patients[1 + (level % max(levels))], token,
                                count, level)
                out.setdefault(f"c{level}", []).append(b.per_second)
                if b.errors:
                    out.setdefault("errors", []).extend(b.errors[:2])
                print(f"[rest] c{level}: {b.per_second}/s p50 {b.latency_p50_ms} ms p99 {b.latency_p99_ms} ms"
                      f"{' errors ' + str(b.errors[:2]) if b.errors else ''}", flush=True)
    out["loadavg_after"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.scenarios.load`: REST creates per second at a few concurrencies, alone."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.scenarios.load", description=main.__doc__)
    parser.add_argument("--database-url", help="a PostgreSQL URL (a fresh database beside it); default SQLite")
    parser.add_argument("--class", dest="class_name", choices=sorted(BODIES), default="MobilityScore")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated levels (1,16)")
    parser.add_argument("--count", type=int, default=3000, help="creates per burst (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per level, levels in turn (3)")
    parser.add_argument("--driver", choices=DRIVERS, default="auto")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    result = asyncio.run(rest_creates(args.database_url, args.class_name, levels, args.count, args.rounds,
                                      args.driver))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
