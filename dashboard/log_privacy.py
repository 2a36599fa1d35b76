"""Keeps patient data out of log lines (ACCESS.md "Privacy"; REVIEW-SECURITY M3).

Patient data reaches logs through text that libraries build from values, not through our own
messages: a database error's message (SQLAlchemy's ``[parameters: ...]``, PostgreSQL's
``DETAIL:  Failing row contains (...)`` and ``Key (...)=(...)``, asyncpg's ``invalid input for query
argument $5: '...'``), SQLAlchemy's echo of parameters and result rows, and request URLs with their
query strings (uvicorn's access log, NiceGUI's ``f'{request.url} not found'``).

`PrivacyFilter` rewrites a record in place before any handler formats it:

- the query string of every URL or path in the message or its arguments becomes ``?[query withheld]``;
- an exception that is, or is caused by, a database or driver error is rendered with its traceback
  frames but without the messages of the database error and of everything beneath it: each such
  line names only the exception type and what identifies the error without its values (SQLSTATE,
  SQLite's error name, table, column, constraint). The rendering goes to ``exc_text`` and
  ``exc_info`` is cleared, so no later formatter can render the original;
- the message and arguments are scrubbed of the same texts when code put them there itself
  (``log.error("... %s", exc)``, ``log.exception(exc)``, an f-string).

The filter never drops a record, and records what it withheld in ``record.ot_privacy_withheld``
(names of kinds, never the values). It works on a record once, however many handlers it passes.
Logging is rare here, so the work per record (a few regular expressions) does not matter.

`install()` puts one filter on the root logger's handlers, on every handler attached to any logger,
on ``logging.lastResort`` (where records go when no handler is configured), and on the loggers of
uvicorn, NiceGUI, SQLAlchemy, asyncpg and this app. It is idempotent; call it again after handlers
are added.
"""
from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exc as sa_exc

WITHHELD = "[withheld]"
_MESSAGE_WITHHELD = "[message withheld: it may hold patient data]"

# Modules whose exceptions are driver or DB-API errors (their messages quote values).
_DRIVER_PACKAGES = frozenset({"asyncpg", "sqlite3", "_sqlite3", "aiosqlite", "psycopg", "psycopg2", "pg8000"})
_ADAPTER_MODULES = ("sqlalchemy.dialects", "sqlalchemy.connectors")

# Loggers that get the filter themselves (a record passes its own logger's filters even when a
# handler added later has none), besides every handler.
LOGGERS = ("", "ot_tracker", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "nicegui",
           "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.pool",
           "sqlalchemy.orm", "asyncpg", "asyncpg.pool", "aiosqlite", "asyncio", "fastapi", "starlette",
           "alembic")
_LOGGER_FAMILIES = frozenset(name.partition(".")[0] for name in LOGGERS if name)

# Texts (in messages, arguments and the messages of exceptions) that carry values.
_SCRUBS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), replacement, kind) for pattern, replacement, kind in (
        # A URL's or a path's query string; the path stays.
        (r"(/[^\s?#]*)\?(?!\[query withheld\])[^\s]+", r"\1?[query withheld]", "query string"),
        # SQLAlchemy's rendering of a statement's parameters (one line: a repr has no newline).
        (r"\[parameters: [^\n]*", "[parameters: withheld]", "SQL parameters"),
        # PostgreSQL: the failing row, a key's value, anything else in DETAIL.
        (r"DETAIL:[^\n]*", "DETAIL: " + WITHHELD, "database error detail"),
        (r"Failing row contains [^\n]*", "Failing row contains " + WITHHELD, "database error detail"),
        (r"(Key \([^\n]*?\))=\([^\n]*", r"\1=" + WITHHELD, "database error detail"),
        # asyncpg: a parameter its codec refused.
        (r"(invalid input for query argument \$\d+)[^\n]*", r"\1: " + WITHHELD, "database error value"),
        # PostgreSQL's primary messages that quote a value.
        (r"(invalid input (?:syntax|value) for [^:\n]*):[^\n]*", r"\1: " + WITHHELD, "database error value"),
        (r'value "[^"\n]*" is out of range', "value " + WITHHELD + " is out of range", "database error value"),
        (r'(field value out of range):[^\n]*', r"\1: " + WITHHELD, "database error value"),
        (r'invalid value "[^"\n]*"', "invalid value " + WITHHELD, "database error value"),
        # Python's own conversions quote their input.
        (r"(invalid literal for \w+\(\) with base \d+):[^\n]*", r"\1: " + WITHHELD, "converted value"),
        (r"(could not convert string to \w+):[^\n]*", r"\1: " + WITHHELD, "converted value"),
        (r"(Invalid isoformat string):[^\n]*", r"\1: " + WITHHELD, "converted value"),
        (r"time data .*? does not match format", "time data " + WITHHELD + " does not match format",
         "converted value"),
        (r"(input_value=)(?!\[withheld\])(?:'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|[^,\]\n]*)", r"\1" + WITHHELD,
         "converted value"),
    ))
