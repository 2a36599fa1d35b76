"""Rows as Parse-shaped JSON objects: the one shape for pushes, live queries and the REST API."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from dashboard import models
from dashboard.schema import CLASSES, PRIVATE_FIELDS


def iso(value: datetime) -> str:
    """Parse's date string: milliseconds and a trailing Z (the SDK rejects +00:00)."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


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


def to_parse(obj: models.Base) -> dict[str, Any]:
    class_name: str = obj.class_name  # type: ignore[attr-defined]
    out: dict[str, Any] = {"className": class_name, "objectId": obj.id}  # type: ignore[attr-defined]
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
    out["createdAt"] = iso(obj.created_at)  # type: ignore[attr-defined]
    out["updatedAt"] = iso(obj.updated_at)  # type: ignore[attr-defined]
    return out


def initials(display_name: str) -> str:
    parts = [p for p in display_name.replace("-", " ").split() if p]
    return "".join(p[0].upper() + "." for p in parts[:3]) or "?"


def for_viewer(data: dict[str, Any], *, full_names: bool) -> dict[str, Any]:
    """What a viewer (a ward screen) may receive: no note text, date of birth or patientId."""
    out = {k: v for k, v in data.items() if k not in PRIVATE_FIELDS}
    if not full_names and data.get("className") == "Patient" and "displayName" in out:
        out["displayName"] = initials(out["displayName"])
    return out
