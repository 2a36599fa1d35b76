"""Parse's GraphQL names, Relay global ids and offset cursors (GRAPHQL.md §2–4).

graphql-relay 3.2 pins graphql-core < 3.3, so its two helpers we need live here.
"""
from __future__ import annotations

import base64
import binascii
import re

CURSOR_PREFIX = "arrayconnection:"
# npm `pluralize`'s rules for the words our class names end in (Parse pluralizes with it).
_ES = re.compile(r"(s|x|z|ch|sh)$", re.IGNORECASE)
_IES = re.compile(r"[^aeiou]y$", re.IGNORECASE)


def graphql_type(class_name: str) -> str:
    """`_User` -> `User`, `MobilityScore` -> `MobilityScore`."""
    name = class_name.lstrip("_")
    return name[:1].upper() + name[1:]


def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def pluralize(word: str) -> str:
    if _IES.search(word):
        return word[:-1] + "ies"
    if _ES.search(word):
        return word + "es"
    return word + "s"


def get_field(class_name: str) -> str:
    return lower_first(graphql_type(class_name))


def find_field(class_name: str) -> str:
    return pluralize(get_field(class_name))


def to_global_id(class_name: str, object_id: str) -> str:
    return base64.b64encode(f"{class_name}:{object_id}".encode()).decode()


def from_global_id(value: str) -> tuple[str, str] | None:
    """(className, objectId) of a Relay global id, or None when it is not one."""
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    class_name, sep, object_id = decoded.partition(":")
    return (class_name, object_id) if sep and class_name and object_id else None


def object_id_of(value: str, class_name: str) -> str:
    """Either form of id (§3): a global id of `class_name` gives its objectId, anything else is one."""
    decoded = from_global_id(value)
    if decoded is not None and decoded[0] == class_name:
        return decoded[1]
    return value


def offset_to_cursor(offset: int) -> str:
    return base64.b64encode(f"{CURSOR_PREFIX}{offset}".encode()).decode()


def cursor_to_offset(cursor: str) -> int | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text.startswith(CURSOR_PREFIX) or not text[len(CURSOR_PREFIX):].isdigit():
        return None
    return int(text[len(CURSOR_PREFIX):])
