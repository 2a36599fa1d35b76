"""Parse-style `where` and `order` turned into SQL conditions, with every input bounded.

Values arrive as JSON: dates as {"__type": "Date", "iso": ...}, pointers as
{"__type": "Pointer", "className": ..., "objectId": ...} or a bare objectId string.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from dashboard import patterns
from dashboard.errors import InvalidInput, ParseCode
from dashboard.schema import CLASSES, MODELS, FieldSpec
from dashboard.serialize import from_iso

MAX_DEPTH = 4
MAX_IN = 1000
COMPARISONS = {"$lt": "__lt__", "$lte": "__le__", "$gt": "__gt__", "$gte": "__ge__"}
BUILTIN_FIELDS = {"objectId": "id", "createdAt": "created_at", "updatedAt": "updated_at"}


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored or compared (a 500 from the driver otherwise), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def field_kind(name: str, spec: FieldSpec | None) -> str:
    """A field's type; the built-in fields have no spec (objectId is text, the two dates are dates)."""
    return spec.kind if spec else ("Date" if name in ("createdAt", "updatedAt") else "String")


def _bad(field: str, rule: str) -> InvalidInput:
    return InvalidInput(field, rule, code=ParseCode.INVALID_QUERY)


def parse_datetime(value: object, field: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, Mapping) and value.get("__type") == "Date":
        value = value.get("iso")
    parsed = from_iso(value)
    if parsed is not None:
        return parsed
    raise _bad(field, "must be a date")


class QueryBuilder:
    def __init__(self, class_name: str, *, hidden: frozenset[str] = frozenset()):
        self.class_name = class_name
        self.model = MODELS[class_name]
        self.specs = CLASSES[class_name]
        self.hidden = hidden  # fields this principal may not filter or sort on

    def column(self, name: str) -> tuple[InstrumentedAttribute[Any], FieldSpec | None]:
        if not isinstance(name, str) or name in self.hidden or name == "password":
            raise _bad(str(name)[:60], f"is not a queryable field of {self.class_name}")
        if name in BUILTIN_FIELDS:
            return getattr(self.model, BUILTIN_FIELDS[name]), None
        spec = self.specs.get(name)
        if spec is None:
            raise _bad(name[:60], f"is not a field of {self.class_name}")
        return getattr(self.model, spec.attr), spec

    def value(self, name: str, spec: FieldSpec | None, raw: object) -> Any:
        kind = field_kind(name, spec)
        if kind == "Date":
            return parse_datetime(raw, name)
        if kind == "Pointer":
            if isinstance(raw, Mapping) and raw.get("__type") == "Pointer":
                raw = raw.get("objectId")
            if not isinstance(raw, str) or text_problem(raw):
                raise _bad(name, "must be a pointer")
            return raw
        if kind == "Number":
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise _bad(name, "must be a number")
            if isinstance(raw, int) and not -2**63 <= raw < 2**63:  # no database column holds it
                raise _bad(name, "must be a number between -2^63 and 2^63")
            return raw
        if kind == "Boolean":
            if not isinstance(raw, bool):
                raise _bad(name, "must be true or false")
            return raw
        if not isinstance(raw, str):
            raise _bad(name, "must be text")
        problem = text_problem(raw)
        if problem:
            raise _bad(name, problem)
        return raw

    def where(self, where: object, depth: int = 0) -> ColumnElement[bool]:
        if where is None:
            return true()
        if not isinstance(where, Mapping):
            raise _bad("where", "must be an object")
        if depth > MAX_DEPTH:
            raise _bad("where", f"is nested more than {MAX_DEPTH} levels")
        parts: list[ColumnElement[bool]] = []
        for key, condition in where.items():
            if key in ("$or", "$and", "$nor"):
                if not isinstance(condition, list) or not condition or len(condition) > 20:
                    raise _bad(key, "must be a list of 1 to 20 queries")
                each = [self.where(c, depth + 1) for c in condition]
                if key == "$or":
                    parts.append(or_(*each))
                elif key == "$and":
                    parts.append(and_(*each))
                else:  # a condition that is NULL on a row (a missing field) does not match it
                    parts.append(not_(func.coalesce(or_(*each), false())))
            elif isinstance(key, str) and key.startswith("$"):
                raise _bad(key[:30], "is not a supported operator")
            else:
                parts.append(self.field_condition(key, condition))
        return and_(true(), *parts)

    def field_condition(self, name: str, condition: object) -> ColumnElement[bool]:
        column, spec = self.column(name)
        is_operator_map = isinstance(condition, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in condition)
        if not is_operator_map:
            if condition is None:
                return column.is_(None)
            return column == self.value(name, spec, condition)
        parts: list[ColumnElement[bool]] = []
        assert isinstance(condition, Mapping)
        for op, operand in condition.items():
            if op in COMPARISONS:
                parts.append(getattr(column, COMPARISONS[op])(self.value(name, spec, operand)))
            elif op == "$eq":
                parts.append(column.is_(None) if operand is None else column == self.value(name, spec, operand))
            elif op == "$ne":
                parts.append(column.is_not(None) if operand is None else or_(
                    column != self.value(name, spec, operand), column.is_(None)))
            elif op in ("$in", "$nin"):
                if not isinstance(operand, list) or len(operand) > MAX_IN:
                    raise _bad(name, f"{op} takes a list of at most {MAX_IN} values")
                values = [self.value(name, spec, v) for v in operand]
                parts.append(column.in_(values) if op == "$in" else or_(column.not_in(values), column.is_(None)))
            elif op == "$exists":
                if not isinstance(operand, bool):
                    raise _bad(name, "$exists takes true or false")
                parts.append(column.is_not(None) if operand else column.is_(None))
            elif op == "$regex":
                if field_kind(name, spec) != "String":
                    raise _bad(name, "$regex works on text fields only")
                # RE2 accepts it (linear time); SQLite runs it through RE2, PostgreSQL through its
                # own engine under the read's statement timeout. Flags travel inline: SQLAlchemy's
                # flags= argument is silently dropped on SQLite.
                parts.append(column.regexp_match(patterns.check(name, operand, condition.get("$options", ""))))
            elif op == "$options":
                continue
            else:
                raise _bad(name, f"{str(op)[:30]} is not a supported operator")
        return and_(true(), *parts) if parts else false()

    def order(self, order: object) -> list[Any]:
        if order is None or order == "":
            return []
        if isinstance(order, str):
            order = [o.strip() for o in order.split(",") if o.strip()]
        if not isinstance(order, list) or len(order) > 5:
            raise _bad("order", "takes at most 5 fields")
        out = []
        for item in order:
            if not isinstance(item, str):
                raise _bad("order", "must name fields")
            descending = item.startswith("-")
            column, _ = self.column(item.lstrip("-"))
            out.append(column.desc() if descending else column.asc())
        return out

