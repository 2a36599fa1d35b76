"""The REST contract of PARSE-API.md: endpoints, shapes, the SDK's body style, store rules as Parse errors."""
from __future__ import annotations

import json
import re

from tests.api.conftest import APP_ID

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def pointer(class_name: str, object_id: str) -> dict[str, str]:
    return {"__type": "Pointer", "className": class_name, "objectId": object_id}


def date(iso: str) -> dict[str, str]:
    return {"__type": "Date", "iso": iso}


def score_body(patient_id: str, value: float = 40, score_type: str = "berg") -> dict:
    return {"patient": pointer("Patient", patient_id), "scoreType": score_type, "scoreValue": value,
            "scoreDate": date("2026-01-02T03:04:05.006Z")}


async def test_sign_up_log_in_me_log_out(api):
    r = await api.call("POST", "users", json={"username": "newbie", "password": "long enough pass", "email": "n@example.org"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"objectId", "createdAt", "sessionToken"}
    assert ISO_Z.match(body["createdAt"]) and body["sessionToken"].startswith("r:")
    assert r.headers["location"].endswith(f"/parse/users/{body['objectId']}")

    r = await api.call("POST", "login", json={"username": "newbie", "password": "long enough pass"})
    assert r.status_code == 200 and r.json()["username"] == "newbie" and r.json()["role"] == "contributor"
    assert "password" not in r.json() and "className" not in r.json()
    token = r.json()["sessionToken"]
    r = await api.client.get("/parse/users/me", headers={**api.headers(), "X-Parse-Session-Token": token})
    assert r.status_code == 200 and r.json()["objectId"] == body["objectId"] and r.json()["sessionToken"] == token

    r = await api.client.post("/parse/logout", headers={**api.headers(), "X-Parse-Session-Token": token})
    assert r.status_code == 200 and r.json() == {}
    r = await api.client.get("/parse/users/me", headers={**api.headers(), "X-Parse-Session-Token": token})
    assert r.status_code in (400, 401) and r.json()["code"] == 209


async def test_sdk_body_style_with_text_plain_and_method(api):
    r = await api.sdk("login", {"username": "lead", "password": "correct horse battery"})
    assert r.status_code == 200 and r.json()["username"] == "lead"
    r = await api.sdk("classes/Patient", {"where": {"patientId": "DEMO-P"}, "limit": 5, "count": 1}, "lead", method="GET")
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1 and r.json()["results"][0]["objectId"] == api.world.patient.id
    r = await api.sdk(f"classes/Patient/{api.world.patient.id}", {"displayName": "Pat Renamed"}, "owner", method="PUT")
    assert r.status_code == 200 and ISO_Z.match(r.json()["updatedAt"])
    r = await api.sdk(f"classes/Patient/{api.world.patient.id}", {}, "owner", method="GET")
    assert r.json()["displayName"] == "Pat Renamed"


async def test_create_get_update_delete_shapes(api):
    pid = api.world.patient.id
    r = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, 44))
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) == {"objectId", "createdAt"} and ISO_Z.match(created["createdAt"])
    assert r.headers["location"].endswith(f"/parse/classes/MobilityScore/{created['objectId']}")

    r = await api.call("GET", f"classes/MobilityScore/{created['objectId']}", "team_contributor")
    assert r.status_code == 200
    got = r.json()
    assert "className" not in got
    assert got["patient"] == pointer("Patient", pid)
    assert got["recordedBy"] == pointer("_User", api.world.owner.user_id)
    assert got["scoreDate"] == date("2026-01-02T03:04:05.006Z")
    assert got["scoreValue"] == 44 and ISO_Z.match(got["createdAt"]) and ISO_Z.match(got["updatedAt"])

    r = await api.call("PUT", f"classes/MobilityScore/{created['objectId']}", "owner",
                       json={"enteredInError": True, "errorReason": "wrong patient"})
    assert r.status_code == 200 and set(r.json()) == {"updatedAt"}

    r = await api.call("DELETE", f"classes/MobilityScore/{created['objectId']}", "lead")
    assert r.status_code == 403 and r.json()["code"] == 119


async def test_pointer_to_user_class_and_self_server_set_fields(api):
    pid = api.world.patient.id
    body = {**score_body(pid), "recordedBy": pointer("_User", api.world.owner.user_id)}
    r = await api.call("POST", "classes/MobilityScore", "owner", json=body)
    assert r.status_code == 201, r.text
    body["recordedBy"] = pointer("_User", api.world.lead.user_id)
    r = await api.call("POST", "classes/MobilityScore", "owner", json=body)
    assert r.status_code == 400 and r.json()["code"] == 111 and "recordedBy" in r.json()["error"]


