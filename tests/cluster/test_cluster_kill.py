"""Scenario 6 of SCALE-OUT.md §6: kill -9 of instance B while 16 clients write through HAProxy's api
backend. A's and C's live queries get every write that was answered 201, once; a write left
unanswered is stored at most once, and delivered if and only if it is stored; a page held on B
reloads onto another instance (its next GET, still carrying ot_node=b, gets 200 and a new cookie)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import aiohttp

from bench.clients import date, pointer
from tests.cluster.harness import Cluster, LiveQuery, PageView, page_sign_in, rest, session_from

CONCURRENCY = 16
BEFORE_KILL = 80  # acknowledged writes before B is killed
AFTER_KILL = 160  # and after


async def test_kill_9_of_b_during_writes_loses_nothing_acknowledged(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    patients = [ids[f"DEMO-000{i}"] for i in range(1, 5)]  # the therapist's four
    token = await cluster.token("therapist")
    watchers = [await LiveQuery(cluster.ws(n), token, {"className": "MobilityScore", "where": {}}, name=n).open()
                for n in ("a", "c")]
    async with session_from() as session:
        status, cookies = await page_sign_in(session, cluster.lb, "therapist")
        assert status == 200
    page = await PageView(cluster.lb, f"/patient/{patients[0]}", {**cookies, "ot_node": "b"}).open()
    assert page.cookies["ot_node"] == "b"

    base = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=int(time.time()) % 100_000)
    acknowledged: dict[int, str] = {}  # write number -> objectId
    unanswered: dict[int, str] = {}  # write number -> what the client got instead
    counter = iter(range(10**6))
    enough_before = asyncio.Event()
    stop = asyncio.Event()
    killed_at: list[float] = []
    pg_log_start = len(cluster.pg.log_text())
    try:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as http:
            async def writer() -> None:
                while not stop.is_set():
                    k = next(counter)
                    body = {"patient": pointer("Patient", patients[k % len(patients)]), "scoreType": "barthel",
                            "scoreValue": k % 100, "scoreDate": date(base + timedelta(seconds=k))}
                    try:
                        status, answer = await rest(http, "POST", f"{cluster.lb}/parse/classes/MobilityScore", token,
                                                    body)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        unanswered[k] = type(exc).__name__
                        continue
                    if status == 201:
                        acknowledged[k] = answer["objectId"]
                        if len(acknowledged) >= BEFORE_KILL:
                            enough_before.set()
                        if killed_at and len(acknowledged) >= BEFORE_KILL + AFTER_KILL:
                            stop.set()
                    else:
                        unanswered[k] = f"HTTP {status} {answer}"

            async def killer() -> None:
                await enough_before.wait()
                await asyncio.to_thread(cluster.kill, "b")
                killed_at.append(time.perf_counter())

            began = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(killer(), *(writer() for _ in range(CONCURRENCY))), 60)
            print(f"\nwrites: {time.perf_counter() - began:.1f}s, B killed at {killed_at[0] - began:.1f}s")

        # Which unanswered writes are stored (each write has a score date of its own).
        stored: dict[int, list[str]] = {}
        for k in unanswered:
            rows = await cluster.sql("SELECT id FROM mobility_scores WHERE score_date = $1",
                                     base + timedelta(seconds=k))
            stored[k] = [r["id"] for r in rows]
        present = {k: rows[0] for k, rows in stored.items() if rows}
        assert all(len(rows) <= 1 for rows in stored.values()), {k: r for k, r in stored.items() if len(r) > 1}

        expected = set(acknowledged.values()) | set(present.values())
        for watcher in watchers:
            await watcher.wait(lambda w=watcher: expected <= {oid for _, _, oid in w.events()}, 10)
        for watcher in watchers:
            got = [oid for _, op, oid in watcher.events() if op == "create"]
            lost = set(acknowledged.values()) - set(got)
            assert not lost, f"{watcher.name}: lost {len(lost)} acknowledged writes"
            assert len(got) == len(set(got)), f"{watcher.name}: duplicates"
            assert set(got) == expected, f"{watcher.name}: delivered iff stored: {set(got) ^ expected}"
            assert watcher.ops("error") == [] and watcher.closed_at is None

        # The page held on B lost its socket; its reload, still carrying ot_node=b, lands elsewhere.
        assert await page.wait(lambda: page.disconnected_at is not None, 10)
        again = PageView(cluster.lb, page.path, page.cookies)
        await again.open()
        assert again.status == 200 and again.set_cookies.get("ot_node") in ("a", "c"), again.set_cookies
        await again.close()
        print(f"\nkill -9 of B during c{CONCURRENCY} writes via HAProxy: {len(acknowledged)} answered 201 "
              f"(lost 0), {len(unanswered)} unanswered ({len(present)} of them stored, each delivered once); "
              f"B's page reloaded onto {again.set_cookies['ot_node']}; unanswered: "
              f"{sorted(set(unanswered.values()))[:3]}; PostgreSQL deadlocks meanwhile (batches of different "
              f"instances locking patient rows; retried by the writer): "
              f"{cluster.pg.log_text()[pg_log_start:].count('deadlock detected')}")
    finally:
        await page.close()
        await asyncio.gather(*(w.close() for w in watchers))
