"""`python -m bench`: every scenario against a real server process, beside a floor measured in the
same run. Writes bench/results/<timestamp>.json and rewrites the table in bench/README.md."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.report import rewrite_readme, table_rows
from bench.server import raise_fd_limit

HERE = Path(__file__).resolve().parent
SCENARIOS = ("floor", "fanout", "pages", "isolation", "isolation-writes", "writes", "caseload", "memory", "growth",
             "graphql", "cluster", "audit")
# Run only when named (--only): the resource-limit attacks (REVIEW-SECURITY H3/H4) push the server towards gigabytes.
OPT_IN = ("resources",)
# In a full run, not in a plain --quick (the smoke test's set of scenarios): `--quick --only NAME` runs them scaled down.
NOT_QUICK = ("isolation-writes", "growth", "cluster", "audit")


@dataclass
class Context:
    quick: bool
    database_url: str | None
    chromium: bool
    fanout_sizes: list[int]
    pages_wait: float | None = None
    pages_settle: float | None = None
    driver: str | None = None  # isolation-writes and growth: "wrk", "aiohttp" or "auto" (wrk when on PATH)


def plan(quick: bool) -> dict:
    if quick:
        return {"fanout": ([5, 20], 5), "pages": ([3, 6], 2), "isolation": (3, 20, 5),
                "isolation-writes": (50, 200), "writes": ([1, 16], 40), "memory": [0, 10, 20],
                "growth": (2000, 500), "graphql": (10, 0.5, 20, 4, 4),
                "cluster": ([5, 20], 5, 6, 2, 3, 50, {1: 50, 16: 200}), "audit": (20_000, 5)}
    # isolation-writes: (subscribers on X, SessionNote creates per phase); growth: (records, window);
    # graphql: (finds at c1 per kind, seconds per concurrent phase, subscribers, REST creates per kind of
    # subscriber, concurrency of the finds per second).
    return {"fanout": ([50, 200, 1000], 100), "pages": ([50, 200, 500], 10), "isolation": (10, 1000, 100),
            "isolation-writes": (1000, 2000), "writes": ([1, 16], 2000), "memory": [0, 250, 500, 1000],
            "growth": (20000, 1000), "graphql": (500, 5.0, 200, 100, 16),
            # cluster: (fan-out sizes, writes per size and phase, open pages, page writes, revocation trials,
            # EquipmentLog subscribers beside the creates, {concurrency: creates per phase}).
            "cluster": ([50, 200, 1000], 100, 500, 10, 20, 1000, {1: 500, 16: 2000}),
            # audit: (audit rows, timed reads of each kind)
            "audit": (1_000_000, 30)}


async def run_one(name: str, ctx: Context, p: dict) -> dict:
    from bench.scenarios import caseload, floor, graphql, growth, live, memory, pages, resources

    if name == "floor":
        return await floor.run(ctx)
    if name == "fanout":
        sizes, writes = p["fanout"]
        out = {"completed": True, "all_delivered": True}
        for size in sizes:
            r = await live.fanout(ctx, size, writes)
            out[f"s{size}"] = r
            out["all_delivered"] &= r["all_delivered"]
        return out
    if name == "pages":
        sizes, writes = p["pages"]
        return await pages.run(ctx, sizes, writes)
    if name == "isolation":
        return await live.isolation(ctx, *p["isolation"])
    if name == "isolation-writes":
        return await live.isolation_writes(ctx, *p["isolation-writes"])
    if name == "writes":
        return await live.writes(ctx, *p["writes"])
    if name == "growth":
        records, window = p["growth"]
        return await growth.run(ctx, records, window, tuple(p.get("growth_kinds") or growth.KINDS))
    if name == "caseload":
        return await caseload.run(ctx)
    if name == "memory":
        return await memory.run(ctx, p["memory"])
    if name == "resources":
        return await resources.run(ctx)
    if name == "graphql":
        return await graphql.run(ctx, *p["graphql"])
    if name == "cluster":
        from bench.scenarios import cluster

        return await cluster.run(ctx, *p["cluster"])
    if name == "audit":
        from bench.scenarios import audit

        return await audit.run(ctx, *p["audit"])
    raise ValueError(name)


def noise() -> dict:
    """What else the machine was doing: load averages and CPU steal, before and after."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return {"loadavg": [round(x, 2) for x in load], "cpu_jiffies": [int(x) for x in cpu]}


