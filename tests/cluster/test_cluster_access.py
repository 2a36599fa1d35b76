"""Scenario 3 of SCALE-OUT.md §6: access changes made on one instance hold on the others. A care-team
removal made on A's patient page (Chromium) shows as `leave` on B's live query and a 404 from B's
REST; a sign-out on A refuses the token on B and C, and B's live query gets error 209."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from bench.clients import date, pointer
from tests.cluster.harness import DEMO_PASSWORD, Cluster, LiveQuery, poll, rest, session_from

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def remove_from_team_on(cluster: Cluster, node: str, patient_id: str, username: str) -> float:
    """The lead removes `username` from the patient's care team on `node`'s page (through the balancer,
    pinned by its ot_node cookie), as a user does: the button, then the confirmation. Returns the
    perf_counter time of the confirming click."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            await context.add_cookies([{"name": "ot_node", "value": node, "url": cluster.lb}])
            page = await context.new_page()
            await page.goto(f"{cluster.lb}/login?next=/patient/{patient_id}")
            await page.fill("input[name=username]", "lead")
            await page.fill("input[name=password]", DEMO_PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{cluster.lb}/patient/{patient_id}")
            await expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
            assert {c["name"]: c["value"] for c in await context.cookies()}["ot_node"] == node
            await page.click(f'[aria-label="Remove {username}"]')
            confirm = page.get_by_role("button", name="Remove", exact=True)
            await expect(confirm).to_be_visible()
            clicked = time.perf_counter()
            await confirm.click()
            await expect(page.locator(f'[aria-label="Remove {username}"]')).to_have_count(0, timeout=10_000)
            return clicked
        finally:
            await browser.close()


async def test_a_team_removal_on_a_ends_access_on_b(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    pid = ids["DEMO-0002"]  # the assistant is on its team (data/demo.json); no other test uses it
    assistant, therapist = await cluster.token("assistant"), await cluster.token("therapist")
    watcher = await LiveQuery(cluster.ws("b"), assistant, {
        "className": "MobilityScore", "where": {"patient": pointer("Patient", pid)}}, name="b/assistant").open()
    try:
        async with session_from() as session:
            status, created = await rest(session, "POST", f"{cluster.url('a')}/parse/classes/MobilityScore", therapist,
                                         {"patient": pointer("Patient", pid), "scoreType": "barthel", "scoreValue": 55,
                                          "scoreDate": date(datetime.now(timezone.utc))})
            assert status == 201
            assert await watcher.wait(lambda: watcher.events(), 5), "B's subscriber never got the score"
            status, _ = await rest(session, "GET", f"{cluster.url('b')}/parse/classes/Patient/{pid}", assistant)
            assert status == 200

            async def refused_on_b() -> bool:
                code, _ = await rest(session, "GET", f"{cluster.url('b')}/parse/classes/Patient/{pid}", assistant)
                refusal_times.append(time.perf_counter())
                return code == 404
            refusal_times: list[float] = []
            refusal = asyncio.create_task(poll(refused_on_b, 60, interval=0.02))  # B's REST, meanwhile

            clicked = await remove_from_team_on(cluster, "a", pid, "assistant")

            assert await watcher.wait(lambda: any(op == "leave" for _, op, _ in watcher.events()), 5)
            # Every score it tracked leaves (the demo's and ours), nothing of them but ids and dates.
            leaves = {oid: at for at, op, oid in watcher.events() if op == "leave"}
            assert created["objectId"] in leaves
            left_at = max(leaves.values())
            assert await asyncio.wait_for(refusal, 10) is not None
            refused_at = refusal_times[-1]
            print(f"\nteam removal on A (from the confirming click, so with the page's own round trip): "
                  f"leave on B's live query {1000 * (left_at - clicked):.0f} ms, B's REST 404 "
                  f"{1000 * (refused_at - clicked):.0f} ms")
    finally:
        await watcher.close()


async def test_a_sign_out_on_a_refuses_the_token_on_b_and_c(healthy: Cluster):
    cluster = healthy
    ids = await cluster.patient_ids()
    async with session_from() as session:
        status, signed = await rest(session, "POST", f"{cluster.url('a')}/parse/login",
                                    body={"username": "therapist2", "password": DEMO_PASSWORD})
        assert status == 200
        token = signed["sessionToken"]
        watcher = await LiveQuery(cluster.ws("b"), token, {"className": "MobilityScore", "where": {
            "patient": pointer("Patient", ids["DEMO-0005"])}}, name="b/therapist2").open()
        try:
            for node in ("b", "c"):
                status, _ = await rest(session, "GET", f"{cluster.url(node)}/parse/users/me", token)
                assert status == 200
            started = time.perf_counter()
            status, _ = await rest(session, "POST", f"{cluster.url('a')}/parse/logout", token, {})
            assert status == 200
            assert await watcher.wait(lambda: any(m.get("code") == 209 for m in watcher.ops("error")), 5), \
                watcher.messages
            ended = next(t for t, m in watcher.messages if m.get("op") == "error" and m.get("code") == 209)
            for node in ("b", "c"):
                status, body = await rest(session, "GET", f"{cluster.url(node)}/parse/users/me", token)
                assert body.get("code") == 209 and status in (400, 401, 403), (node, status, body)
                status, body = await rest(session, "GET", f"{cluster.url(node)}/parse/classes/Patient", token)
                assert body.get("code") == 209, (node, status, body)
            print(f"\nsign-out on A -> 209 on B's live query in {1000 * (ended - started):.0f} ms")
        finally:
            await watcher.close()
