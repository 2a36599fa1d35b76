"""The FHIR export, GET /fhir/Patient/{objectId}/$everything: a valid R4 Bundle, built from what the
caller may read (ACCESS.md), audited once, on SQLite and PostgreSQL.

Bundles are validated with fhir.resources' R4B models (R4B keeps R4's resources; DeviceUseStatement
and DocumentReference are as in R4). Measure codes are checked against the table in MEASURES.md.
"""
from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from dashboard import fhir
from dashboard.demo import load_demo
from dashboard.models import AuditEvent
from dashboard.passwords import CookieSigner
from tests.api.conftest import APP_ID, Api, api_settings, make_app
from tests.test_caseload import count_statements

MEASURES_MD = Path(__file__).resolve().parents[3] / "shared" / "spec" / "MEASURES.md"
LOINC_CELL = re.compile(r"^(\d{1,7}-\d)\b")


def measures_table() -> dict[str, dict[str, str | None]]:
    """MEASURES.md's table: scoreType -> its unit and its LOINC code (None where the table has "—")."""
    if not MEASURES_MD.exists():
        pytest.skip(f"shared spec {MEASURES_MD} is not present on this machine")
    lines = [ln for ln in MEASURES_MD.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    unit_at = header.index("unit")
    loinc_at = next(i for i, name in enumerate(header) if name.startswith("LOINC"))
    table = {}
    for line in lines[2:]:  # past the header and its |---| line
        cells = [c.strip() for c in line.strip("|").split("|")]
        loinc = LOINC_CELL.match(cells[loinc_at])
        table[cells[0]] = {"unit": cells[unit_at], "loinc": loinc.group(1) if loinc else None}
    assert len(table) >= 9, "the measures table of MEASURES.md was not found"
    return table


def url(object_id: str) -> str:
    return f"/fhir/Patient/{object_id}/$everything"


async def export(api: Api, who: str | None, object_id: str, **headers: str) -> httpx.Response:
    return await api.client.get(url(object_id), headers={**api.headers(who), **headers})


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def valid_bundle(response: httpx.Response) -> dict[str, Any]:
    """The answer, checked: 200, FHIR's media type, a collection Bundle that R4B's models accept."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    parsed = Bundle.model_validate(body)  # raises on anything R4B does not allow
    assert parsed.type == "collection"
    return body


def is_score(observation: dict[str, Any]) -> bool:
    return "valueQuantity" in observation


def provenance_of(bundle: dict[str, Any], reference: str) -> list[dict[str, Any]]:
    return [p for p in resources(bundle, "Provenance") if reference in [t["reference"] for t in p["target"]]]


def agents(provenances: list[dict[str, Any]]) -> set[str]:
    return {a["who"]["reference"] for p in provenances for a in p["agent"]}


def practitioner(api: Api, kind: str) -> str:
    user_id = api.world.lead.user_id if kind == "lead" else api.world.users[kind].id
    return f"Practitioner/{fhir.fhir_id(user_id)}"


# -- a demo patient -----------------------------------------------------------------------------------
@pytest.fixture
async def demo(store):
    """data/demo.json loaded into the test's store, with the API mounted on it."""
    logins = {login.username: login for login in await load_demo(store)}
    transport = httpx.ASGITransport(app=make_app(store), client=("10.0.0.2", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, logins


async def test_a_demo_patients_bundle_is_valid_r4_with_measure_codes_from_measures_md(demo):
    client, logins = demo
    therapist = logins["therapist"]
    signed = await client.post("/parse/login", json={"username": therapist.username, "password": therapist.password},
                               headers={"X-Parse-Application-Id": APP_ID})
    headers = {"X-Parse-Application-Id": APP_ID, "X-Parse-Session-Token": signed.json()["sessionToken"]}
    patients = (await client.get("/parse/classes/Patient", headers=headers, params={"order": "patientId"})).json()["results"]
    patient = patients[0]
    scores = (await client.get("/parse/classes/MobilityScore", headers=headers, params={
        "where": json.dumps({"patient": patient["objectId"]}), "limit": 1000})).json()["results"]
    assert scores, "the demo patient has scores"

    bundle = valid_bundle(await client.get(url(patient["objectId"]), headers=headers))

    [exported] = resources(bundle, "Patient")
    assert exported["identifier"][0]["value"] == patient["patientId"]
    assert exported["birthDate"] == patient["dateOfBirth"]["iso"][:10]
    assert exported["name"][0]["text"] == patient["displayName"]
    table = measures_table()
    observations = [o for o in resources(bundle, "Observation") if is_score(o)]
    assert len(observations) == len(scores)
    by_id = {fhir.fhir_id(s["objectId"]): s for s in scores}
    for observation in observations:
        score = by_id[observation["id"]]
        [coding] = observation["code"]["coding"]
        row = table[score["scoreType"]]
        if row["loinc"]:
            assert coding == {"system": fhir.LOINC, "code": row["loinc"]}
        else:  # never a LOINC code the table does not give
            assert coding["system"] == fhir.MEASURE_SYSTEM and coding["code"] == score["scoreType"]
        assert observation["valueQuantity"]["unit"] == row["unit"]
        assert observation["valueQuantity"]["value"] == score["scoreValue"]
        assert observation["effectiveDateTime"] == score["scoreDate"]["iso"]
        assert observation["subject"] == {"reference": f"Patient/{exported['id']}"}
    loinc_systems = {c["system"] for o in observations for c in o["code"]["coding"]}
    assert loinc_systems == {fhir.LOINC, fhir.MEASURE_SYSTEM}  # the demo has both kinds (barthel, berg)
    [status] = [o for o in resources(bundle, "Observation") if not is_score(o)]
    assert status["valueCodeableConcept"]["coding"][0]["code"] == patient["mobilityStatus"]
    assert len(resources(bundle, "DocumentReference")) == 6  # one note a week for six weeks (dashboard/demo.py)


# -- what the export holds --------------------------------------------------------------------------
async def test_scores_in_error_addenda_equipment_and_who_recorded_each(api: Api):
    store, world = api.store, api.world
    pid = world.patient.id
    kept = await store.record_score(principal=world.owner, patient_id=pid, score_type="tug", value=14.5)
    wrong = await store.record_score(principal=world.team_contributor, patient_id=pid, score_type="fim_motor", value=40)
    await store.mark_score_in_error(principal=world.lead, score_id=wrong.id, reason="entered for the wrong patient")
    note = await store.add_note(principal=world.owner, patient_id=pid, session_type="treatment",
                                text="Stairs with one rail.")
    addendum = await store.add_note(principal=world.team_therapist, patient_id=pid, session_type="treatment",
                                    text="Correction: two rails.", amends=note.id)
    log = await store.check_out_equipment(principal=world.team_contributor, patient_id=pid, name="Walker",
                                          serial_number="EQ-77")
    await store.change_status(principal=world.owner, patient_id=pid, status="minimal_assist", reason="fell")

    bundle = valid_bundle(await export(api, "owner", pid))

    observations = {o["id"]: o for o in resources(bundle, "Observation")}
    assert observations[fhir.fhir_id(kept.id)]["status"] == "final"
    assert observations[fhir.fhir_id(wrong.id)]["status"] == "entered-in-error"
    assert observations[fhir.fhir_id(kept.id)]["valueQuantity"] == {
        "value": 14.5, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"}
    documents = {d["id"]: d for d in resources(bundle, "DocumentReference")}
    assert "relatesTo" not in documents[fhir.fhir_id(note.id)]
    assert documents[fhir.fhir_id(addendum.id)]["relatesTo"] == [
        {"code": "appends", "target": {"reference": f"DocumentReference/{fhir.fhir_id(note.id)}"}}]
    text = base64.b64decode(documents[fhir.fhir_id(addendum.id)]["content"][0]["attachment"]["data"]).decode()
    assert text == "Correction: two rails."
    [device] = resources(bundle, "Device")
    [use] = resources(bundle, "DeviceUseStatement")
    assert (device["deviceName"][0]["name"], device["serialNumber"]) == ("Walker", "EQ-77")
    assert use["device"] == {"reference": f"Device/{fhir.fhir_id(log.id)}"} and use["status"] == "active"
    [status] = [o for o in observations.values() if not is_score(o)]
    assert status["valueCodeableConcept"]["coding"][0]["code"] == "minimal_assist"

    # Provenance: who recorded each record, and who marked the score in error.
    assert agents(provenance_of(bundle, f"Observation/{fhir.fhir_id(kept.id)}")) == {practitioner(api, "owner")}
    assert agents(provenance_of(bundle, f"Observation/{fhir.fhir_id(wrong.id)}")) == {
        practitioner(api, "team_contributor"), practitioner(api, "lead")}
    assert agents(provenance_of(bundle, f"DocumentReference/{fhir.fhir_id(note.id)}")) == {practitioner(api, "owner")}
    assert agents(provenance_of(bundle, f"DocumentReference/{fhir.fhir_id(addendum.id)}")) == {
        practitioner(api, "team_therapist")}
    assert agents(provenance_of(bundle, f"DeviceUseStatement/{fhir.fhir_id(log.id)}")) == {
        practitioner(api, "team_contributor")}
    assert agents(provenance_of(bundle, f"Observation/{status['id']}")) == {practitioner(api, "owner")}
    names = {f"Practitioner/{p['id']}": p["name"][0]["text"] for p in resources(bundle, "Practitioner")}
    for reference in agents(resources(bundle, "Provenance")):
        assert reference in names  # every agent is in the bundle, by username
    assert names[practitioner(api, "team_contributor")] == world.users["team_contributor"].username


async def test_a_viewers_bundle_has_no_note_text_birth_date_or_identifier(api: Api):
    store, world = api.store, api.world
    pid = world.patient.id
    await store.update(principal=world.lead, class_name="Patient", object_id=pid,
                       changes={"dateOfBirth": datetime(1944, 2, 29, tzinfo=timezone.utc)})
    await store.add_note(principal=world.owner, patient_id=pid, session_type="review", text="Lives alone, dog Rex.")
    await store.record_score(principal=world.owner, patient_id=pid, score_type="berg", value=41,
                             notes="Held the rail at item 12.")

    owner = valid_bundle(await export(api, "owner", pid))
    response = await export(api, "viewer", pid)
    viewer = valid_bundle(response)

    assert "1944-02-29" in json.dumps(owner) and resources(owner, "DocumentReference")  # the owner's has them
    [patient] = resources(viewer, "Patient")
    assert "identifier" not in patient and "birthDate" not in patient
    assert patient["name"] == [{"text": "P.E."}]  # initials: no lead turned names on for this screen
    assert resources(viewer, "DocumentReference") == []
    assert [o["valueQuantity"]["value"] for o in resources(viewer, "Observation") if is_score(o)] == [41]
    for secret in ("DEMO-P", "1944-02-29", "Lives alone", "Held the rail", "Pat Example"):
        assert secret not in response.text
    assert base64.b64encode(b"Lives alone, dog Rex.").decode() not in response.text


async def test_an_unreadable_patient_and_an_unknown_id_get_the_same_404(api: Api):
    world = api.world
    answers = [await export(api, "outsider", world.patient.id),
               await export(api, "other_therapist", world.patient.id),
               await export(api, "viewer", world.other_patient.id),
               await export(api, "lead", "noSuchId00"),
               await export(api, "lead", "x" * 40)]
    assert [a.status_code for a in answers] == [404] * 5
    assert {a.content for a in answers} == {b'{"code":101,"error":"Object not found."}'}
    assert {a.headers["content-type"] for a in answers} == {"application/json"}


async def test_credentials_and_parameters_are_refused_as_parse_refuses_them(api: Api):
    pid = api.world.patient.id
    anonymous = await api.client.get(url(pid))
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, 209)
    wrong_app = await api.client.get(url(pid), headers={"X-Parse-Application-Id": "other",
                                                        "X-Parse-Session-Token": api.tokens["owner"]})
    assert (wrong_app.status_code, wrong_app.json()) == (403, {"error": "unauthorized"})
    bad_token = await api.client.get(url(pid), headers=api.headers(**{"X-Parse-Session-Token": "r:nope"}))
    assert (bad_token.status_code, bad_token.json()["code"]) == (401, 209)
    with_param = await api.client.get(url(pid), params={"_since": "2026-01-01"}, headers=api.headers("owner"))
    assert with_param.status_code == 400
    assert with_param.json()["code"] == 102 and "_since" in with_param.json()["error"]


# -- the pages' session cookie ----------------------------------------------------------------------
@pytest.fixture
def page_cookie(api: Api, monkeypatch: pytest.MonkeyPatch):
    """The pages' cookie settings as pages.register sets them; a signed cookie for a REST token."""
    from pages import auth

    settings = api_settings(api.store)
    monkeypatch.setattr(auth, "_settings", settings)

    def cookie_for(token: str) -> dict[str, str]:
        return {"Cookie": f"{auth.cookie_name()}={CookieSigner(settings.secret_key).sign(token)}"}

    return cookie_for


async def test_the_pages_session_cookie_signs_the_export_in(api: Api, page_cookie):
    pid = api.world.patient.id
    response = await api.client.get(url(pid), headers=page_cookie(api.tokens["owner"]))
    assert [p["id"] for p in resources(valid_bundle(response), "Patient")] == [fhir.fhir_id(pid)]
    unreadable = await api.client.get(url(api.world.other_patient.id), headers=page_cookie(api.tokens["owner"]))
    assert unreadable.status_code == 404
    tampered = await api.client.get(url(pid), headers={"Cookie": page_cookie(api.tokens["owner"])["Cookie"][:-2] + "xx"})
    assert (tampered.status_code, tampered.json()["code"]) == (401, 209)
    cross_site = await api.client.get(url(pid), headers={**page_cookie(api.tokens["owner"]),
                                                         "Sec-Fetch-Site": "cross-site"})
    assert (cross_site.status_code, cross_site.json()["code"]) == (403, 119)
    await api.call("POST", "logout", "team_therapist")
    signed_out = await api.client.get(url(pid), headers=page_cookie(api.tokens["team_therapist"]))
    assert (signed_out.status_code, signed_out.json()["code"]) == (401, 209)


# -- audit and cost ---------------------------------------------------------------------------------
async def new_audit_rows(api: Api, after: int) -> list[AuditEvent]:
    await api.store.flush_audit()
    async with api.store.db.read() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.id > after).order_by(AuditEvent.id)))