async def main_async(args: argparse.Namespace) -> int:
    raise_fd_limit()
    p = plan(args.quick)
    if args.pages_sizes or args.pages_writes:
        sizes, writes = p["pages"]
        p["pages"] = (args.pages_sizes or sizes, args.pages_writes or writes)
    if args.fanout_sizes:
        p["fanout"] = (args.fanout_sizes, p["fanout"][1])
    if args.isolation_subscribers or args.isolation_creates:
        subs, creates = p["isolation-writes"]
        p["isolation-writes"] = (args.isolation_subscribers or subs, args.isolation_creates or creates)
    if args.growth_records or args.growth_window:
        records, window = p["growth"]
        records = args.growth_records or records
        p["growth"] = (records, args.growth_window or min(window, max(1, records // 4)))
    if args.growth_kinds:
        p["growth_kinds"] = args.growth_kinds
    ctx = Context(quick=args.quick, database_url=args.database_url, chromium=not args.quick and not args.no_chromium,
                  fanout_sizes=p["fanout"][0], pages_wait=args.pages_wait, pages_settle=args.pages_settle,
                  driver=args.driver)
    names = [args.only] if args.only else [n for n in SCENARIOS if not (args.quick and n in NOT_QUICK)]
    if "floor" not in names:
        names.insert(0, "floor")  # every run carries its own floor
    results: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
                     "database": "postgresql" if args.database_url and "postgres" in args.database_url else "sqlite",
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "noise_before": noise(), "scenarios": {}}
    ok = True
    for name in names:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        try:
            result = await asyncio.wait_for(run_one(name, ctx, p), args.timeout)
        except Exception as exc:  # noqa: BLE001 - a failed scenario is reported, the others still run
            result = {"completed": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": traceback.format_exc()[-4000:]}
        result["seconds"] = round(time.perf_counter() - t0, 1)
        results["scenarios"][name] = result
        status = "ok" if result.get("completed") else ("BLOCKED" if result.get("blocked") else "FAILED")
        print(f"[bench] {name}: {status} in {result['seconds']}s "
              f"{result.get('blocked') or result.get('error') or ''}", flush=True)
        if not result.get("completed") or result.get("all_delivered") is False:
            ok = False
    results["noise_after"] = noise()
    try:
        results["table"] = table_rows(results)
    except Exception as exc:  # noqa: BLE001 - the figures are still written
        results["table"] = [("table", "FAILED", "", "", "", f"{type(exc).__name__}: {exc}")]
        ok = False
    out = Path(args.out) if args.out else HERE / "results" / f"{datetime.now():%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"[bench] wrote {out}")
    # The README's table is one whole run's; a partial or quick run only says so when asked.
    if (not args.quick and not args.only) or args.readme:
        rewrite_readme(HERE / "README.md", results)
    for row in results["table"]:
        print("  " + " | ".join(str(c) for c in row))
    return 0 if ok else 1


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario at tiny scale, in seconds")
    parser.add_argument("--database-url", help="a PostgreSQL URL; each scenario gets a fresh database beside it")
    parser.add_argument("--only", choices=SCENARIOS + OPT_IN,
                        help="one scenario (with the floor); resources runs only when named "
                             "(its knobs: python -m bench.scenarios.resources --help)")
    parser.add_argument("--out", help="where to write the JSON (default bench/results/<timestamp>.json)")
    parser.add_argument("--no-chromium", action="store_true", help="skip the real-browser check of scenario 2")
    parser.add_argument("--readme", action="store_true", help="rewrite bench/README.md's table even for --quick")
    parser.add_argument("--fanout-sizes", type=_counts, help="subscriber counts for scenario 1, e.g. 200")
    parser.add_argument("--pages-sizes", type=_counts, help="open-page counts for scenario 2, e.g. 500 or 50,500")
    parser.add_argument("--pages-writes", type=int, help="timed writes per page count in scenario 2")
    parser.add_argument("--pages-wait", type=float, help="seconds each update may take before it counts as lost (15)")
    parser.add_argument("--pages-settle", type=float,
                        help="seconds to keep counting late updates after a page count's writes (30)")
    parser.add_argument("--driver", choices=("auto", "wrk", "aiohttp"), default="auto",
                        help="load generator of isolation-writes and growth (auto: wrk when on PATH)")
    parser.add_argument("--isolation-subscribers", type=int,
                        help="isolation-writes: live-query subscribers on X's MobilityScore (1000)")
    parser.add_argument("--isolation-creates", type=int,
                        help="isolation-writes: SessionNote creates per phase, four phases X Y Y X (2000)")
    parser.add_argument("--growth-records", type=int, help="growth: creates to the one patient, per kind (20000)")
    parser.add_argument("--growth-window", type=int,
                        help="growth: creates per burst; first / last burst are compared (1000, or records/4)")
    parser.add_argument("--growth-kinds", type=lambda t: tuple(k for k in t.split(",") if k),
                        help="growth: notes,scores (default both)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per scenario")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