# A cheap pre-check: none of the patterns can match a text without one of these.
_TRIGGERS = re.compile(r"\?|parameters|DETAIL|Failing row|Key \(|query argument|invalid|out of range"
                       r"|could not convert|isoformat|time data|input_value")


def scrub_text(text: str, kinds: set[str] | None = None) -> str:
    """`text` without query strings and the value-quoting texts of database and conversion errors."""
    if not _TRIGGERS.search(text):
        return text
    for pattern, replacement, kind in _SCRUBS:
        scrubbed = pattern.sub(replacement, text)
        if scrubbed != text:
            text = scrubbed
            if kinds is not None:
                kinds.add(kind)
    return text


# -- exceptions ---------------------------------------------------------------------------------------
def is_db_error(exc: BaseException) -> bool:
    """SQLAlchemy's statement errors (DBAPIError and its kin) and any driver or DB-API adapter error."""
    if isinstance(exc, sa_exc.StatementError):
        return True
    for cls in type(exc).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module.partition(".")[0] in _DRIVER_PACKAGES or module.startswith(_ADAPTER_MODULES):
            return True
    return False


def _links(exc: BaseException) -> list[BaseException]:
    """The exceptions a traceback of `exc` shows besides `exc`: cause or context, and a group's members."""
    out: list[BaseException] = []
    if exc.__cause__ is not None:
        out.append(exc.__cause__)
    elif exc.__context__ is not None and not exc.__suppress_context__:
        out.append(exc.__context__)
    members = getattr(exc, "exceptions", None)
    if isinstance(exc, BaseExceptionGroup) and isinstance(members, tuple):
        out.extend(m for m in members if isinstance(m, BaseException))
    return out