async def test_queries(api):
    pid = api.world.patient.id
    for value, score_type in [(10, "berg"), (30, "berg"), (50, "berg"), (60, "barthel")]:
        r = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, value, score_type))
        assert r.status_code == 201, r.text

    async def find(**params):
        import json

        encoded = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in params.items()}
        r = await api.call("GET", "classes/MobilityScore", "lead", params=encoded)
        assert r.status_code == 200, r.text
        return r.json()

    values = lambda body: [o["scoreValue"] for o in body["results"]]  # noqa: E731
    assert values(await find(where={"scoreValue": {"$gt": 10, "$lte": 50}}, order="scoreValue")) == [30, 50]
    assert values(await find(where={"scoreType": {"$in": ["barthel"]}})) == [60]
    assert values(await find(where={"scoreType": {"$nin": ["barthel"]}}, order="-scoreValue")) == [50, 30, 10]
    assert values(await find(where={"scoreValue": {"$ne": 30}, "scoreType": "berg"}, order="scoreValue")) == [10, 50]
    assert values(await find(where={"notes": {"$exists": False}, "scoreValue": {"$lt": 20}})) == [10]
    assert values(await find(where={"scoreType": {"$regex": "^bar"}})) == [60]
    assert values(await find(where={"$or": [{"scoreValue": 10}, {"scoreValue": 60}]}, order="scoreValue")) == [10, 60]
    assert len((await find(where={"patient": pointer("Patient", pid)}))["results"]) == 4
    assert len((await find(where={"scoreDate": {"$gte": date("2026-01-01T00:00:00.000Z")}}))["results"]) == 4
    assert len((await find(where={"scoreDate": {"$lt": date("2026-01-01T00:00:00.000Z")}}))["results"]) == 0
    page = await find(order="scoreValue", limit=2, skip=1, count=1)
    assert values(page) == [30, 50] and page["count"] == 4
    counted = await find(limit=0, count=1)
    assert counted == {"results": [], "count": 4}
    keyed = await find(keys="scoreValue", limit=1)
    assert set(keyed["results"][0]) == {"objectId", "createdAt", "updatedAt", "scoreValue"}
    excluded = await find(excludeKeys="notes,scoreDate", limit=1)
    assert "scoreDate" not in excluded["results"][0] and "scoreValue" in excluded["results"][0]


async def test_include_dotted_paths_and_unreadable_includes_dropped(api):
    pid = api.world.patient.id
    r = await api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, 20))
    r = await api.call("GET", "classes/MobilityScore", "lead", params={"include": "patient.primaryTherapist,recordedBy"})
    [score] = r.json()["results"]
    assert score["patient"]["__type"] == "Object" and score["patient"]["className"] == "Patient"
    assert score["patient"]["displayName"] == "Pat Example"
    therapist = score["patient"]["primaryTherapist"]
    assert therapist["__type"] == "Object" and therapist["className"] == "_User" and therapist["username"] == "owner"
    assert score["recordedBy"]["username"] == "owner"

    r = await api.call("GET", f"classes/MobilityScore/{score['objectId']}", "team_contributor",
                       params={"include": "recordedBy", "keys": "recordedBy.username,scoreValue"})
    got = r.json()
    assert got["scoreValue"] == 20 and "patient" not in got
    assert got["recordedBy"]["username"] == "owner" and "email" not in got["recordedBy"]

    # A note that amends a note: both readable to the team; an include of an unreadable pointer is dropped.
    note = await api.store.add_note(principal=api.world.lead, patient_id=api.world.other_patient.id,
                                    session_type="review", text="Q's note")
    assert note.id
    r = await api.call("GET", "classes/Patient", "lead", params={"include": "primaryTherapist", "keys": "primaryTherapist.username"})
    for patient in r.json()["results"]:
        assert set(patient["primaryTherapist"]) <= {"__type", "className", "objectId", "createdAt", "updatedAt", "username"}


async def test_batch(api):
    pid = api.world.patient.id
    r = await api.call("POST", "batch", "owner", json={"requests": [
        {"method": "POST", "path": "/parse/classes/MobilityScore", "body": score_body(pid, 33)},
        {"method": "POST", "path": "/parse/classes/MobilityScore", "body": score_body(pid, 99)},
        {"method": "PUT", "path": f"/parse/classes/Patient/{pid}", "body": {"mobilityStatus": "independent"}},
        {"method": "GET", "path": f"/parse/classes/Patient/{api.world.other_patient.id}"},
    ]})
    assert r.status_code == 200, r.text
    first, second, third, fourth = r.json()
    assert set(first["success"]) == {"objectId", "createdAt"}
    assert second["error"]["code"] == 111 and "berg" in second["error"]["error"].lower()
    assert "updatedAt" in third["success"]
    assert fourth["error"]["code"] == 101


