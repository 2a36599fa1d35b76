"""Scenarios 7 and 8 of SCALE-OUT.md §6: PostgreSQL restarts under the instances (fast and
immediate), one instance's LISTEN connection is cut, and one instance is cut off past the change
log's retention. The instances may answer 503 meanwhile (failing closed: /status, and the balancer
drains them); what must hold is that they recover, that every acknowledged write is delivered once
(an unanswered one only if stored), and that access revoked while an instance could not read the
log ends on it when it is back."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from bench.clients import date, pointer
from dashboard.changes import PRUNED_MARK
from tests.cluster.harness import Cluster, LiveQuery, log_in, poll, rest, session_from


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


# A write that meets a pooled connection PostgreSQL closed on its restart is refused (503, and a
# warning in the log, no ERROR). `immediate` is a crash: no checkpoint, transactions in flight
# rolled back, recovery from the WAL, and the sequence resumes past the values it had handed out
# ahead (a hole in the numbers).
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
        # Refused meanwhile means 503 (try again), never a 500 or a dropped answer.
        assert {v.split()[0] for v in unanswered.values()} <= {"503"}, unanswered

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


async def test_a_cut_off_listener_reconnects_and_catches_up(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    token = await cluster.token("therapist")
    watcher = await LiveQuery(cluster.ws("b"), token, {"className": "MobilityScore", "where": {
        "patient": pointer("Patient", ids["DEMO-0004"])}}, name="b").open()
    seen: dict[str, set] = {name: set() for name in cluster.servers}
    stop = asyncio.Event()
    try:
        old = await listening_backend(cluster, "b")
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
        holder: list[int | None] = [None]

        async def relistening() -> bool:  # on a new backend, and B says it listens and answers
            holder[0] = await cluster.listener_pid("b")
            code, body = cluster.status("b")
            return holder[0] not in (None, old) and code == 200 and body["changes"]["listening"] is True
        relistened = await poll(relistening, 15, interval=0.1)
        stop.set()
        await sampler
        assert relistened is not None, (holder, cluster.status("b"))
        assert [op for _, op, _ in watcher.events()].count("create") == 1 and watcher.ops("error") == []
        print(f"\nB's LISTEN connection terminated: A's write delivered on B after {1000 * delivered:.0f} ms, "
              f"B listening again after {delivered + relistened:.1f}s; /status codes seen "
              f"{dict((n, sorted(c, key=str)) for n, c in seen.items())}")
    finally:
        stop.set()
        await watcher.close()


async def listening_backend(cluster: Cluster, name: str) -> int:
    """The backend of the instance's LISTEN connection, once it has one (after a PostgreSQL restart
    an instance answers before its listener has reconnected)."""
    holder: list[int | None] = [None]

    async def found() -> bool:
        holder[0] = await cluster.listener_pid(name)
        return holder[0] is not None
    assert await poll(found, 15, interval=0.1) is not None, f"{name}'s LISTEN connection not found"
    return holder[0]  # type: ignore[return-value]


def resyncs(cluster: Cluster, name: str) -> int:
    """How many full resyncs the instance has made (its /status, 200 or 503: -1 when it does not answer)."""
    return cluster.status(name)[1].get("changes", {}).get("resyncs", -1)


async def cut_off_until_pruned(cluster: Cluster, name: str, meanwhile: Callable[[], Awaitable[None]]) -> float:
    """Instance `name` is cut off from the log (stopped, its LISTEN connection terminated) from the
    moment it has read all of it; `meanwhile()` writes elsewhere; it comes back once the rows
    written meanwhile are pruned, so it can no longer read them. Returns the seconds it was away."""
    [[head]] = await cluster.sql("SELECT coalesce(max(seq), 0) FROM change_log")
    assert await poll(lambda: cluster.status(name)[1].get("changes", {}).get("applied", 0) >= head, 10)
    listener = await listening_backend(cluster, name)
    cluster.freeze(name)
    try:
        cut = time.perf_counter()
        await meanwhile()
        [[last]] = await cluster.sql("SELECT max(seq) FROM change_log")
        assert last > head
        [[terminated]] = await cluster.sql("SELECT pg_terminate_backend($1)", listener)
        assert terminated

        async def pruned() -> bool:  # the others prune every 2 s what is older than 8 s
            rows = await cluster.sql("SELECT seq FROM change_log WHERE body = $1", PRUNED_MARK)
            return bool(rows) and rows[0]["seq"] >= last
        assert await poll(pruned, 30, interval=0.25) is not None, "the rows were never pruned"
        return time.perf_counter() - cut
    finally:
        cluster.thaw(name)


async def test_past_the_retention_a_resync_ends_what_was_revoked_meanwhile(healthy: Cluster):
    """B is cut off (stopped, its LISTEN connection terminated) while A reassigns a patient away from
    a subscriber and signs another out, until those rows are pruned: B cannot read what happened,
    and on its return must reload access and end both subscriptions (leave, then error 209)."""
    cluster = healthy
    ids = await cluster.patient_ids()
    pid, other = ids["DEMO-0007"], ids["DEMO-0006"]  # therapist2's, no team; the assistant's team
    users = {r["username"]: r["id"] for r in await cluster.sql("SELECT username, id FROM users")}
    lead = await cluster.token("lead")
    owner = await log_in(cluster.url("a"), "therapist2")
    member = await log_in(cluster.url("a"), "assistant")  # signed out on A while B is cut off
    async with session_from() as http:
        status, score = await rest(http, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore", owner, {
            "patient": pointer("Patient", pid), "scoreType": "barthel", "scoreValue": 40,
            "scoreDate": date(datetime.now(timezone.utc))})
        assert status == 201
        reassigned = await LiveQuery(cluster.ws("b"), owner, {"className": "MobilityScore", "where": {
            "patient": pointer("Patient", pid)}}, name="b/therapist2").open()
        signed_out = await LiveQuery(cluster.ws("b"), member, {"className": "MobilityScore", "where": {
            "patient": pointer("Patient", other)}}, name="b/assistant").open()
        try:
            async def meanwhile() -> None:
                status, _ = await rest(http, "PUT", f"{cluster.url('a')}/parse/classes/Patient/{pid}", lead,
                                       {"primaryTherapist": pointer("_User", users["therapist"])})
                assert status == 200
                status, _ = await rest(http, "POST", f"{cluster.url('a')}/parse/logout", member, {})
                assert status == 200
            before = resyncs(cluster, "b")
            assert before >= 0
            pruned_after = await cut_off_until_pruned(cluster, "b", meanwhile)
            thawed = time.perf_counter()
            assert await reassigned.wait(lambda: score["objectId"] in {o for _, op, o in reassigned.events()
                                                                     if op == "leave"}, 10), reassigned.messages
            left = time.perf_counter() - thawed
            assert await signed_out.wait(lambda: any(m.get("code") == 209 for m in signed_out.ops("error")), 10), \
                signed_out.messages
            status, _ = await rest(http, "GET", f"{cluster.url('b')}/parse/classes/Patient/{pid}", owner)
            assert status == 404
            status, body = await rest(http, "GET", f"{cluster.url('b')}/parse/users/me", member)
            assert body.get("code") == 209, (status, body)
            assert cluster.status("b")[0] == 200 and resyncs(cluster, "b") == before + 1, cluster.status("b")
            print(f"\nB cut off {pruned_after:.1f}s until A's rows were pruned; after B's return: leave on its "
                  f"live query in {1000 * left:.0f} ms, 209 to the signed-out session, 404 from its REST")
        finally:
            await asyncio.gather(reassigned.close(), signed_out.close())
            status, _ = await rest(http, "PUT", f"{cluster.url('a')}/parse/classes/Patient/{pid}", lead,
                                   {"primaryTherapist": pointer("_User", users["therapist2"])})
            assert status == 200


async def test_past_the_retention_a_resync_brings_a_live_query_what_it_missed(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    pid = ids["DEMO-0008"]  # therapist2's; no other test writes to it
    owner = await cluster.token("therapist2")
    watcher = await LiveQuery(cluster.ws("b"), owner, {"className": "MobilityScore", "where": {
        "patient": pointer("Patient", pid)}}, name="b/therapist2").open()
    created: list[str] = []
    before = resyncs(cluster, "b")
    assert before >= 0
    try:
        async with session_from() as http:
            async def meanwhile() -> None:
                status, score = await rest(http, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore", owner, {
                    "patient": pointer("Patient", pid), "scoreType": "barthel", "scoreValue": 65,
                    "scoreDate": date(datetime.now(timezone.utc))})
                assert status == 201
                created.append(score["objectId"])
            await cut_off_until_pruned(cluster, "b", meanwhile)
        assert await poll(lambda: resyncs(cluster, "b") > before, 10), cluster.status("b")
        # Parse's live query has no replay, but a re-read sends what now matches: an enter (or a create).
        assert await watcher.wait(lambda: created[0] in {o for _, op, o in watcher.events()
                                                         if op in ("create", "enter")}, 5), watcher.messages
    finally:
        await watcher.close()
