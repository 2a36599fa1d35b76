"""GraphQL `where` and `order` inputs turned into the REST `where` and `order` the store takes.

The translation only renames (GRAPHQL.md §5): every condition is checked and applied by the store's
query builder, as for REST. A `have` on a pointer other than by id is a subquery on the target
class, read through the store under the same principal, so a target the caller cannot read never
matches.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from dashboard.api.graphql.names import object_id_of
from dashboard.errors import InvalidInput, ParseCode
from dashboard.schema import CLASSES
from dashboard.serialize import pointer

OPERATORS = {"equalTo": "$eq", "notEqualTo": "$ne", "lessThan": "$lt", "lessThanOrEqualTo": "$lte",
             "greaterThan": "$gt", "greaterThanOrEqualTo": "$gte", "in": "$in", "notIn": "$nin",
             "exists": "$exists", "matchesRegex": "$regex", "options": "$options"}
UNSUPPORTED = ("inQueryKey", "notInQueryKey", "text")
ID_FIELDS = ("id", "objectId")
EQUALITY = ("equalTo", "in")
MAX_SUBQUERY = 1000
MAX_DEPTH = 4  # as REST's where

# (class name, REST where) -> the objectIds the principal may read among its matches
Subquery = Callable[[str, dict[str, Any]], Awaitable[list[str]]]


def _bad(field: str, rule: str) -> InvalidInput:
    return InvalidInput(field, rule, code=ParseCode.INVALID_QUERY)


def _operators(field: str, condition: Mapping[str, Any], convert: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, value in condition.items():
        if op in UNSUPPORTED:
            raise _bad(field, f"{op} is not supported")
        rest = OPERATORS.get(op)
        if rest is None:  # pragma: no cover - the schema's input types name every operator
            raise _bad(field, f"{op} is not an operator")
        if op in ("in", "notIn"):
            out[rest] = None if value is None else [convert(v) for v in value]
        elif op in ("exists", "options", "matchesRegex"):
            out[rest] = value
        else:
            out[rest] = None if value is None else convert(value)
    return out


async def to_rest_where(class_name: str, where: Mapping[str, Any] | None, subquery: Subquery,
                        depth: int = 0) -> dict[str, Any] | None:
    if not where:
        return None
    if depth > MAX_DEPTH:
        raise _bad("where", f"is nested more than {MAX_DEPTH} levels")
    specs = CLASSES[class_name]
    out: dict[str, Any] = {}
    for key, condition in where.items():
        if condition is None:
            continue
        if key in ("OR", "AND", "NOR"):
            parts = [await to_rest_where(class_name, c, subquery, depth + 1) or {} for c in condition]
            out[f"${key.lower()}"] = parts
        elif key in ID_FIELDS:
            out["objectId"] = {**out.get("objectId", {}),
                               **_operators(key, condition, lambda v: object_id_of(v, class_name))}
        elif key == "ACL" or key == "authData" and class_name == "_User":
            # Objects no one stores here: every object has the same empty ACL and no authData.
            if condition.keys() - {"exists"}:
                raise _bad(key, "takes only exists")
            if condition.get("exists") is (key != "ACL"):
                out["objectId"] = {"$in": []}  # matches nothing
        elif key in ("createdAt", "updatedAt"):
            out[key] = _operators(key, condition)
        elif (spec := specs.get(key)) is not None and spec.kind == "Pointer":
            out[key] = await _relation(key, spec.target or "", condition, subquery, depth)
        else:
            out[key] = _operators(key, condition)
    # A condition left empty (its variables unset) is no condition, as in Parse.
    return {k: v for k, v in out.items() if v != {}} or None


def _ids_only(where: Mapping[str, Any]) -> bool:
    """A `have` that names the target by id (equality or `in`): a plain pointer comparison."""
    return bool(where) and all(k in ID_FIELDS and v is not None and set(v) <= set(EQUALITY)
                               for k, v in where.items())


async def _relation(field: str, target: str, condition: Mapping[str, Any], subquery: Subquery,
                    depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, value in condition.items():
        if value is None:
            continue
        if op == "exists":
            out["$exists"] = value
            continue
        ids = await pointed_ids(target, value, subquery, depth)
        rest = "$in" if op == "have" else "$nin"
        out[rest] = [pointer(target, i) for i in ids]
    return out


async def pointed_ids(target: str, where: Mapping[str, Any], subquery: Subquery, depth: int) -> Sequence[str]:
    if _ids_only(where):
        ids: set[str] | None = None
        for key, ops in where.items():
            these = set()
            for op, value in ops.items():
                values = value if op == "in" else [value]
                these |= {object_id_of(v, target) for v in values}
            ids = these if ids is None else ids & these
        return sorted(ids or ())
    rest = await to_rest_where(target, where, subquery, depth + 1)
    found = await subquery(target, rest or {})
    if len(found) > MAX_SUBQUERY:
        raise _bad("have", f"matches more than {MAX_SUBQUERY} {target} records; narrow it")
    return found


def to_rest_order(order: Sequence[str] | None) -> str:
    """The order enum values are REST's ("scoreValue", "-createdAt"); objectId last keeps cursors stable."""
    # Every object's ACL is the same empty one (access is the care team's), so it orders nothing.
    fields = [f for f in dict.fromkeys(order or ()) if f.lstrip("-") != "ACL"]
    if not any(f.lstrip("-") == "objectId" for f in fields):
        fields.append("objectId")
    if len(fields) > 5:
        raise _bad("order", "takes at most 4 fields")
    return ",".join(fields)
