"""`$regex` patterns from callers, run by RE2: matching time is linear in the text, never exponential.

Python's `re` backtracks: `^(a+)+$` against forty `a`s and a `!` holds the GIL for minutes, and with it
every request and push of the process. RE2 (google-re2, a compiled automaton) has no backtracking, so
it refuses what it cannot run in linear time (backreferences, lookaround) instead of running it. Every
place a caller's pattern meets text uses this module: SQLite's REGEXP function, the live-query matcher,
and the validation of a pattern before PostgreSQL runs it (there with a statement timeout as well).
"""
from __future__ import annotations

import functools
from typing import Any

import re2

from dashboard.errors import InvalidInput, ParseCode

MAX_PATTERN = 128
# RE2 compiles to a program of at most this many bytes; a pattern that needs more is refused.
MAX_PROGRAM_BYTES = 1 << 20
FLAGS = frozenset("im")

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print the pattern (a caller's search text) to stderr
_OPTIONS.max_mem = MAX_PROGRAM_BYTES


class PatternError(ValueError):
    """The pattern cannot be run safely (or at all); the message says why, without echoing it."""


def inline(pattern: str, flags: str = "") -> str:
    """The pattern with Parse's `$options` as inline flags (the same spelling in RE2 and PostgreSQL)."""
    return f"(?{''.join(sorted(set(flags)))}){pattern}" if flags else pattern


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """RE2's program for `pattern` (with inline flags), or PatternError."""
    if len(pattern) > MAX_PATTERN + 8:
        raise PatternError(f"is longer than {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except UnicodeError:
        raise PatternError("must be valid Unicode text") from None
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else ""
        # RE2's reason ends with the offending fragment of the pattern; keep only the rule.
        rule = reason.split(":", 1)[0].strip() or "is not a supported regular expression"
        raise PatternError(rule) from None


def check(field: str, pattern: object, flags: object = "") -> str:
    """The pattern with its flags inlined, once it is known to be safe to run; else InvalidInput 102."""
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise InvalidInput(field, f"$regex takes a pattern of at most {MAX_PATTERN} characters", code=ParseCode.INVALID_QUERY)
    if not isinstance(flags, str) or set(flags) - FLAGS:
        raise InvalidInput(field, "$options takes only i and m", code=ParseCode.INVALID_QUERY)
    if "\x00" in pattern:  # PostgreSQL refuses a NUL in any text, a pattern too
        raise InvalidInput(field, "$regex must not contain NUL characters", code=ParseCode.INVALID_QUERY)
    full = inline(pattern, flags)
    try:
        compiled(full)
    except PatternError as exc:
        raise InvalidInput(field, f"$regex {exc} (supported: RE2 syntax, no backreferences or lookaround)",
                           code=ParseCode.INVALID_QUERY) from None
    return full


def search(pattern: str, text: object) -> bool:
    """Whether `pattern` (already checked) occurs in `text`; False for anything that is not text."""
    if not isinstance(text, str):
        return False
    try:
        return compiled(pattern).search(text) is not None
    except (PatternError, UnicodeError):
        return False


def sqlite_regexp(pattern: object, text: object) -> bool:
    """SQLite's REGEXP(pattern, text): never raises (an exception inside SQLite is a 500)."""
    return isinstance(pattern, str) and search(pattern, text)
