"""Scenarios 1 and 2 of SCALE-OUT.md §6: what one instance commits reaches every other instance's
live queries once, in order; what it refuses reaches nobody and leaves no change_log row."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from bench.clients import date, pointer
from tests.cluster.harness import Cluster, LiveQuery, rest, session_from

WRITES_PER_PATIENT = 25
PATIENTS = ("DEMO-0001", "DEMO-0002", "DEMO-0003", "DEMO-0004")  # the therapist's


def score(pid: str, value: int, at: datetime) -> dict:
    return {"patient": pointer("Patient", pid), "scoreType": "barthel", "scoreValue": value, "scoreDate": date(at)}


async def test_every_acknowledged_write_on_a_arrives_once_in_order_on_b_and_c(healthy: Cluster):
    cluster = healthy
    token = await cluster.token("therapist")
    ids = await cluster.patient_ids()
    subscribers = {(node, number): LiveQuery(cluster.ws(node), token, {
        "className": "MobilityScore", "where": {"patient": pointer("Patient", ids[number])}}, name=f"{node}/{number}")
        for node in ("b", "c") for number in PATIENTS}
    await asyncio.gather(*(s.open() for s in subscribers.values()))
    acknowledged: dict[str, list[str]] = {number: [] for number in PATIENTS}
    base = datetime.now(timezone.utc) - timedelta(days=1)
    started = time.perf_counter()
    try:
        async with session_from() as session:
            async def writer(number: str) -> None:  # one patient's writes in sequence: commit order is known
                for i in range(WRITES_PER_PATIENT):
                    status, body = await rest(session, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore",
                                              token, score(ids[number], 40 + i, base + timedelta(seconds=i)))
                    assert status == 201, (status, body)
                    acknowledged[number].append(body["objectId"])

            await asyncio.gather(*(writer(n) for n in PATIENTS))
        written = time.perf_counter() - started

        def complete() -> bool:
            return all(len(s.events()) >= WRITES_PER_PATIENT for s in subscribers.values())

        await asyncio.gather(*(s.wait(lambda s=s: len(s.events()) >= WRITES_PER_PATIENT, 10)
                               for s in subscribers.values()))
        assert complete(), {k: len(s.events()) for k, s in subscribers.items()}
        for (node, number), s in subscribers.items():
            got = [oid for _, op, oid in s.events() if op == "create"]
            assert [op for _, op, _ in s.events()] == ["create"] * len(s.events()), (node, number)
            lost = set(acknowledged[number]) - set(got)
            duplicates = len(got) - len(set(got))
            assert not lost and not duplicates, f"{node}/{number}: lost {len(lost)}, duplicates {duplicates}"
            assert got == acknowledged[number], f"{node}/{number}: out of per-patient order"
            assert s.ops("error") == []
        print(f"\n{sum(map(len, acknowledged.values()))} writes on A in {written:.2f}s; "
              f"{len(subscribers)} subscribers on B and C: lost 0, duplicates 0, in order")
    finally:
        await asyncio.gather(*(s.close() for s in subscribers.values()))


async def test_a_refused_write_reaches_nobody_and_leaves_no_change_row(healthy: Cluster):
    cluster = healthy
    token = await cluster.token("therapist")
    ids = await cluster.patient_ids()
    p, q = ids["DEMO-0003"], ids["DEMO-0004"]
    now = datetime.now(timezone.utc)
    async with session_from() as session:
        a = f"{cluster.url('a')}/parse/classes"
        status, q_note = await rest(session, "POST", f"{a}/SessionNote", token, {
            "patient": pointer("Patient", q), "sessionDate": date(now), "sessionType": "treatment",
            "noteText": "Walked the corridor twice.", "followUpNeeded": True})
        assert status == 201, q_note
        nid = q_note["objectId"]
        status, _ = await rest(session, "PUT", f"{a}/SessionNote/{nid}", token, {"followUpNeeded": False},
                               headers={"If-Match": '"1"'})
        assert status == 200  # now at version 2

        subscribers = [LiveQuery(cluster.ws(node), token, {"className": cls, "where": {}}, name=f"{node}/{cls}")
                       for node in ("a", "b", "c") for cls in ("MobilityScore", "SessionNote")]
        await asyncio.gather(*(s.open() for s in subscribers))
        try:
            [[head]] = await cluster.sql("SELECT coalesce(max(seq), 0) FROM change_log")
            # A valid change (clearing the follow-up) made against version 1: the note is at version 2.
            status, stale = await rest(session, "PUT", f"{a}/SessionNote/{nid}", token, {"followUpNeeded": False},
                                       headers={"If-Match": '"1"'})
            assert status == 409, stale
            status, amend = await rest(session, "POST", f"{a}/SessionNote", token, {
                "patient": pointer("Patient", p), "sessionDate": date(now), "sessionType": "treatment",
                "noteText": "Amends a note of another patient.", "followUpNeeded": False,
                "amends": pointer("SessionNote", nid)})
            assert status in (400, 404), amend  # the amended note is not this patient's: NotFound in the job
            arrived = await asyncio.gather(*(s.wait(lambda s=s: s.events(), 1.0) for s in subscribers))
            assert not any(arrived), [s.events() for s in subscribers]
            assert await cluster.sql("SELECT seq FROM change_log WHERE seq > $1", head) == []
            _, found = await rest(session, "GET", f"{a}/SessionNote/{nid}", token)
            assert found["followUpNeeded"] is False
        finally:
            await asyncio.gather(*(s.close() for s in subscribers))
