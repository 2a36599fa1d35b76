"""Live-query scenarios: 1. fan-out, 3. topic isolation (3b. isolation-writes: throughput beside subscribers),
4. writes (REST creates with their pushes)."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bench.clients import Arrivals, BenchError, RestClient, Subscribers, new_score, patient_query
from bench.seed import build_world, open_store
from bench.server import Workspace
from bench.stats import summary_ms

REPO = Path(__file__).resolve().parents[2]
DELIVERY_TIMEOUT = 15.0  # seconds to wait for every subscriber's event of one write


async def _writes(rest: RestClient, arrivals: Arrivals, token: str, patient_id: str, count: int,
                  expected: int, *, value_base: int = 0) -> dict:
    """`count` creates one after another, each awaited with all its deliveries."""
    latencies: list[float] = []
    posts: list[float] = []
    lost = extra = 0
    for i in range(count):
        start, end, body = await rest.create("MobilityScore", new_score(patient_id, (value_base + i) % 101), token)
        posts.append(end - start)
        object_id = body["objectId"]
        if expected:
            await arrivals.wait(object_id, DELIVERY_TIMEOUT)
        got = arrivals.times.get(object_id, [])
        lost += max(0, expected - len(got))
        extra += max(0, len(got) - expected)
        latencies.extend(t - start for t in got)
    return {"latency": latencies, "post": posts, "lost": lost, "duplicates": extra}


async def fanout_samples(subs, server_url: str, world, subscribers: int, writes: int, query) -> dict:
    """One fan-out on a running server, the raw samples: `subscribers` subscriptions of `query` opened
    through `subs` (live-query `Subscribers`, or any client set with the same `open`, `errors`, `close`
    and `arrivals`), spread over the sessions of X's care team; 3 warm-up creates, then `writes` REST
    creates one after another, each awaited with all its deliveries. `subs` is closed after."""
    arrivals = subs.arrivals
    rest = RestClient(server_url, connections=1)
    try:
        t0 = time.perf_counter()
        await subs.open([(world.members[i % len(world.members)].token, query) for i in range(subscribers)])
        connect_s = time.perf_counter() - t0
        await _writes(rest, arrivals, world.therapists[0].token, world.x, 3, subscribers)  # warm-up
        result = await _writes(rest, arrivals, world.therapists[0].token, world.x, writes, subscribers)
        errors = subs.errors
    finally:
        await rest.close()
        await subs.close()
    return {**result, "writes": writes, "subscribe_all_s": round(connect_s, 3), "errors": errors}


def fanout_summary(subscribers: int, samples: dict) -> dict:
    """The reported figures of `fanout_samples` (or of several, merged by the caller)."""
    expected = subscribers * samples["writes"]
    errors = samples["errors"]
    return {"subscribers": subscribers, "writes": samples["writes"], "expected_deliveries": expected,
            "delivered": len(samples["latency"]), "lost": samples["lost"], "duplicates": samples["duplicates"],
            "all_delivered": samples["lost"] == 0 and samples["duplicates"] == 0 and not errors,
            "subscribe_all_s": samples["subscribe_all_s"], "latency": summary_ms(samples["latency"]),
            "post_roundtrip": summary_ms(samples["post"]), "errors": errors[:5]}


async def fanout(ctx, subscribers: int, writes: int) -> dict:
    async with Workspace(f"fanout{subscribers}", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1, therapists=1, members=min(subscribers, 20))
        server = await asyncio.to_thread(ws.start_server)
        subs = Subscribers(server.ws_url, Arrivals(expected=subscribers))
        samples = await fanout_samples(subs, server.url, world, subscribers, writes, patient_query(world.x))
    return {"completed": True, **fanout_summary(subscribers, samples)}


class Crowd:
    """Subscribers in their own process (bench/crowd.py): the measuring client stays the same."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    @classmethod
    async def open(cls, ws_url: str, plan: list[tuple[str, dict]], timeout: float = 120) -> "Crowd":
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.crowd", ws_url, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, cwd=REPO)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((json.dumps(plan) + "\n").encode())
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if line.strip() != b"ready":
            process.kill()
            raise BenchError(f"the crowd did not subscribe: {line[:200]!r}")
        return cls(process)

    async def close(self, timeout: float = 60) -> tuple[int, list]:
        """(events the crowd received, its errors), once it has closed its sockets."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        report = json.loads(await asyncio.wait_for(self.process.stdout.readline(), timeout))
        await asyncio.wait_for(self.process.wait(), timeout)
        return report["events"], report["errors"]


async def isolation(ctx, on_x: int, others: int, writes: int) -> dict:
    """X's latency with only its own subscribers, then beside `others` on other patients, then alone again."""
    other_patients = max(1, min(others // 10, 100))
    async with Workspace("isolation", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1 + other_patients, therapists=2, members=min(on_x, 10),
                                      outsiders=other_patients)
        server = await asyncio.to_thread(ws.start_server)
        arrivals = Arrivals(expected=on_x)
        mine = Subscribers(server.ws_url, arrivals)
        rest = RestClient(server.url, connections=1)
        token = world.lead.token
        crowd: Crowd | None = None
        try:
            await mine.open([(world.members[i % len(world.members)].token, patient_query(world.x))
                             for i in range(on_x)])
            await _writes(rest, arrivals, token, world.x, 3, on_x)  # warm-up
            alone = await _writes(rest, arrivals, token, world.x, writes, on_x, value_base=1)
            outsiders = world.outsiders
            crowd = await Crowd.open(server.ws_url, [(outsiders[i % len(outsiders)].token,
                                                      patient_query(world.patients[1 + i % other_patients]))
                                                     for i in range(others)])
            await _writes(rest, arrivals, token, world.x, 3, on_x)  # warm-up
            # As many writes as both alone phases together: a p99 compares like with like (with 100
            # writes of 10 deliveries each, one slow write is the whole 1%).
            crowded = await _writes(rest, arrivals, token, world.x, 2 * writes, on_x, value_base=2)
            leaked, crowd_errors = await crowd.close()
            alone_again = await _writes(rest, arrivals, token, world.x, writes, on_x, value_base=3)
            errors = mine.errors + crowd_errors
        finally:
            if crowd is not None and crowd.process.returncode is None:
                crowd.process.kill()  # only after a failure: close() waits for it to exit
                await crowd.process.wait()
            await rest.close()
            await mine.close()
    base = alone["latency"] + alone_again["latency"]
    base_s, crowd_s = summary_ms(base), summary_ms(crowded["latency"])
    lost = alone["lost"] + crowded["lost"] + alone_again["lost"]

    def slower(key: str) -> float | None:
        if not base_s[key] or crowd_s[key] is None:
            return None
        return round(100 * (crowd_s[key] / base_s[key] - 1), 1)

    return {"completed": True, "subscribers_on_x": on_x, "other_subscribers": others,
            "other_patients": other_patients, "writes_alone": 2 * writes, "writes_with_others": 2 * writes,
            "alone": base_s, "with_others": crowd_s, "slower_p50_pct": slower("p50_ms"),
            "slower_p99_pct": slower("p99_ms"), "lost": lost, "events_to_others": leaked,
            "all_delivered": lost == 0 and leaked == 0 and not errors, "errors": errors[:5]}


async def writes(ctx, concurrency_levels: list[int], total: int) -> dict:
    """Creates per second through REST at each concurrency; one subscriber per patient checks every push."""
    patients = max(concurrency_levels)
    out: dict = {"completed": True, "all_delivered": True}
    async with Workspace("writes", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=patients, therapists=4)
        server = await asyncio.to_thread(ws.start_server)
        arrivals = Arrivals(expected=1)
        subs = Subscribers(server.ws_url, arrivals)
        try:
            await subs.open([(world.lead.token, patient_query(p)) for p in world.patients])
            for level in concurrency_levels:
                rest = RestClient(server.url, connections=level)
                token = world.lead.token
                ids: list[str] = []
                counter = iter(range(total))

                async def worker(k: int) -> None:
                    for i in counter:  # shared iterator: `total` creates across the workers
                        _, _, body = await rest.create("MobilityScore", new_score(world.patients[k], i % 101), token)
                        ids.append(body["objectId"])

                for w in range(min(20, total)):  # warm-up, not counted
                    _, _, body = await rest.create("MobilityScore", new_score(world.patients[0], w), token)
                    ids.append(body["objectId"])
                started = time.perf_counter()
                await asyncio.gather(*(worker(k) for k in range(level)))
                elapsed = time.perf_counter() - started
                deadline = time.monotonic() + DELIVERY_TIMEOUT
                for oid in ids:
                    await arrivals.wait(oid, max(0.0, deadline - time.monotonic()))
                lost = sum(1 for oid in ids if not arrivals.times.get(oid))
                await rest.close()
                out[f"c{level}"] = {"creates": total, "seconds": round(elapsed, 3),
                                    "per_second": round(total / elapsed, 1), "pushes_lost": lost}
                out["all_delivered"] = out["all_delivered"] and lost == 0
            out["errors"] = subs.errors[:5]
            out["all_delivered"] = out["all_delivered"] and not subs.errors
        finally:
            await subs.close()
    return out


async def isolation_writes(ctx, subscribers: int, creates: int, concurrency: int = 16) -> dict:
    """3b. Throughput beside subscribers: SessionNote creates at `concurrency` on X, which has `subscribers`
    live queries on its MobilityScore, and the same creates on Y, which has none; same server, same run.

    Phases X, Y, Y, X (drift in the machine's load falls on both sides alike), `creates` each. The
    subscribers must receive none of the notes; three MobilityScore creates on X at the end must reach
    every one of them (the subscriptions were live throughout)."""
    from bench.scenarios.load import burst, pick_driver

    driver = pick_driver(getattr(ctx, "driver", None))
    async with Workspace("isolation-writes", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=2, therapists=1, members=min(subscribers, 20))
        server = await asyncio.to_thread(ws.start_server)
        x, y = world.patients[0], world.patients[1]
        token = world.lead.token
        arrivals = Arrivals(expected=subscribers)
        subs = Subscribers(server.ws_url, arrivals)
        rest = RestClient(server.url, connections=1)
        phases: list[tuple[str, dict]] = []
        try:
            t0 = time.perf_counter()
            await subs.open([(world.members[i % len(world.members)].token, patient_query(x))
                             for i in range(subscribers)])
            subscribe_s = time.perf_counter() - t0
            for patient in (x, y):  # warm-up, not counted
                await burst(driver, server.url, "SessionNote", patient, token, min(100, creates), concurrency)
            for name in ("x", "y", "y", "x"):
                b = await burst(driver, server.url, "SessionNote", x if name == "x" else y, token, creates,
                                concurrency)
                phases.append((name, b.as_dict()))
            await asyncio.sleep(0.5)  # a stray push of a note would still be on its way
            leaked = sum(len(t) for t in arrivals.times.values())
            control = await _writes(rest, arrivals, token, x, 3, subscribers)
            errors = subs.errors
        finally:
            await rest.close()
            await subs.close()

    def side(name: str) -> dict:
        mine = [p for n, p in phases if n == name]
        created = sum(p["created"] for p in mine)
        seconds = sum(p["seconds"] for p in mine)
        return {"created": created, "seconds": round(seconds, 3),
                "per_second": round(created / seconds, 1) if seconds else None,
                "phases_per_second": [p["per_second"] for p in mine],
                "latency_p50_ms": [p["latency_p50_ms"] for p in mine],
                "latency_p99_ms": [p["latency_p99_ms"] for p in mine]}

    xs, ys = side("x"), side("y")
    request_errors = [e for _, p in phases for e in p["errors"]][:5]
    refused = sum(p["answers"] - p["created"] for _, p in phases)
    ratio_pct = round(100 * xs["per_second"] / ys["per_second"], 1) if xs["per_second"] and ys["per_second"] else None
    return {"completed": True, "driver": driver, "concurrency": concurrency, "subscribers_on_x": subscribers,
            "subscribe_all_s": round(subscribe_s, 3), "creates_per_phase": creates, "order": [n for n, _ in phases],
            "x": xs, "y": ys, "x_vs_y_pct": ratio_pct, "refused": refused, "events_to_subscribers": leaked,
            "control_lost": control["lost"], "control_duplicates": control["duplicates"],
            "control_latency": summary_ms(control["latency"]),
            "all_delivered": (leaked == 0 and control["lost"] == 0 and control["duplicates"] == 0 and not errors
                              and refused == 0 and not request_errors),
            "errors": (errors[:5] + request_errors)[:5]}
