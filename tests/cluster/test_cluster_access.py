"""Scenario 3 of SCALE-OUT.md §6: access changes made on one instance hold on the others. A care-team
removal made on A's patient page (Chromium) shows as `leave` on B's live query, a 404 from B's REST
and the access-ended notice on the removed member's page open on C (Chromium); a sign-out on A
refuses the token on B and C, and B's live query gets error 209."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode

from bench.clients import date, pointer
from tests.cluster.harness import DEMO_PASSWORD, Cluster, LiveQuery, poll, rest, session_from

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


async def open_patient_page(browser, cluster: Cluster, node: str, username: str, patient_id: str):  # noqa: ANN001, ANN201
    """`username` signs in and opens the patient's page in a context of its own, pinned to `node`
    through the balancer by its ot_node cookie; returns the page once its socket is live."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_cookies([{"name": "ot_node", "value": node, "url": cluster.lb}])
    page = await context.new_page()
    await page.goto(f"{cluster.lb}/login?next=/patient/{patient_id}")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", DEMO_PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{cluster.lb}/patient/{patient_id}")
    await expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    assert {c["name"]: c["value"] for c in await context.cookies()}["ot_node"] == node
    return page


async def remove_from_team(page, username: str) -> float:  # noqa: ANN001
    """The lead removes `username` from the care team on its open patient page, as a user does: the
    button, then the confirmation. Returns the perf_counter time of the confirming click."""
    from playwright.async_api import expect

    await page.click(f'[aria-label="Remove {username}"]')
    confirm = page.get_by_role("button", name="Remove", exact=True)
    await expect(confirm).to_be_visible()
    clicked = time.perf_counter()
    await confirm.click()
    await expect(page.locator(f'[aria-label="Remove {username}"]')).to_have_count(0, timeout=10_000)
    return clicked


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

            from playwright.async_api import async_playwright, expect

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    # The assistant has the patient open on C; the lead removes them on A.
                    watched = await open_patient_page(browser, cluster, "c", "assistant", pid)
                    await expect(watched.locator("[data-testid=access-ended]")).to_have_count(0)
                    name = (await watched.locator(".pt-name").inner_text()).strip()
                    assert name
                    lead_page = await open_patient_page(browser, cluster, "a", "lead", pid)
                    clicked = await remove_from_team(lead_page, "assistant")
                    notice = watched.locator("[data-testid=access-ended]")
                    await expect(notice).to_be_visible(timeout=10_000)
                    ended_at = time.perf_counter()
                    await expect(notice).to_contain_text("Your access to this patient has ended")
                    # Nothing of the patient's record stays on C's page, its name included.
                    await expect(watched.locator(".pt-name")).to_have_count(0)
                    assert name not in await watched.locator("body").inner_text()
                    assert {c["value"] for c in await watched.context.cookies() if c["name"] == "ot_node"} == {"c"}
                finally:
                    await browser.close()

            assert await watcher.wait(lambda: any(op == "leave" for _, op, _ in watcher.events()), 5)
            # Every score it tracked leaves (the demo's and ours), nothing of them but ids and dates.
            leaves = {oid: at for at, op, oid in watcher.events() if op == "leave"}
            assert created["objectId"] in leaves
            left_at = max(leaves.values())
            assert await asyncio.wait_for(refusal, 10) is not None
            refused_at = refusal_times[-1]
            print(f"\nteam removal on A (from the confirming click, so with the page's own round trip): "
                  f"leave on B's live query {1000 * (left_at - clicked):.0f} ms, B's REST 404 "
                  f"{1000 * (refused_at - clicked):.0f} ms, access ended on C's page (Chromium) "
                  f"{1000 * (ended_at - clicked):.0f} ms")
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


async def test_patients_imported_beside_a_are_read_on_b_and_c(healthy: Cluster):
    """The bulk import (a store call, no API route: an installation is loaded by a program of its
    own on the shared database, as A is) logs its new patients as access mutations: their therapist
    reads them on B and C without a restart, and nobody else does."""
    from dashboard.db import Database
    from dashboard.store import Store
    from tests.support import settings_for

    cluster = healthy
    users = {r["username"]: r["id"] for r in await cluster.sql("SELECT username, id FROM users")}
    owner, outsider = await cluster.token("therapist2"), await cluster.token("therapist")
    batch = uuid.uuid4().hex[:6].upper()
    store = Store(Database(cluster.database_url),
                  settings=settings_for(cluster.database_url, instance_id="import", secret_key="cluster-test-secret"))
    await store.start()
    try:
        lead = (await store.log_in(username="lead", password=DEMO_PASSWORD)).principal
        new = await store.import_patients(principal=lead, rows=[
            {"patientId": f"IMP-{batch}-{i}", "displayName": f"Imported {i}", "primaryTherapist": users["therapist2"],
             "mobilityStatus": "supervision"} for i in range(3)])
        imported = time.perf_counter()
    finally:
        await store.stop()
        await store.db.dispose()
    async with session_from() as session:
        for node in ("b", "c"):
            async def read_all(node: str = node) -> bool:
                codes = [(await rest(session, "GET", f"{cluster.url(node)}/parse/classes/Patient/{oid}", owner))[0]
                         for oid in new]
                return codes == [200] * len(new)
            lag = await poll(read_all, 10)
            assert lag is not None, f"{node}: the imported patients are not readable by their therapist"
            status, found = await rest(session, "GET", f"{cluster.url(node)}/parse/classes/Patient?" + urlencode(
                {"where": json.dumps({"patientId": {"$regex": f"^IMP-{batch}-"}})}), owner)
            assert status == 200 and sorted(r["objectId"] for r in found["results"]) == sorted(new)
            status, found = await rest(session, "GET", f"{cluster.url(node)}/parse/classes/Patient?" + urlencode(
                {"where": json.dumps({"patientId": {"$regex": f"^IMP-{batch}-"}})}), outsider)
            assert status == 200 and found["results"] == [], f"{node}: another therapist reads the import"
            print(f"\nimported beside A: all read on {node} {1000 * (time.perf_counter() - imported):.0f} ms after")
