"""GRAPHQL.md §1 and §7 row by row: credentials, HTTP shapes, store errors with Parse codes, limits."""
from __future__ import annotations

import pytest

from dashboard.api.graphql.names import to_global_id
from tests.api.conftest import APP_ID, PASSWORD
from tests.support import eventually

SCORE = """mutation S($f: CreateMobilityScoreFieldsInput) { createMobilityScore(input: {fields: $f}) {
    mobilityScore { objectId scoreValue } } }"""


def score_fields(world, value=30, **extra):
    return {"patient": {"link": world.patient.id}, "scoreType": "berg", "scoreValue": value,
            "scoreDate": "2026-11-01T10:00:00.000Z", **extra}


# -------------------------------------------------------------------------------- §1 endpoint
async def test_a_wrong_or_missing_app_id_and_any_master_key_are_403_unauthorized(gql):
    for headers in ({"X-Parse-Application-Id": "wrong"}, {"X-Parse-Master-Key": "guess"}):
        r = await gql.post("{ health }", headers=headers)
        assert r.status_code == 403 and r.json() == {"error": "unauthorized"}
    r = await gql.api.client.post("/graphql", json={"query": "{ health }"})
    assert r.status_code == 403 and r.json() == {"error": "unauthorized"}


async def test_an_invalid_or_logged_out_token_is_refused_before_anything_runs(gql):
    before = await gql.api.counts()
    r = await gql.post(SCORE, {"f": score_fields(gql.world)}, token="r:not-a-real-token")
    assert r.status_code == 400 and r.json() == {"code": 209, "error": "Invalid session token"}
    token = gql.api.tokens["team_contributor"]
    r = await gql.post('mutation { logOut(input: {clientMutationId: "bye"}) { clientMutationId ok } }', token=token)
    assert r.json()["data"] == {"logOut": {"clientMutationId": "bye", "ok": True}}
    r = await gql.post("{ health }", token=token)
    assert r.status_code == 400 and r.json() == {"code": 209, "error": "Invalid session token"}
    assert await gql.api.counts() == before


async def test_get_runs_queries_only_and_a_batch_is_refused(gql):
    r = await gql.api.client.get("/graphql", params={"query": "{ health }"}, headers={"X-Parse-Application-Id": APP_ID})
    assert r.status_code == 200 and r.json()["data"] == {"health": True}
    r = await gql.api.client.get("/graphql", params={"query": 'mutation { logOut(input: {}) { ok } }'},
                                 headers={"X-Parse-Application-Id": APP_ID})
    assert r.status_code == 405 and r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    r = await gql.api.client.post("/graphql", json=[{"query": "{ health }"}], headers={"X-Parse-Application-Id": APP_ID})
    assert r.status_code == 400 and r.json()["errors"][0]["message"] == "Operation batching disabled."


# -------------------------------------------------------------------------------- §7 table
async def test_a_syntax_error_is_400_parse_failed(gql):
    r = await gql.post("{ health ", who="owner")
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "data" not in r.json()


async def test_unknown_fields_and_wrong_literals_are_400_validation_failed_without_hints_for_non_leads(gql):
    for query in ("{ patiens { count } }", '{ patients(first: "ten") { count } }',
                  "mutation { createPatient(input: {fields: {displayName: \"x\"}}) { patient { objectId } } }",
                  "{ classes { name } }", "mutation { createFile(upload: 1) { fileInfo { name } } }"):
        r = await gql.post(query, who="owner")
        body = r.json()
        assert r.status_code == 400 and "data" not in body, (query, body)
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "Did you mean" not in body["errors"][0]["message"]
    r = await gql.post("{ patiens { count } }", who="lead")
    assert "Did you mean" in r.json()["errors"][0]["message"]


async def test_variables_that_do_not_coerce_are_400_bad_user_input(gql):
    before = await gql.api.counts()
    for fields in ({"scoreValue": "thirty"}, {"scoreDate": "not a date"}, {"nonsense": 1}):
        r = await gql.post(SCORE, {"f": score_fields(gql.world, **fields)}, who="owner")
        assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", r.json()
    assert await gql.api.counts() == before


