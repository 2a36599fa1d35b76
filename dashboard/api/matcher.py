"""A Parse `where` tested against one Parse-shaped object, in Python, for live queries.

Values are coerced exactly as dashboard/store/query.py coerces them for SQL (it is the same
QueryBuilder.value), and the operators mean what the SQL means: a missing field never satisfies
$lt/$gt/$in or equality, and satisfies $ne and $nin. The store validates a subscription's `where`
(unknown fields and operators, depth, sizes) before a matcher is ever built for it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashboard import patterns
from dashboard.schema import FieldSpec
from dashboard.store.query import QueryBuilder, field_kind, parse_datetime

_COMPARE = {
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
}


class Matcher:
    def __init__(self, class_name: str, where: Mapping[str, Any] | None):
        self.builder = QueryBuilder(class_name)
        self.where = where or {}
        # The last few objects tested, by identity: a shared matcher answers each event's object
        # once, however many subscribers ask (events are immutable once published).
        self._recent: dict[int, tuple[Mapping[str, Any], bool]] = {}

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        hit = self._recent.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        try:
            result = self._match(self.where, obj)
        except (TypeError, ValueError):
            result = False
        if len(self._recent) >= 4:
            self._recent.clear()
        self._recent[id(obj)] = (obj, result)
        return result

    def _match(self, where: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
        for key, condition in where.items():
            if key == "$or":
                if not any(self._match(c, obj) for c in condition):
                    return False
            elif key == "$and":
                if not all(self._match(c, obj) for c in condition):
                    return False
            elif key == "$nor":  # as the SQL: a missing field fails its condition, so $nor passes it
                if any(self._match(c, obj) for c in condition):
                    return False
            elif not self._field(key, condition, obj):
                return False
        return True

    def _stored(self, name: str, spec: FieldSpec | None, obj: Mapping[str, Any]) -> Any:
        raw = obj.get(name)
        if raw is None:
            return None
        kind = field_kind(name, spec)
        if kind == "Date":
            return parse_datetime(raw, name)
        if kind == "Pointer" and isinstance(raw, Mapping):
            return raw.get("objectId")
        return raw

    def _field(self, name: str, condition: Any, obj: Mapping[str, Any]) -> bool:
        _, spec = self.builder.column(name)
        value = self._stored(name, spec, obj)
        is_operator_map = isinstance(condition, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in condition)
        if not is_operator_map:
            if condition is None:
                return value is None
            return value is not None and value == self.builder.value(name, spec, condition)
        for op, operand in condition.items():
            if op in _COMPARE:
                if value is None or not _COMPARE[op](value, self.builder.value(name, spec, operand)):
                    return False
            elif op == "$eq":
                if operand is None:
                    if value is not None:
                        return False
                elif value is None or value != self.builder.value(name, spec, operand):
                    return False
            elif op == "$ne":
                if operand is None:
                    if value is None:
                        return False
                elif value is not None and value == self.builder.value(name, spec, operand):
                    return False
            elif op == "$in":
                if value is None or value not in [self.builder.value(name, spec, v) for v in operand]:
                    return False
            elif op == "$nin":
                if value is not None and value in [self.builder.value(name, spec, v) for v in operand]:
                    return False
            elif op == "$exists":
                if (value is not None) != operand:
                    return False
            elif op == "$regex":
                # RE2, linear in the stored value: a subscriber's pattern meets every write's text.
                if not patterns.search(patterns.inline(operand, condition.get("$options", "")), value):
                    return False
            elif op == "$options":
                continue
            else:
                return False
        return True
