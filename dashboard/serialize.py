"""The two shapes of a record and the one place that converts between them.

Parse-shaped JSON (`to_parse`) is the shape of pushes, live queries and the REST API. Frozen read
types (dashboard/record_types.py) are what the store returns and pages render: `record_of` builds
one from a table row, `from_parse` from a delivered Parse object, `for_viewer_record` withholds what
a viewer may not see.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from dashboard.record_types import RECORD_TYPES, PatientRecord, Record
from dashboard.schema import CLASSES, PRIVATE_FIELDS


def iso(value: datetime) -> str:
    """Parse's date string: milliseconds and a trailing Z (the SDK rejects +00:00)."""
    # isoformat, not strftime: a third of the cost, on every date of every answer.
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def from_iso(value: object) -> datetime | None:
    """Parse's date string back to an aware datetime; None when it is not one (the caller names the field)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_date(value: datetime) -> dict[str, str]:
    return {"__type": "Date", "iso": iso(value)}


def pointer(class_name: str, object_id: str) -> dict[str, str]:
    return {"__type": "Pointer", "className": class_name, "objectId": object_id}


def to_parse(obj: Any) -> dict[str, Any]:
    """A record or a table row (anything with the class's attributes) as a Parse object."""
    class_name: str = obj.class_name
    out: dict[str, Any] = {"className": class_name, "objectId": obj.id}
    for name, spec in CLASSES[class_name].items():
        if name == "password":
            continue
        value = getattr(obj, spec.attr)
        if value is None:
            continue
        if spec.kind == "Date":
            value = parse_date(value)
        elif spec.kind == "Pointer":
            value = pointer(spec.target or "", value)
        out[name] = value
    out["createdAt"] = iso(obj.created_at)
    out["updatedAt"] = iso(obj.updated_at)
    return out


@functools.cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type))


def record_of(row: Any) -> Record:
    """The read type of a table row (every attribute it has; shaping for the reader comes after)."""
    record_type = RECORD_TYPES[row.class_name]
    return record_type(**{n: getattr(row, n) for n in _field_names(record_type) if hasattr(row, n)})


def record_from_values(class_name: str, values: Mapping[str, Any]) -> Record:
    """The read type of a row about to be inserted, from its column values."""
    record_type = RECORD_TYPES[class_name]
    return record_type(**{n: values[n] for n in _field_names(record_type) if n in values})


def from_parse(class_name: str, data: Mapping[str, Any] | None) -> Record | None:
    """The record a Parse object describes (a delivery's `data`), or None when it is not one of the
    six classes or cannot be read back exactly (a page then re-reads through the store)."""
    record_type = RECORD_TYPES.get(class_name)
    specs = CLASSES.get(class_name)
    if record_type is None or specs is None or not data or not isinstance(data.get("objectId"), str):
        return None
    names = _field_names(record_type)
    values: dict[str, Any] = {"id": data["objectId"]}
    for name, spec in specs.items():
        if spec.attr not in names:
            continue
        value = data.get(name)
        if value is None:
            continue  # absent: never set, or withheld from this reader; the type's default stands
        if spec.kind == "Date":
            if not isinstance(value, Mapping) or (moment := from_iso(value.get("iso"))) is None:
                return None
            value = moment
        elif spec.kind == "Pointer":
            if not isinstance(value, Mapping) or not isinstance(value.get("objectId"), str):
                return None
            value = value["objectId"]
        elif spec.kind == "Number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            value = float(value)  # stored as a float: 50 reads back, and is shown, as 50.0
        values[spec.attr] = value
    for key, attr in (("createdAt", "created_at"), ("updatedAt", "updated_at")):
        moment = from_iso(data.get(key))
        if moment is None:
            return None
        values[attr] = moment
    if "version" in names:
        version = data.get("version", 0)
        values["version"] = version if isinstance(version, int) and not isinstance(version, bool) else 0
    for name in names:  # required fields withheld from this reader (a viewer's note text, patientId)
        if name not in values and _required(record_type, name):
            values[name] = None
    try:
        return record_type(**values)
    except TypeError:
        return None


@functools.cache
def _required(record_type: type, name: str) -> bool:
    field = next(f for f in dataclasses.fields(record_type) if f.name == name)
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def for_viewer_record(record: Record, *, full_names: bool) -> Record:
    """A viewer's copy (a ward screen): no private fields, and initials unless a lead turned names on."""
    hidden = {spec.attr: None for spec in CLASSES[record.class_name].values()
              if spec.private and hasattr(record, spec.attr)}
    if isinstance(record, PatientRecord) and not full_names:
        hidden["display_name"] = initials(record.display_name)
    return dataclasses.replace(record, **hidden) if hidden else record


def initials(display_name: str) -> str:
    parts = [p for p in display_name.replace("-", " ").split() if p]
    return "".join(p[0].upper() + "." for p in parts[:3]) or "?"


def for_viewer(data: dict[str, Any], *, full_names: bool) -> dict[str, Any]:
    """What a viewer (a ward screen) may receive: no note text, date of birth or patientId."""
    out = {k: v for k, v in data.items() if k not in PRIVATE_FIELDS}
    if not full_names and data.get("className") == "Patient" and "displayName" in out:
        out["displayName"] = initials(out["displayName"])
    return out
