"""Bounded fuzzing of the Parse API (REST and live queries): deterministic, fixed budget, no example database.

Hypothesis runs with a fixed seed (`derandomize=True`), a fixed number of examples, no deadline and
`database=None`, so every run of the suite tries the same inputs and writes nothing into the repository.
The inputs mix the review's M2 cases (REVIEW-SECURITY.md: unpaired surrogates escaped in JSON, NUL, huge
skip/limit, invalid regexes, null on required fields, {"__op":"Delete"}, NaN/Infinity/1e400 literals,
deep nesting, very long strings) into otherwise valid requests, one fault at a time, so that they reach
the store and not only the decoder: every class on /parse/classes (find with where/order/limit/skip/keys/
include/count, create, get/update/delete by id), /users, /login, /logout, /users/me, /batch and /health,
with header credentials and in the JS SDK's text/plain envelope (_method, _ApplicationId, _SessionToken).

What must hold for every request (PARSE-API.md: the SDK retries every 5xx, POST included):
- never a 5xx, and nothing raised out of the app (uvicorn would answer a bare 500);
- every 4xx body is exactly {"code": int, "error": str}, except the documented 403 {"error":"unauthorized"}
  (413 and 429 have that shape too, codes 116 and 100); no batch entry is an internal error (code 1);
- a refused request (4xx, or a batch whose every entry failed) and every read change no row: the row
  count (and the sum of versions, which catches an update) of every record table, read model and the
  session table is the same before and after;
- no ERROR record (a logged traceback) from the 'ot_tracker' loggers, uvicorn or asyncio, the read-audit
  rows of the request written (flushed) before judging it.
For the live query (connect, subscribe, update, unsubscribe with random shapes): every message gets a
protocol answer, never `error 1 "The message could not be handled"`, and nothing is logged at ERROR,
also when a write is then matched against the subscriptions made.

The review's reproductions and the smallest input of each failure found so far also run one by one
(`test_known_bad_inputs`, `test_known_bad_live_queries`), so that all of them are listed at once.
Object ids, tokens and pointers are drawn as `Ref`s and resolved against the test's world, so that a
falsifying example reads as what was sent.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from dashboard import models
from dashboard.schema import CLASSES
from tests.api.conftest import APP_ID
from tests.support import PASSWORD

# ====================================================================== budget
# The whole file, SQLite and PostgreSQL, runs in about 45 s on 2 shared cores (all passing; each
# failure adds its shrinking, a few seconds). The examples per test are set where each test is defined.
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False,
                phases=(Phase.explicit, Phase.generate, Phase.shrink),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])
REPLY_TIMEOUT = 3.0


def fuzz(max_examples: int) -> settings:
    return settings(FUZZ, max_examples=max_examples)


# ====================================================================== values
class Raw:
    """A JSON literal sent exactly as written: NaN, Infinity, 1e400, nesting the encoder would refuse."""

    def __init__(self, text: str, label: str | None = None):
        self.text = text
        self.label = label

    def __repr__(self) -> str:
        return f"Raw({self.label or self.text!r})"


@dataclass(frozen=True)
class Ref:
    """An id from the world, resolved when the example runs (see `Fixture.resolve`)."""

    name: str

    def __repr__(self) -> str:
        return f"Ref({self.name!r})"


def pointer(class_name: str, ref: object) -> dict[str, Any]:
    return {"__type": "Pointer", "className": class_name, "objectId": ref}


def date(iso: object) -> dict[str, Any]:
    return {"__type": "Date", "iso": iso}


def encode(value: Any) -> str:
    """JSON text; strings go through json.dumps, so "\\ud800" and NUL travel as escapes, as the review sent them."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


class Long(str):
    """A long string that prints as `'x' * n` in a falsifying example."""

    def __repr__(self) -> str:
        return f"{self[:1]!r} * {len(self)}" if len(set(self)) == 1 else f"{self[:20]!r}... ({len(self)} chars)"


def long(n: int, ch: str = "x") -> Long:
    return Long(ch * n)


NESTED_OBJECTS = Raw('{"a":' * 400 + "1" + "}" * 400, "400 nested objects")
NESTED_LISTS = Raw("[" * 5000 + "]" * 5000, "5000 nested lists")
NESTED_OR = Raw('{"$or":[' * 30 + "{}" + "]}" * 30, "30 nested $or")
HUGE_DIGITS = Raw("9" * 5000, "5000 digits")
LONG = long(300_000)  # within the 1 MB body limit, far beyond every field's
SURROGATES = ["\ud800", "x\ud800", "\udfff", "\udc00x", "\ud800\ud800", "\ud83d"]
NULS = ["\x00", "a\x00b", "x" * 10 + "\x00"]
PLAIN_TEXTS = ["", " ", "x", "é", "💥", "\u202eevil", "\n", "\\", "%", "_", "'; DROP TABLE patients;--", "DEMO-P"]
LONG_TEXTS: list[Any] = ["x" * 17, "x" * 201, long(20_001), LONG]
PLAIN_NUMBERS: list[Any] = [0, 1, -1, 40, 1.5, -0.0]
HUGE_NUMBERS: list[Any] = [1e308, 2**53 + 1, 2**63, 2**64, 99999999999999999999, -99999999999999999999, HUGE_DIGITS]
LITERALS = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400"), Raw("1e-400")]
OPS: list[Any] = [
    {"__op": "Delete"}, {"__op": "Increment", "amount": 1}, {"__op": "Add", "objects": [1]}, {"__op": 5},
    {"__op": None}, {"__op": "Delete", "extra": 1},
]
DATES: list[Any] = [
    date("2026-01-01T00:00:00.000Z"), date("0001-01-01T00:00:00.000Z"), date("9999-12-31T23:59:59.999Z"),
    date("2026-13-45T99:99:99.000Z"), date("2026-01-01T00:00:00.000+14:00"), date("x\ud800"), date("\x00"),
    date(5), date(None), date(LONG), {"__type": "Date"}, "2026-01-01T00:00:00.000Z",
]
POINTERS: list[Any] = [
    pointer("Patient", Ref("patient")), pointer("Patient", Ref("other_patient")), pointer("_User", Ref("owner_user")),
    pointer("_User", Ref("lead_user")), pointer("Patient", "x" * 500), pointer("Patient", "\x00"),
    pointer("Patient", "\ud800"), pointer("Patient", 5), pointer("Wrong", Ref("patient")), {"__type": "Pointer"},
    {"__type": "Object", "className": "Patient", "objectId": Ref("patient")}, {"objectId": Ref("patient")},
    pointer("SessionNote", Ref("note")),
]
CONTAINERS: list[Any] = [
    [], [1], {}, {"a": 1}, [[[[]]]], NESTED_OBJECTS, NESTED_LISTS, {"__type": "Bytes", "base64": "AA=="},
    {"__type": "GeoPoint", "latitude": 1, "longitude": 2}, {"$regex": "("}, {"\ud800": 1}, {"": None},
]
# Drawn kind first, then a value of that kind: the few surrogates and NULs are as likely as the many dates.
VALUE_KINDS = [[None, True, False], PLAIN_TEXTS, SURROGATES, NULS, LONG_TEXTS, PLAIN_NUMBERS, HUGE_NUMBERS, LITERALS,
               OPS, DATES, POINTERS, CONTAINERS]