async def last_audit_id(api: Api) -> int:
    await api.store.flush_audit()
    async with api.store.db.read() as session:
        return int(await session.scalar(select(func.max(AuditEvent.id))) or 0)


async def test_an_export_writes_one_audit_row_without_patient_data(api: Api):
    world, pid = api.world, api.world.patient.id
    await api.store.add_note(principal=world.owner, patient_id=pid, session_type="review", text="Private words.")
    before = await last_audit_id(api)
    valid_bundle(await export(api, "owner", pid))
    [row] = await new_audit_rows(api, before)
    assert (row.actor_id, row.action, row.class_name, row.object_id, row.patient_ref, row.outcome) == (
        world.owner.user_id, "read", "Patient", pid, pid, "ok")
    for value in (row.detail or "", row.object_id, row.patient_ref):
        for phi in ("DEMO-P", "Pat Example", "Private words"):
            assert phi not in value

    before = await last_audit_id(api)
    assert (await export(api, "outsider", pid)).status_code == 404
    [refused] = await new_audit_rows(api, before)
    assert (refused.actor_id, refused.action, refused.class_name, refused.patient_ref, refused.outcome) == (
        world.outsider.user_id, "export", "Patient", pid, "not_found")


async def test_an_export_takes_the_same_statements_for_few_and_many_records(api: Api):
    store, world, pid = api.store, api.world, api.world.patient.id
    valid_bundle(await export(api, "owner", pid))  # the session's first lookup is not the export's cost
    counts = []
    for _ in range(2):
        for i in range(5):
            await store.record_score(principal=world.owner, patient_id=pid, score_type="barthel", value=50 + i)
            await store.add_note(principal=world.team_contributor, patient_id=pid, session_type="treatment",
                                 text=f"Session {i}.")
            await store.check_out_equipment(principal=world.team_therapist, patient_id=pid, name=f"Aid {i}")
        await store.flush_audit()
        with count_statements(world) as seen:
            valid_bundle(await export(api, "owner", pid))
            counts.append(len([s for s in seen if s.lstrip().upper().startswith("SELECT")]))
    assert counts[0] == counts[1] <= 8, counts


