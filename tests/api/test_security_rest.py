"""Security review, REST: C1 (ReDoS), H3 (work per request and caller), M1 (patientId oracle),
M2 (bad input is never a 5xx), L7 (free text to viewers), L8 (no password in a URL)."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from dashboard.api import rest
from tests.api.conftest import APP_ID, PASSWORD, make_app
from tests.api.test_rest import pointer, score_body


async def test_c1_hostile_regex_is_linear_and_the_server_stays_responsive(api):
    r = await api.call("POST", "users", json={"username": "a" * 40 + "-x", "email": "r@x.org",
                                             "password": "a long enough passphrase"})
    assert r.status_code == 201
    started = time.monotonic()
    r = await api.call("GET", "classes/_User", "outsider", params={"where": '{"username":{"$regex":"^(a+)+$"}}'})
    assert r.status_code == 200 and r.json()["results"] == []
    assert time.monotonic() - started < 1.0  # Python's re: minutes, holding the whole process


async def test_c1_status_answers_within_100_ms_while_a_hostile_query_runs(api):
    """The stall was the GIL held by a backtracking `re`: another coroutine could not run at all."""
    for i in range(30):
        r = await api.call("POST", "classes/EquipmentLog", "lead", json={
            "patient": pointer("Patient", api.world.patient.id), "equipmentName": "a" * 150 + "!", "status": "checked_out"})
        assert r.status_code == 201, r.text
    where = '{"equipmentName":{"$regex":"^(a+)+$"}}'
    gaps: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    answers = await asyncio.gather(*[api.call("GET", "classes/EquipmentLog", "lead", params={"where": where})
                                     for _ in range(4)])
    stop.set()
    await beat
    assert all(a.status_code == 200 and a.json()["results"] == [] for a in answers)
    assert max(gaps) < 0.1, max(gaps)


@pytest.mark.parametrize("pattern", ["(", "[", "\\", "a**", "(a)\\1", "(?=a)b", "a\x00"])
async def test_c1_m2_a_pattern_that_cannot_run_safely_is_102(api, pattern):
    import json
    r = await api.call("GET", "classes/SessionNote", "lead",
                       params={"where": json.dumps({"noteText": {"$regex": pattern}})})
    assert r.status_code == 400 and r.json()["code"] == 102 and "noteText" in r.json()["error"], r.text
    assert pattern not in r.json()["error"] or len(pattern) < 3  # the rule, not an echo of the pattern


@pytest.mark.parametrize("path, body", [
    ("login", '{"\\ud800": 1}'),
    ("users", '{"username": "fine-name", "\\ud800x": 1}'),
    ("classes/SessionNote", '{"\\ud800": 1}'),
])
async def test_m2_a_lone_surrogate_in_a_field_name_is_4xx(api, path, body):
    before = await api.counts()
    r = await api.call("POST", path, "lead" if path.startswith("classes") else None, content=body,
                       headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500 and isinstance(r.json()["code"], int), r.text
    assert await api.counts() == before


async def test_m2_a_bad_change_reason_is_4xx_and_changes_nothing(api):
    for escaped in (r"x\udfff", r"x\u0000"):  # JSON escapes: a lone surrogate, a NUL
        body = '{"mobilityStatus": "independent", "changeReason": "' + escaped + '"}'
        r = await api.call("PUT", f"classes/Patient/{api.world.patient.id}", "lead", content=body,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "changeReason" in r.json()["error"], r.text
    r = await api.call("GET", f"classes/Patient/{api.world.patient.id}", "lead")
    assert r.json()["mobilityStatus"] == "supervision"


class HeldFinds:
    """The store's finds, held at a gate until released; counts those that reached it."""

    def __init__(self, store, monkeypatch) -> None:
        self.entered = 0
        self._gate = asyncio.Event()
        real_find = store.find

        async def held(**kwargs):
            self.entered += 1
            await self._gate.wait()
            return await real_find(**kwargs)

        monkeypatch.setattr(store, "find", held)

    def release(self) -> None:
        self._gate.set()


