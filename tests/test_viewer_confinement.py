"""A viewer (a ward screen) reads no free text and no staff username, on every channel (issue 16):
REST (finds, gets, counts, includes), GraphQL, live queries, the hub's pushes that pages receive,
and the FHIR export (by its headers; by the pages' cookie it is not found at all). On SQLite and
PostgreSQL; last, the served app answers a viewer's pages with its one 404. Each check has a
control: a member of staff reading the same thing gets the text (or the page).
"""
from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle

from dashboard.hub import class_topic, patient_topic
from dashboard.passwords import CookieSigner
from tests.api import conftest as api_fixtures
from tests.api.conftest import Api, api_settings
from tests.api.test_live_query import open_client, subscribe
from tests.graphql_api.conftest import GraphQL
from tests.support import mailbox

api = api_fixtures.api  # the API around the `world` store, with every principal signed in
lq_url = api_fixtures.lq_url  # the same, served for live queries

STAFF = ("lead", "owner", "other-therapist", "team-therapist", "team-contributor", "outsider")
# Free text the records below carry: a status reason, a score's note and its error reason, a discharge reason.
TEXTS = ("Slipped in the bathroom", "Held the rail at item 12", "Entered on the wrong patient",
         "Home with carers")
NOT_FOUND = {"code": 101, "error": "Object not found."}


def strings(value: Any) -> set[str]:
    """Every string anywhere in a JSON value (keys and values)."""
    if isinstance(value, dict):
        return {s for k, v in value.items() for s in {k} | strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings(v)}
    return {value} if isinstance(value, str) else set()


def leaks(value: Any) -> list[str]:
    """The staff usernames (as whole strings) and the free texts (anywhere) in `value`."""
    found = strings(value)
    text = json.dumps(value, ensure_ascii=False)
    return sorted({s for s in STAFF if s in found} | {t for t in TEXTS if t in text})


async def records(api: Api, *, discharge: bool = False) -> dict[str, str]:
    """A status change with a reason, a score with a note marked in error with a reason, equipment;
    with `discharge`, the patient discharged with a reason. Their ids by kind."""
    w, p = api.world, api.world.patient.id
    await api.store.change_status(principal=w.owner, patient_id=p, status="dependent", reason=TEXTS[0])
    score = await api.store.record_score(principal=w.team_contributor, patient_id=p, score_type="berg",
                                         value=41, notes=TEXTS[1])
    await api.store.mark_score_in_error(principal=w.lead, score_id=score.id, reason=TEXTS[2])
    log = await api.store.check_out_equipment(principal=w.team_therapist, patient_id=p, name="Walker")
    if discharge:
        await api.store.discharge_patient(principal=w.lead, patient_id=p, reason=TEXTS[3], date=date.today())
    return {"score": score.id, "equipment": log.id}


async def get(api: Api, path: str, who: str, **params: Any) -> tuple[int, Any]:
    response = await api.call("GET", path, who, params={k: v if isinstance(v, str) else json.dumps(v)
                                                        for k, v in params.items()})
    return response.status_code, response.json()


# -- REST ------------------------------------------------------------------------------------------
async def test_a_viewer_finds_counts_and_gets_only_its_own_user(api: Api):
    w = api.world
    own, owner = w.users["viewer"].id, w.users["owner"].id
    for path in ("users", "classes/_User"):
        status, body = await get(api, path, "viewer", count=1)
        assert status == 200 and [u["username"] for u in body["results"]] == ["viewer"] and body["count"] == 1
        status, body = await get(api, path, "viewer", where={"username": "owner"})
        assert (status, body["results"]) == (200, [])
        status, body = await get(api, path, "team_contributor")  # the control: staff list each other
        assert status == 200 and {"owner", "lead", "viewer"} <= {u["username"] for u in body["results"]}
    assert (await get(api, f"users/{owner}", "viewer")) == (404, NOT_FOUND)
    assert (await get(api, f"classes/_User/{owner}", "viewer")) == (404, NOT_FOUND)
    assert (await get(api, "users/noSuchId00", "viewer")) == (404, NOT_FOUND)  # the same answer
    status, body = await get(api, f"users/{owner}", "team_contributor")
    assert (status, body["username"]) == (200, "owner")
    status, body = await get(api, f"users/{own}", "viewer")
    assert (status, body["username"], body["email"]) == (200, "viewer", "viewer@example.org")
    status, body = await get(api, "users/me", "viewer")
    assert (status, body["username"]) == (200, "viewer")