async def test_status_change_writes_status_history_and_history_is_not_writable(api):
    pid = api.world.patient.id
    r = await api.call("PUT", f"classes/Patient/{pid}", "owner",
                       json={"mobilityStatus": "minimal_assist", "changeReason": "after fall"})
    assert r.status_code == 200, r.text
    r = await api.call("GET", "classes/StatusHistory", "team_contributor",
                       params={"where": '{"toValue":"minimal_assist"}'})
    [row] = r.json()["results"]
    assert row["fromValue"] == "supervision" and row["changeReason"] == "after fall"
    assert row["changedBy"] == pointer("_User", api.world.owner.user_id)
    before = await api.counts()
    r = await api.call("POST", "classes/StatusHistory", "lead", json={
        "patient": pointer("Patient", pid), "statusType": "mobilityStatus", "toValue": "independent"})
    assert r.status_code == 403 and r.json()["code"] == 119
    r = await api.call("PUT", f"classes/StatusHistory/{row['objectId']}", "lead", json={"toValue": "x"})
    assert r.status_code == 403 and r.json()["code"] == 119
    assert await api.counts() == before


async def test_stale_write_is_refused_with_409(api):
    pid = api.world.patient.id
    r = await api.call("GET", f"classes/Patient/{pid}", "owner")
    etag = r.headers["etag"]
    r = await api.call("PUT", f"classes/Patient/{pid}", "lead", json={"mobilityStatus": "dependent"},
                       headers={"If-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    before = await api.counts()
    r = await api.call("PUT", f"classes/Patient/{pid}", "owner", json={"mobilityStatus": "independent"},
                       headers={"If-Match": etag})
    assert r.status_code == 409 and r.json()["code"] == 137
    assert "dependent" in r.json()["error"]
    # The SDK's body style carries the same precondition as _IfMatch.
    r = await api.sdk(f"classes/Patient/{pid}", {"mobilityStatus": "independent", "_IfMatch": etag}, "owner", method="PUT")
    assert r.status_code == 409 and r.json()["code"] == 137
    assert await api.counts() == before
    r = await api.call("GET", f"classes/Patient/{pid}", "owner")
    assert r.json()["mobilityStatus"] == "dependent"


async def test_users_are_public_only_as_username_and_role(api):
    r = await api.call("GET", f"users/{api.world.lead.user_id}", "outsider")
    assert r.status_code == 200 and r.json()["username"] == "lead" and "email" not in r.json()
    r = await api.call("GET", "classes/_User", "outsider", params={"where": '{"username":"owner"}'})
    assert [u["role"] for u in r.json()["results"]] == ["therapist"]
    r = await api.call("PUT", f"users/{api.world.outsider.user_id}", "outsider", json={"role": "lead"})
    assert r.status_code == 403 and r.json()["code"] == 119
    r = await api.call("POST", "users", "lead", json={"username": "made-by-lead", "password": "long enough pass",
                                                      "email": "m@example.org", "role": "therapist"})
    assert r.status_code == 201 and "sessionToken" not in r.json()
    r = await api.call("POST", "users", json={"username": "wants-lead", "password": "long enough pass",
                                              "email": "w@example.org", "role": "lead"})
    assert r.status_code in (401, 403) and r.json()["code"] in (119, 209)


async def test_application_id_from_configuration(api):
    r = await api.client.get("/parse/classes/Patient", headers={"X-Parse-Application-Id": "ot-tracker"})
    assert r.status_code == 403 and r.json() == {"error": "unauthorized"}
    r = await api.client.get("/parse/classes/Patient")
    assert r.status_code == 403 and r.json() == {"error": "unauthorized"}
    r = await api.client.post("/parse/login", content='{"_ApplicationId":"nope","username":"lead"}')
    assert r.status_code == 403 and r.json() == {"error": "unauthorized"}
    r = await api.client.get("/parse/health", headers={"X-Parse-Application-Id": APP_ID})
    assert r.status_code == 200


async def test_concurrent_creates_each_get_their_own_answer(api):
    """Creates arriving together are committed together on SQLite; each still gets its own answer."""
    import asyncio

    pid, qid = api.world.patient.id, api.world.other_patient.id
    r = await api.call("POST", "classes/SessionNote", "lead", json={
        "patient": pointer("Patient", qid), "sessionType": "review", "noteText": "Stable.", "followUpNeeded": False,
        "sessionDate": date("2026-01-02T03:04:05.006Z")})
    assert r.status_code == 201, r.text
    note_on_q = r.json()["objectId"]
    amends_elsewhere = {"patient": pointer("Patient", pid), "sessionType": "review", "noteText": "Amended.",
                        "followUpNeeded": False,
                        "sessionDate": date("2026-01-02T03:04:05.006Z"), "amends": pointer("SessionNote", note_on_q)}
    answers = await asyncio.gather(
        *(api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, 10 + i)) for i in range(6)),
        api.call("POST", "classes/SessionNote", "owner", json=amends_elsewhere),
        api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, "ten")),
        *(api.call("POST", "classes/MobilityScore", "owner", json=score_body(pid, 20 + i)) for i in range(6)))
    statuses = [a.status_code for a in answers]
    assert statuses == [201] * 6 + [404, 400] + [201] * 6, [a.text for a in answers]
    for answer in answers[:6] + answers[8:]:
        created = answer.json()
        got = await api.call("GET", f"classes/MobilityScore/{created['objectId']}", "owner")
        assert got.status_code == 200 and got.json()["createdAt"] == created["createdAt"]
        assert answer.headers["etag"] == got.headers["etag"] == '"1"'


