"""The access matrix (tests/test_access_matrix.py, read off ACCESS.md) through GraphQL: the same
principal kinds, classes and operations, each sent as an operation to /graphql with that
principal's session. A refusal writes nothing and is audited, as through the store itself."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from dashboard.api.graphql.names import find_field, get_field, graphql_type
from tests.support import domain_snapshot, refusal_count
from tests.test_access_matrix import KINDS, ORDER, ROWS, STATUS_BY_KIND, Ctx, OPS, _ids_of, ctx  # noqa: F401

CODES = {101: "404", 119: "403", 209: "401", 111: "400", 142: "400", 102: "400", 105: "400", 137: "400"}
UTC = timezone.utc


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _fields(class_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Store-style fields as the GraphQL input: pointers as {link}, dates as ISO strings."""
    from dashboard.schema import CLASSES
    out: dict[str, Any] = {}
    for name, value in fields.items():
        kind = CLASSES[class_name][name].kind
        out[name] = {"link": value} if kind == "Pointer" else _iso(value) if kind == "Date" else value
    return out


class Through:
    """Runs one matrix operation as a GraphQL operation; returns (outcome, result)."""

    def __init__(self, gql, ctx: Ctx):
        self.gql, self.ctx = gql, ctx

    async def send(self, kind: str, query: str, variables: dict[str, Any]) -> tuple[str, Any]:
        response = await self.gql.post(query, variables, None if kind == "anonymous" else kind)
        body = response.json()
        assert response.status_code == 200, body
        if body.get("errors"):
            code = body["errors"][0]["extensions"]["code"]
            return CODES.get(code, f"code {code}"), body
        return "ok", body["data"]

    async def get(self, kind, class_name):
        return await self.send(kind, f"query($id: ID!) {{ {get_field(class_name)}(id: $id) {{ objectId }} }}",
                               {"id": self.ctx.target(class_name)})

    async def find(self, kind, class_name):
        outcome, data = await self.send(kind, f"{{ {find_field(class_name)}(first: 1000) {{ edges {{ node {{ objectId }} }} }} }}", {})
        if outcome != "ok":
            return outcome, data
        return outcome, {e["node"]["objectId"] for e in data[find_field(class_name)]["edges"]}

    async def count(self, kind, class_name):
        outcome, data = await self.send(kind, f"{{ {find_field(class_name)} {{ count }} }}", {})
        return outcome, data[find_field(class_name)]["count"] if outcome == "ok" else data

    async def create(self, kind, class_name, fields):
        name = graphql_type(class_name)
        return await self.send(kind, f"mutation($f: Create{name}FieldsInput) {{ create{name}(input: {{fields: $f}}) "
                                     f"{{ {get_field(class_name)} {{ objectId }} }} }}",
                               {"f": _fields(class_name, fields)})

    async def update(self, kind, class_name, object_id, changes):
        name = graphql_type(class_name)
        return await self.send(kind, f"mutation($id: ID!, $f: Update{name}FieldsInput) {{ update{name}(input: "
                                     f"{{id: $id, fields: $f}}) {{ {get_field(class_name)} {{ objectId }} }} }}",
                               {"id": object_id, "f": _fields(class_name, changes)})

    async def delete(self, kind, class_name):
        name = graphql_type(class_name)
        return await self.send(kind, f"mutation($id: ID!) {{ delete{name}(input: {{id: $id}}) "
                                     f"{{ {get_field(class_name)} {{ objectId }} }} }}", {"id": self.ctx.target(class_name)})


def _record_fields(ctx: Ctx, class_name: str) -> dict[str, Any]:
    from tests.test_access_matrix import _record_fields as store_fields
    return store_fields(class_name, ctx.world.patient.id)


