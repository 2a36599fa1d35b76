"""Queries through /graphql: ids, connections, where, order, pointers, as Parse answers them."""
from __future__ import annotations

import base64

from dashboard.api.graphql.names import to_global_id


async def _scores(gql, values, who="owner"):
    for v in values:
        await gql.data("""mutation S($f: CreateMobilityScoreFieldsInput) { createMobilityScore(input: {fields: $f}) {
                            mobilityScore { objectId } } }""",
                       {"f": {"patient": {"link": gql.world.patient.id}, "scoreType": "berg", "scoreValue": v,
                              "scoreDate": "2026-11-01T10:00:00.000Z"}}, who)


async def test_health_needs_no_session_and_everything_else_needs_one(gql):
    assert await gql.data("{ health }") == {"health": True}
    code, body = await gql.error("{ patients { count } }")
    assert code == 209 and body["data"] is None


async def test_get_by_either_id_and_node_by_global_id(gql):
    pid = gql.world.patient.id
    gid = to_global_id("Patient", pid)
    by_object = await gql.data("query($id: ID!) { patient(id: $id) { id objectId displayName } }", {"id": pid}, "owner")
    by_global = await gql.data("query($id: ID!) { patient(id: $id) { id objectId } }", {"id": gid}, "owner")
    assert by_object["patient"]["id"] == gid == by_global["patient"]["id"]
    assert base64.b64decode(gid).decode() == f"Patient:{pid}"
    node = await gql.data("query($id: ID!) { node(id: $id) { id ... on Patient { objectId } } }", {"id": gid}, "owner")
    assert node["node"]["objectId"] == pid


async def test_an_unreadable_patient_is_not_found_on_get_and_node_and_absent_from_finds(gql):
    pid = gql.world.patient.id
    code, body = await gql.error("query($id: ID!) { patient(id: $id) { objectId } }", {"id": pid}, "outsider")
    assert code == 101 and body["data"] is None and body["errors"][0]["message"] == "Object not found."
    code, _ = await gql.error("query($id: ID!) { node(id: $id) { id } }", {"id": to_global_id("Patient", pid)}, "outsider")
    assert code == 101
    found = await gql.data("{ patients { count edges { node { objectId } } } }", who="outsider")
    assert found["patients"] == {"count": 0, "edges": []}