async def test_a_viewers_includes_of_staff_are_left_out_and_its_reads_carry_no_free_text(api: Api):
    await records(api, discharge=True)
    pid = api.world.patient.id
    reads = [("classes/Patient", "primaryTherapist"), ("classes/MobilityScore", "recordedBy,patient.primaryTherapist"),
             ("classes/StatusHistory", "changedBy"), ("classes/EquipmentLog", "loggedBy")]
    for path, include in reads:
        where = {"objectId": pid} if path == "classes/Patient" else {"patient": pid}
        status, staff = await get(api, path, "lead", where=where, include=include)
        assert status == 200 and staff["results"] and leaks(staff), path  # the control: usernames, texts
        status, body = await get(api, path, "viewer", where=where, include=include)
        assert status == 200 and len(body["results"]) == len(staff["results"]), (path, body)
        assert leaks(body) == [], (path, leaks(body))
        for obj in body["results"]:
            for field in include.split(","):
                assert field.split(".")[0] == "patient" or field not in obj  # an unreadable include: dropped
        status, plain = await get(api, path, "viewer", where=where)  # without include: ids, no names
        assert status == 200 and leaks(plain) == []
    # The discharge's own history row (admission → discharged) is there, its reason is not.
    status, body = await get(api, "classes/StatusHistory", "viewer", where={"patient": pid, "toValue": "discharged"})
    assert status == 200 and len(body["results"]) == 1 and "changeReason" not in body["results"][0]


# -- GraphQL ---------------------------------------------------------------------------------------
async def test_a_viewers_graphql_reads_no_other_user_and_no_free_text(api: Api):
    gql = GraphQL(api)
    await records(api)
    owner = api.world.users["owner"].id
    users = "{ users { count edges { node { username } } } }"
    assert (await gql.data(users, who="viewer"))["users"] == {"count": 1, "edges": [{"node": {"username": "viewer"}}]}
    assert (await gql.data(users, who="team_contributor"))["users"]["count"] == len(STAFF) + 1
    code, _ = await gql.error("query($id: ID!) { user(id: $id) { username } }", {"id": owner}, who="viewer")
    assert code == 101
    records_query = """{
      patients { edges { node { displayName primaryTherapist { username } } } }
      mobilityScores { edges { node { scoreValue notes errorReason recordedBy { username } } } }
      statusHistories { edges { node { toValue changeReason changedBy { username } } } }
      equipmentLogs { edges { node { equipmentName loggedBy { username } } } }
    }"""
    staff = await gql.data(records_query, who="lead")
    assert leaks(staff)  # the control
    seen = await gql.data(records_query, who="viewer")
    assert leaks(seen) == [], leaks(seen)
    [score] = seen["mobilityScores"]["edges"]
    assert score["node"] == {"scoreValue": 41, "notes": None, "errorReason": None, "recordedBy": None}
    assert {e["node"]["changedBy"] for e in seen["statusHistories"]["edges"]} == {None}


# -- live queries and the hub's pushes ------------------------------------------------------------
async def test_a_viewers_live_query_events_carry_no_free_text_and_no_username(api: Api, lq_url: str):
    w = api.world
    viewer = await open_client(lq_url, api.tokens["viewer"])
    lead = await open_client(lq_url, api.tokens["lead"])
    classes = ("Patient", "MobilityScore", "StatusHistory", "EquipmentLog")
    for client in (viewer, lead):
        for i, class_name in enumerate(classes, start=1):
            await subscribe(client, i, class_name, {})
    await records(api, discharge=True)
    await api.store.check_out_equipment(principal=w.lead, patient_id=w.patient.id, name="Sentinel")

    async def until_sentinel(client: Any) -> list[dict[str, Any]]:
        events = [await client.recv()]
        while events[-1]["object"].get("equipmentName") != "Sentinel":
            events.append(await client.recv())
        return events

    got = {"viewer": await until_sentinel(viewer), "lead": await until_sentinel(lead)}
    assert [(e["requestId"], e["op"], e["object"]["objectId"]) for e in got["viewer"]] == \
        [(e["requestId"], e["op"], e["object"]["objectId"]) for e in got["lead"]]  # the same events
    assert {e["requestId"] for e in got["viewer"]} == {1, 2, 3, 4}
    assert set(leaks(got["lead"])) == set(TEXTS)  # the control: every text reaches the lead
    assert leaks(got["viewer"]) == [], leaks(got["viewer"])


