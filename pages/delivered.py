"""Rows rebuilt from a hub delivery, as the store would have returned them to the same page.

A Delivery's `data` is already access-checked for the page's principal and shaped for its role
(a viewer's has no private fields), so a page can apply it without reading the store. The row
is transient: never added to a session, only rendered.

Parse dates carry milliseconds while stored ones carry microseconds; `instant_ms` lets a page
compare both at the precision they share, and `chart_time` formats both the same way.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Float, Integer

from dashboard.models import Base
from dashboard.schema import CLASSES, MODELS
from dashboard.serialize import from_iso, iso

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def instant_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch (naive values are UTC, as the store keeps them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def chart_time(moment: datetime) -> str:
    """A chart point's time: Parse's millisecond form, the same for stored and delivered rows."""
    return iso(moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc))


def row_of(class_name: str, data: dict[str, Any] | None) -> Base | None:
    """The row a delivery carries, or None when it cannot be rebuilt exactly (the page reloads)."""
    specs = CLASSES.get(class_name)
    model = MODELS.get(class_name)
    if specs is None or model is None or not data or not isinstance(data.get("objectId"), str):
        return None
    columns = model.__table__.columns  # type: ignore[attr-defined]
    values: dict[str, Any] = {"id": data["objectId"]}
    for name, spec in specs.items():
        value = data.get(name)
        if value is None:
            # Absent: never set, or withheld from this role (the store gives a viewer None there too).
            default = columns[spec.attr].default
            values[spec.attr] = default.arg if default is not None and default.is_scalar else None
        elif spec.kind == "Date":
            if not isinstance(value, dict) or (moment := from_iso(value.get("iso"))) is None:
                return None
            values[spec.attr] = moment
        elif spec.kind == "Pointer":
            if not isinstance(value, dict) or not isinstance(value.get("objectId"), str):
                return None
            values[spec.attr] = value["objectId"]
        elif spec.kind == "Number":
            column_type = columns[spec.attr].type
            # A stored Float column reads back as float: 50 is shown and charted as 50.0 would be.
            values[spec.attr] = float(value) if isinstance(column_type, Float) else (
                int(value) if isinstance(column_type, Integer) else value)
        else:
            values[spec.attr] = value
    for key, attr in (("createdAt", "created_at"), ("updatedAt", "updated_at")):
        moment = from_iso(data.get(key))
        if moment is None:
            return None
        values[attr] = moment
    return model(**values)


# The pages of one role receive the same delivered dict: rebuild its row once, not once per page.
_shared: dict[int, tuple[dict[str, Any], Base | None]] = {}
SHARED_ROWS = 64


def shared_row(class_name: str, data: dict[str, Any] | None) -> Base | None:
    """row_of, once per delivered dict; pages must treat the row as read-only."""
    if data is None:
        return None
    hit = _shared.get(id(data))
    if hit is not None and hit[0] is data:
        return hit[1]
    row = row_of(class_name, data)
    if len(_shared) >= SHARED_ROWS:
        _shared.clear()
    _shared[id(data)] = (data, row)  # holding `data` keeps its id from being reused meanwhile
    return row
