"""The store's errors. Each maps to one HTTP status and one Parse error code (PARSE-API.md)."""
from __future__ import annotations

from enum import IntEnum


class ParseCode(IntEnum):
    """Parse's error codes, named as in Parse.Error (the JS SDK's ParseError and Parse Server's
    src): the `code` of every {"code","error"} answer. An IntEnum, so it encodes to JSON as the bare
    number and compares equal to it."""

    OTHER_CAUSE = -1
    INTERNAL_SERVER_ERROR = 1
    CONNECTION_FAILED = 100
    OBJECT_NOT_FOUND = 101
    INVALID_QUERY = 102
    INVALID_CLASS_NAME = 103
    MISSING_OBJECT_ID = 104
    INVALID_KEY_NAME = 105
    INVALID_POINTER = 106
    INVALID_JSON = 107
    COMMAND_UNAVAILABLE = 108
    NOT_INITIALIZED = 109
    INCORRECT_TYPE = 111
    INVALID_CHANNEL_NAME = 112
    PUSH_MISCONFIGURED = 115
    OBJECT_TOO_LARGE = 116
    OPERATION_FORBIDDEN = 119
    CACHE_MISS = 120
    INVALID_NESTED_KEY = 121
    INVALID_FILE_NAME = 122
    INVALID_ACL = 123
    TIMEOUT = 124
    INVALID_EMAIL_ADDRESS = 125
    MISSING_CONTENT_TYPE = 126
    MISSING_CONTENT_LENGTH = 127
    INVALID_CONTENT_LENGTH = 128
    FILE_TOO_LARGE = 129
    FILE_SAVE_ERROR = 130
    DUPLICATE_VALUE = 137
    INVALID_ROLE_NAME = 139
    EXCEEDED_QUOTA = 140
    SCRIPT_FAILED = 141
    VALIDATION_ERROR = 142
    INVALID_IMAGE_DATA = 143
    UNSAVED_FILE_ERROR = 151
    INVALID_PUSH_TIME_ERROR = 152
    FILE_DELETE_ERROR = 153
    REQUEST_LIMIT_EXCEEDED = 155
    DUPLICATE_REQUEST = 159
    INVALID_EVENT_NAME = 160
    FILE_DELETE_UNNAMED_ERROR = 161
    INVALID_VALUE = 162
    USERNAME_MISSING = 200
    PASSWORD_MISSING = 201
    USERNAME_TAKEN = 202
    EMAIL_TAKEN = 203
    EMAIL_MISSING = 204
    EMAIL_NOT_FOUND = 205
    SESSION_MISSING = 206
    MUST_CREATE_USER_THROUGH_SIGNUP = 207
    ACCOUNT_ALREADY_LINKED = 208
    INVALID_SESSION_TOKEN = 209
    LINKED_ID_MISSING = 250
    INVALID_LINKED_SESSION = 251
    UNSUPPORTED_SERVICE = 252
    INVALID_SCHEMA_OPERATION = 255
    AGGREGATE_ERROR = 600
    FILE_READ_ERROR = 601
    X_DOMAIN_REQUEST = 602


class LiveQueryCode(IntEnum):
    """The live-query protocol's own error codes (Parse LiveQuery server; PARSE-API.md), sent in
    {"op":"error","code":N}. Distinct from ParseCode: 1-4 mean something else there. A bad session
    is answered with ParseCode.INVALID_SESSION_TOKEN (209), as Parse's LiveQuery server does."""

    BAD_MESSAGE = 1  # not JSON, not an object, a field it does not know, or a refused value
    NOT_CONNECTED = 2  # an op before connect, or an unknown subscription
    UNKNOWN_OP = 3
    INVALID_KEY = 4  # the connect's application id is wrong


class StoreError(Exception):
    http_status = 400
    parse_code: int = ParseCode.INTERNAL_SERVER_ERROR

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotAuthenticated(StoreError):
    """No session, or an expired or revoked one."""

    http_status = 401
    parse_code = ParseCode.INVALID_SESSION_TOKEN

    def __init__(self, message: str = "Invalid session token"):
        super().__init__(message)


class NotFound(StoreError):
    """Absent, or not readable by the principal: the two answers are identical on purpose."""

    http_status = 404
    parse_code = ParseCode.OBJECT_NOT_FOUND

    def __init__(self, message: str = "Object not found."):
        super().__init__(message)


class PermissionDenied(StoreError):
    """Readable, but not writable by the principal."""

    http_status = 403
    parse_code = ParseCode.OPERATION_FORBIDDEN

    def __init__(self, message: str = "Permission denied"):
        super().__init__(message)


class InvalidInput(StoreError):
    """Bad input: names the field and the rule it broke."""

    parse_code = ParseCode.INCORRECT_TYPE

    def __init__(self, field: str, rule: str, *, code: ParseCode | None = None):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        if code is not None:
            self.parse_code = code


class MissingField(InvalidInput):
    parse_code = ParseCode.VALIDATION_ERROR

    def __init__(self, field: str):
        super().__init__(field, "is required")


class Conflict(StoreError):
    """The write was based on a stale version; carries what is current now."""

    http_status = 409
    parse_code = ParseCode.DUPLICATE_VALUE  # the SDK treats any 4xx as final

    def __init__(self, field: str, current: object, current_version: int):
        super().__init__(
            f"{field} was changed by someone else; it is now {current!r}. Review and try again."
        )
        self.field = field
        self.current = current
        self.current_version = current_version


class StaleWrite(Conflict):
    """The row changed between this write's read and its UPDATE (the ORM's version check): nothing
    was written. The store answers it as a `Conflict` naming the current version where it can."""

    def __init__(self, current_version: int = 0):
        StoreError.__init__(self, "This record was changed by someone else while it was being saved. "
                                  "Review and try again.")
        self.field, self.current, self.current_version = "version", None, current_version


class RepeatedRequest(StoreError):
    """A save whose request key (Parse's X-Parse-Request-Id) the principal has used within 24 hours:
    nothing was written or published this time. `class_name` and `object_id` name the record the
    first request made or changed (the answer a lost connection kept from the caller)."""

    parse_code = ParseCode.DUPLICATE_REQUEST  # HTTP 400 as for the other refused inputs

    def __init__(self, class_name: str, object_id: str):
        super().__init__("Duplicate request")
        self.class_name = class_name
        self.object_id = object_id


class Taken(StoreError):
    def __init__(self, field: str):
        super().__init__(f"{field}: already taken")
        self.field = field
        self.parse_code = ParseCode.USERNAME_TAKEN if field == "username" else ParseCode.EMAIL_TAKEN


class InvalidCredentials(StoreError):
    parse_code = ParseCode.OBJECT_NOT_FOUND
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
    parse_code = ParseCode.CONNECTION_FAILED

    def __init__(self, seconds: int):
        super().__init__(f"Too many sign-in attempts. Try again in {seconds} seconds.")
        self.seconds = seconds


class PasswordChangeRequired(StoreError):
    """A sign-in with a password a lead reset: no usable session until the user chooses a new one,
    which only the sign-in page offers. HTTP 403 / Parse 119, never 101 (the password was right)."""

    http_status = 403
    parse_code = ParseCode.OPERATION_FORBIDDEN

    def __init__(self) -> None:
        super().__init__("A lead reset this account's password: sign in on the web page and choose a new "
                         "password before using this session.")


class SessionNeedsNewPassword(NotAuthenticated):
    """A session of an account that must change its password, used anywhere but the page that
    changes it (the API answers 209 with these words; pages send the user to /account)."""

    def __init__(self) -> None:
        super().__init__("This account must choose a new password first: sign in on the web page.")
