"""The Content-Security-Policy in real Chromium: every page passes it, and each relaxation in it is needed.

Violations are caught twice: `securitypolicyviolation` events (an init script reports them to the
test through an exposed function, so none is lost across navigations) and console messages that
mention the Content Security Policy or the Permissions Policy.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from playwright.sync_api import expect

from dashboard.security_headers import CONTENT_SECURITY_POLICY
from dashboard.server import WS_MAX_SIZE
from tests.e2e.conftest import DEMO_PASSWORD, just_now, patient_object_id

pytestmark = pytest.mark.browser
APP_ID = "ot-tracker"
PUSH = 5_000  # ms: only the failure bound

REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (e) => window.__cspViolation({
  page: location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI,
  source: e.sourceFile, line: e.lineNumber, sample: e.sample}));
"""
POLICY_WORDS = ("content security policy", "content-security-policy", "permissions policy",
                "permissions-policy", "x-frame-options", "referrer policy")


@dataclass
class Watched:
    """A browser context whose CSP violations, policy console messages and page errors are kept."""

    context: object
    page: object
    violations: list[dict] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, list]:
        return {k: v for k, v in (("violations", self.violations), ("console", self.console),
                                  ("page errors", self.errors)) if v}


def watched(browser) -> Watched:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    w = Watched(context=context, page=None)
    context.expose_function("__cspViolation", lambda violation: w.violations.append(violation))
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    page.on("console", lambda m: w.console.append(f"{m.type}: {m.text}")
            if any(word in m.text.lower() for word in POLICY_WORDS) else None)
    page.on("pageerror", lambda exc: w.errors.append(str(exc)))
    w.page = page
    return w


def go(w: Watched, url: str) -> None:
    """Opens `url` and waits until the page's socket is up (connect-src allows it)."""
    response = w.page.goto(url)
    assert response is not None and response.status == 200, url
    assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, url
    expect(w.page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)


def sign_in_form(w: Watched, server, username: str) -> None:
    response = w.page.goto(f"{server.url}/login")
    assert response is not None and response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY
    w.page.fill("input[name=username]", username)
    w.page.fill("input[name=password]", DEMO_PASSWORD)
    with w.page.expect_request(lambda r: r.method == "POST" and r.url.startswith(f"{server.url}/login")) as posted:
        w.page.click("button[type=submit]")
    # Referrer-Policy same-origin keeps a real Origin on the app's own form posts (no-referrer sends "null").
    assert posted.value.header_value("origin") == server.url
    w.page.wait_for_url(f"{server.url}/")
    expect(w.page.locator("body[data-live=live]")).to_have_count(1, timeout=15_000)


def create_score_by_api(server, pid: str, notes: str) -> None:
    headers = {"X-Parse-Application-Id": APP_ID}
    r = httpx.post(f"{server.url}/parse/login", headers=headers,
                   json={"username": "lead", "password": DEMO_PASSWORD})
    r.raise_for_status()
    headers["X-Parse-Session-Token"] = r.json()["sessionToken"]
    r = httpx.post(f"{server.url}/parse/classes/MobilityScore", headers=headers, json={
        "patient": {"__type": "Pointer", "className": "Patient", "objectId": pid},
        "scoreType": "berg", "scoreValue": 41, "notes": notes,
        "scoreDate": {"__type": "Date", "iso": just_now()}})
    assert r.status_code == 201, r.text


