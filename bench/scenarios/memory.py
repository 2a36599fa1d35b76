"""6. Memory (subscriber half): the server's resident memory at several live-query subscriber
counts, and the slope per subscriber. The page half is measured in the pages scenario."""
from __future__ import annotations

import asyncio

from bench.clients import Arrivals, Subscribers, patient_query
from bench.seed import build_world, open_store
from bench.server import Workspace
from bench.stats import slope


async def run(ctx, counts: list[int]) -> dict:
    async with Workspace("memory", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1, therapists=1, members=10)
        server = await asyncio.to_thread(ws.start_server)
        subs = Subscribers(server.ws_url, Arrivals(expected=10 ** 9))
        points: list[tuple[int, int]] = []
        try:
            opened = 0
            for count in sorted(counts):
                if count > opened:
                    await subs.open([(world.members[i % len(world.members)].token, patient_query(world.x))
                                     for i in range(opened, count)])
                    opened = count
                await asyncio.sleep(1.0)  # let the server settle before reading its memory
                points.append((count, server.rss_kib()))
        finally:
            await subs.close()
    per = slope(points)
    return {"completed": True, "points_kib": points,
            "per_subscriber_kib": None if per is None else round(per, 2)}
