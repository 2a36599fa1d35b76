"""Bad input on every endpoint: each gets a 4xx with a Parse code, never a 5xx, and nothing is written."""
from __future__ import annotations

import json
from typing import Any

import pytest

from dashboard.schema import CLASSES
from tests.api.test_rest import date, pointer

WRONG_TYPES: dict[str, list[Any]] = {
    "String": [5, True, {"a": 1}, ["x"], {"__type": "Date", "iso": "2026-01-01T00:00:00.000Z"}, "x" * 30_000],
    "Number": ["5", True, {"a": 1}, [5], {"__op": "Increment", "amount": 1}],
    "Boolean": ["true", 1, {"a": 1}, [True]],
    "Date": ["2026-01-01T00:00:00Z", 5, {"__type": "Date"}, {"__type": "Date", "iso": "not a date"},
             {"__type": "Date", "iso": "2026-01-01T00:00:00"}, {"iso": "2026-01-01T00:00:00.000Z"}],
    "Pointer": ["abc", 5, {"__type": "Pointer", "className": "Wrong", "objectId": "x"},
                {"__type": "Pointer", "className": "Patient"}, {"objectId": "x"}, {"__type": "Pointer", "objectId": 5}],
}

MALFORMED_BODIES = [b"{", b"[1, 2]", b'"text"', b"NaN", b'{"a": NaN}', b'{"a": Infinity}', b"[" * 50_000,
                    b"\xff\xfe{}", b'{"a": 1} trailing', b"null"]

BAD_WHERES: list[Any] = [
    '{"displayName": {"$where": "1"}}', '{"$and": {"displayName": "x"}}', '{"$nor": []}', '{"noSuchField": 1}',
    '{"displayName": {"$regex": 5}}', '{"displayName": {"$regex": "' + "a" * 500 + '"}}',
    '{"displayName": {"$regex": "a", "$options": "x"}}', '{"displayName": {"$in": "x"}}',
    '{"displayName": {"$in": [' + ",".join(["1"] * 2000) + "]}}", '{"displayName": {"$exists": "yes"}}',
    '{"dateOfBirth": {"$lt": "yesterday"}}', '{"primaryTherapist": 5}', '{"$or": []}', '{"$or": {"a": 1}}',
    json.dumps({"$or": [{"$or": [{"$or": [{"$or": [{"$or": [{"$or": [{"displayName": "x"}]}]}]}]}]}]}),
    "[1,2]", '"text"', "{not json", '{"password": "x"}', '{"displayName": {"$select": {}}}',
    '{"primaryTherapist": {"$inQuery": {"where": {}, "className": "_User"}}}',
]

BAD_FIND_PARAMS: list[dict[str, str]] = [
    {"include": "noSuchField"}, {"include": "displayName"}, {"include": "primaryTherapist.username"},
    {"include": "primaryTherapist.x.y.z"}, {"include": "*"}, {"include": ",".join(["primaryTherapist"] * 11)},
    {"keys": "noSuchField"}, {"excludeKeys": "nope"}, {"limit": "-1"}, {"limit": "abc"}, {"limit": "100000"},
    {"limit": "1.5"}, {"skip": "-3"}, {"skip": "true"}, {"order": "noSuchField"}, {"order": "-password"},
    {"order": "a,b,c,d,e,f"}, {"count": "5"}, {"unknown": "1"}, {"where": "[]"}, {"redirectClassNameForKey": "x"},
]


async def assert_refused(api, response, before):
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body.get("code"), int) and isinstance(body.get("error"), str), body
    assert await api.counts() == before


def valid_fields(api, class_name: str) -> dict[str, Any]:
    w = api.world
    return {
        "Patient": {"patientId": "FZ-1", "displayName": "Fuzz Patient", "mobilityStatus": "independent",
                    "primaryTherapist": pointer("_User", w.owner.user_id), "dateOfBirth": date("1950-01-01T00:00:00.000Z")},
        "MobilityScore": {"patient": pointer("Patient", w.patient.id), "scoreType": "berg", "scoreValue": 40,
                          "scoreDate": date("2026-01-01T00:00:00.000Z"), "notes": "n"},
        "SessionNote": {"patient": pointer("Patient", w.patient.id), "sessionType": "review", "noteText": "t",
                        "followUpNeeded": False, "sessionDate": date("2026-01-01T00:00:00.000Z")},
        "EquipmentLog": {"patient": pointer("Patient", w.patient.id), "equipmentName": "Walker", "status": "checked_out",
                         "serialNumber": "S-1"},
    }[class_name]


