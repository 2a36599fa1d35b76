"""Scenario 5 of SCALE-OUT.md §6: two people on one patient's page, on instances A and B, see each
other ("Also viewing"); when A is killed (-9), A's viewer goes from B's page once its presence
expires (OT_PRESENCE_TTL_SECONDS, 6 in these tests; 30 by default)."""
from __future__ import annotations

import asyncio
import time

from tests.cluster.harness import CLUSTER_SETTINGS, Cluster, PageView, page_sign_in, session_from

TTL = int(CLUSTER_SETTINGS["OT_PRESENCE_TTL_SECONDS"])


async def test_viewers_on_a_and_b_see_each_other_and_a_killed_instance_s_viewer_goes(healthy: Cluster):
    cluster = healthy
    pid = (await cluster.patient_ids())["DEMO-0001"]
    async with session_from() as session:
        cookies = {}
        for username in ("therapist", "lead"):
            status, cookies[username] = await page_sign_in(session, cluster.lb, username)
            assert status == 200, (username, status)
    on_a = PageView(cluster.lb, f"/patient/{pid}", {**cookies["therapist"], "ot_node": "a"})
    on_b = PageView(cluster.lb, f"/patient/{pid}", {**cookies["lead"], "ot_node": "b"})
    try:
        await on_a.open()
        started = time.perf_counter()
        await on_b.open()
        assert on_a.cookies["ot_node"] == "a" and on_b.cookies["ot_node"] == "b"
        seen = await asyncio.gather(on_a.wait(lambda: on_a.shows("Also viewing: lead"), 5),
                                    on_b.wait(lambda: on_b.shows("Also viewing: therapist"), 5))
        both = time.perf_counter() - started
        assert all(seen), (on_a.texts(), on_b.texts())
        print(f"\nviewers on A and B see each other {1000 * both:.0f} ms after B's page was requested")
        assert both < 1.0, f"took {both:.2f}s (target ~0.5 s)"

        killed = time.perf_counter()
        cluster.kill("a")
        assert await on_b.wait(lambda: not on_b.shows("Also viewing: therapist"), TTL + 10), on_b.texts()
        gone = time.perf_counter() - killed
        print(f"kill -9 of A -> A's viewer gone from B's page in {gone:.1f} s (presence TTL {TTL} s)")
        assert on_b.disconnected_at is None  # B's page stayed connected throughout
    finally:
        await asyncio.gather(on_a.close(), on_b.close())