async def test_introspection_is_for_leads_only_and_typename_for_everyone(gql):
    r = await gql.post("{ __schema { queryType { name } } }", who="owner")
    assert r.status_code == 403 and r.json()["errors"][0]["message"] == "Introspection is not allowed"
    r = await gql.post('{ __type(name: "Patient") { name } }')
    assert r.status_code == 403
    assert (await gql.data("{ __schema { queryType { name } } }", who="lead"))["__schema"]["queryType"]["name"] == "Query"
    assert (await gql.data("{ __typename health }", who="owner")) == {"__typename": "Query", "health": True}


async def test_a_full_tool_introspection_query_runs_for_a_lead_past_the_field_limit(gql):
    from graphql import get_introspection_query
    data = await gql.data(get_introspection_query(), who="lead")
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"MobilityScoreWhereInput", "CreatePatientFieldsInput", "StatusHistoryConnection"} <= names


async def test_store_errors_carry_their_parse_code_and_null_data(gql):
    w = gql.world
    code, body = await gql.error('{ patient(id: "nosuchid00") { objectId } }', who="owner")
    assert code == 101 and body["data"] is None and body["errors"][0]["path"] == ["patient"]
    assert "stacktrace" not in str(body)
    code, _ = await gql.error(SCORE, {"f": score_fields(w, 999)}, "owner")
    assert code == 111  # out of the Berg scale's range (MEASURES.md), as on REST
    code, _ = await gql.error(SCORE, {"f": score_fields(w)}, "viewer")
    assert code == 119
    code, body = await gql.error(SCORE, {"f": score_fields(w)}, "outsider")
    assert code == 101
    code, _ = await gql.error("""mutation($id: ID!) { updatePatient(input: {id: $id, fields: {displayName: null}}) {
        patient { objectId } } }""", {"id": w.patient.id}, "lead")
    assert code == 142  # a required field cannot be cleared
    code, _ = await gql.error("""mutation($id: ID!) { deletePatient(input: {id: $id}) { patient { objectId } } }""",
                              {"id": w.patient.id}, "lead")
    assert code == 119  # nothing is deleted (ACCESS.md)
    code, _ = await gql.error("""mutation($id: ID!) { deletePatient(input: {id: $id}) { patient { objectId } } }""",
                              {"id": w.patient.id}, "outsider")
    assert code == 101


async def test_a_duplicate_patient_id_is_137(gql):
    code, body = await gql.error("""mutation($f: CreatePatientFieldsInput) { createPatient(input: {fields: $f}) {
        patient { objectId } } }""", {"f": {"patientId": "DEMO-P", "displayName": "Again", "mobilityStatus": "independent",
                                             "primaryTherapist": {"link": gql.world.users["owner"].id}}}, "lead")
    assert code == 137, body


async def test_a_pointer_input_takes_link_or_create_and_link_exactly(gql):
    before = await gql.api.counts()
    for pointer in ({}, {"link": gql.world.patient.id, "createAndLink": {"displayName": "x", "patientId": "N-9",
                                                                          "mobilityStatus": "independent",
                                                                          "primaryTherapist": {"link": "x"}}}):
        code, body = await gql.error(SCORE, {"f": {**score_fields(gql.world), "patient": pointer}}, "owner")
        assert code == 106
        assert body["errors"][0]["message"].endswith(
            "You need to provide link OR createLink on the pointer mutation of field patient")
    assert await gql.api.counts() == before


async def test_sign_up_makes_a_contributor_refuses_a_role_and_auth_data(gql):
    data = await gql.data("""mutation { signUp(input: {fields: {username: "fresh-one", password: "correct-horse-battery",
        email: "fresh@example.org"}}) { viewer { sessionToken user { id objectId role } } } }""")
    viewer = data["signUp"]["viewer"]
    assert viewer["user"]["role"] == "contributor" and viewer["sessionToken"]
    assert viewer["user"]["id"] == to_global_id("_User", viewer["user"]["objectId"])
    code, _ = await gql.error("""mutation { signUp(input: {fields: {username: "boss", password: "correct-horse-battery",
        email: "boss@example.org", role: "lead"}}) { viewer { sessionToken } } }""")
    assert code == 119
    code, _ = await gql.error("""mutation { logIn(input: {username: "owner", password: "x", authData: {a: 1}}) {
        viewer { sessionToken } } }""")
    assert code == 252
    code, body = await gql.error(f"""mutation {{ logIn(input: {{username: "owner", password: "wrong password!"}}) {{
        viewer {{ sessionToken }} }} }}""")
    assert code == 101 and body["errors"][0]["message"] == "Invalid username/password."
    data = await gql.data(f"""mutation {{ logIn(input: {{username: "owner", password: "{PASSWORD}"}}) {{
        viewer {{ sessionToken user {{ username }} }} }} }}""")
    assert data["logIn"]["viewer"]["user"]["username"] == "owner"


