"""5. A big caseload: building the caseload for a lead, and opening one patient with 500 scores.

Server time is measured honestly without a back door: the store (the core's public interface) runs
in the bench process against the same database file, with an SQLAlchemy statement counter on its
engines, while the server is stopped. Then the real server is started on that database and the
REST round trips (and the pages, when they exist) are timed from outside.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import contextmanager

import aiohttp
from sqlalchemy import event

from bench.clients import BenchError, RestClient, pointer
from bench.seed import build_world, note_rows, open_store, score_rows
from bench.server import Workspace
from bench.stats import percentile

REPEATS = 7


@contextmanager
def count_statements(db):
    counts: Counter[str] = Counter()

    def on_execute(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        counts[statement.lstrip().split(None, 1)[0].upper()] += 1

    engines = {id(e): e for e in (db.read_engine, db.write_engine)}.values()
    for engine in engines:
        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        yield counts
    finally:
        for engine in engines:
            event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def timed(fn, repeats: int) -> tuple[dict, Counter]:
    """Runs fn once cold, then `repeats` times; returns ms figures and one warm call's statements."""
    t0 = time.perf_counter()
    await fn()
    cold = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return {"cold_ms": round(cold * 1000, 2), "p50_ms": round(percentile(times, 50) * 1000, 2),
            "min_ms": round(min(times) * 1000, 2), "max_ms": round(max(times) * 1000, 2)}, Counter()


async def open_patient(store, principal, patient_id: str) -> int:
    """What opening a patient reads: the patient, its scores (all, up to 1000), recent notes,
    equipment and status history. Returns the number of scores read."""
    await store.get(principal=principal, class_name="Patient", object_id=patient_id)
    scores = await store.find(principal=principal, class_name="MobilityScore", where={"patient": patient_id},
                              order="-scoreDate", limit=1000)
    await store.find(principal=principal, class_name="SessionNote", where={"patient": patient_id},
                     order="-sessionDate", limit=100)
    await store.find(principal=principal, class_name="EquipmentLog", where={"patient": patient_id}, limit=100)
    await store.find(principal=principal, class_name="StatusHistory", where={"patient": patient_id},
                     order="-createdAt", limit=100)
    return len(scores)


async def run(ctx) -> dict:
    if ctx.quick:
        n_patients, n_scores, n_notes, x_scores = 20, 1_000, 200, 50
    else:
        n_patients, n_scores, n_notes, x_scores = 2_000, 200_000, 50_000, 500
    out: dict = {"completed": False, "patients": n_patients, "scores": n_scores, "notes": n_notes,
                 "x_scores": x_scores, "measured": "store in the bench process, same database, server stopped"}
    async with Workspace("caseload", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            t0 = time.perf_counter()
            world = await build_world(store, patients=n_patients, therapists=max(1, n_patients // 25))
            rest_each = (n_scores - x_scores) // (n_patients - 1)
            per = {p: rest_each for p in world.patients[1:]}
            per[world.x] = x_scores
            per[world.patients[1]] += n_scores - x_scores - rest_each * (n_patients - 1)
            await store.import_scores(principal=world.lead.principal, rows=score_rows(world.patients, per))
            await store.import_notes(principal=world.lead.principal,
                                     rows=note_rows(world.patients, n_notes // n_patients))
            out["seed_s"] = round(time.perf_counter() - t0, 1)
            lead = world.lead.principal

            async def caseload():
                rows = await store.caseload(principal=lead)
                assert len(rows) == n_patients, len(rows)

            with count_statements(store.db) as counts:
                await caseload()
            out["caseload_statements"] = dict(counts)
            out["caseload_statement_total"] = sum(counts.values())
            out["caseload_selects"] = counts.get("SELECT", 0) + counts.get("WITH", 0)
            out["caseload_server"], _ = await timed(caseload, REPEATS)

            async def patient():
                assert await open_patient(store, lead, world.x) == x_scores

            with count_statements(store.db) as counts:
                await patient()
            out["open_patient_statements"] = dict(counts)
            out["open_patient_server"], _ = await timed(patient, REPEATS)

        server = await asyncio.to_thread(ws.start_server)
        rest = RestClient(server.url, connections=1)
        try:
            where = {"patient": pointer("Patient", world.x)}
            times = []
            for _ in range(1 + REPEATS):
                elapsed, body = await rest.find("MobilityScore", where, world.lead.token, limit=1000, order="-scoreDate")
                assert len(body["results"]) == x_scores, len(body["results"])
                times.append(elapsed)
            out["rest_scores_of_x"] = {"p50_ms": round(percentile(times[1:], 50) * 1000, 2),
                                       "min_ms": round(min(times[1:]) * 1000, 2)}
            out["pages"] = await page_loads(server.url, world)
        finally:
            await rest.close()
    out["completed"] = True
    return out


async def page_loads(url: str, world) -> dict:
    """The caseload page (/) and the patient page as HTTP GETs with a signed-in cookie, when the
    pages exist. Reports why not when they do not."""
    from bench.pages_client import login_cookies

    async with aiohttp.ClientSession() as session:
        cookies = await login_cookies(session, url, world.lead.username)
        if cookies is None:
            return {"status": "blocked: no page sign-in route yet"}
        # Sent by hand: aiohttp's default cookie jar keeps no cookies from an IP address like 127.0.0.1.
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        out = {}
        for name, path in (("caseload_page", "/"), ("patient_page", f"/patient/{world.x}")):
            times = []
            status = None
            for _ in range(1 + REPEATS // 2):
                t0 = time.perf_counter()
                async with session.get(url + path, headers=headers, allow_redirects=False) as response:
                    await response.read()
                    status = response.status
                times.append(time.perf_counter() - t0)
            if status != 200:
                raise BenchError(f"{path} answered {status} to a signed-in lead")
            out[name] = {"status": status, "p50_ms": round(percentile(times[1:], 50) * 1000, 2)}
        return out