@pytest.mark.parametrize("class_name", ["Patient", "MobilityScore", "SessionNote", "EquipmentLog"])
async def test_wrong_types_and_unknown_fields_on_create(api, class_name):
    before = await api.counts()
    base = valid_fields(api, class_name)
    for name, spec in CLASSES[class_name].items():
        if spec.server_set:
            continue
        for bad in WRONG_TYPES[spec.kind]:
            r = await api.call("POST", f"classes/{class_name}", "lead", json={**base, name: bad})
            await assert_refused(api, r, before)
            assert r.json()["code"] in (105, 111, 142), (name, bad, r.json())
    for extra in ({"noSuchField": 1}, {"objectId": "abc"}, {"createdAt": "2026-01-01T00:00:00.000Z"},
                  {"$where": 1}, {"a.b": 1}, {"": 1}, {"x" * 5000: 1}, {"ACL": 5}):
        r = await api.call("POST", f"classes/{class_name}", "lead", json={**base, **extra})
        await assert_refused(api, r, before)


@pytest.mark.parametrize("class_name", ["Patient", "MobilityScore", "SessionNote", "EquipmentLog"])
async def test_wrong_types_and_unknown_fields_on_update(api, class_name):
    w = api.world
    if class_name == "Patient":
        object_id = w.patient.id
    else:
        created = await api.call("POST", f"classes/{class_name}", "lead", json=valid_fields(api, class_name))
        assert created.status_code == 201, created.text
        object_id = created.json()["objectId"]
    before = await api.counts()
    for name, spec in CLASSES[class_name].items():
        for bad in WRONG_TYPES[spec.kind]:
            r = await api.call("PUT", f"classes/{class_name}/{object_id}", "lead", json={name: bad})
            await assert_refused(api, r, before)
    for extra in ({"noSuchField": 1}, {"updatedAt": "x"}, {"mobilityStatus": "flying"}, {"changeReason": 5},
                  {"status": "teleported"}):
        r = await api.call("PUT", f"classes/{class_name}/{object_id}", "lead", json=extra)
        await assert_refused(api, r, before)


ENDPOINTS = [
    ("POST", "users"), ("POST", "login"), ("POST", "logout"), ("GET", "users/me"), ("PUT", "users/{user}"),
    ("POST", "classes/Patient"), ("POST", "classes/MobilityScore"), ("PUT", "classes/Patient/{patient}"),
    ("PUT", "classes/SessionNote/{patient}"), ("POST", "batch"), ("DELETE", "classes/Patient/{patient}"),
    ("GET", "classes/Patient"), ("GET", "classes/Patient/{patient}"),
]


@pytest.mark.parametrize("method,path", ENDPOINTS)
async def test_malformed_and_oversized_bodies(api, method, path):
    path = path.format(user=api.world.lead.user_id, patient=api.world.patient.id)
    before = await api.counts()
    for body in MALFORMED_BODIES:
        r = await api.call(method, path, "lead", content=body)
        await assert_refused(api, r, before)
    r = await api.call(method, path, "lead", content=b'{"displayName": "' + b"x" * 1_100_000 + b'"}')
    await assert_refused(api, r, before)
    assert r.status_code == 413
    # The SDK's text/plain style, with a bad _method
    r = await api.client.post(f"/parse/{path}", content=json.dumps({"_method": "PATCH", "_ApplicationId": "test-app-id"}),
                              headers={"Content-Type": "text/plain"})
    await assert_refused(api, r, before)