async def test_viewer_without_a_session_is_209(gql):
    code, body = await gql.error("{ viewer { user { objectId } } }")
    assert code == 209 and body["errors"][0]["message"] == "Permission denied"  # Parse's words
    data = await gql.data("{ viewer { sessionToken user { username } } }", who="owner")
    assert data["viewer"] == {"sessionToken": gql.api.tokens["owner"], "user": {"username": "owner"}}


# -------------------------------------------------------------------------------- limits (§9)
async def test_depth_and_field_count_are_refused_before_anything_runs(gql):
    deep = "{ mobilityScores { edges { node { " + "patient { primaryTherapist { objectId " * 9 + "} }" * 9 + " } } } }"
    r = await gql.post(deep, who="owner")
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"].startswith("GraphQL query depth of ")
    wide = "{ " + " ".join(f"a{i}: health" for i in range(201)) + " }"
    r = await gql.post(wide, who="owner")
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == "Number of GraphQL fields (201) exceeds maximum allowed (200)"
    fragments = "fragment F on Query { health a: health } { ...F ...F }"
    assert (await gql.data(fragments, who="owner")) == {"health": True, "a": True}


async def test_first_is_clamped_to_1000_and_negative_paging_is_102(gql):
    code, _ = await gql.error("{ patients(first: -1) { count } }", who="owner")
    assert code == 102
    code, _ = await gql.error('{ patients(after: "not-a-cursor") { count } }', who="owner")
    assert code == 102
    data = await gql.data("{ patients(first: 5000) { edges { cursor } } }", who="lead")
    assert len(data["patients"]["edges"]) == 2


async def test_where_nesting_and_in_lists_are_bounded_as_rest(gql):
    nested = "{ patients(where: " + "{ OR: [" * 6 + "{ displayName: { equalTo: \"x\" } }" + "] }" * 6 + ") { count } }"
    code, _ = await gql.error(nested, who="owner")
    assert code == 102
    code, _ = await gql.error("query($ids: [ID]) { patients(where: { objectId: { in: $ids } }) { count } }",
                              {"ids": [f"id{i}" for i in range(1001)]}, "owner")
    assert code == 102