def _walk(exc: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    stack, out = [exc], []
    while stack and len(out) < 200:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        stack.extend(_links(current))
        # SQLAlchemy keeps the driver's error as .orig (also the cause, when raised from it).
        orig = getattr(current, "orig", None) if isinstance(current, sa_exc.StatementError) else None
        if isinstance(orig, BaseException):
            stack.append(orig)
    return out


def involves_db_error(exc: BaseException) -> bool:
    return any(is_db_error(e) for e in _walk(exc))


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins", "__main__") else f"{module}.{qualname}"


_IDENTIFIER = re.compile(r"[A-Za-z0-9_.$-]{1,63}")


def _error_facts(exc: BaseException) -> list[str]:
    """What identifies a database error without its values: driver type, SQLSTATE, SQLite's error
    name, and the table, column and constraint it names (schema names, never data)."""
    chain: list[BaseException] = [exc]
    current: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy error -> adapter error -> driver error
        nxt = getattr(current, "orig", None) if isinstance(current, sa_exc.StatementError) else None
        nxt = nxt if isinstance(nxt, BaseException) else (current.__cause__ if current is not None else None)
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
        current = nxt
    facts: list[str] = []
    drivers = [e for e in chain[1:] if is_db_error(e) and not isinstance(e, sa_exc.StatementError)]
    if drivers:
        facts.append(_type_name(drivers[-1]))
    for label, attrs in (("SQLSTATE", ("sqlstate", "pgcode")), ("", ("sqlite_errorname",)),
                         ("table", ("table_name",)), ("column", ("column_name",)),
                         ("constraint", ("constraint_name",))):
        for e in chain:
            value = next((getattr(e, a, None) for a in attrs if isinstance(getattr(e, a, None), str)), None)
            if value and _IDENTIFIER.fullmatch(value):
                facts.append(f"{label} {value}".strip())
                break
    return facts


def describe_db_error(exc: BaseException) -> str:
    """One line that names a database error without its message: type, SQLSTATE or code, schema names."""
    facts = _error_facts(exc)
    return f"{_type_name(exc)}: {_MESSAGE_WITHHELD}" + (f" ({', '.join(facts)})" if facts else "")


def _str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - as traceback does for an unprintable exception
        return f"<exception str() failed: {type(exc).__name__}>"


def _db_texts(exc: BaseException) -> list[tuple[str, str]]:
    """(message, safe line) of every exception at or beneath a database error in `exc`'s traceback,
    longest first, to replace where code quoted them in another message."""
    out: list[tuple[str, str]] = []
    for e in _walk(exc):
        if is_db_error(e):
            for beneath in _walk(e):
                text = _str(beneath)
                if len(text) >= 8:
                    out.append((text, describe_db_error(beneath) if is_db_error(beneath) else
                                f"{_type_name(beneath)}: {_MESSAGE_WITHHELD}"))
    return sorted(set(out), key=lambda pair: -len(pair[0]))


def _replace_quoted(text: str, db_texts: list[tuple[str, str]], kinds: set[str]) -> str:
    for quoted, safe in db_texts:
        if quoted in text:
            text = text.replace(quoted, safe)
            kinds.add("database error message")
    return text


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def format_exception(exc: BaseException, tb: Any = None, kinds: set[str] | None = None) -> str:
    """Like logging.Formatter.formatException, but the database error's message and the messages of
    everything beneath it are withheld; other messages are scrubbed. Frames are kept."""
    kinds = kinds if kinds is not None else set()
    db_texts = _db_texts(exc)
    seen: set[int] = set()

    def render(e: BaseException, trace: Any, beneath_db: bool) -> str:
        if id(e) in seen:
            return ""
        seen.add(id(e))
        hide = beneath_db or is_db_error(e)
        out = ""
        if e.__cause__ is not None:
            earlier = render(e.__cause__, e.__cause__.__traceback__, hide)
            out += earlier + (_CAUSE if earlier else "")
        elif e.__context__ is not None and not e.__suppress_context__:
            earlier = render(e.__context__, e.__context__.__traceback__, hide)
            out += earlier + (_CONTEXT if earlier else "")
        if trace is not None:
            out += "Traceback (most recent call last):\n" + "".join(traceback.format_tb(trace))
        if hide:
            kinds.add("database error message")
            out += (describe_db_error(e) if is_db_error(e) else f"{_type_name(e)}: {_MESSAGE_WITHHELD}") + "\n"
        else:
            message = scrub_text(_replace_quoted(_str(e), db_texts, kinds), kinds)
            out += f"{_type_name(e)}: {message}\n" if message else f"{_type_name(e)}\n"
            for note in getattr(e, "__notes__", None) or ():
                if isinstance(note, str):
                    out += scrub_text(_replace_quoted(note, db_texts, kinds), kinds) + "\n"
        members = getattr(e, "exceptions", None)
        if isinstance(e, BaseExceptionGroup) and isinstance(members, tuple):
            for number, member in enumerate(members, 1):
                inner = render(member, member.__traceback__, hide)
                out += f"+---- {number} of {len(members)} ----\n"
                out += "".join(f"| {line}\n" for line in inner.rstrip("\n").split("\n"))
        return out

    text = render(exc, tb if tb is not None else exc.__traceback__, False)
    return text.rstrip("\n")


# -- records ------------------------------------------------------------------------------------------
def _sqlalchemy_values(value: object) -> bool:
    """SQLAlchemy's echo of parameters and rows (`_repr_params`, `_repr_row`)."""
    cls = type(value)
    return cls.__module__ == "sqlalchemy.sql.util" and cls.__name__ in ("_repr_params", "_repr_row")


def _scrub_value(value: object, db_texts: list[tuple[str, str]], kinds: set[str]) -> object:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, BaseException):
        if involves_db_error(value):
            kinds.add("database error message")
            return describe_db_error(value) if is_db_error(value) else scrub_text(
                _replace_quoted(_str(value), _db_texts(value), kinds), kinds)
        text = _str(value)
    elif _sqlalchemy_values(value):
        kinds.add("SQL parameters")
        return WITHHELD
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - leave it; getMessage will report it
            return value
    scrubbed = scrub_text(_replace_quoted(text, db_texts, kinds), kinds)
    return value if scrubbed == text else scrubbed


