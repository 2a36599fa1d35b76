"""Scenarios 7 and 8 of SCALE-OUT.md §6: PostgreSQL restarts under the instances, and one instance's
LISTEN connection is cut. The instances may answer 503 meanwhile (failing closed: /status, and the
balancer drains them); what must hold is that they recover and that every acknowledged write is
delivered once, and an unanswered one only if stored."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from bench.clients import date, pointer
from tests.cluster.harness import Cluster, LiveQuery, PageView, page_sign_in, poll, rest, session_from, socket_ports


async def sample_status(cluster: Cluster, seen: dict[str, set], stop: asyncio.Event) -> None:
    """Every instance's /status answer codes, every 100 ms, until `stop`."""
    while not stop.is_set():
        for name in cluster.servers:
            code, _ = await asyncio.to_thread(cluster.status, name)
            seen[name].add(code)
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass


# A write that meets a pooled connection PostgreSQL closed on its restart fails (500, code 1) and
# the API logs it as an unexpected error: expected here, and only from that logger. `immediate` is a
# crash: no checkpoint, transactions in flight rolled back, recovery from the WAL, and the sequence
# resumes past the values it had handed out ahead (a hole in the numbers).
@pytest.mark.allow_errors("ot_tracker.api")
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_postgresql_restart_loses_no_acknowledged_write(healthy: Cluster, mode: str):
    cluster = healthy
    ids = await cluster.patient_ids()
    token = await cluster.token("therapist")
    watchers = [await LiveQuery(cluster.ws(n), token, {"className": "MobilityScore", "where": {}}, name=n).open()
                for n in ("b", "c")]
    base = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=int(time.time()) % 100_000)
    acknowledged: dict[int, str] = {}
    unanswered: dict[int, str] = {}
    seen: dict[str, set] = {name: set() for name in cluster.servers}
    stop, restarted = asyncio.Event(), asyncio.Event()
    holes: list[int] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async def writer() -> None:  # one write at a time through A, before, during and after
                k = 0
                after = 0
                while after < 10:
                    k += 1
                    body = {"patient": pointer("Patient", ids["DEMO-0001"]), "scoreType": "barthel",
                            "scoreValue": k % 100, "scoreDate": date(base + timedelta(seconds=k))}
                    try:
                        status, answer = await rest(http, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore",
                                                    token, body)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        status, answer = 0, {"error": type(exc).__name__}
                    if status == 201:
                        acknowledged[k] = answer["objectId"]
                        after += restarted.is_set()
                    else:
                        unanswered[k] = f"{status} {answer.get('code', '')}"
                        await asyncio.sleep(0.1)  # a refused write: try again shortly, as a client would
                    await asyncio.sleep(0.02)

            async def restart() -> None:
                await poll(lambda: len(acknowledged) >= 10, 10)
                # A number taken and never used, as a rolled-back write leaves: the instances must step over it.
                [[hole]] = await cluster.sql("SELECT nextval('change_seq')")
                holes.append(hole)
                await asyncio.to_thread(cluster.pg.restart, mode)
                restarted.set()

            sampler = asyncio.create_task(sample_status(cluster, seen, stop))
            started = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(writer(), restart()), 60)
            recovered = await poll(lambda: all(cluster.status(n)[0] == 200 for n in cluster.servers), 30)
            stop.set()
            await sampler
        assert recovered is not None, {n: cluster.status(n) for n in cluster.servers}

        stored = {k: await cluster.sql("SELECT id FROM mobility_scores WHERE score_date = $1",
                                       base + timedelta(seconds=k)) for k in unanswered}
        assert all(len(rows) <= 1 for rows in stored.values())
        expected = set(acknowledged.values()) | {rows[0]["id"] for rows in stored.values() if rows}
        seqs = [r["seq"] for r in await cluster.sql("SELECT seq FROM change_log WHERE seq >= $1 ORDER BY seq",
                                                    holes[0] - 50)]
        skipped = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        assert holes[0] in skipped and seqs[-1] > holes[0]  # written past the hole, and after the restart
        # Each instance stepped over every hole to the log's head.
        assert await poll(lambda: all(cluster.status(n)[1].get("changes", {}).get("applied", 0) >= seqs[-1]
                                      for n in cluster.servers), 10) is not None, \
            {n: cluster.status(n) for n in cluster.servers}
        for w in watchers:
            await w.wait(lambda w=w: expected <= {oid for _, _, oid in w.events()}, 10)
            got = [oid for _, op, oid in w.events() if op == "create"]
            assert set(acknowledged.values()) <= set(got), f"{w.name}: lost {len(set(acknowledged.values()) - set(got))}"
            assert len(got) == len(set(got)) and set(got) == expected, f"{w.name}: duplicates or strays"
        print(f"\nPostgreSQL restart ({mode}) under writes on A: {len(acknowledged)} acknowledged, all delivered once "
              f"on B and C; {len(unanswered)} refused meanwhile ({sorted(set(unanswered.values()))}); "
              f"/status codes seen {dict((n, sorted(c, key=str)) for n, c in seen.items())}; "
              f"all 200 again {time.perf_counter() - started:.1f}s after the writes began; {len(skipped)} numbers "
              f"never used around it (ours {holes[0]})")
    finally:
        await asyncio.gather(*(w.close() for w in watchers))