async def test_a_body_over_one_mebibyte_is_refused(gql):
    r = await gql.api.client.post("/graphql", content=b'{"query": "' + b" " * (1024 * 1024 + 10) + b'"}',
                                  headers={"X-Parse-Application-Id": APP_ID, "Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("query", ["{ patients(where: { displayName: { text: { search: { term: \"x\" } } } }) { count } }",
                                   "{ patients(where: { displayName: { inQueryKey: { key: \"a\", query: { className: \"Patient\", where: {} } } } }) { count } }"])
async def test_text_and_in_query_key_are_in_the_schema_and_answer_102(gql, query):
    code, _ = await gql.error(query, who="owner")
    assert code == 102


async def test_log_in_shares_the_rest_sign_in_limiter_429(world):
    import httpx

    from dashboard.rate_limit import LoginLimiter
    from tests.api.conftest import make_app

    world.store.sign_in_limiter = LoginLimiter(3, 5)
    app = make_app(world.store)
    headers = {"X-Parse-Application-Id": APP_ID}
    login = f'mutation {{ logIn(input: {{username: "owner", password: "{PASSWORD}"}}) {{ viewer {{ sessionToken }} }} }}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.9", 1)), base_url="http://t") as client:
        r = await client.post("/parse/login", json={"username": "owner", "password": PASSWORD}, headers=headers)
        assert r.status_code == 200
        answers = [await client.post("/graphql", json={"query": login}, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]  # one REST sign-in and two here: the limit of 3
    limited = answers[-1]
    assert limited.json()["errors"][0]["extensions"]["code"] == 100 and int(limited.headers["retry-after"]) >= 1


@pytest.mark.allow_errors("ot_tracker.api")
async def test_a_bug_is_code_1_internal_server_error_with_no_trace(gql, monkeypatch):
    async def broken(**kwargs):
        raise RuntimeError("a bug, with a secret in its message")

    monkeypatch.setattr(gql.store, "find", broken)
    r = await gql.post("{ patients { edges { node { objectId } } } }", who="owner")
    body = r.json()
    assert r.status_code == 200 and body["data"] is None
    assert body["errors"][0]["message"] == "Internal server error" and body["errors"][0]["extensions"] == {"code": 1}
    assert "secret" not in r.text and "Traceback" not in r.text


async def test_create_and_link_stores_the_patient_and_the_score_together_or_neither(gql):
    new_patient = {"patientId": "NEW-77", "displayName": "Nova Reed", "mobilityStatus": "independent",
                   "primaryTherapist": {"link": gql.world.users["owner"].id}}
    before = await gql.api.counts()
    code, _ = await gql.error(SCORE, {"f": {**score_fields(gql.world, 999), "patient": {"createAndLink": new_patient}}},
                              "owner")
    assert code == 111  # the score is out of range: no patient was admitted either
    assert await gql.api.counts() == before
    data = await gql.data("""mutation S($f: CreateMobilityScoreFieldsInput) { createMobilityScore(input: {fields: $f}) {
        mobilityScore { scoreValue patient { patientId displayName primaryTherapist { username } } } } }""",
                          {"f": {**score_fields(gql.world, 41), "patient": {"createAndLink": new_patient}}}, "owner")
    assert data["createMobilityScore"]["mobilityScore"] == {
        "scoreValue": 41, "patient": {"patientId": "NEW-77", "displayName": "Nova Reed",
                                      "primaryTherapist": {"username": "owner"}}}
    history = await gql.data("""query($p: String) { statusHistories(where: { patient: { have: { patientId: { equalTo: $p } } } })
        { count edges { node { toValue } } } }""", {"p": "NEW-77"}, "owner")
    assert history["statusHistories"]["count"] == 1  # admitted, as any new patient
    code, _ = await gql.error(SCORE, {"f": {**score_fields(gql.world), "patient": {"createAndLink": new_patient}}}, "owner")
    assert code == 137  # that patientId is now taken: nothing written
    code, _ = await gql.error("""mutation($id: ID!, $f: UpdateMobilityScoreFieldsInput) { updateMobilityScore(input: {id: $id, fields: $f}) {
        mobilityScore { objectId } } }""", {"id": "nosuchid00", "f": {"patient": {"createAndLink": new_patient}}}, "owner")
    assert code == 106


async def test_an_account_runs_at_most_four_heavy_reads_at_once_across_rest_and_graphql(gql, monkeypatch):
    import asyncio

    release = asyncio.Event()
    started = []
    real = gql.store.find

    async def held(**kwargs):
        started.append(kwargs["class_name"])
        await release.wait()
        return await real(**kwargs)

    monkeypatch.setattr(gql.store, "find", held)
    query = "{ patients { edges { node { objectId } } } }"
    running = [asyncio.create_task(gql.post(query, who="owner")) for _ in range(3)]
    running.append(asyncio.create_task(gql.api.call("GET", "classes/Patient", "owner")))  # REST's place
    await eventually(lambda: len(started) == 4)  # the four reads hold their places
    refused = await gql.post(query, who="owner")
    other = asyncio.create_task(gql.post(query, who="lead"))  # another account has its own places
    await eventually(lambda: len(started) == 5)
    release.set()
    answers = await asyncio.gather(*running, other)
    assert refused.status_code == 429 and refused.json()["errors"][0]["extensions"]["code"] == 155
    assert refused.headers["retry-after"] == "1"
    assert [a.status_code for a in answers] == [200] * 5
