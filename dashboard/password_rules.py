"""What makes a password too weak, beyond its length: blank, a short pattern repeated, or common.

The common list ships in data/common-passwords.txt (no network look-up). A password is compared
case-insensitively, also with digits and symbols removed from either end, so the usual decorations
of a common word ("Password2026!", "letmein123456") do not make it new.
"""
from __future__ import annotations

import functools
import re
import unicodedata

from dashboard.config import DATA_DIR

COMMON_PASSWORDS = DATA_DIR / "common-passwords.txt"
_DECORATION = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_SHORT_UNIT = 4  # "aaaaaaaaaaaa", "abcabcabcabc", "1212121212121"
# Each rule's words, keyed by a short code (the sign-up page carries the code, never free text).
RULES = {
    "blank": "must not be blank",
    "control": "must not contain control characters",
    "repeated": "must not be one character or a short pattern repeated",
    "sequence": "must not be a run of consecutive characters",
    "digits": "must not be only digits and symbols",
    "common": "is too common or too easy to guess; use a phrase of your own",
}


@functools.cache
def common() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def _repeats_a_short_unit(text: str) -> bool:
    return any(len(text) % n == 0 and text == text[:n] * (len(text) // n) for n in range(1, _SHORT_UNIT + 1))


def _run_of_consecutive(text: str) -> bool:
    """1234567890123, abcdefghijklm, and the same backwards."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(steps) == 1 and steps <= {1, -1}


def rule_code(message: str) -> str | None:
    return next((code for code, words in RULES.items() if words == message), None)


def weakness(password: str) -> str | None:
    """The rule a password breaks, in words for the person typing it; None when it is acceptable."""
    if not password.strip():
        return RULES["blank"]
    if any(unicodedata.category(c) == "Cc" for c in password):
        return RULES["control"]
    folded = password.casefold()
    if _repeats_a_short_unit(folded):
        return RULES["repeated"]
    if _run_of_consecutive(folded):
        return RULES["sequence"]
    compact = folded.replace(" ", "")
    stem = _DECORATION.sub("", compact)
    if not stem:
        return RULES["digits"]
    listed = common()
    if compact in listed or stem in listed or _repeats_a_short_unit(stem) or \
            any(stem == word * (len(stem) // len(word)) for word in listed if 4 <= len(word) < len(stem)):
        return RULES["common"]
    return None