async def test_h3_a_batch_is_capped_on_total_rows(api):
    requests = [{"method": "GET", "path": "/parse/classes/MobilityScore", "body": {"limit": 1000}}] * 6
    before = await api.counts()
    r = await api.call("POST", "batch", "team_contributor", json={"requests": requests})
    assert r.status_code == 400 and r.json()["code"] == 102 and str(rest.MAX_BATCH_ROWS) in r.json()["error"]
    assert await api.counts() == before
    r = await api.call("POST", "batch", "team_contributor", json={"requests": requests[:5]})
    assert r.status_code == 200 and len(r.json()) == 5


async def test_h3_answers_have_a_size_cap(api, monkeypatch):
    monkeypatch.setattr(rest, "MAX_RESPONSE_BYTES", 20_000)
    for i in range(5):
        r = await api.call("POST", "classes/SessionNote", "team_contributor", json={
            "patient": pointer("Patient", api.world.patient.id), "sessionType": "assessment",
            "sessionDate": {"__type": "Date", "iso": "2026-01-02T03:04:05.006Z"}, "followUpNeeded": False,
            "noteText": "n" * 5000})
        assert r.status_code == 201, r.text
    r = await api.call("GET", "classes/SessionNote", "team_contributor", params={"limit": 10})
    assert r.status_code == 400 and r.json()["code"] == 102 and "limit" in r.json()["error"]
    r = await api.call("GET", "classes/SessionNote", "team_contributor", params={"limit": 2})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    requests = [{"method": "GET", "path": "/parse/classes/SessionNote", "body": {"limit": 2}}] * 4
    r = await api.call("POST", "batch", "team_contributor", json={"requests": requests})
    assert r.status_code == 400 and r.json()["code"] == 102


async def test_h3_concurrent_heavy_requests_per_account_are_capped(api, monkeypatch):
    gate = HeldFinds(api.store, monkeypatch)
    calls = [asyncio.create_task(api.call("GET", "classes/MobilityScore", "team_contributor"))
             for _ in range(rest.MAX_HEAVY_PER_ACCOUNT)]
    while gate.entered < rest.MAX_HEAVY_PER_ACCOUNT:
        await asyncio.sleep(0.01)
    extra = await api.call("GET", "classes/MobilityScore", "team_contributor")
    assert extra.status_code == 429 and extra.json()["code"] == 155
    # A second session of the same account shares the account's places.
    second = (await api.store.log_in(username="team-contributor", password=PASSWORD)).token
    extra = await api.call("GET", "classes/MobilityScore", headers={"X-Parse-Session-Token": second})
    assert extra.status_code == 429 and extra.json()["code"] == 155
    other = asyncio.create_task(api.call("GET", "classes/MobilityScore", "lead"))  # another account: fine
    gate.release()
    assert all(r.status_code == 200 for r in await asyncio.gather(*calls, other))
    again = await api.call("GET", "classes/MobilityScore", "team_contributor")
    assert again.status_code == 200


async def test_m1_patient_id_of_a_hidden_patient_answers_as_any_taken_id(api):
    w = api.world
    owner_id = w.owner.user_id

    async def create(patient_id: str, who: str) -> httpx.Response:
        return await api.call("POST", "classes/Patient", who, json={
            "patientId": patient_id, "displayName": "New Person", "mobilityStatus": "independent",
            "primaryTherapist": pointer("_User", owner_id)})

    hidden = await create(w.other_patient.patient_id, "owner")  # Q: not the owner's patient
    visible = await create(w.patient.patient_id, "owner")  # P: the owner's own patient
    assert hidden.status_code == visible.status_code == 400
    assert hidden.json() == visible.json()
    assert hidden.json()["code"] == 137 and "patientId" in hidden.json()["error"]
    assert "belongs" not in hidden.json()["error"]
    lead = await create(w.other_patient.patient_id, "lead")
    assert lead.status_code == 400 and "already belongs" in lead.json()["error"]


