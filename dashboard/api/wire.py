"""Parse JSON <-> store values, and the response shapes of PARSE-API.md.

Incoming: Dates arrive as {"__type":"Date","iso":...} and Pointers as
{"__type":"Pointer","className":...,"objectId":...}; the store takes aware datetimes and objectId
strings. A value of the wrong shape is refused here with code 111 (INCORRECT_TYPE) naming the field; every other
rule (required fields, ranges, who may write what) is the store's.

Outgoing: `to_parse` gives the shape; top-level REST objects carry no `className` (Parse Server
sends none, and the SDK would otherwise take it for an attribute); included objects are inlined with
`"__type":"Object"`. Included pointers are fetched through `store.get_many`, so one the caller may
not read is simply absent and its pointer is dropped from the response.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dashboard.errors import InvalidInput, ParseCode
from dashboard.schema import CLASSES, FieldSpec
from dashboard.serialize import from_iso, to_parse

if TYPE_CHECKING:  # the store imports nothing from here; only the annotations need these
    from dashboard.access import Principal
    from dashboard.store import Store

# Fields every object keeps whatever `keys` asks for.
ALWAYS_KEPT = frozenset({"objectId", "createdAt", "updatedAt", "className", "__type"})
BUILTIN = frozenset({"objectId", "createdAt", "updatedAt"})
MAX_INCLUDE_PATHS = 10
MAX_INCLUDE_DEPTH = 3
MAX_KEYS = 50
USER_CLASS_NAMES = {"_User", "User"}


def _bad_type(field: str, rule: str) -> InvalidInput:
    return InvalidInput(str(field)[:60], rule, code=ParseCode.INCORRECT_TYPE)


def _bad_param(field: str, rule: str) -> InvalidInput:
    return InvalidInput(field, rule, code=ParseCode.INVALID_QUERY)


# ============================================================================ decoding
def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder, not one per call (json.loads builds a JSONDecoder whenever a hook is given).
_STRICT = json.JSONDecoder(parse_constant=_no_constant)


def loads_strict(text: bytes | str) -> Any:
    """JSON text as standard JSON only, for every channel (REST bodies and parameters, live-query
    messages): NaN, Infinity and -Infinity are refused, and nesting too deep for the decoder is
    refused too. Any refusal is a ValueError (json.JSONDecodeError for malformed text)."""
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads does
        return _STRICT.decode(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def decode_date(field: str, value: object) -> datetime:
    if isinstance(value, Mapping) and value.get("__type") == "Date":
        parsed = from_iso(value.get("iso"))
        if parsed is not None:
            return parsed
    raise _bad_type(field, 'must be a Date: {"__type":"Date","iso":"2026-01-02T03:04:05.006Z"}')


def decode_pointer(spec: FieldSpec, value: object) -> str:
    target = spec.target or ""
    if isinstance(value, Mapping) and value.get("__type") in ("Pointer", "Object"):
        class_name = value.get("className")
        object_id = value.get("objectId")
        same_class = class_name == target or (target == "_User" and class_name in USER_CLASS_NAMES)
        if same_class and isinstance(object_id, str) and object_id:
            return object_id
    raise _bad_type(spec.name, f"must be a Pointer to {target}")


def decode_value(spec: FieldSpec, value: object) -> object:
    if isinstance(value, Mapping) and "__op" in value:
        if value.get("__op") == "Delete":
            return None
        raise _bad_type(spec.name, f"the operation {str(value.get('__op'))[:30]!r} is not supported")
    if spec.kind == "Date":
        return None if value is None else decode_date(spec.name, value)
    if spec.kind == "Pointer":
        return None if value is None else decode_pointer(spec, value)
    if isinstance(value, (Mapping, list)):
        expected = {"String": "text", "Number": "a number", "Boolean": "true or false"}.get(spec.kind, spec.kind)
        raise _bad_type(spec.name, f"must be {expected}")
    return value


def decode_fields(class_name: str, body: Mapping[str, object]) -> dict[str, object]:
    """Parse JSON fields -> store values. Unknown names pass through: the store refuses them (105)."""
    specs = CLASSES.get(class_name, {})
    out: dict[str, object] = {}
    for name, value in body.items():
        if name in BUILTIN or name == "className":
            raise InvalidInput(str(name), "is set by the server", code=ParseCode.INVALID_KEY_NAME)
        if name == "ACL":
            # Access here is the care team's (ACCESS.md), not per-object ACLs; one sent is ignored.
            if not isinstance(value, Mapping):
                raise _bad_type("ACL", "must be an object")
            continue
        spec = specs.get(name)
        out[name] = decode_value(spec, value) if spec is not None else value
    return out


# ============================================================================ encoding
def rest_object(data: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level object of a REST response: the Parse shape without `className`."""
    return {k: v for k, v in data.items() if k != "className"}


