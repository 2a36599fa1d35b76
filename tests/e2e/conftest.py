"""Real Chromium against a real server process with the demo data (never a downloaded browser)."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support import LiveServer, make_live_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DEMO_PASSWORD = "demo-password-2026"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()
    playwright.stop()


@pytest.fixture(scope="session")
def e2e_server(live_server: LiveServer) -> LiveServer:
    """The session's server (tests/conftest.py `live_server`), under the name the browser tests use."""
    return live_server


@pytest.fixture
def own_server(tmp_path: Path):
    """A server of the test's own, for tests that restart it."""
    server = make_live_server(tmp_path)
    server.start()
    yield server
    server.stop()


def just_now() -> str:
    """A Parse date for a score that must show among a patient's latest: the demo data's dates
    follow the clock, so a fixed date sinks below the list's first rows as the days go by."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def patient_object_id(server: LiveServer, patient_number: str) -> str:
    with sqlite3.connect(server.data_dir / "ot-tracker.sqlite3") as db:
        return db.execute("SELECT id FROM patients WHERE patient_id = ?", (patient_number,)).fetchone()[0]


def sign_in(browser, server: LiveServer, username: str, path: str = "/", viewport=None):
    """A fresh browser context signed in as `username`, on `path`."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/login?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{path}")
    expect(page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)
    return page


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if SCREENSHOTS.exists() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"Screenshots: {SCREENSHOTS}")