@pytest.mark.parametrize("path, body, field", [
    ("Patient", {"archived": None}, "archived"),
    ("Patient", {"archived": {"__op": "Delete"}}, "archived"),
    ("Patient", {"displayName": "x\ud800"}, "displayName"),
    ("Patient", {"displayName": "x\u0000y"}, "displayName"),
])
async def test_m2_bad_values_on_update_are_4xx_naming_the_field(api, path, body, field):
    import json
    before = await api.counts()
    r = await api.call("PUT", f"classes/{path}/{api.world.patient.id}", "lead",
                       content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500 and field in r.json()["error"], r.text
    assert await api.counts() == before
    r = await api.call("GET", f"classes/Patient/{api.world.patient.id}", "lead")
    assert r.json()["displayName"] == "Pat Example" and r.json().get("archived") is not True


@pytest.mark.parametrize("params", [
    {"skip": "99999999999999999999"},
    {"where": '{"noteText": "a\\u0000b"}'}, {"where": '{"noteText": "a\\ud800"}'},
])
async def test_m2_bad_find_parameters_are_102(api, params):
    r = await api.call("GET", "classes/SessionNote", "lead", params=params)
    assert r.status_code == 400 and r.json()["code"] == 102, r.text


async def test_m2_bad_text_on_create_and_sign_up_is_4xx(api):
    import json
    r = await api.call("POST", "classes/EquipmentLog", "lead", content=json.dumps({
        "patient": pointer("Patient", api.world.patient.id), "equipmentName": "chair\u0000", "status": "checked_out"}),
        headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "equipmentName" in r.json()["error"]
    r = await api.call("POST", "users", content='{"username":"surrogate","email":"s\\ud800@x.org","password":"a fine passphrase"}')
    assert r.status_code == 400 and r.json()["code"] == 125
    r = await api.call("POST", "login", content='{"username":"lead\\ud800","password":"x"}')
    assert r.status_code == 404 and r.json()["code"] == 101


async def test_l7_viewers_get_no_change_reasons_or_error_reasons(api):
    w = api.world
    await w.store.change_status(principal=w.lead, patient_id=w.patient.id, status="independent",
                                reason="fell in the bathroom at night")
    score = await w.store.record_score(principal=w.lead, patient_id=w.patient.id, score_type="berg", value=12)
    await w.store.mark_score_in_error(principal=w.lead, score_id=score.id, reason="wrong patient, see incident 7")
    history = await api.call("GET", "classes/StatusHistory", "viewer")
    scores = await api.call("GET", "classes/MobilityScore", "viewer")
    assert history.status_code == scores.status_code == 200 and history.json()["results"]
    assert all("changeReason" not in h for h in history.json()["results"])
    assert all("errorReason" not in s for s in scores.json()["results"])
    assert "bathroom" not in history.text and "incident" not in scores.text
    r = await api.call("GET", "classes/StatusHistory", "viewer", params={"where": '{"changeReason":{"$exists":true}}'})
    assert r.status_code == 400 and r.json()["code"] == 102  # not even as a filter
    mine = await api.call("GET", "classes/StatusHistory", "owner")
    assert "bathroom" in mine.text


async def test_l8_a_password_in_the_url_is_refused(api):
    r = await api.call("GET", "login", params={"username": "lead", "password": "correct horse battery"})
    assert r.status_code == 400 and r.json()["code"] == 102 and "sessionToken" not in r.json()
    r = await api.call("POST", "login", params={"password": "correct horse battery"}, json={"username": "lead"})
    assert r.status_code == 400 and "sessionToken" not in r.json()


async def test_h3_heavy_requests_of_many_accounts_wait_their_turn(api, monkeypatch):
    """Past the process-wide cap, finds wait (memory stays bounded however many accounts join)."""
    monkeypatch.setattr(rest, "MAX_HEAVY_TOTAL", 2)
    app = make_app(api.store)
    gate = HeldFinds(api.store, monkeypatch)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        calls = [asyncio.create_task(client.get("/parse/classes/MobilityScore", headers={
            "X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": api.tokens[who]}))
            for who in ("lead", "owner", "team_therapist", "team_contributor")]
        while gate.entered < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the other two are waiting on the cap, not on the gate
        assert gate.entered == 2
        gate.release()
        assert [r.status_code for r in await asyncio.gather(*calls)] == [200] * 4
    assert gate.entered == 4
