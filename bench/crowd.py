"""Live-query subscribers in a process of their own (scenario 3's "others").

Kept out of the measuring process so that X's latency is taken by the same client, equally loaded,
with and without the crowd: only the server sees the difference.

    python -m bench.crowd WS_URL < plan.json    (plan: [[token, query], ...])

Prints "ready" once every subscription is confirmed, waits for a line on stdin, then prints
{"events": N, "errors": [...]} and exits.
"""
from __future__ import annotations

import asyncio
import json
import sys

from bench.clients import Arrivals, Subscribers
from bench.server import raise_fd_limit


async def main(ws_url: str) -> None:
    raise_fd_limit()
    plan = json.loads(sys.stdin.readline())
    arrivals = Arrivals(expected=10 ** 9)
    crowd = Subscribers(ws_url, arrivals)
    try:
        await crowd.open([(token, query) for token, query in plan])
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        events = sum(len(times) for times in arrivals.times.values())
        print(json.dumps({"events": events, "errors": crowd.errors[:5]}), flush=True)
    finally:
        await crowd.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