def encode_row(row: object) -> dict[str, Any]:
    return rest_object(to_parse(row))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- include
def _as_list(value: object, name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise _bad_param(name, "must be a comma-separated list of field names")
    return [i for i in items if i]


def parse_include(class_name: str, include: object) -> dict[str, Any]:
    """Validates `include` ("a,b.c") against the schema; returns a tree {field: {...}} of pointers."""
    paths = _as_list(include, "include")
    if len(paths) > MAX_INCLUDE_PATHS:
        raise _bad_param("include", f"takes at most {MAX_INCLUDE_PATHS} paths")
    tree: dict[str, Any] = {}
    for path in paths:
        if path == "*":
            raise _bad_param("include", "'*' is not supported; name the pointer fields")
        parts = path.split(".")
        if len(parts) > MAX_INCLUDE_DEPTH:
            raise _bad_param("include", f"paths are at most {MAX_INCLUDE_DEPTH} levels deep")
        current_class, node = class_name, tree
        for part in parts:
            spec = CLASSES.get(current_class, {}).get(part)
            if spec is None or spec.kind != "Pointer":
                raise _bad_param("include", f"{path[:100]!r}: {part[:60]!r} is not a pointer field of {current_class}")
            node = node.setdefault(part, {"__class": spec.target, "__children": {}})["__children"]
            current_class = spec.target or ""
    return tree


async def resolve_includes(store: Store, principal: Principal | None, objects: list[dict[str, Any]],
                           tree: Mapping[str, Any]) -> None:
    """Inlines included pointers in place, level by level, one `get_many` per field and level."""
    for field, node in tree.items():
        target = node["__class"]
        ids = [o[field]["objectId"] for o in objects
               if isinstance(o.get(field), Mapping) and o[field].get("__type") == "Pointer"]
        found = await store.get_many(principal=principal, class_name=target, object_ids=ids) if ids else {}
        inlined: list[dict[str, Any]] = []
        cache: dict[str, dict[str, Any]] = {}
        for obj in objects:
            pointer = obj.get(field)
            if not (isinstance(pointer, Mapping) and pointer.get("__type") == "Pointer"):
                continue
            row = found.get(pointer["objectId"])
            if row is None:
                del obj[field]  # not readable by the caller (or gone): never shown, not even its id
                continue
            data = cache.get(pointer["objectId"])
            if data is None:
                data = cache[pointer["objectId"]] = {"__type": "Object", **to_parse(row)}
                inlined.append(data)
            obj[field] = data
        if node["__children"] and inlined:
            await resolve_includes(store, principal, inlined, node["__children"])


# ---------------------------------------------------------------------------- keys
def parse_keys(class_name: str, keys: object, name: str = "keys") -> dict[str, Any] | None:
    """`keys` ("a,b.c") as a tree {field: subtree-or-None}; None when not given."""
    items = _as_list(keys, name)
    if not items:
        return None
    if len(items) > MAX_KEYS:
        raise _bad_param(name, f"takes at most {MAX_KEYS} fields")
    specs = CLASSES.get(class_name, {})
    for item in items:
        first = item.partition(".")[0]
        if first not in specs and first not in BUILTIN:
            raise _bad_param(name, f"{first[:60]!r} is not a field of {class_name}")
    return _subtree(items)


def select_keys(obj: dict[str, Any], tree: Mapping[str, Any] | None, *, exclude: bool = False) -> dict[str, Any]:
    """Keeps (or with exclude, drops) the named fields; nested names apply to inlined objects."""
    if tree is None:
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        named = key in tree
        nested = tree.get(key)
        if exclude:
            if named and nested is None:
                continue
            if nested and isinstance(value, dict) and value.get("__type") == "Object":
                value = select_keys(value, _subtree(nested), exclude=True)
            out[key] = value
        elif key in ALWAYS_KEPT or named:
            if nested and isinstance(value, dict) and value.get("__type") == "Object":
                value = select_keys(value, _subtree(nested))
            out[key] = value
    return out


def _subtree(paths: Iterable[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        first, _, rest = path.partition(".")
        if rest:
            sub = tree.get(first)
            if not isinstance(sub, list):
                sub = tree[first] = []
            sub.append(rest)
        else:
            tree.setdefault(first, None)
    return tree
