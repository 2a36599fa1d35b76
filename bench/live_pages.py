"""Save-to-screen latency between two real browsers: a therapist saves a score on a patient page and
the time until it shows on a lead's open copy of the same page is measured, over many saves.

Run: .venv/bin/python -m bench.live_pages [--saves 40]. Starts its own server with the demo data in a
temporary folder; Chromium is the system one (/usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
from pathlib import Path

from bench.server import BenchServer

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PASSWORD = "demo-password-2026"

OBSERVE = """() => {
  window.__seen = null;
  new MutationObserver(() => {
    if (window.__want == null || window.__seen != null) return;
    const first = document.querySelector('[data-testid=score-list] .pt-list-row .pt-val');
    if (first && first.textContent.trim() === String(window.__want)) window.__seen = Date.now();
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def sign_in(browser, url: str, username: str, path: str):
    page = browser.new_context().new_page()
    page.goto(f"{url}/login?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + path)
    page.wait_for_selector("body[data-live=live]", state="attached", timeout=15_000)
    return page


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--saves", type=int, default=40)
    saves = max(30, parser.parse_args().saves)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = BenchServer(Path(tmp)).load_demo()  # SQLite in the folder, the demo logins
        url = server.url
        try:
            server.start()
            with sqlite3.connect(Path(tmp) / "ot-tracker.sqlite3") as db:
                pid = db.execute("SELECT id FROM patients WHERE patient_id = 'DEMO-0001'").fetchone()[0]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                lead = sign_in(browser, url, "lead", f"/patient/{pid}")
                therapist = sign_in(browser, url, "therapist", f"/patient/{pid}")
                lead.evaluate(OBSERVE)
                # The click's own time, taken in the page as it happens (not when Playwright is told).
                therapist.evaluate("() => document.addEventListener('click', () => { window.__clicked = Date.now(); }, true)")
                field = therapist.locator("input[data-testid=score-value]")
                samples: list[float] = []
                for i in range(saves):
                    value = 100 - i  # distinct per save, within Barthel's 0-100
                    field.fill(str(value))
                    lead.evaluate("(v) => { window.__want = v; window.__seen = null; }", value)
                    therapist.locator("[data-testid=score-save]").click()
                    clicked = therapist.evaluate("() => window.__clicked")
                    seen = lead.wait_for_function("() => window.__seen", timeout=10_000).json_value()
                    samples.append(seen - clicked)
                    therapist.wait_for_function(
                        "() => document.querySelector('input[data-testid=score-value]').value === ''")
                browser.close()
        finally:
            server.stop()
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    print(f"save click -> other browser, {len(samples)} saves: p50 {statistics.median(samples):.0f} ms, "
          f"p95 {p95:.0f} ms, max {samples[-1]:.0f} ms")


if __name__ == "__main__":
    main()
