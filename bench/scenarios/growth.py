"""9. Growth: does a patient's write rate hold as its record grows?

On one server (SQLite unless --database-url), `records` creates through REST at concurrency 16 go to ONE
patient, in consecutive bursts of `window` (1,000 at full scale); each burst's rate is a point of the curve.
The figure is the last burst's rate against the first's (target: last >= 90% of first). Then a burst on a
patient with no records yet, on the same server, for reference: a slow last burst beside a fast fresh
one is the patient's size, not the database's or the machine's.

Kinds: SessionNote (always) and MobilityScore, each on its own patient, one after the other. A warm-up
burst goes to a patient of its own, so neither the grown nor the fresh patient gets a record it does not count.
"""
from __future__ import annotations

import asyncio

from bench.scenarios.load import burst, pick_driver
from bench.seed import build_world, open_store
from bench.server import Workspace

KINDS = {"notes": "SessionNote", "scores": "MobilityScore"}


async def run(ctx, records: int, window: int, kinds: tuple[str, ...] = ("notes", "scores"),
              concurrency: int = 16) -> dict:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"growth kinds {unknown}: choose from {', '.join(KINDS)}")
    driver = pick_driver(getattr(ctx, "driver", None))
    window = max(1, min(window, records))
    bursts = max(1, records // window)
    out: dict = {"completed": True, "driver": driver, "concurrency": concurrency, "records": bursts * window,
                 "window": window, "kinds": list(kinds)}
    all_ok = True
    async with Workspace("growth", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1 + 2 * len(kinds), therapists=1)
        server = await asyncio.to_thread(ws.start_server)
        token = world.lead.token
        warm = world.patients[0]
        for class_name in dict.fromkeys(KINDS[k] for k in kinds):
            await burst(driver, server.url, class_name, warm, token, min(200, window), concurrency)
        for n, kind in enumerate(kinds):
            class_name = KINDS[kind]
            grown, fresh = world.patients[1 + 2 * n], world.patients[2 + 2 * n]
            curve: list[dict] = []
            for _ in range(bursts):
                curve.append((await burst(driver, server.url, class_name, grown, token, window,
                                          concurrency)).as_dict())
            reference = (await burst(driver, server.url, class_name, fresh, token, window, concurrency)).as_dict()
            first, last = curve[0]["per_second"], curve[-1]["per_second"]
            refused = sum(b["answers"] - b["created"] for b in curve + [reference])
            errors = [e for b in curve + [reference] for e in b["errors"]][:5]
            out[kind] = {"class": class_name, "created": sum(b["created"] for b in curve),
                         "first_per_second": first, "last_per_second": last,
                         "last_vs_first_pct": round(100 * last / first, 1) if first else None,
                         "fresh_per_second": reference["per_second"],
                         "curve_per_second": [b["per_second"] for b in curve],
                         "curve_p99_ms": [b["latency_p99_ms"] for b in curve],
                         "refused": refused, "errors": errors}
            all_ok = all_ok and refused == 0 and not errors
    out["all_delivered"] = all_ok  # every create answered 201 (nothing to deliver: no subscribers here)
    return out