async def test_a_viewers_pushes_carry_no_free_text_and_no_username(api: Api):
    """What an open page (the ward board) receives: the hub's deliveries, shaped for the recipient."""
    w, p = api.world, api.world.patient.id
    topics = [patient_topic(p)] + [class_topic(c) for c in ("Patient", "MobilityScore", "StatusHistory",
                                                            "EquipmentLog", "SessionNote")]
    viewer, lead = mailbox(api.store.hub, w.viewer, topics), mailbox(api.store.hub, w.lead, topics)
    await records(api, discharge=True)
    await api.store.add_note(principal=w.owner, patient_id=p, session_type="review", text=TEXTS[0])

    def payloads(deliveries: list[Any]) -> list[Any]:
        return [[d.class_name, d.data, d.before, repr(d.record)] for d in deliveries]

    staff, seen = lead.drain(), viewer.drain()
    assert set(leaks(payloads(staff))) == set(TEXTS)  # the control
    assert {d.class_name for d in seen} >= {"Patient", "StatusHistory", "MobilityScore", "EquipmentLog"}
    assert "SessionNote" not in {d.class_name for d in seen}
    assert leaks(payloads(seen)) == [], leaks(payloads(seen))


# -- the FHIR export -------------------------------------------------------------------------------
def strings_under(value: object, key: str) -> list[str]:
    """Every string held under `key` anywhere in a JSON value."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == key and isinstance(v, str)] + [
            s for v in value.values() for s in strings_under(v, key)]
    if isinstance(value, list):
        return [s for v in value for s in strings_under(v, key)]
    return []


async def test_a_viewers_fhir_export_names_no_staff_and_by_the_page_cookie_is_not_found(api: Api, monkeypatch):
    from pages import auth

    await records(api)
    pid = api.world.patient.id
    path = f"/fhir/Patient/{pid}/$everything"
    staff = await api.client.get(path, headers=api.headers("owner"))
    assert staff.status_code == 200 and "team-contributor" in strings(staff.json())  # the control
    by_headers = await api.client.get(path, headers=api.headers("viewer"))
    assert by_headers.status_code == 200
    Bundle.model_validate(by_headers.json())  # still a valid bundle without the practitioners
    assert leaks(by_headers.json()) == []
    for bundle in (staff.json(), by_headers.json()):  # every reference resolves inside the bundle
        held = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
        pointed = {v for v in strings_under(bundle, "reference")}
        assert pointed and pointed <= held, pointed - held

    settings = api_settings(api.store)
    monkeypatch.setattr(auth, "_settings", settings)

    def cookie(who: str) -> dict[str, str]:
        return {"Cookie": f"{auth.cookie_name()}={CookieSigner(settings.secret_key).sign(api.tokens[who])}"}

    owner = await api.client.get(path, headers=cookie("owner"))
    assert owner.status_code == 200 and owner.json()["resourceType"] == "Bundle"
    ward = await api.client.get(path, headers=cookie("viewer"))
    unknown = await api.client.get("/fhir/Patient/noSuchId00/$everything", headers=cookie("viewer"))
    assert ward.status_code == unknown.status_code == 404
    assert ward.content == unknown.content == json.dumps(NOT_FOUND, separators=(",", ":")).encode()


@pytest.mark.parametrize("who", ["owner", "team_contributor"])
async def test_staff_still_read_each_others_usernames(api: Api, who: str):
    """The rule is the viewer's alone: staff see who recorded what."""
    await records(api)
    status, body = await get(api, "classes/MobilityScore", who, where={"patient": api.world.patient.id},
                             include="recordedBy")
    assert status == 200 and body["results"][0]["recordedBy"]["username"] == "team-contributor"


# -- the served app ---------------------------------------------------------------------------------
def test_on_the_served_app_a_viewers_pages_are_the_unknown_addresses_404(live_server):
    """With the app's own 404 handler: a viewer's page answers with the very bytes of a missing page."""
    password = json.loads((Path(__file__).resolve().parents[1] / "data" / "demo.json").read_text())["password"]
    with sqlite3.connect(live_server.data_dir / "ot-tracker.sqlite3") as db:
        pid = db.execute("SELECT id FROM patients WHERE patient_id = 'DEMO-0001'").fetchone()[0]
    with httpx.Client(base_url=live_server.url, timeout=30) as ward, httpx.Client(base_url=live_server.url,
                                                                                 timeout=30) as lead:
        signed = ward.post("/login", data={"username": "ward", "password": password, "next": "/"})
        assert (signed.status_code, signed.headers["location"]) == (303, "/ward")
        assert lead.post("/login", data={"username": "lead", "password": password}).status_code == 303
        missing = ward.get("/no-such-page")
        assert missing.status_code == 404
        for path in ("/", f"/patient/{pid}", f"/patient/{pid}/report", f"/patient/{pid}/report.pdf", "/equipment",
                     "/admin", "/audit", "/account", "/caseload.csv"):
            answer = ward.get(path)
            assert (answer.status_code, answer.content) == (404, missing.content), path
            assert lead.get(path).status_code == 200, path  # the control: the page is there
        assert ward.get("/ward").status_code == 200
        export = f"/fhir/Patient/{pid}/$everything"
        assert lead.get(export).status_code == 200
        assert (ward.get(export).status_code, ward.get(export).json()) == (404, NOT_FOUND)