async def listener_backend(cluster: Cluster, name: str) -> int | None:
    """The PostgreSQL backend of instance `name`'s LISTEN connection: among that process's
    connections, the one whose last statement was its LISTEN or a presence pg_notify."""
    ports = socket_ports(cluster.servers[name].process.pid, cluster.pg.port)
    rows = await cluster.sql("SELECT pid, client_port FROM pg_stat_activity WHERE client_port = ANY($1::int[]) "
                             "AND (query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_notify(%')", list(ports))
    return rows[0]["pid"] if rows else None


async def test_a_cut_off_listener_reconnects_and_catches_up(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    token = await cluster.token("therapist")
    watcher = await LiveQuery(cluster.ws("b"), token, {"className": "MobilityScore", "where": {
        "patient": pointer("Patient", ids["DEMO-0004"])}}, name="b").open()
    async with session_from() as session:
        status, cookies = await page_sign_in(session, cluster.lb, "therapist")
        assert status == 200
    viewer = await PageView(cluster.lb, f"/patient/{ids['DEMO-0004']}", {**cookies, "ot_node": "b"}).open()
    seen: dict[str, set] = {name: set() for name in cluster.servers}
    stop = asyncio.Event()
    try:
        # A viewer on B makes B announce its presence on the listener's connection, which names it.
        holder: list[int] = []

        async def found() -> bool:
            pid = await listener_backend(cluster, "b")
            holder[:] = [pid] if pid else []
            return bool(pid)
        assert await poll(found, 15, interval=0.1) is not None, "B's LISTEN connection not found"
        [old] = holder

        sampler = asyncio.create_task(sample_status(cluster, seen, stop))
        [[terminated]] = await cluster.sql("SELECT pg_terminate_backend($1)", old)
        assert terminated
        cut = time.perf_counter()
        async with session_from() as session:
            status, created = await rest(session, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore", token, {
                "patient": pointer("Patient", ids["DEMO-0004"]), "scoreType": "barthel", "scoreValue": 12,
                "scoreDate": date(datetime.now(timezone.utc))})
        assert status == 201
        assert await watcher.wait(lambda: created["objectId"] in {o for _, _, o in watcher.events()}, 10)
        delivered = time.perf_counter() - cut
        relistened = await poll(lambda: cluster.status("b")[1].get("changes", {}).get("listening") is True
                                and cluster.status("b")[0] == 200, 15)
        stop.set()
        await sampler
        assert relistened is not None, cluster.status("b")
        assert await poll(found, 15, interval=0.1) is not None and holder[0] != old
        assert [op for _, op, _ in watcher.events()].count("create") == 1 and watcher.ops("error") == []
        print(f"\nB's LISTEN connection terminated: A's write delivered on B after {1000 * delivered:.0f} ms, "
              f"B listening again after {delivered + relistened:.1f}s; /status codes seen "
              f"{dict((n, sorted(c, key=str)) for n, c in seen.items())}")
    finally:
        stop.set()
        await asyncio.gather(watcher.close(), viewer.close())
