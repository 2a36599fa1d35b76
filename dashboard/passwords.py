"""Passwords (argon2id through libpass) and session tokens (random, stored only as hashes)."""
from __future__ import annotations

import hashlib
import secrets

from itsdangerous import BadSignature, TimestampSigner
from passlib.hash import argon2

TOKEN_PREFIX = "r:"  # Parse's revocable-session prefix; the SDKs expect it.


class PasswordHasher:
    def __init__(self, *, memory_kib: int, time_cost: int):
        self._hasher = argon2.using(type="ID", memory_cost=memory_kib, rounds=time_cost)
        # Verified against for unknown usernames so they take as long as known ones.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        try:
            return self._hasher.verify(password, password_hash or self._dummy_hash) and bool(password_hash)
        except (ValueError, TypeError):
            return False


def new_session_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens carry 256 random bits, so a fast hash is enough; the database never sees the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()  # any text, even unpaired


class CookieSigner:
    """Signs the session token where it travels in a cookie, so a tampered cookie never hits the DB."""

    def __init__(self, secret_key: str):
        self._signer = TimestampSigner(secret_key, salt="ot-tracker.session")

    def sign(self, token: str) -> str:
        return self._signer.sign(token).decode()

    def unsign(self, value: str, *, max_age_seconds: int) -> str | None:
        try:
            return self._signer.unsign(value, max_age=max_age_seconds).decode()
        except BadSignature:
            return None
