"""How usernames and emails are compared: by one normalized form, never by a LIKE pattern.

`LEAD`, `lead`, `ｌｅａｄ` (full-width) and `lead%` are one account or none: the lockout, the rate
limits and uniqueness all key on `account_key`, so a spelling never earns its own counter.
"""
from __future__ import annotations

import hashlib
import unicodedata

KEY_LENGTH = 64  # the users.username_key column
MAX_INPUT = 256  # NFKC can expand a character many times over: bound the work first


def account_key(text: str) -> str:
    """NFKC, then case folded. Longer than any username, or unstorable: a digest, which names no
    real account (no username has a '#')."""
    key = unicodedata.normalize("NFKC", text[:MAX_INPUT]).casefold()
    if len(key) > KEY_LENGTH or len(text) > MAX_INPUT or not _storable(key):
        return "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_LENGTH - 1]
    return key


def _storable(text: str) -> bool:
    """No NUL and no lone surrogate: a database driver refuses both (as a 500)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def email_key(text: str) -> str:
    """Emails are stored in this form, so equality is the comparison."""
    return unicodedata.normalize("NFKC", text).casefold()