class PrivacyFilter(logging.Filter):
    """Scrubs a record in place (see the module's docstring); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "ot_privacy_checked", False):
            return True
        record.ot_privacy_checked = True
        kinds: set[str] = set()
        try:
            self._scrub(record, kinds)
        except Exception:  # noqa: BLE001 - fail closed: a record we could not check says nothing
            kinds.add("whole message (the privacy filter failed on it)")
            record.msg = f"[{record.name}: message withheld; the privacy filter could not check it]"
            record.args = ()
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = f"{_type_name(record.exc_info[1])}: {_MESSAGE_WITHHELD}"
            record.exc_info = None
        record.ot_privacy_withheld = tuple(sorted(kinds))
        return True

    def _scrub(self, record: logging.LogRecord, kinds: set[str]) -> None:
        exc = record.exc_info[1] if record.exc_info and record.exc_info[1] is not None else None
        db_texts = _db_texts(exc) if exc is not None else []

        # The exception: taken over entirely when a database error is in it, else only scrubbed.
        if exc is not None:
            if db_texts or involves_db_error(exc):
                record.exc_text = format_exception(exc, record.exc_info[2], kinds)  # type: ignore[index]
                record.exc_info = None
            else:
                plain = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
                scrubbed = scrub_text(plain, kinds)
                if scrubbed != plain:
                    record.exc_text, record.exc_info = scrubbed, None
        elif record.exc_text:
            record.exc_text = scrub_text(record.exc_text, kinds)

        # Arguments one by one, keeping their shape (uvicorn's access formatter unpacks them).
        if isinstance(record.args, Mapping):
            record.args = {k: _scrub_value(v, db_texts, kinds) for k, v in record.args.items()}
        elif isinstance(record.args, tuple) and record.args:
            record.args = tuple(_scrub_value(v, db_texts, kinds) for v in record.args)
        if isinstance(record.msg, BaseException) or not isinstance(record.msg, str):
            record.msg = str(_scrub_value(record.msg, db_texts, kinds))
        else:
            record.msg = scrub_text(_replace_quoted(record.msg, db_texts, kinds), kinds)

        # What the pieces make together (a pattern split between the format and an argument).
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - the scrubbed format no longer fits its arguments
            record.msg, record.args = scrub_text(str(record.msg), kinds), ()
            return
        scrubbed = scrub_text(_replace_quoted(message, db_texts, kinds), kinds)
        if scrubbed != message and not record.name.startswith("uvicorn.access"):
            record.msg, record.args = scrubbed, ()


PRIVACY_FILTER = PrivacyFilter()


def _attach(target: logging.Filterer) -> None:
    if not any(isinstance(f, PrivacyFilter) for f in target.filters):
        target.addFilter(PRIVACY_FILTER)


def install() -> PrivacyFilter:
    """Puts the filter on every handler there is and on the loggers named in LOGGERS. Idempotent."""
    for name in LOGGERS:
        _attach(logging.getLogger(name))
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            if name.partition(".")[0] in _LOGGER_FAMILIES:
                _attach(logger)
            for handler in logger.handlers:
                _attach(handler)
    for handler in logging.getLogger().handlers:
        _attach(handler)
    if logging.lastResort is not None:
        _attach(logging.lastResort)
    return PRIVACY_FILTER


def installed_on(target: logging.Filterer) -> bool:
    return any(isinstance(f, PrivacyFilter) for f in target.filters)