async def test_where_order_first_count_and_paging_by_cursor(gql):
    await _scores(gql, [30, 50, 55, 40])
    query = """query($pid: ID!, $after: String) { mobilityScores(
        where: { patient: { have: { objectId: { equalTo: $pid } } }, scoreValue: { greaterThan: 35 } },
        order: [scoreValue_DESC], first: 2, after: $after) {
          count edges { cursor node { scoreValue patient { objectId } } } pageInfo { hasNextPage hasPreviousPage endCursor } } }"""
    first = (await gql.data(query, {"pid": gql.world.patient.id}, "owner"))["mobilityScores"]
    assert first["count"] == 3
    assert [e["node"]["scoreValue"] for e in first["edges"]] == [55, 50]
    assert first["edges"][0]["cursor"] == "YXJyYXljb25uZWN0aW9uOjA="  # base64("arrayconnection:0"), as Parse
    assert first["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False, "endCursor": first["edges"][1]["cursor"]}
    second = (await gql.data(query, {"pid": gql.world.patient.id, "after": first["pageInfo"]["endCursor"]}, "owner"))["mobilityScores"]
    assert [e["node"]["scoreValue"] for e in second["edges"]] == [40]
    assert second["pageInfo"]["hasNextPage"] is False and second["pageInfo"]["hasPreviousPage"] is True


async def test_last_counts_from_the_end(gql):
    await _scores(gql, [11, 12, 13])
    data = await gql.data("""{ mobilityScores(order: [scoreValue_ASC], last: 2) { edges { node { scoreValue } } } }""",
                          who="owner")
    assert [e["node"]["scoreValue"] for e in data["mobilityScores"]["edges"]] == [12, 13]


async def test_or_and_nor_and_a_subquery_on_the_pointer(gql):
    await _scores(gql, [20, 44, 52])
    data = await gql.data("""{ mobilityScores(where: { OR: [{ scoreValue: { lessThan: 21 } }, { scoreValue: { greaterThan: 50 } }],
        NOR: [{ scoreValue: { equalTo: 52 } }], patient: { have: { displayName: { matchesRegex: "." } } } })
        { count } }""", who="owner")
    assert data["mobilityScores"]["count"] == 1
    # The subquery runs under the caller's own access: an outsider's `have` matches no patient.
    data = await gql.data("""{ mobilityScores(where: { patient: { have: { displayName: { exists: true } } } }) { count } }""",
                          who="outsider")
    assert data["mobilityScores"]["count"] == 0


async def test_a_page_of_scores_with_nested_pointers_is_three_store_reads_whatever_its_size(gql, monkeypatch):
    await _scores(gql, list(range(10, 50)))
    reads = []
    real = gql.store.find

    async def counted(**kwargs):
        reads.append(kwargs["class_name"])
        return await real(**kwargs)

    monkeypatch.setattr(gql.store.reads, "find", counted)  # get_many reads through it too
    monkeypatch.setattr(gql.store, "find", counted)
    for size in (5, 40):
        reads.clear()
        data = await gql.data("""query($n: Int) { mobilityScores(first: $n) { edges { node { scoreValue
            patient { displayName primaryTherapist { username } } } } } }""", {"n": size}, "owner")
        edges = data["mobilityScores"]["edges"]
        assert len(edges) == size
        assert all(e["node"]["patient"]["primaryTherapist"]["username"] == "owner" for e in edges)
        assert reads == ["MobilityScore", "Patient", "_User"]


async def test_a_viewer_sees_no_private_field_and_no_note(gql):
    data = await gql.data("query($id: ID!) { patient(id: $id) { displayName patientId dateOfBirth } }",
                          {"id": gql.world.patient.id}, "viewer")
    assert data["patient"]["patientId"] is None and data["patient"]["dateOfBirth"] is None


async def test_a_where_condition_whose_variables_are_unset_is_no_condition(gql):
    await _scores(gql, [31, 32])
    data = await gql.data("query($v: Float) { mobilityScores(where: { scoreValue: { equalTo: $v } }) { count } }",
                          {}, "owner")
    assert data["mobilityScores"]["count"] == 2
    data = await gql.data("query($v: Float) { mobilityScores(where: { scoreValue: { equalTo: $v } }) { count } }",
                          {"v": 31}, "owner")
    assert data["mobilityScores"]["count"] == 1


async def _audit_rows(store) -> list[tuple[str, str, str]]:
    from sqlalchemy import select

    from dashboard.models import AuditEvent
    await store.flush_audit()
    async with store.db.read() as session:
        return [tuple(r) for r in await session.execute(
            select(AuditEvent.action, AuditEvent.class_name, AuditEvent.outcome).order_by(AuditEvent.id))]


async def test_a_find_is_audited_as_rest_audits_it_one_row_per_read_not_per_field(gql):
    import json

    await _scores(gql, [21, 22, 23])
    pid = gql.world.patient.id
    start = len(await _audit_rows(gql.store))
    await gql.data("""query($pid: ID!) { mobilityScores(where: { patient: { have: { objectId: { equalTo: $pid } } } }) {
        edges { node { scoreValue patient { displayName } } } } }""", {"pid": pid}, "owner")
    through_graphql = (await _audit_rows(gql.store))[start:]
    start += len(through_graphql)
    r = await gql.api.call("GET", "classes/MobilityScore", "owner", params={
        "where": json.dumps({"patient": {"__type": "Pointer", "className": "Patient", "objectId": pid}}),
        "include": "patient"})
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    through_rest = (await _audit_rows(gql.store))[start:]
    assert through_graphql == through_rest and len(through_graphql) == 2  # the scores, then their patient