async def test_routes_a_path_by_its_shape_before_its_method(api):
    # users/me is its own path: a method it has no route for is not taken as users/:objectId.
    r = await api.call("PUT", "users/me", "lead", json={"email": "me@example.org"})
    assert r.status_code == 404 and r.json() == {"code": 101, "error": "Not found: PUT /parse/users/me"}
    # An id longer than any id is not found, and a class name longer than any is refused, whatever the method.
    for method in ("GET", "POST", "PUT"):
        r = await api.call(method, "classes/Patient/" + "x" * 17, "lead", json={} if method != "GET" else None)
        assert r.status_code == 404 and r.json() == {"code": 101, "error": "Object not found."}, method
        r = await api.call(method, "classes/" + "P" * 33, "lead", json={} if method != "GET" else None)
        assert r.status_code == 403 and r.json()["code"] == 119, method
    r = await api.call("GET", "users/" + "x" * 17, "lead")
    assert r.status_code == 404 and r.json() == {"code": 101, "error": "Object not found."}


async def test_post_classes_user_is_a_sign_up_and_get_users_a_find_of_user(api):
    r = await api.call("POST", "classes/_User", json={"username": "via-classes", "password": "long enough pass",
                                                      "email": "vc@example.org"})
    assert r.status_code == 201 and r.json()["sessionToken"].startswith("r:")
    assert r.headers["location"].endswith(f"/parse/users/{r.json()['objectId']}")
    mine = await api.call("GET", "users", "lead", params={"where": '{"username":"lead"}'})
    same = await api.call("GET", "classes/_User", "lead", params={"where": '{"username":"lead"}'})
    assert mine.status_code == 200 and mine.json() == same.json() and len(mine.json()["results"]) == 1


async def test_a_batch_may_not_contain_login_logout_or_a_batch_but_may_contain_health(api):
    requests = [{"method": "POST", "path": "/parse/login", "body": {"username": "lead", "password": "x"}},
                {"method": "POST", "path": "/parse/logout"},
                {"method": "POST", "path": "/parse/batch", "body": {"requests": []}},
                {"method": "GET", "path": "/parse/health"}]
    r = await api.call("POST", "batch", "lead", json={"requests": requests})
    assert r.status_code == 200
    answers = r.json()
    assert [a.get("error", {}).get("code") for a in answers[:3]] == [101, 101, 101]
    assert answers[0]["error"]["error"] == "Not found: POST /parse/login"
    assert answers[3] == {"success": {"status": "ok"}}


async def test_where_takes_and_nor_and_eq_as_parse_does(api):
    where = {"$and": [{"displayName": {"$eq": "Pat Example"}}, {"mobilityStatus": {"$ne": "dependent"}}]}
    r = await api.call("GET", "classes/Patient", "lead", params={"where": json.dumps(where)})
    assert [p["patientId"] for p in r.json()["results"]] == ["DEMO-P"]
    r = await api.call("GET", "classes/Patient", "lead", params={"where": json.dumps({"$nor": [{"patientId": "DEMO-P"}]})})
    assert [p["patientId"] for p in r.json()["results"]] == ["DEMO-Q"]
