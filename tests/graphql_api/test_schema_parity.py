"""Schema parity with Parse Server 9.10 (tests/graphql_reference: the schema Parse itself generated
for our six classes). Every query, mutation, argument, type, field and enum value Parse has exists
here with a compatible type: the same named type; nullable here only where that is a loosening
(an output Parse marks non-null may be null for a reader who may not see it; an input Parse
requires may be left out here)."""
from __future__ import annotations

import json
from pathlib import Path

from graphql import get_introspection_query, graphql_sync

from dashboard.api.graphql.schema import build_schema

REFERENCE = Path(__file__).parents[1] / "graphql_reference" / "parse-9.10.0-names.json"


def _type_string(ref: dict) -> str:
    if ref["kind"] == "NON_NULL":
        return _type_string(ref["ofType"]) + "!"
    if ref["kind"] == "LIST":
        return f"[{_type_string(ref['ofType'])}]"
    return ref["name"]


def ours() -> dict:
    result = graphql_sync(build_schema(), get_introspection_query())
    assert result.errors is None
    types = {t["name"]: t for t in result.data["__schema"]["types"]}
    return types


def compatible(parse: str, here: str, *, output: bool) -> bool:
    """Same type, where `here` may drop a non-null marker Parse has (never add one Parse lacks
    on an input: a client sending Parse-valid input must validate here)."""
    if parse == here:
        return True
    if output:
        return parse.replace("!", "") == here.replace("!", "") and all(
            p == h or p == "!" for p, h in _markers(parse, here))
    return parse.replace("!", "") == here.replace("!", "") and here.count("!") < parse.count("!")


def _markers(parse: str, here: str):
    i = j = 0
    while i < len(parse) and j < len(here):
        if parse[i] == here[j]:
            i += 1
            j += 1
        elif parse[i] == "!":
            yield "!", ""
            i += 1
        else:
            yield parse[i], here[j]
            return


def problems() -> list[str]:
    reference = json.loads(REFERENCE.read_text())
    types = ours()
    found: list[str] = []

    def fields_of(type_name: str) -> dict[str, dict]:
        t = types.get(type_name) or {}
        return {f["name"]: f for f in (t.get("fields") or t.get("inputFields") or [])}

    for root, root_type in (("query", "Query"), ("mutation", "Mutation")):
        here = fields_of(root_type)
        for name, parse_type in reference[root].items():
            if name not in here:
                found.append(f"{root}.{name} is missing")
            elif not compatible(parse_type, _type_string(here[name]["type"]), output=True):
                found.append(f"{root}.{name}: Parse {parse_type}, here {_type_string(here[name]['type'])}")
            else:
                args = {a["name"]: _type_string(a["type"]) for a in here[name]["args"]}
                for arg, arg_type in reference["args"][root].get(name, {}).items():
                    if arg not in args:
                        found.append(f"{root}.{name}({arg}) is missing")
                    elif not compatible(arg_type, args[arg], output=False):
                        found.append(f"{root}.{name}({arg}): Parse {arg_type}, here {args[arg]}")
    for type_name, parse_fields in reference["types"].items():
        t = types.get(type_name)
        if t is None:
            found.append(f"type {type_name} is missing")
            continue
        if isinstance(parse_fields, list):  # an enum's values
            values = {v["name"] for v in t.get("enumValues") or []}
            found += [f"{type_name}.{v} is missing" for v in parse_fields if v not in values]
            continue
        output = t["kind"] in ("OBJECT", "INTERFACE")
        here = fields_of(type_name)
        for name, parse_type in parse_fields.items():
            if name not in here:
                found.append(f"{type_name}.{name} is missing")
            elif not compatible(parse_type, _type_string(here[name]["type"]), output=output):
                found.append(f"{type_name}.{name}: Parse {parse_type}, here {_type_string(here[name]['type'])}")
    for scalar in reference.get("scalars", []):
        if scalar not in types or types[scalar]["kind"] != "SCALAR":
            found.append(f"scalar {scalar} is missing")
    return found


def test_every_name_parse_generates_for_the_six_classes_is_here_with_a_compatible_type():
    assert problems() == []


def test_the_check_itself_notices_a_missing_field_and_a_tightened_input():
    assert not compatible("String", "String!", output=False)  # Parse optional, required here
    assert compatible("String!", "String", output=False)  # required by Parse, optional here
    assert compatible("[MobilityScoreOrder!]", "[MobilityScoreOrder!]", output=False)
    assert not compatible("Float", "String", output=True)
