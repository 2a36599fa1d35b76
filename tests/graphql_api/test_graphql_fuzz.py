"""Bad GraphQL, bad variables and odd bodies: always a 4xx or a 200 with Parse-coded errors, never a
5xx, never code 1, never a stack trace, and nothing written."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import APP_ID

SCORE = """mutation S($f: CreateMobilityScoreFieldsInput) { createMobilityScore(input: {fields: $f}) {
    mobilityScore { objectId } } }"""
PATIENT_UPDATE = """mutation U($id: ID!, $f: UpdatePatientFieldsInput) { updatePatient(input: {id: $id, fields: $f}) {
    patient { objectId } } }"""
FIND = """query F($w: MobilityScoreWhereInput, $o: [MobilityScoreOrder!], $first: Int, $after: String, $last: Int,
    $before: String, $skip: Int) { mobilityScores(where: $w, order: $o, first: $first, after: $after, last: $last,
    before: $before, skip: $skip) { count edges { cursor node { objectId patient { objectId } } } } }"""

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=30), lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=12)
FIELD_NAMES = st.sampled_from(["patient", "scoreType", "scoreValue", "scoreDate", "notes", "recordedBy",
                               "enteredInError", "errorReason", "ACL", "objectId", "nonsense"])
WHERE_KEYS = st.sampled_from(["scoreValue", "scoreDate", "patient", "objectId", "id", "notes", "OR", "AND", "NOR",
                              "createdAt", "ACL", "recordedBy", "password"])
OPS = st.sampled_from(["equalTo", "notEqualTo", "lessThan", "greaterThan", "in", "notIn", "exists", "matchesRegex",
                       "options", "have", "haveNot", "inQueryKey", "text"])
BAD_DOCUMENTS = ["", " ", "{", "}", "query", "{ patients { edges { node { ... } } } }", "{ __typename @skip }",
                 "fragment F on Patient { ...F } { patients { edges { node { ...F } } } }",
                 "query($a: Int = \"x\") { patients(first: $a) { count } }", "{ patients(first: 1, first: 2) { count } }",
                 "{ node(id: 5) { id } }", "{ patient(id: null) { objectId } }", "subscription { mobilityScores { event } }",
                 "\x00", "{ " + "a" * 100_000 + " }", "{ patients { count } } { health }",
                 "mutation { logIn(input: {username: 5, password: true}) { viewer { sessionToken } } }",
                 "{ mobilityScores(where: { scoreValue: { equalTo: \"NaN\" } }) { count } }",
                 "{ mobilityScores(order: [nope_ASC]) { count } }", "{ patients(last: -5) { count } }",
                 "{ patients(before: \"YXJyYXljb25uZWN0aW9uOi0x\") { count } }"]


async def _refused_or_coded(gql, response, before) -> None:
    assert response.status_code < 500, response.text[:300]
    text = response.text
    assert "Traceback" not in text and "stacktrace" not in text
    body = response.json()
    for error in body.get("errors", []) if isinstance(body, dict) else []:
        code = error.get("extensions", {}).get("code")
        assert code != 1, error  # "Internal server error": a bug, never bad input
    assert await gql.api.counts() == before


async def test_documents_that_are_not_valid_operations(gql):
    before = await gql.api.counts()
    for document in BAD_DOCUMENTS:
        r = await gql.post(document, who="owner")
        await _refused_or_coded(gql, r, before)
        assert r.status_code in (200, 400, 403), (document[:60], r.status_code)


async def test_bodies_that_are_not_operations(gql):
    before = await gql.api.counts()
    for raw in (b"{", b"[]", b'"x"', b"null", b'{"query": 5}', b'{"query": "{ health }", "variables": [1]}',
                b'{"query": "{ health }", "operationName": 7}', b"\xff\xfe", b'{"query": "{ health }", "variables": "{"}'):
        r = await gql.api.client.post("/graphql", content=raw, headers={"X-Parse-Application-Id": APP_ID,
                                                                          "X-Parse-Session-Token": gql.api.tokens["owner"],
                                                                          "Content-Type": "application/json"})
        await _refused_or_coded(gql, r, before)
        assert r.status_code == 400, raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(FIELD_NAMES, JSON, max_size=5))
async def test_fuzzed_create_fields(gql, fields):
    before = await gql.api.counts()
    r = await gql.post(SCORE, {"f": fields}, who="viewer")  # a viewer may write nothing: any success is a leak
    await _refused_or_coded(gql, r, before)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["displayName", "patientId", "dateOfBirth", "primaryTherapist",
                                               "mobilityStatus", "archived", "ACL"]), JSON, max_size=4),
       object_id=st.one_of(st.text(max_size=40), st.just("UGF0aWVudDp4")))
async def test_fuzzed_updates_by_someone_who_may_not_write(gql, fields, object_id):
    before = await gql.api.counts()
    r = await gql.post(PATIENT_UPDATE, {"id": object_id or "x", "f": fields}, who="outsider")
    await _refused_or_coded(gql, r, before)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.dictionaries(WHERE_KEYS, st.one_of(JSON, st.dictionaries(OPS, JSON, max_size=3)), max_size=3),
       paging=st.dictionaries(st.sampled_from(["first", "last", "skip", "after", "before", "o"]),
                              st.one_of(st.integers(-5, 5000), st.text(max_size=20), st.lists(st.text(max_size=12), max_size=3)),
                              max_size=3))
async def test_fuzzed_finds(gql, where, paging):
    before = await gql.api.counts()
    r = await gql.post(FIND, {"w": where, **paging}, who="owner")
    await _refused_or_coded(gql, r, before)
    json.dumps(r.json())