ANY_VALUE = st.one_of(*(st.sampled_from(kind) for kind in VALUE_KINDS))

# Values of the right kind, so that a mutated body still gets past the type checks to the store.
GOOD: dict[str, list[Any]] = {
    "patientId": [Ref("fresh_patient_id")], "displayName": ["Fuzz Patient", "Zoë Ñandú"],
    "mobilityStatus": ["independent", "supervision"], "scoreType": ["berg", "barthel"],
    "scoreValue": [40, 1, 56], "status": ["checked_out", "returned"], "sessionType": ["review"],
    "equipmentName": ["Walker", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"], "noteText": ["t"],
    "role": ["contributor", "therapist", "viewer"], "username": [Ref("fresh_username")],
    "email": [Ref("fresh_email")], "password": [PASSWORD],
}
KIND_GOOD: dict[str, list[Any]] = {
    "String": ["text"], "Number": [3], "Boolean": [True, False], "Date": [date("2026-01-01T00:00:00.000Z")],
}
BASES: dict[str, dict[str, Any]] = {
    "Patient": {"patientId": Ref("fresh_patient_id"), "displayName": "Fuzz Patient", "mobilityStatus": "independent",
                "primaryTherapist": pointer("_User", Ref("owner_user")), "dateOfBirth": date("1950-01-01T00:00:00.000Z")},
    "MobilityScore": {"patient": pointer("Patient", Ref("patient")), "scoreType": "berg", "scoreValue": 40,
                      "scoreDate": date("2026-01-01T00:00:00.000Z"), "notes": "n"},
    "SessionNote": {"patient": pointer("Patient", Ref("patient")), "sessionType": "review", "noteText": "t",
                    "followUpNeeded": False, "sessionDate": date("2026-01-01T00:00:00.000Z")},
    "EquipmentLog": {"patient": pointer("Patient", Ref("patient")), "equipmentName": "Walker",
                     "status": "checked_out", "serialNumber": "S-1"},
    "StatusHistory": {"patient": pointer("Patient", Ref("patient")), "statusType": "mobilityStatus",
                      "toValue": "independent"},
    "_User": {"username": Ref("fresh_username"), "email": Ref("fresh_email"), "password": PASSWORD,
              "role": "contributor"},
}
OTHER_CLASSES = ["User", "_Session", "CareTeamMember", "Nope", "patient", "P" * 40, "\ud800", "a\x00"]
# Objects of each class that the examples may read or change. The lead's own account and the
# accounts that make requests are never changed (a deactivated caller would end the fuzzing).
OBJECT_REFS: dict[str, list[Any]] = {
    "Patient": [Ref("patient"), Ref("other_patient")], "MobilityScore": [Ref("score")],
    "SessionNote": [Ref("note")], "EquipmentLog": [Ref("equipment")], "StatusHistory": [Ref("history")],
    "_User": [Ref("target_user"), Ref("other_target_user")],
}
BAD_IDS = ["nope123456", "x" * 17, "\x00", "\ud800", "%00", "a b", "x" * 16, "é"]
EXTRA_FIELDS: list[Any] = ["noSuchField", "objectId", "createdAt", "updatedAt", "className", "ACL", "$where",
                           "a.b", "", "\ud800", "x\x00", long(5000), "changeReason", "_method", "__type",
                           "password", "role", "active"]

WHO = ["lead", "lead", "lead", "owner", "viewer", "team_contributor", None, "bad", "revoked", "long"]
SIGNED_IN = WHO[:6]


def one_in(n: int, rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`rare` once in `n` draws, else `usual` (which the shrinker prefers): one fault at a time, so that
    most requests get past the checks before the one under test."""
    return st.integers(0, n - 1).flatmap(lambda i: rare if i == n - 1 else usual)


CLASS = one_in(8, st.sampled_from(OTHER_CLASSES), st.sampled_from(list(CLASSES)))
CALLER = one_in(6, st.sampled_from(WHO[6:]), st.sampled_from(SIGNED_IN))


def field_values(class_name: str, name: str) -> st.SearchStrategy[Any]:
    spec = CLASSES.get(class_name, {}).get(name)
    good = GOOD.get(name, KIND_GOOD.get(spec.kind, []) if spec else [])
    if spec is not None and spec.kind == "Pointer":
        good = [p for p in POINTERS[:4] if p["className"] == (spec.target or "")] or POINTERS[:1]
    return ANY_VALUE if not good else st.one_of(st.sampled_from(good), ANY_VALUE)


# ====================================================================== where, order, keys
WHERE_OPS = ["$lt", "$lte", "$gt", "$gte", "$ne", "$in", "$nin", "$exists", "$regex", "$options",
             "$where", "$select", "$inQuery", "$text", "$nearSphere", "$all", "$", "$regex\x00", "$\ud800"]
REGEXES: list[Any] = [
    "(", "[", "\\", "a**", "\\p{L}", "^(a+)+$", "(?=x)", "(?<!a)b", "(a)\\1", "\\8", "a{1001}", "a{1000}{1000}",
    "a{2,1}", "x" * 129, "\ud800", "[\ud800-\udfff]", "\x00", "a\x00b", "", ".*", "(?i)a", "[[:alpha:]]",
    "\\Q(", "\\C", "(?P<n>a)(?P=n)", "\\pN", "\\x{110000}", "**", "?", "+", "{", "(?", ")", "\\u0041", 5, None,
    ["a"],
]
REGEX_OPTIONS: list[Any] = ["i", "m", "x", "s", "im", "", "ii", "\x00", 5, None, "\ud800"]


def where_fields(class_name: str) -> st.SearchStrategy[str]:
    """Fields a `where` may name: mostly the class's own (the others are refused before the database)."""
    real = [*CLASSES.get(class_name, {}), "objectId", "createdAt", "updatedAt"]
    return one_in(8, st.sampled_from(["password", "noSuchField", "", "\ud800", "a\x00", "patient.objectId", "$and"]),
                  st.sampled_from(real))


def where_values(class_name: str, name: str) -> st.SearchStrategy[Any]:
    """A value compared with a field: mostly of any kind, sometimes of the field's own."""
    return st.one_of(ANY_VALUE, ANY_VALUE, field_values(class_name, name))


@st.composite
def conditions(draw: st.DrawFn, class_name: str, name: str) -> Any:
    kind = draw(st.sampled_from(["value", "value", "operators", "operators", "regex"]))
    if kind == "value":
        return draw(where_values(class_name, name))
    if kind == "regex":
        return {"$regex": draw(st.sampled_from(REGEXES)),
                **({"$options": draw(st.sampled_from(REGEX_OPTIONS))} if draw(st.booleans()) else {})}
    supported, other = WHERE_OPS[:10], WHERE_OPS[10:]
    ops = draw(st.lists(st.sampled_from(supported * 2 + other), min_size=1, max_size=2, unique=True))
    out: dict[str, Any] = {}
    for op in ops:
        if op in ("$in", "$nin", "$all"):
            out[op] = draw(st.one_of(st.lists(where_values(class_name, name), min_size=1, max_size=3),
                                     st.sampled_from([[1] * 1001, ["x"] * 1000, [], "x", None, {}])))
        elif op.startswith("$regex"):
            out[op] = draw(st.sampled_from(REGEXES))
        elif op == "$options":
            out[op] = draw(st.sampled_from(REGEX_OPTIONS))
        elif op == "$exists":
            out[op] = draw(st.sampled_from([True, False, "yes", None, 1]))
        else:
            out[op] = draw(where_values(class_name, name))
    return out


@st.composite
def wheres(draw: st.DrawFn, class_name: str, depth: int = 0) -> Any:
    if depth == 0 and draw(st.integers(0, 11)) == 11:
        return draw(st.sampled_from([[], "x", 5, None, NESTED_OBJECTS, NESTED_LISTS, NESTED_OR, Raw("NaN"),
                                     {"displayName": LONG}, {"$or": []}, {"$or": {"a": 1}}]))
    names = draw(st.lists(where_fields(class_name), min_size=1 if depth == 0 else 0, max_size=3, unique=True))
    out: dict[str, Any] = {name: draw(conditions(class_name, name)) for name in names}
    if depth < 6 and draw(st.integers(0, 4)) == 0:
        out["$or"] = draw(st.lists(wheres(class_name, depth + 1), min_size=1, max_size=2))
    return out


def field_lists(class_name: str) -> st.SearchStrategy[Any]:
    """`keys`, `include`, `excludeKeys`, `watch`: a comma list, mostly of the class's fields."""
    own = [*CLASSES.get(class_name, {}), "objectId", "patient.primaryTherapist", "patient.primaryTherapist.username"]
    other = ["primaryTherapist", "noSuchField", "*", "", " ", "a.b.c.d", "\ud800", "x\x00", "-patient"]
    joined = st.lists(one_in(5, st.sampled_from(other), st.sampled_from(own)), max_size=4).map(",".join)
    return one_in(6, st.sampled_from([",".join(["patient"] * 11), 5, ["patient"], [5], {}, None, long(5000)]), joined)


def orders(class_name: str) -> st.SearchStrategy[Any]:
    names = [*CLASSES.get(class_name, {}), "objectId", "createdAt", "password", "noSuchField", "\ud800", ""]
    joined = st.lists(st.sampled_from([*names, *("-" + n for n in names)]), max_size=6).map(",".join)
    return st.one_of(joined, st.sampled_from([5, [1], ["-createdAt"], None, {}, "a,b,c,d,e,f"]))


NUMBER_PARAMS: list[Any] = ["0", "1", "100", "1000", "1001", "-1", "99999999999999999999", "-99999999999999999999",
                            "1e400", "NaN", "Infinity", "1.5", "null", "true", '"5"', "[]", "{}", "\x00", "",
                            long(5000, "9"), "-0", "2147483648", "9223372036854775808"]
COUNTS: list[Any] = ["1", "0", "true", "false", "2", "", "null", "[1]", "\ud800"]


# ====================================================================== requests
@dataclass
class Req:
    """One REST call. `params`: for "header", text goes into the query string as it is and anything else
    as its JSON; for "sdk" they are JSON values in the body."""

    method: str
    path: str | tuple[str, Any]  # below /parse; (prefix, object id) when it ends with an id
    who: str | None = "lead"
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None  # JSON value (encoded with `encode`), bytes sent as is, or None
    transport: str = "header"  # "header": X-Parse-* headers; "sdk": POST text/plain with _method etc.
    meta: dict[str, Any] = field(default_factory=dict)  # extra _fields for "sdk", extra headers for "header"


@st.composite
def transports(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    transport = draw(st.sampled_from(["header", "header", "sdk", "sdk"]))
    meta: dict[str, Any] = {}
    if draw(st.integers(0, 5)) == 0:
        if transport == "sdk":
            name = draw(st.sampled_from(["_ApplicationId", "_SessionToken", "_InstallationId", "_ClientVersion",
                                         "_IfMatch", "_context", "_RevocableSession", "_JavaScriptKey", "_MasterKey",
                                         "_method"]))
            meta[name] = draw(st.sampled_from([None, 5, True, {}, [], "", "\ud800", "\x00", "x" * 300,
                                               "PATCH", "get", APP_ID, '"3"', "W/\"99999999999999\""]))
        else:
            name = draw(st.sampled_from(["X-Parse-Application-Id", "X-Parse-Session-Token", "If-Match",
                                         "X-Parse-Installation-Id", "X-Parse-Master-Key", "Content-Type"]))
            meta[name] = draw(st.sampled_from(["", "wrong", "\xff\xfe", "x" * 300, '"3"', 'W/"2"', '"99999999999999"',
                                               "text/plain", "application/x-www-form-urlencoded", "abc"]))
    return transport, meta


@st.composite
def find_requests(draw: st.DrawFn) -> Req:
    class_name = draw(CLASS)
    transport, meta = draw(transports())
    sdk = transport == "sdk"
    params: dict[str, Any] = {}
    names = draw(st.lists(st.sampled_from(["order", "limit", "skip", "keys", "include", "count", "excludeKeys"]),
                          max_size=2, unique=True))
    if draw(st.integers(0, 5)) < 5:
        names.insert(0, "where")
    if draw(st.integers(0, 14)) == 14:
        names.append("noSuchParam")
    for name in names:
        if name == "where":
            value = draw(wheres(class_name))
            params[name] = value if sdk or draw(st.integers(0, 9)) < 9 else draw(
                st.sampled_from(["{not json", "\ud800", "\x00", "[", ""]))
        elif name == "order":
            params[name] = draw(orders(class_name))
        elif name in ("limit", "skip"):
            text = draw(st.sampled_from(NUMBER_PARAMS))
            params[name] = _json_value(text) if sdk else text
        elif name == "count":
            text = draw(st.sampled_from(COUNTS))
            params[name] = _json_value(text) if sdk else text
        elif name == "noSuchParam":
            params[name] = "1"
        else:
            params[name] = draw(field_lists(class_name))
    path = "users" if class_name == "_User" and draw(st.booleans()) else f"classes/{class_name}"
    body = draw(one_in(15, st.sampled_from([{"where": {}}, b"{", {"displayName": "x"}]), st.none()))
    return Req("GET", path, draw(CALLER), params, body if not sdk else None, transport, meta)


def _json_value(text: str) -> Any:
    """What the SDK would send for a query-string value: its JSON where it parses (Raw keeps literals)."""
    try:
        json.loads(text)
    except ValueError:
        return text
    return Raw(text)


@st.composite
def bodies(draw: st.DrawFn, class_name: str, *, create: bool) -> Any:
    choice = draw(st.integers(0, 12))
    if choice == 0:
        return draw(st.sampled_from([b"{", b"[1]", b"null", b"NaN", b'{"a": 1} x', b"\xff\xfe{}", b'{"a":"\xed\xa0\x80"}',
                                     b'{"displayName": "x\\ud800"}', NESTED_LISTS, NESTED_OBJECTS, [], "text", 5]))
    specs = CLASSES.get(class_name, {})
    body: dict[str, Any] = dict(BASES.get(class_name, {})) if create else {}
    names = list(specs)
    if names:
        for name in draw(st.lists(st.sampled_from(names), min_size=0 if create else 1, max_size=3, unique=True)):
            if create and draw(st.integers(0, 4)) == 0:
                body.pop(name, None)  # a required field left out
            else:
                body[name] = draw(field_values(class_name, name))
    if draw(st.integers(0, 4)) == 0:
        extra = draw(st.sampled_from(EXTRA_FIELDS))
        body[extra] = draw(ANY_VALUE) if extra != "changeReason" else draw(
            st.sampled_from(["typo", None, 5, *SURROGATES, *NULS, long(20_001)]))
    return body


@st.composite
def object_requests(draw: st.DrawFn) -> Req:
    """POST create, and GET / PUT / DELETE by id, on every class."""
    class_name = draw(CLASS)
    method = draw(st.sampled_from(["POST", "POST", "PUT", "PUT", "PUT", "GET", "DELETE"]))
    transport, meta = draw(transports())
    params: dict[str, Any] = {}
    body: Any = None
    path: str | tuple[str, Any]
    if method == "POST":
        path = "users" if class_name == "_User" and draw(st.booleans()) else f"classes/{class_name}"
        body = draw(bodies(class_name, create=True))
    else:
        object_id = draw(st.sampled_from(OBJECT_REFS.get(class_name, []) * 3 + BAD_IDS))
        prefix = f"classes/{class_name}/" if class_name != "_User" or draw(st.booleans()) else "users/"
        path = (prefix, object_id)
        if method == "PUT":
            body = draw(bodies(class_name, create=False))
        elif method == "GET":
            for name in draw(st.lists(st.sampled_from(["include", "keys", "excludeKeys", "where"]), max_size=2,
                                      unique=True)):
                params[name] = draw(field_lists(class_name)) if name != "where" else "{}"
        elif draw(st.integers(0, 3)) == 0:
            body = {"x": 1}
    return Req(method, path, draw(CALLER), params, body, transport, meta)


USERNAMES: list[Any] = ["lead", "LEAD", "lea_", "lead%", "%", "owner", "nobody", "", " ", None, 5, True, [], {},
                        *SURROGATES[:2], *NULS[:2], "x" * 65, long(100_000), Ref("fresh_username")]
PASSWORDS: list[Any] = [PASSWORD, "wrong-password-xx", "", None, 5, [], {}, "\ud800", "\x00" * 12, " " * 12,
                        long(1_000_000), "short", "long-enough-password", {"__op": "Delete"}]
EMAILS: list[Any] = [Ref("fresh_email"), "lead@example.org", "LEAD@example.org", "x", "", None, 5, "a@b",
                     "x\ud800@example.org", "a\x00@example.org", "x" * 300 + "@example.org"]


@st.composite
def account_requests(draw: st.DrawFn) -> Req:
    """Sign-up, login (POST and GET), logout, users/me and health."""
    transport, meta = draw(transports())
    kind = draw(st.sampled_from(["signup", "signup", "login", "login", "login_get", "logout", "me", "health"]))
    who = draw(CALLER)
    params: dict[str, Any] = {}
    body: Any = None
    if kind == "signup":
        body = {}
        for name, pool in (("username", USERNAMES), ("email", EMAILS), ("password", PASSWORDS)):
            if draw(st.integers(0, 6)):
                body[name] = draw(st.sampled_from(pool[:1] * 4 + pool))
        if draw(st.integers(0, 4)) == 0:
            body[draw(st.sampled_from(["role", "active", "noSuchField", "authData", "objectId"]))] = draw(
                st.sampled_from(["lead", "viewer", True, None, 5, {}, "\ud800"]))
        if draw(st.integers(0, 8)) == 0:
            body = draw(bodies("_User", create=True))
        return Req("POST", "users", who if draw(st.integers(0, 2)) == 0 else None, params, body, transport, meta)
    if kind in ("login", "login_get"):
        source: dict[str, Any] = {}
        for name, pool in (("username", USERNAMES), ("password", PASSWORDS)):
            if draw(st.integers(0, 6)):
                source[name] = draw(st.sampled_from(pool))
        if draw(st.integers(0, 5)) == 0:
            source[draw(st.sampled_from(["authData", "email", "noSuchParam"]))] = draw(
                st.sampled_from([{}, {"anonymous": {"id": "x"}}, "x", None]))
        if kind == "login_get":
            params = source
            return Req("GET", "login", None, params, None, transport, meta)
        return Req("POST", "login", None, params, source, transport, meta)
    if kind == "logout":
        who = draw(st.sampled_from(["fresh", "fresh", None, "bad", "revoked", "long"]))
        body = draw(st.sampled_from([None, None, {}, {"x": 1}, b"{"]))
        return Req("POST", "logout", who, params, body, transport, meta)
    if kind == "me":
        params = draw(st.sampled_from([{}, {}, {"include": "x"}, {"noSuchParam": "1"}, {"where": "{}"}]))
        body = draw(st.sampled_from([None, None, {"x": 1}, b"{"]))
        return Req("GET", "users/me", who, params, body, transport, meta)
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    body = draw(st.sampled_from([None, {"x": "\ud800"}, b"{", {"_method": "DELETE"}]))
    return Req(method, "health", who, draw(st.sampled_from([{}, {"x": "\x00"}])), body, transport, meta)


BATCH_PATHS = ["/parse/classes/{c}", "/parse/classes/{c}/{id}", "/parse/users", "/parse/users/me", "/parse/login",
               "/parse/logout", "/parse/batch", "/parse/health", "/classes/{c}", "classes/{c}", "/parse/classes/{c}?x=1",
               "/parse/../classes/{c}", "/parse/classes/{c}/{id}/x", "/parse/classes/\ud800", "/parse/" + "x" * 400]


@st.composite
def batch_items(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from([1, None, "x", [], {}, {"method": "POST"}, {"method": 5, "path": "/parse/health"},
                                     {"method": "POST", "path": 5, "body": {}},
                                     {"method": "PATCH", "path": "/parse/classes/Patient", "body": {}},
                                     {"method": "POST", "path": "/parse/classes/Patient", "body": {}, "x": 1},
                                     {"method": "POST", "path": "/parse/classes/Patient", "body": [1]}]))
    class_name = draw(CLASS)
    method = draw(st.sampled_from(["POST", "PUT", "GET", "DELETE", "get", "post"]))
    template = draw(st.sampled_from(BATCH_PATHS[:2] * 4 + BATCH_PATHS))
    object_id = draw(st.sampled_from(OBJECT_REFS.get(class_name, []) + BAD_IDS[:3]))
    if method.upper() == "GET":
        body: Any = {}
        for name in draw(st.lists(st.sampled_from(["where", "limit", "skip", "order", "keys", "include", "count"]),
                                  max_size=3, unique=True)):
            if name == "where":
                body[name] = draw(wheres(class_name))
            elif name in ("limit", "skip", "count"):
                body[name] = _json_value(draw(st.sampled_from(NUMBER_PARAMS)))
            elif name == "order":
                body[name] = draw(orders(class_name))
            else:
                body[name] = draw(field_lists(class_name))
    else:
        body = draw(bodies(class_name, create=method.upper() == "POST"))
        if isinstance(body, bytes):
            body = {}
    return {"method": method, "path": (template, class_name, object_id), "body": body}


@st.composite
def batch_requests(draw: st.DrawFn) -> Req:
    transport, meta = draw(transports())
    if draw(st.integers(0, 9)) == 0:
        body: Any = draw(st.sampled_from([{}, {"requests": []}, {"requests": "x"}, {"requests": None},
                                          {"requests": [{}] * 51}, {"requests": [], "transaction": True},
                                          {"requests": [], "x": 1}, NESTED_LISTS, b"{"]))
    else:
        body = {"requests": draw(st.lists(batch_items(), min_size=1, max_size=4))}
        if draw(st.integers(0, 7)) == 0:
            body["transaction"] = draw(st.sampled_from([True, False, None, "x"]))
    return Req("POST", "batch", draw(CALLER), {}, body, transport, meta)


# ====================================================================== running a request
class ErrorLog(logging.Handler):
    """Collects ERROR records (tracebacks) of the server's loggers while a test runs."""

    LOGGERS = ("ot_tracker", "uvicorn", "asyncio")  # and their children
    FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        """The records since the last call, each as its message, exception and where in the app it was raised."""
        out = []
        for r in self.records:
            text = f"{r.name}: {r.getMessage()}"
            if r.exc_info and r.exc_info[1] is not None:
                rendered = "".join(traceback.format_exception(r.exc_info[1]))
            else:  # dashboard.log_privacy renders it itself, without the database's message
                rendered = r.exc_text or ""
            lines = [line.strip() for line in rendered.splitlines() if line.strip()]
            if lines:
                frames = self.FRAME.findall(rendered)
                ours = [f for f in frames if "/dashboard/" in f[0]]
                where = f" at {ours[-1][0].split('/work/main/')[-1]}:{ours[-1][1]} ({ours[-1][2]})" if ours else ""
                text += f" [{lines[-1][:300]}{where}]"
            out.append(text)
        self.records.clear()
        return out


@contextmanager
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    loggers = [logging.getLogger(name) for name in ErrorLog.LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


SNAPSHOT_MODELS = (models.User, models.Patient, models.MobilityScore, models.EquipmentLog, models.SessionNote,
                   models.StatusHistory, models.CareTeamMember, models.ScoreSummary, models.PatientActivity,
                   models.AuthSession)


def _snapshot_statement() -> Any:
    columns = []
    for model in SNAPSHOT_MODELS:
        columns.append(select(func.count()).select_from(model).scalar_subquery().label(model.__tablename__))
        if hasattr(model, "version"):
            columns.append(select(func.coalesce(func.sum(model.version), 0)).scalar_subquery()
                           .label(model.__tablename__ + ".versions"))
    columns.append(select(func.count()).select_from(models.AuthSession)
                   .where(models.AuthSession.revoked_at.is_(None)).scalar_subquery().label("live sessions"))
    columns.append(select(func.coalesce(func.sum(models.PatientActivity.open_follow_ups + models.PatientActivity.equipment_out), 0))
                   .scalar_subquery().label("activity totals"))
    columns.append(select(func.coalesce(func.sum(models.ScoreSummary.latest_value), 0))
                   .scalar_subquery().label("summary totals"))
    return select(*columns)


SNAPSHOT = _snapshot_statement()


class Fixture:
    """The world's ids and tokens, and the few extra rows the examples point at (made once per test)."""

    def __init__(self, api: Any):
        self.api = api
        self.ids: dict[str, str] = {}
        self.counter = 0

    async def setup(self) -> "Fixture":
        api, w = self.api, self.api.world
        lead = w.lead
        self.ids.update(patient=w.patient.id, other_patient=w.other_patient.id, lead_user=w.lead.user_id,
                        owner_user=w.owner.user_id, target_user=w.users["other_therapist"].id,
                        other_target_user=w.users["team_therapist"].id)
        for class_name, key in (("MobilityScore", "score"), ("SessionNote", "note"), ("EquipmentLog", "equipment")):
            row = await api.store.create(principal=lead, class_name=class_name,
                                         fields=self._store_fields(BASES[class_name]))
            self.ids[key] = row.id
        await api.store.update(principal=lead, class_name="Patient", object_id=w.patient.id,
                               changes={"mobilityStatus": "independent"}, reason="fuzz")
        history = await api.store.find(principal=lead, class_name="StatusHistory", where=None, limit=1)
        self.ids["history"] = history[0].id
        # A user of its own for logout (logout revokes every session of its user) and a revoked token.
        await api.store.sign_up(username="fuzz-logout", email="fuzz-logout@example.org", password=PASSWORD)
        signed = await api.store.log_in(username="fuzz-logout", password=PASSWORD)
        self.revoked = signed.token
        await api.store.log_out(principal=signed.principal)
        return self

    def _store_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        from dashboard.api import wire

        class_name = next(c for c, b in BASES.items() if b is body)
        return wire.decode_fields(class_name, self.resolve(body))

    def fresh(self, name: str) -> str:
        self.counter += 1
        return {"fresh_patient_id": f"FZ-{self.counter}", "fresh_username": f"fuzz-{self.counter}",
                "fresh_email": f"fuzz-{self.counter}@example.org"}[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.fresh(value.name) if value.name.startswith("fresh_") else self.ids[value.name]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    async def token(self, who: str | None) -> str | None:
        if who is None:
            return None
        if who == "bad":
            return "r:not-a-session-token"
        if who == "revoked":
            return self.revoked
        if who == "long":
            return "r:" + "x" * 300
        if who == "fresh":
            return (await self.api.store.log_in(username="fuzz-logout", password=PASSWORD)).token
        return self.api.tokens[who]

    async def settle(self, log: ErrorLog) -> list[str]:
        """Writes the queued read-audit rows now, so that a failure to write them is this example's.

        A row the database refused stays queued and fails every later write of the queue: once it
        has failed its own example it is dropped, so that the next examples are judged on their own.
        """
        store = self.api.store
        await store.flush_audit()
        logged = log.take()
        pending = getattr(store, "_audit_pending", None)
        if logged and isinstance(pending, list):
            pending.clear()
        return logged

    async def snapshot(self) -> dict[str, Any]:
        async with self.api.store.db.read() as session:
            row = (await session.execute(SNAPSHOT)).one()
        return dict(row._mapping)


def _url_part(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _path(fx: Fixture, path: Any) -> str:
    if isinstance(path, tuple):  # (prefix, object id)
        prefix, object_id = path
        return "/".join(_url_part(p) for p in prefix.split("/")) + _url_part(fx.resolve(object_id))
    return "/".join(_url_part(p) for p in path.split("/"))


def _batch_path(fx: Fixture, path: Any) -> Any:
    if isinstance(path, tuple):
        template, class_name, object_id = path
        return template.replace("{c}", class_name).replace("{id}", str(fx.resolve(object_id)))
    return path


async def send(fx: Fixture, req: Req, token: str | None) -> Any:
    """Sends `req` with `token` (a fresh one is made before the snapshot: a login writes a session)."""
    api = fx.api
    path = "/parse/" + _path(fx, req.path)
    body = fx.resolve(req.body)
    if isinstance(body, dict) and isinstance(body.get("requests"), list):
        body["requests"] = [{**item, "path": _batch_path(fx, item["path"])} if isinstance(item, dict) and "path" in item
                            else item for item in body["requests"]]
    params = fx.resolve(req.params)
    transport = req.transport
    # Query-string values: text as it is, anything else as its JSON.
    query = "&".join(f"{_url_part(k)}={_url_part(v if isinstance(v, str) else encode(v))}" for k, v in params.items())
    if transport == "header" and len(query) > 60_000:
        # httpx refuses URLs over 64 KiB: so long a query travels in the body, as the SDK sends it.
        transport = "sdk"
        params = {k: _json_value(v) if isinstance(v, str) else v for k, v in params.items()}
    if transport == "sdk":
        payload: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
        payload.update(params)
        payload.update({"_ApplicationId": APP_ID, "_ClientVersion": "js8.6.2",
                        "_InstallationId": "0f6c7a46-6c1f-4b1a-9d7c-5f1f1f1f1f1f"})
        if req.method != "POST" or params:
            payload["_method"] = req.method
        if token is not None:
            payload["_SessionToken"] = token
        if req.transport == "sdk":
            payload.update(req.meta)
        content = encode(payload).encode() if isinstance(body, dict) or body is None else (
            body if isinstance(body, bytes) else encode(body).encode())
        return await api.client.post(path, content=content, headers={"Content-Type": "text/plain"})
    headers = {"X-Parse-Application-Id": APP_ID, "Content-Type": "application/json"}
    if token is not None:
        headers["X-Parse-Session-Token"] = token
    headers.update(req.meta)
    content = None if body is None else body if isinstance(body, bytes) else encode(body).encode()
    return await api.client.request(req.method, path + ("?" + query if query else ""), content=content,
                                    headers={k: v.encode("latin-1") for k, v in headers.items()})


def _shape_ok(body: Any) -> bool:
    return (isinstance(body, dict) and set(body) == {"code", "error"} and type(body["code"]) is int
            and isinstance(body["error"], str))


def _effective(req: Req) -> str:
    override = req.meta.get("_method") if req.transport == "sdk" else None
    return override.upper() if isinstance(override, str) else req.method


async def check(fx: Fixture, log: ErrorLog, req: Req) -> None:
    """Sends `req` and checks the invariants; each kind of failure on its own line (Hypothesis reports each)."""
    await fx.settle(log)  # anything left by an earlier example was judged there
    token = await fx.token(req.who)
    before = await fx.snapshot()
    try:
        response = await send(fx, req, token)
    except httpx.HTTPError:
        raise  # the client refused to send it: a fault of this test
    except Exception as exc:  # noqa: BLE001 - raised out of the app: uvicorn answers a bare 500
        logged = await fx.settle(log)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/dashboard/" in f.filename]
        where = f" at {frames[-1].filename.split('/work/main/')[-1]}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
        raise AssertionError(f"the app raised {type(exc).__name__}: {str(exc)[:300]}{where} (a 500 from uvicorn) "
                             f"for {req!r}; logged: {logged}") from exc
    status = response.status_code
    logged = await fx.settle(log)
    sent = response.request
    what = (f"{sent.method} {str(sent.url)[len('http://testserver'):][:300]} {sent.content[:300]!r} -> "
            f"{status} {response.text[:300]!r}")
    assert status < 500, f"5xx on bad input: {what}; logged: {logged}"
    assert not logged, f"server logged at ERROR: {logged}; for {what}"
    redirect = 300 <= status < 400  # Starlette's, of a path such as /parse/users/..: never reached the API
    try:
        body = None if redirect else response.json()
    except ValueError:
        raise AssertionError(f"answer is not JSON: {what}") from None
    if status >= 400:
        unauthorized = status == 403 and body == {"error": "unauthorized"}
        assert unauthorized or _shape_ok(body), f"4xx body is not {{code:int, error:str}}: {what}"
    refused = status >= 300
    if status < 300 and req.path == "batch":
        assert isinstance(body, list), f"batch answer is not a list: {what}"
        for entry in body:
            ok = isinstance(entry, dict) and len(entry) == 1 and (
                "success" in entry or "error" in entry and _shape_ok(entry["error"]))
            assert ok, f"batch entry is neither success nor {{error:{{code,error}}}}: {entry!r} in {what}"
            assert "error" not in entry or entry["error"]["code"] != 1, f"a 5xx inside the batch: {entry!r} in {what}"
        refused = all("error" in entry for entry in body)
    reads_only = _effective(req) == "GET" and req.path != "login"
    if refused or reads_only:
        after = await fx.snapshot()
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert not changed, f"a {'refused' if refused else 'read'} request changed rows {changed}: {what}"


async def _fixture(api: Any) -> Fixture:
    fx = getattr(api, "_fuzz_fixture", None)
    if fx is None:
        fx = api._fuzz_fixture = await Fixture(api).setup()
    return fx


# ====================================================================== REST tests
# ====================================================================== known bad inputs, one by one
# The review's M2 reproductions (REVIEW-SECURITY.md "M2") ...
M2_REST = [
    *(Req("GET", "classes/SessionNote", params={"where": {"noteText": {"$regex": p}}})
      for p in ("(", "[", "\\", "a**", "\\p{L}")),
    Req("GET", "classes/SessionNote", params={"skip": "99999999999999999999"}),
    Req("GET", "classes/SessionNote", params={"limit": "99999999999999999999"}),
    Req("GET", "classes/Patient", transport="sdk",
        params={"where": {"displayName": {"$regex": "("}}, "skip": Raw("99999999999999999999")}),
    Req("PUT", ("classes/Patient/", Ref("patient")), body={"archived": None}),
    Req("PUT", ("classes/Patient/", Ref("patient")), body={"archived": {"__op": "Delete"}}),
    Req("PUT", ("classes/Patient/", Ref("patient")), body={"displayName": "x\ud800"}),
    Req("PUT", ("classes/Patient/", Ref("patient")), body={"displayName": "x\x00"}),
    Req("PUT", ("classes/EquipmentLog/", Ref("equipment")), body={"equipmentName": "x\x00"}),
    Req("POST", "classes/Patient", body={**BASES["Patient"], "displayName": "x\ud800"}),
    Req("POST", "classes/SessionNote", body={**BASES["SessionNote"], "noteText": "a\x00b"}),
    Req("POST", "classes/MobilityScore", body={**BASES["MobilityScore"], "scoreValue": Raw("1e400")}),
    Req("PUT", ("classes/Patient/", Ref("patient")), transport="sdk", body={"mobilityStatus": None}),
    Req("POST", "batch", body={"requests": [
        {"method": "PUT", "path": ("/parse/classes/{c}/{id}", "Patient", Ref("patient")), "body": {"archived": None}},
        {"method": "GET", "path": ("/parse/classes/{c}", "SessionNote", ""),
         "body": {"where": {"noteText": {"$regex": "("}}}}]}),
]
# ... and the smallest input of each failure this fuzzing found (pointer fields take unchecked text,
# integers beyond 64 bits reach the driver, $regex reaches the date columns, and on PostgreSQL a
# `where` naming an id longer than the audit's columns makes a read-audit row that can never be written).
FOUND_REST = [
    Req("GET", "classes/SessionNote", params={"where": {"author": "\ud800"}}),
    Req("GET", "classes/Patient", params={"where": {"primaryTherapist": {"$in": ["x\ud800"]}}}),
    Req("GET", "classes/MobilityScore", params={"where": {"patient": pointer("Patient", "\udc00x")}}),
    Req("GET", "classes/SessionNote", params={"where": {"author": "\x00"}}),
    Req("GET", "classes/StatusHistory", params={"where": {"changedBy": {"$ne": "a\x00b"}}}),
    Req("GET", "classes/EquipmentLog", params={"where": {"loggedBy": "\ud83d"}, "count": "1", "limit": "0"}),
    Req("GET", "classes/MobilityScore", params={"where": {"scoreValue": 2**63}}),
    Req("GET", "classes/MobilityScore", params={"where": {"scoreValue": {"$lt": -99999999999999999999}}}),
    Req("GET", "classes/_User", params={"where": {"createdAt": {"$regex": ""}}}),
    Req("GET", "classes/Patient", transport="sdk", params={"where": {"updatedAt": {"$regex": "a", "$options": "i"}}}),
    Req("GET", "classes/Patient", params={"where": {"objectId": "x" * 17}}),
    Req("GET", "classes/SessionNote", params={"where": {"patient": "x" * 17}}),
    Req("POST", "batch", body={"requests": [
        {"method": "GET", "path": ("/parse/classes/{c}", "SessionNote", ""), "body": {"where": {"amends": "\ud800"}}}]}),
]


async def test_known_bad_inputs(api):
    """The review's M2 cases and this fuzzing's findings, each on its own; every one that fails is listed."""
    fx = await _fixture(api)
    failures = []
    with error_log() as log:
        for req in [*M2_REST, *FOUND_REST]:
            try:
                await check(fx, log, req)
            except AssertionError as exc:
                failures.append(f"{req!r}\n    {str(exc).splitlines()[0]}")
    assert not failures, f"{len(failures)} known bad inputs fail:\n" + "\n".join(failures)


@fuzz(500)
@given(req=find_requests())
async def test_fuzz_find(api, req):
    fx = await _fixture(api)
    with error_log() as log:
        await check(fx, log, req)


@fuzz(450)
@given(req=object_requests())
async def test_fuzz_objects(api, req):
    fx = await _fixture(api)
    with error_log() as log:
        await check(fx, log, req)


@fuzz(150)
@given(req=account_requests())
async def test_fuzz_accounts(api, req):
    fx = await _fixture(api)
    with error_log() as log:
        await check(fx, log, req)


@fuzz(150)
@given(req=batch_requests())
async def test_fuzz_batch(api, req):
    fx = await _fixture(api)
    with error_log() as log:
        await check(fx, log, req)


# ====================================================================== live queries
LQ_CLASSES = [*CLASSES, "Nope", "", "\ud800", "x" * 65, 5, None]
REQUEST_IDS: list[Any] = [1, 1, 2, 3, 0, -1, 2**53, 2**64, 99999999999999999999, 1.5, "1", True, None, {}, [],
                          [1], {"a": 1}, Raw("NaN"), Raw("1e400"), Raw("-Infinity"), "\ud800"]
LQ_TOKENS: list[Any] = ["lead", "viewer", "owner", "bad", "revoked", "long", 5, {}, [], "", "\ud800", "\x00", None]


@st.composite
def lq_queries(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, [], "x", 5, {}, {"className": "Patient", "fields": ["a"]},
                                     {"className": "Patient", "where": {}, "x": 1}, NESTED_OBJECTS]))
    class_name = draw(st.sampled_from([c for c in CLASSES] * 3 + LQ_CLASSES))
    query: dict[str, Any] = {"className": class_name}
    lookup = class_name if isinstance(class_name, str) else ""
    if draw(st.integers(0, 5)):
        query["where"] = draw(wheres(lookup if lookup in CLASSES else "Patient"))
    if draw(st.integers(0, 3)) == 0:
        query["keys"] = draw(st.one_of(field_lists(lookup), st.lists(st.sampled_from(
            [*CLASSES.get(lookup, {}), "x", "\ud800", 5]), max_size=3)))
    if draw(st.integers(0, 5)) == 0:
        query["watch"] = draw(st.one_of(field_lists(lookup), st.sampled_from([["displayName"], [5], "x"])))
    return query


@st.composite
def lq_messages(draw: st.DrawFn) -> Any:
    """One client message: a JSON object (random shapes), or raw text / bytes."""
    if draw(st.integers(0, 11)) == 0:
        return draw(st.sampled_from(["{", "[]", "null", "NaN", '"op"', "", '{"op":"connect"', long(70_000),
                                     b"\xed\xa0\x80", b"\xff", b'{"op":"subscribe"}', '{"op":"subscribe","requestId":NaN}',
                                     NESTED_LISTS.text, '{"op":"\\ud800"}', '{"op":"update","requestId":1e400}']))
    op = draw(st.sampled_from(["subscribe", "subscribe", "subscribe", "update", "update", "unsubscribe", "connect",
                               "CONNECT", "ping", "", 5, None, [], {}, "\ud800", "subscribe\x00"]))
    message: dict[str, Any] = {"op": op}
    if op == "connect" or draw(st.integers(0, 9)) == 0:
        message["applicationId"] = draw(st.sampled_from([APP_ID, APP_ID, "wrong", 5, None, "\ud800", ""]))
        if draw(st.booleans()):
            message["sessionToken"] = draw(st.sampled_from(LQ_TOKENS))
        if draw(st.integers(0, 3)) == 0:
            message[draw(st.sampled_from(["installationId", "masterKey", "clientKey", "x"]))] = draw(
                st.sampled_from(["i", 5, {}, "\ud800", True]))
        return message
    if draw(st.integers(0, 7)):
        message["requestId"] = draw(st.sampled_from(REQUEST_IDS))
    if op != "unsubscribe" or draw(st.integers(0, 5)) == 0:
        message["query"] = draw(lq_queries())
    if draw(st.integers(0, 5)) == 0:
        message["sessionToken"] = draw(st.sampled_from(LQ_TOKENS))
    if draw(st.integers(0, 9)) == 0:
        message[draw(st.sampled_from(["x", "fields", "where", "\ud800"]))] = 1
    return message


@dataclass
class LqCase:
    connect: str | None  # principal of the first (valid) connect; "none": no connect sent first
    messages: list[Any]
    write: str  # the REST write made afterwards, matched against the subscriptions made


@st.composite
def lq_cases(draw: st.DrawFn) -> LqCase:
    return LqCase(draw(st.sampled_from(["lead", "lead", "viewer", "owner", None, "none"])),
                  draw(st.lists(lq_messages(), min_size=1, max_size=5)),
                  draw(st.sampled_from(["Patient", "MobilityScore", "SessionNote", "EquipmentLog", "StatusHistory"])))


LQ_WRITES: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "Patient": ("PUT", ("classes/Patient/", Ref("patient")), {"displayName": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}),
    "MobilityScore": ("POST", "classes/MobilityScore", BASES["MobilityScore"]),
    "SessionNote": ("POST", "classes/SessionNote", {**BASES["SessionNote"], "noteText": "aaaaaaaaaaaaaaaaaaaaaa!"}),
    "EquipmentLog": ("POST", "classes/EquipmentLog", {**BASES["EquipmentLog"],
                                                      "equipmentName": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"}),
    "StatusHistory": ("PUT", ("classes/Patient/", Ref("patient")), {"mobilityStatus": "supervision"}),
    # A lead making an account (sign-up itself is rate limited per address).
    "_User": ("POST", "users", {"username": Ref("fresh_username"), "email": Ref("fresh_email"), "password": PASSWORD,
                                "role": "contributor"}),
}

M2_LQ = [
    LqCase("lead", [{"op": "update", "requestId": {}, "query": {"className": "Patient"}}], "Patient"),
    LqCase("lead", [{"op": "subscribe", "requestId": 1, "query": {"className": "Patient"}},
                    {"op": "update", "requestId": [1], "query": {"className": "Patient"}},
                    {"op": "unsubscribe", "requestId": {"a": 1}}], "Patient"),
    LqCase("lead", [{"op": "subscribe", "requestId": 1, "query": {"className": "EquipmentLog",
                                                                  "where": {"equipmentName": {"$regex": "^(a+)+$"}}}}],
           "EquipmentLog"),
    LqCase("lead", [{"op": "subscribe", "requestId": 1, "query": {"className": "SessionNote",
                                                                  "where": {"noteText": {"$regex": p}}}}
                    for p in ("(", "[", "\\", "a**", "\\p{L}")], "SessionNote"),
    LqCase("lead", [{"op": "subscribe", "requestId": 1, "query": {"className": "Patient",
                                                                  "where": {"displayName": "x\ud800\x00"}}}], "Patient"),
    LqCase("none", [{"op": "connect", "applicationId": "\ud800"}], "Patient"),
]
FOUND_LQ = [
    LqCase("lead", [{"op": "subscribe", "requestId": 1, "query": {"className": c, "where": w}}], c)
    for c, w in [("SessionNote", {"author": "\ud800"}), ("SessionNote", {"patient": "\x00"}),
                 ("MobilityScore", {"scoreValue": 99999999999999999999}),
                 ("Patient", {"createdAt": {"$regex": "{"}}), ("Patient", {"objectId": "x" * 17})]
]


class LqClient:
    def __init__(self, ws: Any):
        self.ws = ws
        self.closed = False

    async def send(self, message: Any) -> bool:
        if self.closed:
            return False
        data = message if isinstance(message, (str, bytes)) else encode(message)
        try:
            await self.ws.send(data)
        except ConnectionClosed:
            self.closed = True
        return not self.closed

    async def recv(self, after: Any) -> Any:
        """The next message from the server, or None once it has closed the socket."""
        try:
            text = await asyncio.wait_for(self.ws.recv(), REPLY_TIMEOUT)
        except ConnectionClosed:
            self.closed = True
            return None
        except TimeoutError:
            raise AssertionError(f"no answer within {REPLY_TIMEOUT} s after {after!r}") from None
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"an answer that is not JSON: {text[:300]!r} after {after!r}") from None


def _lq_reply_ok(reply: Any, sent: Any) -> None:
    assert isinstance(reply, dict) and isinstance(reply.get("op"), str), f"not a protocol message: {reply!r} for {sent!r}"
    if reply["op"] == "error":
        assert not (reply.get("code") == 1 and "could not be handled" in str(reply.get("error"))), \
            f"live query could not handle {sent!r}: {reply!r}"
        assert type(reply.get("code")) is int and isinstance(reply.get("error"), str), f"error shape {reply!r} for {sent!r}"
    else:
        assert reply["op"] in ("connected", "subscribed", "unsubscribed", "create", "enter", "update", "leave",
                               "delete"), f"unknown op in {reply!r} for {sent!r}"


def _lq_tokens(fx: Fixture, message: Any) -> Any:
    """Session tokens in a message are drawn by principal name; a non-name is sent as it is."""
    if isinstance(message, dict) and "sessionToken" in message:
        token = message["sessionToken"]
        names = {"lead": fx.api.tokens["lead"], "viewer": fx.api.tokens["viewer"], "owner": fx.api.tokens["owner"],
                 "bad": "r:not-a-session-token", "revoked": fx.revoked, "long": "r:" + "x" * 300}
        if isinstance(token, str) and token in names:
            return {**message, "sessionToken": names[token]}
    return message


async def run_lq_case(fx: Fixture, log: ErrorLog, url: str, case: LqCase) -> None:
    await fx.settle(log)
    async with connect(url, max_size=None, open_timeout=REPLY_TIMEOUT) as ws:
        client = LqClient(ws)
        if case.connect != "none":
            hello: dict[str, Any] = {"op": "connect", "applicationId": APP_ID, "installationId": "fuzz"}
            if case.connect is not None:
                hello["sessionToken"] = fx.api.tokens[case.connect]
            await client.send(hello)
            reply = await client.recv(hello)
            assert reply is not None and reply.get("op") == "connected", reply
        subscribed, write = False, case.write
        for message in case.messages:
            sent = fx.resolve(_lq_tokens(fx, message))
            if not await client.send(sent):
                break
            reply = await client.recv(message)
            if reply is None:
                break  # closed by the server (a refused connect)
            _lq_reply_ok(reply, message)
            if reply["op"] == "subscribed":
                subscribed = True
                query = message.get("query") if isinstance(message, dict) else None
                if isinstance(query, dict) and query.get("className") in LQ_WRITES:
                    write = query["className"]  # the write goes where the last subscription listens
            logged = await fx.settle(log)
            assert not logged, f"server logged at ERROR on live-query message {message!r}: {logged}"
        if subscribed and not client.closed:
            method, path, body = LQ_WRITES[write]
            response = await send(fx, Req(method, path, "lead", {}, body), fx.api.tokens["lead"])
            assert response.status_code < 300, response.text
            # An answer to this comes after every event of that write (the hub delivers at once).
            await client.send({"op": "unsubscribe", "requestId": 2**52})
            while True:
                reply = await client.recv(f"the {write} write")
                assert reply is not None, "the socket closed after a write"
                _lq_reply_ok(reply, f"the {write} write")
                if reply.get("op") == "error" and reply.get("code") == 2:
                    break
        logged = await fx.settle(log)
        assert not logged, f"server logged at ERROR after {case.messages!r} and a {write} write: {logged}"


async def test_known_bad_live_queries(api, lq_url):
    fx = await _fixture(api)
    failures = []
    with error_log() as log:
        for case in [*M2_LQ, *FOUND_LQ]:
            try:
                await run_lq_case(fx, log, lq_url, case)
            except AssertionError as exc:
                failures.append(f"{case!r}\n    {str(exc).splitlines()[0]}")
    assert not failures, f"{len(failures)} known bad live-query messages fail:\n" + "\n".join(failures)


@fuzz(300)
@given(case=lq_cases())
async def test_fuzz_live_query(api, lq_url, case):
    fx = await _fixture(api)
    with error_log() as log:
        await run_lq_case(fx, log, lq_url, case)