# -- the mapping on its own ---------------------------------------------------------------------------
def test_object_ids_with_underscores_become_valid_fhir_ids():
    """Object ids are URL-safe base64 and may hold '_', which FHIR ids may not."""
    from dashboard.catalogue import default_catalogue
    from dashboard.record_types import PatientRecord, ScoreRecord, UserRecord
    from dashboard.store.exports import PatientEverything

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    patient = PatientRecord(id="ab_cd-ef_1", patient_id="H-1", display_name="A B", primary_therapist_id="u_1",
                            mobility_status="independent", created_at=now, updated_at=now, version=1)
    score = ScoreRecord(id="s_core_1", patient_id=patient.id, score_date=now, score_type="jh_hlm", score_value=6,
                        recorded_by_id="u_1", created_at=now, updated_at=now, version=1)
    user = UserRecord(id="u_1", username="therapist", role="therapist", created_at=now, updated_at=now, version=1)
    bundle = fhir.patient_bundle(PatientEverything(patient=patient, scores=[score], users={"u_1": user}),
                                 default_catalogue(), base_url="http://x/", now=now)
    Bundle.model_validate(bundle)
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {"ab.cd-ef.1", "s.core.1", "u.1"} <= ids and not any("_" in i for i in ids)
    assert bundle["entry"][0]["fullUrl"] == "http://x/fhir/Patient/ab.cd-ef.1"


# -- the served app: sign in with the form, export with its cookie -------------------------------------
def test_a_signed_in_page_user_downloads_the_export_from_the_served_app(live_server):
    app_id = live_server.env.get("OT_PARSE_APP_ID", "ot-tracker")
    demo = json.loads((Path(__file__).resolve().parents[2] / "data" / "demo.json").read_text())
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        signed = client.post("/parse/login", json={"username": "therapist", "password": demo["password"]},
                             headers={"X-Parse-Application-Id": app_id})
        headers = {"X-Parse-Application-Id": app_id, "X-Parse-Session-Token": signed.json()["sessionToken"]}
        patient = client.get("/parse/classes/Patient", headers=headers, params={"limit": 1}).json()["results"][0]
        form = client.post("/login", data={"username": "therapist", "password": demo["password"], "next": "/"})
        assert form.status_code == 303 and client.cookies  # the pages' session cookie
        response = client.get(url(patient["objectId"]))
        bundle = valid_bundle(response)  # type: ignore[arg-type]
        assert response.headers["content-disposition"].startswith("attachment")
        assert [p["identifier"][0]["value"] for p in resources(bundle, "Patient")] == [patient["patientId"]]
        client.cookies.clear()
        assert client.get(url(patient["objectId"])).status_code == 401