async def test_unknown_query_parameters_on_every_get(api):
    before = await api.counts()
    for path in ("users/me", f"classes/Patient/{api.world.patient.id}", "classes/Patient", "users"):
        r = await api.call("GET", path, "lead", params={"noSuchParam": "1"})
        await assert_refused(api, r, before)
        assert r.json()["code"] == 102
    r = await api.call("POST", "classes/Patient", "lead", params={"where": "{}"}, json={})
    await assert_refused(api, r, before)


@pytest.mark.parametrize("where", BAD_WHERES)
async def test_bad_where(api, where):
    before = await api.counts()
    r = await api.call("GET", "classes/Patient", "lead", params={"where": where})
    await assert_refused(api, r, before)
    assert r.json()["code"] in (102, 107)
    r = await api.sdk("classes/Patient", {"where": _loads(where)}, "lead", method="GET")
    await assert_refused(api, r, before)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.mark.parametrize("params", BAD_FIND_PARAMS)
async def test_bad_find_parameters_and_includes(api, params):
    before = await api.counts()
    r = await api.call("GET", "classes/Patient", "lead", params=params)
    await assert_refused(api, r, before)
    assert r.json()["code"] == 102
    if set(params) <= {"include", "keys", "excludeKeys"}:
        r = await api.call("GET", f"classes/Patient/{api.world.patient.id}", "lead", params=params)
        await assert_refused(api, r, before)


BAD_BATCHES: list[Any] = [
    {}, {"requests": []}, {"requests": "x"}, {"requests": [1]}, {"requests": [{"method": "POST"}]},
    {"requests": [{"method": "PATCH", "path": "/parse/classes/Patient", "body": {}}]},
    {"requests": [{"method": "POST", "path": "/parse/classes/Patient", "body": [1]}]},
    {"requests": [{"method": "POST", "path": "/parse/classes/Patient", "body": {}, "extra": 1}]},
    {"requests": [{"method": "POST", "path": 5, "body": {}}]},
    {"requests": [{"method": "POST", "path": "classes/Patient?x=1", "body": {}}]},
    {"requests": [{"method": "POST", "path": "/parse/classes/MobilityScore", "body": {}}] * 51},
    {"requests": [{"method": "POST", "path": "/parse/classes/MobilityScore", "body": {}}], "transaction": True},
    {"requests": [{"method": "POST", "path": "/parse/classes/MobilityScore", "body": {}}], "other": 1},
]


@pytest.mark.parametrize("body", BAD_BATCHES)
async def test_bad_batches(api, body):
    before = await api.counts()
    r = await api.call("POST", "batch", "lead", json=body)
    await assert_refused(api, r, before)


async def test_bad_requests_inside_a_batch_fail_alone(api):
    before = await api.counts()
    requests = [
        {"method": "POST", "path": "/parse/batch", "body": {"requests": []}},
        {"method": "POST", "path": "/parse/login", "body": {"username": "lead", "password": "x"}},
        {"method": "POST", "path": "/parse/classes/MobilityScore", "body": {"scoreValue": "high"}},
        {"method": "GET", "path": "/parse/classes/Patient", "body": {"where": {"x": {"$bad": 1}}}},
        {"method": "GET", "path": "/parse/classes/Patient", "body": {"include": "nothing"}},
        {"method": "DELETE", "path": f"/parse/classes/Patient/{api.world.patient.id}"},
        {"method": "POST", "path": "/parse/classes/StatusHistory", "body": {"patient": pointer("Patient", api.world.patient.id)}},
    ]
    r = await api.call("POST", "batch", "lead", json={"requests": requests})
    assert r.status_code == 200
    results = r.json()
    assert len(results) == len(requests)
    for result in results:
        assert isinstance(result["error"]["code"], int), result
    assert await api.counts() == before


async def test_unknown_paths_and_methods(api):
    before = await api.counts()
    for method, path in [("GET", "nothing"), ("POST", "classes"), ("PUT", "classes/Patient"), ("GET", "login/x"),
                         ("DELETE", "users/me"), ("POST", "functions/hello"), ("GET", "classes/Patient/a/b"),
                         ("GET", "classes/" + "P" * 500), ("GET", "classes/Patient/" + "x" * 500)]:
        r = await api.call(method, path, "lead")
        await assert_refused(api, r, before)
