"""Idempotency keys for saves (Parse's X-Parse-Request-Id): a save repeated after a lost connection
is refused as RepeatedRequest, naming the record the first one made or changed, and never stored twice.

A key is claimed in the write's own transaction, as its first statement: a write refused afterwards
(invalid input, permission, conflict) rolls the claim back with it, so the user can correct the input
and send the same key again. The primary key (user_id, key) decides between concurrent duplicates:
on PostgreSQL the second `INSERT ... ON CONFLICT DO NOTHING` waits for the first transaction and then
inserts nothing if it committed (or inserts, if it rolled back); SQLite has one writer, so the second
sees the first's row. Neither raises IntegrityError. Taken before any other lock, the claim cannot
deadlock with the locks the write takes next.
"""
from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, delete, select, tuple_

from dashboard.db import WriteConn
from dashboard.errors import InvalidInput, RepeatedRequest
from dashboard.models import RequestKey, UTCDateTime
from dashboard.store.summaries import _upsert_for

REQUEST_KEY_LIFETIME = timedelta(hours=24)
REQUEST_KEY_RULE = "must be 1 to 64 letters, digits, '_' or '-'"
_REQUEST_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
KEYS = RequestKey.__table__
_USER = bindparam("who", type_=String)
_KEY = bindparam("request_key", type_=String)

# Keys are pruned per user as each keyed save starts: no background job, and a user's rows stay
# bounded by their last day of saves (a user who stops saving keeps those until their next save).
# SKIP LOCKED: two saves of one user never wait on, or deadlock over, the same old rows (SQLite,
# with one writer, renders no FOR UPDATE).
PRUNE = delete(KEYS).where(tuple_(KEYS.c.user_id, KEYS.c.key).in_(
    select(KEYS.c.user_id, KEYS.c.key)
    .where(KEYS.c.user_id == _USER, KEYS.c.created_at < bindparam("cutoff", type_=UTCDateTime))
    .with_for_update(skip_locked=True)))
FIRST_USE = select(KEYS.c.class_name, KEYS.c.object_id).where(KEYS.c.user_id == _USER, KEYS.c.key == _KEY)


@functools.cache
def _claim(dialect: str) -> Any:
    """Params who, request_key, class, object, at; returns a row only if this call took the key."""
    statement = _upsert_for(dialect)(KEYS).values(
        user_id=_USER, key=_KEY, class_name=bindparam("class", type_=String),
        object_id=bindparam("object", type_=String), created_at=bindparam("at", type_=UTCDateTime))
    return statement.on_conflict_do_nothing(index_elements=[KEYS.c.user_id, KEYS.c.key]).returning(KEYS.c.key)


def check_request_key(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not _REQUEST_KEY.fullmatch(value)):
        raise InvalidInput("requestId", REQUEST_KEY_RULE)
    return value


def claim_request_key(w: WriteConn, *, user_id: str, key: str, class_name: str, object_id: str,
                      now: datetime) -> None:
    """Records that `user_id` used `key` for this record, or raises RepeatedRequest if they did so
    within REQUEST_KEY_LIFETIME. The first statement of its transaction (see the module's doc)."""
    who = {"who": user_id, "request_key": key}
    w.fetch(PRUNE, {"who": user_id, "cutoff": now - REQUEST_KEY_LIFETIME})
    for _ in range(3):
        if w.fetch(_claim(w.dialect), {**who, "class": class_name, "object": object_id, "at": now}):
            return
        first = w.fetch(FIRST_USE, who)
        if first:
            raise RepeatedRequest(*first[0])
        # The row that conflicted expired and was pruned by another save in between: claim again.
    raise InvalidInput("requestId", "was in use by another save a moment ago; send it again")  # pragma: no cover
