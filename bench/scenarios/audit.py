"""12. The audit view at 1,000,000 audit rows: server time of the lead's pages through the store.

A fresh database (SQLite, or PostgreSQL with --database-url) gets a lead, therapists and patients
through the store, then `rows` audit rows inserted in bulk beside it (sqlite3 executemany in one
transaction; asyncpg COPY on PostgreSQL), a year of them, oldest first, as the store writes them:
mostly reads, some creates and updates, a few denied attempts and sign-ins. Then each kind of read a
lead does is timed through the store in the bench process (`reads` times each, a different user or
patient each time, after one untimed warm-up): the first page, a filtered page by user + class, by
patient, the denied attempts, the 20th page walked by keyset, a patient's Activity panel, an access
report of one user over 30 days, and a 10,000-row CSV export. Target: p99 ≤ 100 ms for the pages
(the export is reported beside them). The store's own audit-of-audit row per read is included.

    python -m bench --only audit [--quick] [--database-url postgresql+asyncpg://postgres@127.0.0.1/ot]
    python -m bench.scenarios.audit --rows 1000000 --reads 30 [--database-url ...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy.engine import make_url

from bench.seed import PASSWORD, build_world, open_store
from bench.server import Workspace
from bench.stats import summary_ms

TARGET_MS = 100
CLASSES = (("Patient", 30), ("MobilityScore", 30), ("SessionNote", 20), ("EquipmentLog", 10),
           ("StatusHistory", 5), ("_User", 5))
ACTIONS = (("read", 55), ("find", 25), ("create", 10), ("update", 5), ("denied", 3), ("login", 2))
COLUMNS = ("at", "actor_id", "action", "class_name", "object_id", "patient_ref", "outcome", "detail", "address")


def audit_rows(n: int, users: list[str], patients: list[str], *, seed: int = 12):
    """`n` rows over the last 365 days, oldest first, as tuples of COLUMNS (aware UTC times)."""
    rng = random.Random(seed)
    classes = rng.choices([c for c, _ in CLASSES], [w for _, w in CLASSES], k=n)
    actions = rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS], k=n)
    start = datetime.now(timezone.utc) - timedelta(days=365)
    step = timedelta(days=365) / n
    for i in range(n):
        cls, action = classes[i], actions[i]
        actor = users[rng.randrange(len(users))]
        if action == "login" or cls == "_User":
            yield (start + step * i, actor, "login" if action == "login" else "read", "_User", actor, None,
                   "ok", None, "10.0.0.1" if action == "login" else None)
            continue
        patient = patients[rng.randrange(len(patients))]
        outcome, act = ("not_found", "read") if action == "denied" else ("ok", action)
        yield (start + step * i, actor, act, cls, patient if cls == "Patient" else f"r{i:09d}"[-10:], patient,
               outcome, "mobilityStatus" if act == "update" else None, None)


async def fill(db_url: str, rows) -> float:
    """Bulk inserts the rows; returns seconds taken."""
    t0 = time.perf_counter()
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        def insert() -> None:
            conn = sqlite3.connect(url.database)
            try:
                # The indexes are made again after the rows, in one pass each, rather than kept row by row.
                indexes = [sql for (sql,) in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='audit_log' AND sql IS NOT NULL")]
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index' "
                                            "AND tbl_name='audit_log' AND sql IS NOT NULL").fetchall():
                    conn.execute(f'DROP INDEX "{name}"')
                # SQLite stores the column as naive UTC text, as UTCDateTime binds it.
                conn.executemany(
                    f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    ((r[0].replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"), *r[1:]) for r in rows))
                for sql in indexes:
                    conn.execute(sql)
                conn.commit()
                conn.execute("ANALYZE")
            finally:
                conn.close()

        await asyncio.to_thread(insert)
    else:
        import asyncpg

        conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                     password=url.password, database=url.database)
        try:
            indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log' "
                                       "AND indexname <> 'audit_log_pkey'")
            async with conn.transaction():
                for index in indexes:
                    await conn.execute(f'DROP INDEX "{index["indexname"]}"')
                await conn.copy_records_to_table("audit_log", records=list(rows), columns=list(COLUMNS))
                for index in indexes:
                    await conn.execute(index["indexdef"])
            await conn.execute("ANALYZE audit_log")
        finally:
            await conn.close()
    return time.perf_counter() - t0


async def timed(fn, reads: int, rng: random.Random) -> dict:
    await fn(rng)  # warm-up, untimed
    times = []
    for _ in range(reads):
        t0 = time.perf_counter()
        await fn(rng)
        times.append(time.perf_counter() - t0)
    return summary_ms(times)


async def run(ctx, rows: int | None = None, reads: int | None = None) -> dict:
    rows = rows or (20_000 if ctx.quick else 1_000_000)
    reads = reads or (5 if ctx.quick else 30)
    out: dict = {"completed": False, "rows": rows, "reads_each": reads, "target_p99_ms": TARGET_MS,
                 "database": "postgresql" if ctx.database_url and "postgres" in ctx.database_url else "sqlite",
                 "measured": "store in the bench process (page query, username lookup, its own audit row)",
                 "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    async with Workspace("audit", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=2000 if not ctx.quick else 50, therapists=40 if not ctx.quick else 4)
        users = [world.lead.user_id] + [t.user_id for t in world.therapists]
        out["users"], out["patients"] = len(users), len(world.patients)
        # With the store closed: the bulk insert holds SQLite's write lock longer than its busy timeout.
        out["fill_s"] = round(await fill(ws.db.url, audit_rows(rows, users, world.patients)), 1)
        async with open_store(ws.db.url, ws.data_dir) as store:
            lead = (await store.log_in(username=world.lead.username, password=PASSWORD)).principal
            now = datetime.now(timezone.utc)

            async def first(rng):
                assert len((await store.audit_page(principal=lead)).rows) == 50

            async def by_user_class(rng):
                page = await store.audit_page(principal=lead, user_id=rng.choice(users),
                                              class_name=rng.choice(("Patient", "MobilityScore", "SessionNote")))
                assert len(page.rows) == 50

            async def by_patient(rng):
                await store.audit_page(principal=lead, patient_id=rng.choice(world.patients))

            async def denied(rng):
                assert len((await store.audit_page(principal=lead, action="denied")).rows) == 50

            async def user_last_week(rng):
                await store.audit_page(principal=lead, user_id=rng.choice(users), since=now - timedelta(days=7))

            async def page_20(rng):
                page = await store.audit_page(principal=lead, user_id=rng.choice(users))
                for _ in range(19):
                    if page.older is None:  # a small log (--quick) ends sooner
                        break
                    page = await store.audit_page(principal=lead, user_id=page.rows[0].user_id, after=page.older)

            async def activity(rng):
                await store.patient_activity(principal=lead, patient_id=rng.choice(world.patients))

            async def access_report(rng):
                await store.access_report(principal=lead, user_id=rng.choice(users), since=now - timedelta(days=30))

            async def export(rng):
                chunks = await store.audit_csv(principal=lead, max_rows=10_000)
                assert sum([c.count("\n") async for c in chunks]) == min(10_000, rows) + 1

            for name, fn in (("first_page", first), ("user_and_class", by_user_class), ("patient", by_patient),
                             ("denied", denied), ("user_last_7_days", user_last_week), ("activity_panel", activity),
                             ("access_report_30_days", access_report), ("page_20_of_a_user", page_20),
                             ("csv_10000_rows", export)):
                out[name] = await timed(fn, reads if name not in ("page_20_of_a_user", "csv_10000_rows")
                                        else max(3, reads // 3), random.Random(name))
            out["page_20_of_a_user"]["note"] = "20 pages in a row: the time is for all 20"
    pages = ("first_page", "user_and_class", "patient", "denied", "user_last_7_days", "activity_panel",
             "access_report_30_days")
    out["meets"] = all(out[k]["p99_ms"] <= TARGET_MS for k in pages)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]  # other work on the machine meanwhile
    out["completed"] = True
    return out


def table_rows(a: dict, _all: dict | None = None) -> list[tuple]:
    """The bench table's rows (bench/report.py)."""
    if not a.get("completed"):
        return [("audit view", "FAILED", "", "", "", a.get("error", ""))]
    rows = []
    for key in ("first_page", "user_and_class", "patient", "denied", "user_last_7_days", "activity_panel",
                "access_report_30_days"):
        p50, p99 = a[key]["p50_ms"], a[key]["p99_ms"]
        rows.append((f"audit {a['rows']:,} rows ({a['database']}): {key.replace('_', ' ')} p50 / p99 ms",
                     f"{p50} / {p99}", f"p99 ≤ {TARGET_MS}", "", "", "meets" if p99 <= TARGET_MS else "MISSES"))
    for key in ("page_20_of_a_user", "csv_10000_rows"):
        rows.append((f"  … {key.replace('_', ' ')} p50 / p99 ms", f"{a[key]['p50_ms']} / {a[key]['p99_ms']}",
                     "", "", "", "reference"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scenarios.audit", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    class Ctx:
        quick = False
        database_url = args.database_url

    print(json.dumps(asyncio.run(run(Ctx, args.rows, args.reads)), indent=2, default=str))


if __name__ == "__main__":
    main()
