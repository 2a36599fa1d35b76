"""The store's errors. Each maps to one HTTP status and one Parse error code (PARSE-API.md)."""
from __future__ import annotations


class StoreError(Exception):
    http_status = 400
    parse_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotAuthenticated(StoreError):
    """No session, or an expired or revoked one."""

    http_status = 401
    parse_code = 209

    def __init__(self, message: str = "Invalid session token"):
        super().__init__(message)


class NotFound(StoreError):
    """Absent, or not readable by the principal: the two answers are identical on purpose."""

    http_status = 404
    parse_code = 101

    def __init__(self, message: str = "Object not found."):
        super().__init__(message)


class PermissionDenied(StoreError):
    """Readable, but not writable by the principal."""

    http_status = 403
    parse_code = 119

    def __init__(self, message: str = "Permission denied"):
        super().__init__(message)


class InvalidInput(StoreError):
    """Bad input: names the field and the rule it broke."""

    parse_code = 111

    def __init__(self, field: str, rule: str, *, code: int | None = None):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        if code is not None:
            self.parse_code = code


class MissingField(InvalidInput):
    parse_code = 142

    def __init__(self, field: str):
        super().__init__(field, "is required")


class Conflict(StoreError):
    """The write was based on a stale version; carries what is current now."""

    http_status = 409
    parse_code = 137  # Parse's DUPLICATE_VALUE is 137; the SDK treats any 4xx as final.

    def __init__(self, field: str, current: object, current_version: int):
        super().__init__(
            f"{field} was changed by someone else; it is now {current!r}. Review and try again."
        )
        self.field = field
        self.current = current
        self.current_version = current_version


class RepeatedRequest(StoreError):
    """A save whose request key (Parse's X-Parse-Request-Id) the principal has used within 24 hours:
    nothing was written or published this time. `class_name` and `object_id` name the record the
    first request made or changed (the answer a lost connection kept from the caller)."""

    parse_code = 159  # Parse's DUPLICATE_REQUEST; HTTP 400 as for the other refused inputs

    def __init__(self, class_name: str, object_id: str):
        super().__init__("Duplicate request")
        self.class_name = class_name
        self.object_id = object_id


class Taken(StoreError):
    def __init__(self, field: str):
        super().__init__(f"{field}: already taken")
        self.field = field
        self.parse_code = 202 if field == "username" else 203


class InvalidCredentials(StoreError):
    parse_code = 101
    http_status = 404  # Parse answers a failed login with 404 / code 101.

    def __init__(self, message: str = "Invalid username/password."):
        super().__init__(message)


class AccountLocked(InvalidCredentials):
    def __init__(self, minutes: int):
        unit = "minute" if minutes == 1 else "minutes"
        super().__init__(
            f"This account is locked after repeated failed sign-ins. Try again in {minutes} {unit}."
        )
        self.minutes = minutes


class RateLimited(StoreError):
    """Too many sign-in attempts from one address or for one account (Parse answers 429, code 100)."""

    http_status = 429
    parse_code = 100

    def __init__(self, seconds: int):
        super().__init__(f"Too many sign-in attempts. Try again in {seconds} seconds.")
        self.seconds = seconds
