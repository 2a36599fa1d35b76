"""2. Open pages: P headless NiceGUI clients on one patient's page; a score is created through REST and
each page's time to receive the update is reported. A few real Chromium pages check the headless ones.
Also 6 (pages half): resident memory per open page."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import aiohttp

from bench.clients import RestClient, date, pointer
from bench.pages_client import MarkerLog, PageClient, login_cookies
from bench.seed import build_world, open_store
from bench.server import Workspace
from bench.stats import slope, summary_ms

UPDATE_TIMEOUT = 15.0  # each update's wait window; slower counts as lost
SETTLE_TIMEOUT = 30.0  # after a size's writes, how long stragglers are still counted as late


def marked_score(patient_id: str, marker: str) -> dict:
    from datetime import datetime, timezone

    return {"patient": pointer("Patient", patient_id), "scoreType": "barthel", "scoreValue": 50,
            "notes": marker, "scoreDate": date(datetime.now(timezone.utc))}


async def open_pages(url: str, path: str, cookies: list[dict], count: int, log: MarkerLog,
                     http: aiohttp.ClientSession, into: list[PageClient]) -> None:
    for start in range(len(into), count, 25):
        batch = [PageClient(url, path, cookies[i % len(cookies)], log) for i in range(start, min(count, start + 25))]
        await asyncio.gather(*(c.open(http) for c in batch))
        into.extend(batch)


async def run(ctx, sizes: list[int], writes: int, memory_counts: list[int] | None = None) -> dict:
    window = getattr(ctx, "pages_wait", None) or UPDATE_TIMEOUT
    settle = getattr(ctx, "pages_settle", None)
    settle = SETTLE_TIMEOUT if settle is None else settle
    out: dict = {"completed": False}
    async with Workspace("pages", ctx.database_url) as ws:
        async with open_store(ws.db.url, ws.data_dir) as store:
            world = await build_world(store, patients=1, therapists=1, members=5)
        server = await asyncio.to_thread(ws.start_server)
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        rest = RestClient(server.url, connections=1)
        clients: list[PageClient] = []
        try:
            cookies = []
            for account in world.members:
                jar = aiohttp.ClientSession()
                try:
                    got = await login_cookies(jar, server.url, account.username)
                finally:
                    await jar.close()
                if got is None:
                    out.update(completed=False, blocked="the pages have no sign-in route yet (pages/ not landed)")
                    return out
                cookies.append(got)
            path = f"/patient/{world.x}"
            log = MarkerLog()
            memory: list[tuple[int, int]] = [(0, server.rss_kib())]
            for size in sorted(sizes):
                await open_pages(server.url, path, cookies, size, log, http, clients)
                await asyncio.sleep(1.0)  # let the server settle before reading its memory
                memory.append((size, server.rss_kib()))
                latencies: list[float] = []
                lost = 0
                written: list[tuple[str, float, int]] = []  # marker, start, arrivals within the window
                first_write = time.perf_counter()
                for i in range(writes + 1):  # the first is a warm-up
                    marker = f"bench-{uuid.uuid4().hex[:12]}"
                    log.arm(marker, len(clients))
                    start, _, _ = await rest.create("MobilityScore", marked_score(world.x, marker),
                                                    world.therapists[0].token)
                    try:
                        await asyncio.wait_for(log.done.wait(), window)
                    except TimeoutError:
                        pass
                    if i:
                        latencies.extend(t - start for t in log.first.values())
                        lost += len(clients) - len(log.first)
                        written.append((marker, start, len(log.first)))
                # What missed its window: late, or never there (the old wait window hid the difference).
                await log.settle([m for m, _, _ in written], len(clients), settle)
                late = sum(len(log.arrivals[m]) - n for m, _, n in written)
                everything = [t - start for m, start, _ in written for t in log.arrivals[m].values()]
                dropped = [c for c in clients if c.disconnected_at is not None]
                out[f"p{size}"] = {
                    "pages": len(clients), "writes": writes, "lost": lost, "late": late, "never": lost - late,
                    "wait_s": window, "settle_s": settle,
                    "missed_by": len({id(c) for c in clients for m, _, _ in written if id(c) not in log.arrivals[m]}),
                    # The server closes a socket whose pong it has not read 2 s after its ping; these clients,
                    # unlike a browser, do not reconnect, so every later update to them is lost.
                    "disconnected": len(dropped),
                    "disconnected_before_writes": sum(c.disconnected_at < first_write for c in dropped),
                    "disconnect_reasons": dict(Counter(c.disconnect_reason for c in dropped)),
                    "latency": summary_ms(latencies), "latency_with_late": summary_ms(everything)}
            if ctx.chromium:
                out["chromium"] = await chromium_check(server.url, path, cookies[0], world, rest)
            per_page = slope(memory)
            out["memory_points_kib"] = memory
            out["memory_per_page_kib"] = None if per_page is None else round(per_page, 1)
            out["all_delivered"] = all(v["lost"] == 0 for k, v in out.items() if k.startswith("p") and isinstance(v, dict))
            out["completed"] = True
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
            await rest.close()
            await http.close()
    return out


async def chromium_check(url: str, path: str, cookies: dict, world, rest: RestClient, pages: int = 3,
                         writes: int = 3) -> dict:
    """Real Chromium pages beside the headless ones: the time until the marker is in their DOM."""
    from playwright.async_api import async_playwright

    latencies: list[float] = []
    lost = 0
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            await context.add_cookies([{"name": k, "value": v, "url": url} for k, v in cookies.items()])
            tabs = []
            for _ in range(pages):
                tab = await context.new_page()
                await tab.goto(url + path)
                await tab.wait_for_load_state("networkidle")
                tabs.append(tab)
            for _ in range(writes):
                marker = f"bench-{uuid.uuid4().hex[:12]}"
                for tab in tabs:  # a MutationObserver stamps the wall-clock time the marker appears
                    await tab.evaluate("""m => { window.__seen = null; const o = new MutationObserver(() => {
                        if (!window.__seen && document.body.innerText.includes(m)) { window.__seen = performance.timeOrigin + performance.now(); o.disconnect(); } });
                        o.observe(document.body, {subtree: true, childList: true, characterData: true}); }""", marker)
                wall0 = time.time()
                await rest.create("MobilityScore", marked_score(world.x, marker), world.therapists[0].token)
                for tab in tabs:
                    try:
                        await tab.wait_for_function("() => window.__seen", timeout=UPDATE_TIMEOUT * 1000)
                        seen = await tab.evaluate("() => window.__seen")
                        latencies.append(seen / 1000 - wall0)
                    except Exception:  # noqa: BLE001 - a page that never showed it counts as lost
                        lost += 1
        finally:
            await browser.close()
    return {"pages": pages, "writes": writes, "lost": lost, "latency": summary_ms(latencies)}