def test_m4_every_page_works_under_the_policy_without_a_single_violation(browser, e2e_server):
    w = watched(browser)
    sign_in_form(w, e2e_server, "lead")  # the caseload
    expect(w.page.locator("[data-patient]").first).to_be_visible()
    pid = patient_object_id(e2e_server, "DEMO-0003")
    go(w, f"{e2e_server.url}/patient/{pid}")
    # A button (a socket.io event up, the store, a push back) and a push from the API both arrive.
    w.page.locator("input[data-testid=score-value]").fill("58")
    w.page.locator("[data-testid=score-save]").click()
    expect(w.page.locator("[data-testid=score-list]")).to_contain_text("58", timeout=PUSH)
    marker = f"csp-{uuid.uuid4().hex[:8]}"
    create_score_by_api(e2e_server, pid, marker)
    expect(w.page.locator("[data-testid=score-list]")).to_contain_text(marker, timeout=PUSH)
    w.page.wait_for_function("() => document.querySelector('.chart-berg canvas') !== null", timeout=PUSH)
    for path, text in (("/equipment", "Equipment"), ("/ward", "Ward"), ("/admin", "Admin")):
        go(w, f"{e2e_server.url}{path}")
        expect(w.page.get_by_text(text).first).to_be_visible()
    w.page.wait_for_timeout(300)  # a violation event is dispatched as a task after the blocked action
    assert w.problems() == {}
    w.context.close()


def _weakened(policy: str, directive: str, source: str) -> str:
    parts = []
    for part in policy.split("; "):
        name, _, values = part.partition(" ")
        if name == directive:
            values = " ".join(v for v in values.split() if v != source)
        parts.append(f"{name} {values}")
    return "; ".join(parts)


@pytest.mark.parametrize(("directive", "source", "blocked", "renders"), [
    ("script-src", "'unsafe-eval'", "eval", False),  # Vue compiles component templates with new Function
    ("script-src", "'unsafe-inline'", "inline", False),  # the page template is inline scripts
    ("style-src", "'unsafe-inline'", "inline", True),  # inline <style>: the page shows, unstyled
])
def test_m4_each_relaxation_in_the_policy_is_needed(browser, e2e_server, directive, source, blocked, renders):
    """The sign-in page under the policy minus one source: that source's violations appear, and
    without either script relaxation the page does not render at all."""
    w = watched(browser)

    def weaken(route) -> None:
        response = route.fetch()
        policy = response.headers.get("content-security-policy", "")
        assert source in policy, policy
        headers = {k: v for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length")}
        headers["content-security-policy"] = _weakened(policy, directive, source)
        route.fulfill(response=response, headers=headers)

    w.page.route(f"{e2e_server.url}/login", weaken)
    w.page.goto(f"{e2e_server.url}/login")  # returns once the page and its scripts have loaded
    if renders:
        expect(w.page.locator("input[name=username]")).to_have_count(1)
    else:
        w.page.wait_for_timeout(1_000)  # under the full policy the form is there within ~0.2 s of load
        expect(w.page.locator("input[name=username]")).to_have_count(0, timeout=1)
    assert any(v["directive"].startswith(directive) and v["blocked"] == blocked for v in w.violations), \
        w.violations
    w.context.close()


def test_m4_the_longest_note_travels_well_under_the_websocket_frame_limit(browser, e2e_server):
    """NiceGUI sends a text field's whole value in one socket.io message. The longest field, the
    session note, holds 10,000 UTF-16 units (maxlength); the costliest in JSON is a control
    character (6 bytes, \\u0001), so no note message reaches 60,000 bytes plus its envelope, far
    below the server's frame limit: the socket stays up and the note is saved."""
    w = watched(browser)
    sent: list[int] = []
    w.page.on("websocket", lambda ws: ws.on(
        "framesent", lambda payload: sent.append(len(payload if isinstance(payload, bytes) else payload.encode()))))
    sign_in_form(w, e2e_server, "therapist")
    pid = patient_object_id(e2e_server, "DEMO-0002")  # the demo therapist's own patient
    go(w, f"{e2e_server.url}/patient/{pid}")
    text = "Fell " + "\x01" * 9_995
    w.page.get_by_label("Session note").fill(text)
    w.page.locator("button:has-text('Save note')").click()
    expect(w.page.get_by_text("Note saved")).to_be_visible(timeout=PUSH)
    expect(w.page.locator("body[data-live=live]")).to_have_count(1)
    assert 5 + 6 * 9_995 < max(sent) < WS_MAX_SIZE, max(sent)
    assert w.problems() == {}
    w.context.close()