async def run(t: Through, ctx: Ctx, class_name: str, operation: str, kind: str, prepared: Any) -> tuple[str, Any]:
    w = ctx.world
    if operation in ("get", "find", "count", "delete"):
        return await getattr(t, operation)(kind, class_name)
    if operation == "create" and class_name != "_User":
        return await t.create(kind, class_name, _record_fields(ctx, class_name))
    if operation == "create":
        return await t.create(kind, "_User", {"username": f"new-{kind.replace('_', '-')}", "email": f"new-{kind}@example.org",
                                              "password": "a long enough password", "role": "contributor"})
    if operation in ("create-for-owner", "create-as-own-therapist"):
        therapist = w.users["owner"].id if operation == "create-for-owner" else ctx.user_id(kind)
        tag = "for-owner" if operation == "create-for-owner" else "own"
        return await t.create(kind, "Patient", {"patientId": f"NEW-{tag}-{kind}", "displayName": f"New {kind}",
                                                "primaryTherapist": therapist, "mobilityStatus": "independent"})
    changes, target = {
        "update-displayName": ({"displayName": f"Renamed by {kind}"}, None),
        "update-dateOfBirth": ({"dateOfBirth": datetime(1950, 1, 1, tzinfo=UTC)}, None),
        "update-mobilityStatus": ({"mobilityStatus": STATUS_BY_KIND[kind]}, None),
        "update-primaryTherapist": ({"primaryTherapist": w.users["team_therapist"].id}, None),
        "update-patientId": ({"patientId": f"NEW-{kind}"}, None),
        "mark-entered-in-error": ({"enteredInError": True, "errorReason": "wrong patient"}, "fresh"),
        "edit-scoreValue": ({"scoreValue": 99}, None),
        "clear-followUpNeeded": ({"followUpNeeded": False}, "fresh"),
        "edit-noteText": ({"noteText": "Rewritten."}, None),
        "return": ({"status": "returned"}, "fresh"),
        "edit-equipmentName": ({"equipmentName": f"Rollator by {kind}"}, None),
        "edit-toValue": ({"toValue": "independent"}, None),
        "edit-owners-email": ({"email": f"changed-by-{kind}@example.org"}, None),
        "edit-owners-role": ({"role": "contributor"}, None),
        "deactivate-owner": ({"active": False}, None),
        "edit-own-email": ({"email": f"own-{kind}@example.org"}, "self"),
    }[operation]
    object_id = prepared.id if target == "fresh" else ctx.user_id(kind) if target == "self" else ctx.target(class_name)
    return await t.update(kind, class_name, object_id, changes)


CLASS_NAMES = list(dict.fromkeys(c for c, _, _ in ROWS))


@pytest.mark.parametrize("class_name", CLASS_NAMES)
async def test_access_matrix_through_graphql(gql, ctx: Ctx, class_name: str):  # noqa: F811
    t = Through(gql, ctx)
    expected = {operation: cells for c, operation, cells in ROWS if c == class_name}
    actual: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    db = ctx.store.db
    for operation, cells in expected.items():
        op = OPS[(class_name, operation)]
        row: dict[str, str] = {}
        for kind in ORDER:
            prepared = await op.prepare(ctx, kind) if op.prepare else None
            before, refusals_before = await domain_snapshot(db), await refusal_count(db)
            outcome, result = await run(t, ctx, class_name, operation, kind, prepared)
            want = cells[kind]
            if operation in ("find", "count") and outcome == "ok":
                ids = await _ids_of(ctx, class_name, want, kind)
                if operation == "count":
                    outcome = want if result == len(ids) else f"count {result} != {len(ids)}"
                else:
                    outcome = want if result == ids else f"{len(result)} ids, not exactly {want}'s {len(ids)}"
            row[kind] = outcome
            if outcome not in ("ok", "P+Q", "P", "Q", "none", "all", "self"):
                where = f"{class_name} {operation} by {kind}"
                if await domain_snapshot(db) != before:
                    problems.append(f"{where}: refused with {outcome} but domain tables changed")
                if await refusal_count(db) <= refusals_before:
                    problems.append(f"{where}: refused with {outcome} but no refusal was audited")
        actual[operation] = {k: row[k] for k in KINDS}
    assert actual == expected
    assert problems == []
