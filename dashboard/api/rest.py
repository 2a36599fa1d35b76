"""The Parse REST API at /parse: thin routes over the store (PARSE-API.md).

Every route decodes the request (one function merges header and body credentials and `_method`),
calls the store with the caller's principal, and encodes the answer. There is no access check here:
the store enforces ACCESS.md for every channel. Store errors become {"code","error"} with their own
HTTP status; bad input is always a 4xx (the SDK retries a 5xx five times, POST included).
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from dashboard.access import Principal
from dashboard.api import wire
from dashboard.config import Settings
from dashboard.db import database_unavailable
from dashboard.errors import (
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ParseCode,
    PermissionDenied,
    RateLimited,
    StoreError,
)
from dashboard.rate_limit import ConcurrencyLimit
from dashboard.serialize import iso
from dashboard.store import Store

log = logging.getLogger("ot_tracker.api")

MOUNT = "/parse"
METHODS = ("GET", "POST", "PUT", "DELETE")
DATABASE_RETRY_AFTER_SECONDS = 2
# Body fields the JS SDK adds to every call; they are credentials and hints, not data.
META_FIELDS = ("_method", "_ApplicationId", "_SessionToken", "_ClientVersion", "_InstallationId",
               "_JavaScriptKey", "_RevocableSession", "_context", "_ClientKey", "_RestAPIKey",
               "_MasterKey", "_MaintenanceKey", "_IfMatch", "_RequestId")
FIND_PARAMS = {"where", "order", "limit", "skip", "count", "include", "keys", "excludeKeys"}
GET_PARAMS = {"include", "keys", "excludeKeys"}
MAX_BATCH = 50
# A batch reads at most this many rows in all (the sum of its finds' limits), and any answer is at
# most MAX_RESPONSE_BYTES: 50 finds of 1,000 long notes once made a 1 GB answer and an OOM kill.
MAX_BATCH_ROWS = 5_000
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Finds and batches running at once for one account (or one address, signed out): beyond, 429.
MAX_HEAVY_PER_ACCOUNT = 4
# ... and in the whole process: beyond, a request waits its turn (memory stays bounded however many
# accounts take part).
MAX_HEAVY_TOTAL = 8
CLASS_NAME_LENGTH = 32
# Object ids are 10 characters (models.new_object_id); none is longer than the 16 the schema holds.
# A longer one cannot exist, so it is answered "not found" here: the store would audit the refusal,
# and the audit log's object_id column (16 characters) cannot hold it.
OBJECT_ID_LENGTH = 16


class ApiError(Exception):
    """An answer decided before reaching the store (credentials, size, rate, routing)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def _unauthorized() -> ApiError:
    """A wrong or missing application id, or a master key: Parse's 403 with no code."""
    return ApiError(403, {"error": "unauthorized"})


def _invalid_json(reason: str = "Invalid JSON") -> ApiError:
    return ApiError(400, {"code": ParseCode.INVALID_JSON, "error": reason})


def param_error(message: str) -> ApiError:
    return ApiError(400, {"code": ParseCode.INVALID_QUERY, "error": message})


def _body_too_large(limit: int) -> ApiError:
    return ApiError(413, {"code": ParseCode.OBJECT_TOO_LARGE, "error": f"The request body is larger than {limit} bytes."})


@dataclass
class ParseRequest:
    """One call, however it arrived: verb, path below /parse, parameters, body and credentials."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)  # query parameters (GET), JSON-decoded
    body: dict[str, Any] = field(default_factory=dict)  # data fields, meta fields removed
    session_token: str | None = None
    installation_id: str | None = None
    if_match: str | None = None
    # Parse's idempotency key (X-Parse-Request-Id, or the body's _RequestId): the store checks it and
    # refuses a save sent again with it (159). Only creates and updates use it; a batch's requests not.
    request_id: object = None
    address: str | None = None
    user_agent: str | None = None  # kept on a session a login opens (the user's list of sessions)
    base_url: str = ""
    url_has_password: bool = False  # a `password` in the query string (refused where it matters)
    in_batch: bool = False

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


def _json_or_text(value: str) -> Any:
    try:
        return wire.loads_strict(value)
    except ValueError:
        return value


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@functools.lru_cache(maxsize=64)
def _base_url_of(scheme: str, host: bytes | None, server: tuple | None, root_path: str) -> str:
    headers = [(b"host", host)] if host is not None else []
    scope = {"type": "http", "scheme": scheme, "server": server, "root_path": root_path, "path": "/",
             "headers": headers, "query_string": b""}
    return str(Request(scope).base_url).rstrip("/")


def _base_url(request: Request) -> str:
    """Starlette's base_url, which depends on these four only: built once per host, not per request."""
    scope = request.scope
    host = next((value for key, value in scope["headers"] if key == b"host"), None)
    server = scope.get("server")
    return _base_url_of(scope.get("scheme", "http"), host, tuple(server) if server else None,
                        scope.get("app_root_path", scope.get("root_path", "")))


async def decode_request(request: Request, path: str, settings: Settings) -> ParseRequest:
    """The one decoding step: body as JSON whatever its content type, `_method`, credentials."""
    raw = await _read_body(request, settings.api_max_body_bytes)
    body: dict[str, Any] = {}
    if raw.strip():
        try:
            decoded = wire.loads_strict(raw)
        except ValueError:
            raise _invalid_json() from None
        if not isinstance(decoded, dict):
            raise _invalid_json("Invalid JSON: the body must be an object")
        body = decoded
    meta = {name: body.pop(name) for name in META_FIELDS if name in body}
    headers = request.headers

    app_id = headers.get("x-parse-application-id") or meta.get("_ApplicationId")
    expected = settings.parse_app_id
    if not isinstance(app_id, str) or not hmac.compare_digest(app_id.encode("utf-8", "surrogatepass"), expected.encode()):
        raise _unauthorized()
    if headers.get("x-parse-master-key") or "_MasterKey" in meta or "_MaintenanceKey" in meta:
        raise _unauthorized()  # there is no master key: every call acts as a signed-in user

    method = request.method.upper()
    override = meta.get("_method")
    if override is not None:
        if method != "POST" or not isinstance(override, str) or override.upper() not in METHODS:
            raise param_error("_method must be GET, POST, PUT or DELETE on a POST request")
        method = override.upper()

    token = headers.get("x-parse-session-token") or meta.get("_SessionToken")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, {"code": ParseCode.INVALID_SESSION_TOKEN, "error": "Invalid session token"})
    installation = headers.get("x-parse-installation-id") or meta.get("_InstallationId")
    if_match = headers.get("if-match") or meta.get("_IfMatch")
    request_id = headers.get("x-parse-request-id") or meta.get("_RequestId")

    params: dict[str, Any] = {}
    for key, value in (request.query_params.multi_items() if request.scope.get("query_string") else ()):
        if key in params:
            raise param_error(f"{key[:40]} is given more than once")
        params[key] = _json_or_text(value)
    url_has_password = "password" in params
    if method == "GET" and request.method == "POST":
        params.update(body)  # the JS SDK's way: GET parameters in a POST body
        body = {}
    elif params and method != "GET" and path.strip("/") != "login":
        raise param_error(f"{next(iter(params))[:40]} is not a parameter of {method} {MOUNT}/{path[:60]}")

    return ParseRequest(method=method, path=path, params=params, body=body,
                        session_token=token or None,
                        installation_id=installation if isinstance(installation, str) else None,
                        if_match=str(if_match) if if_match is not None else None,
                        request_id=request_id,
                        address=request.client.host if request.client else None,
                        user_agent=headers.get("user-agent"),
                        base_url=_base_url(request),
                        url_has_password=url_has_password)


def _too_large() -> ApiError:
    return ApiError(400, {"code": ParseCode.INVALID_QUERY,
                          "error": f"The answer would be larger than {MAX_RESPONSE_BYTES // 2**20} MB; "
                                   "ask for fewer rows (limit) or fewer fields (keys)."})


def _find_limit(call: ParseRequest) -> int:
    """Rows a batched request may read: a find's limit (default 100), one for anything else."""
    if call.method != "GET" or len(call.segments) != 2 and call.segments[:1] != ["users"]:
        return 1
    limit = call.params.get("limit", 100)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else 1


def _text_size(rows: list[Any]) -> int:
    """A lower bound on the bytes a find's answer takes: its rows' text, plus the rest of each row."""
    total = 0
    for row in rows:
        total += 200
        for value in row.__dict__.values():
            if isinstance(value, str):
                total += len(value)
    return total


class ParseJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error that names a caller's field (a lone surrogate, say)
    always encodes, so bad input can never turn into a 500 while its answer is written."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return ParseJSONResponse(body, status_code=status, headers=headers)


def error_response(exc: BaseException) -> JSONResponse:
    """Any failure as Parse's error answer (shared by the routes beside REST: /fhir)."""
    if isinstance(exc, ApiError):
        return _json(exc.body, exc.status, exc.headers)
    if isinstance(exc, RateLimited):
        return _json({"code": exc.parse_code, "error": exc.message}, exc.http_status,
                     {"Retry-After": str(exc.seconds)})
    if isinstance(exc, StoreError):
        return _json({"code": exc.parse_code, "error": exc.message}, exc.http_status)
    if database_unavailable(exc):  # a restart or a cut network: try again, as the balancer will
        log.warning("Parse API: the database is unavailable (%s)", type(exc).__name__)
        return _json({"code": ParseCode.INTERNAL_SERVER_ERROR,
                      "error": "The database is unavailable; try again shortly."}, 503,
                     {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    log.exception("Parse API: unexpected error", exc_info=exc)
    return _json({"code": ParseCode.INTERNAL_SERVER_ERROR, "error": "Internal server error."}, 500)


class Route(NamedTuple):
    """One route, as Parse Server's ClassesRouter.mountRoutes declares them: a method, a path below
    /parse whose ":name" segments are passed to the handler by that name, the ParseApi method that
    answers, fixed arguments for it, and whether a batch may contain it."""

    method: str
    path: str
    handler: str
    fixed: dict[str, str] = {}
    in_batch: bool = True


ROUTES = (
    Route("GET", "classes/:class_name", "find"),
    Route("POST", "classes/:class_name", "create"),  # classes/_User is a sign-up (create says so)
    Route("GET", "classes/:class_name/:object_id", "get"),
    Route("PUT", "classes/:class_name/:object_id", "update"),
    Route("DELETE", "classes/:class_name/:object_id", "delete"),
    Route("GET", "users", "find", {"class_name": "_User"}),
    Route("POST", "users", "sign_up"),
    Route("GET", "users/me", "me"),  # before users/:object_id: "me" is never an object id
    Route("GET", "users/:object_id", "get", {"class_name": "_User"}),
    Route("PUT", "users/:object_id", "update", {"class_name": "_User"}),
    Route("DELETE", "users/:object_id", "delete", {"class_name": "_User"}),
    Route("GET", "login", "log_in", in_batch=False),
    Route("POST", "login", "log_in", in_batch=False),
    Route("POST", "logout", "log_out", in_batch=False),
    Route("POST", "batch", "batch", in_batch=False),
    Route("GET", "health", "health"),
    Route("POST", "health", "health"),
)


def _by_path(routes: tuple[Route, ...]) -> list[tuple[tuple[str, ...], dict[str, Route]]]:
    """The routes grouped by path, in table order: a path matches before any later one, and a
    method it has no route for is answered 404 (not passed on to a later path)."""
    grouped: dict[tuple[str, ...], dict[str, Route]] = {}
    for route in routes:
        grouped.setdefault(tuple(route.path.split("/")), {})[route.method] = route
    return list(grouped.items())


PATHS = _by_path(ROUTES)


def _match(segments: list[str]) -> tuple[dict[str, Route], dict[str, str]] | None:
    """The routes of the first path `segments` matches, with its captured ":name" segments."""
    for pattern, routes in PATHS:
        if len(pattern) != len(segments):
            continue
        captured: dict[str, str] = {}
        for expected, given in zip(pattern, segments):
            if expected.startswith(":"):
                captured[expected[1:]] = given
            elif expected != given:
                break
        else:
            return routes, captured
    return None


class ParseApi:
    """Dispatches decoded calls to the store. Also used, unchanged, for each request of a batch."""

    def __init__(self, settings: Settings, get_store: Callable[[], Store]):
        self.settings = settings
        self.get_store = get_store
        self.heavy = ConcurrencyLimit(MAX_HEAVY_PER_ACCOUNT)
        self.heavy_total = asyncio.Semaphore(MAX_HEAVY_TOTAL)

    @property
    def store(self) -> Store:
        return self.get_store()

    async def principal(self, call: ParseRequest) -> Principal | None:
        if call.session_token is None:
            return None
        return await self.store.resolve_session(call.session_token)

    async def handle(self, call: ParseRequest, *, in_batch: bool = False) -> Response:
        try:
            response = await self.route(call, in_batch=in_batch)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Parse error answer
            return error_response(exc)
        if len(response.body) > MAX_RESPONSE_BYTES:
            return error_response(_too_large())
        return response

    @asynccontextmanager
    async def _heavy(self, call: ParseRequest) -> AsyncIterator[None]:
        """Finds and batches: at most MAX_HEAVY_PER_ACCOUNT at once per account (HTTP 429, code 155)."""
        async with self.heavy_place(await self.principal(call), call.address):
            yield

    @asynccontextmanager
    async def heavy_place(self, principal: Principal | None, address: str | None) -> AsyncIterator[None]:
        """One of the account's places for heavy reads, shared by REST and GraphQL: every session of
        one account (or one address, signed out) shares them; beyond, ApiError 429 (code 155)."""
        key = f"user:{principal.user_id}" if principal else f"address:{address}"
        if not self.heavy.try_acquire(key):
            raise ApiError(429, {"code": ParseCode.REQUEST_LIMIT_EXCEEDED,
                                 "error": f"At most {MAX_HEAVY_PER_ACCOUNT} finds or batches "
                                          "at once per account; wait for one to finish."},
                           {"Retry-After": "1"})
        try:
            async with self.heavy_total:
                yield
        finally:
            self.heavy.release(key)

    async def route(self, call: ParseRequest, *, in_batch: bool) -> Response:
        match = _match(call.segments)
        if match is not None:
            routes, captured = match
            object_id, class_name = captured.get("object_id"), captured.get("class_name")
            # Checked before the method, as a longer id or class name could never be found anyway.
            if object_id is not None and len(object_id) > OBJECT_ID_LENGTH:
                raise NotFound()
            if class_name is not None and len(class_name) > CLASS_NAME_LENGTH:
                raise PermissionDenied("class is not available")
            route = routes.get(call.method)
            if route is not None and (route.in_batch or not in_batch):
                handler: Callable[..., Awaitable[Response]] = getattr(self, route.handler)
                return await handler(call, **captured, **route.fixed)
        raise ApiError(404, {"code": ParseCode.OBJECT_NOT_FOUND,
                             "error": f"Not found: {call.method} {MOUNT}/{call.path.strip('/')[:80]}"})

    # ------------------------------------------------------------------ helpers
    def _only_params(self, call: ParseRequest, allowed: set[str]) -> None:
        for key in call.params:
            if key not in allowed:
                raise param_error(f"{str(key)[:40]} is not a valid query parameter")

    def _no_body(self, call: ParseRequest) -> None:
        if call.body:
            raise InvalidInput(str(next(iter(call.body)))[:60], "is not expected here", code=ParseCode.INVALID_KEY_NAME)

    def _location(self, call: ParseRequest, path: str) -> dict[str, str]:
        return {"Location": f"{call.base_url}{MOUNT}/{quote(path)}"}

    async def _render(self, call: ParseRequest, principal: Principal | None, class_name: str,
                      objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        include = wire.parse_include(class_name, call.params.get("include"))
        keys = wire.parse_keys(class_name, call.params.get("keys"))
        exclude = wire.parse_keys(class_name, call.params.get("excludeKeys"), "excludeKeys")
        if include:
            await wire.resolve_includes(self.store, principal, objects, include)
        if keys is not None:
            objects = [wire.select_keys(o, keys) for o in objects]
        if exclude is not None:
            objects = [wire.select_keys(o, exclude, exclude=True) for o in objects]
        return objects

    def _expected_version(self, call: ParseRequest) -> int | None:
        if call.if_match is None:
            return None
        value = call.if_match.strip()
        if value.startswith("W/"):
            value = value[2:]
        value = value.strip('"')
        if not value.isdigit() or len(value) > 12:
            raise param_error('If-Match must be the version from the ETag, e.g. "3"')
        return int(value)

    @staticmethod
    def _etag(row: Any) -> dict[str, str]:
        version = getattr(row, "version", None)
        return {"ETag": f'"{version}"'} if isinstance(version, int) else {}

    # ------------------------------------------------------------------ users
    async def sign_up(self, call: ParseRequest) -> Response:
        body = dict(call.body)
        principal = await self.principal(call)
        if "role" in body or principal is not None and body.keys() - {"username", "email", "password"}:
            # A lead making an account (with a role): the store's create path decides.
            row = await self.store.create(principal=principal, class_name="_User",
                                          fields=wire.decode_fields("_User", body),
                                          request_key=call.request_id)  # type: ignore[arg-type]
            return _json({"objectId": row.id, "createdAt": wire.encode_row(row)["createdAt"]}, 201,  # type: ignore[attr-defined]
                         self._location(call, f"users/{row.id}"))  # type: ignore[attr-defined]
        for name in body:
            if name not in ("username", "email", "password"):
                raise InvalidInput(str(name)[:60], "is not a sign-up field (username, email, password)",
                                   code=ParseCode.INVALID_KEY_NAME)
        signed = await self.store.sign_up(username=body.get("username"), email=body.get("email"),  # type: ignore[arg-type]
                                          password=body.get("password"),  # type: ignore[arg-type]
                                          address=call.address or "unknown", user_agent=call.user_agent)
        created = wire.encode_row(signed.user)["createdAt"]
        return _json({"objectId": signed.user.id, "createdAt": created, "sessionToken": signed.token}, 201,
                     self._location(call, f"users/{signed.user.id}"))

    async def log_in(self, call: ParseRequest) -> Response:
        if call.url_has_password:
            # Parse accepts GET /login?username=&password=; a password in a URL lands in proxy logs.
            raise param_error("password: send it in the request body (POST /login), never in the URL")
        source = {**call.params, **call.body}
        for name in source:
            if name not in ("username", "password", "authData"):
                raise param_error(f"{str(name)[:40]} is not a login parameter")
        if "authData" in source:
            raise InvalidInput("authData", "third-party sign-in is not supported",
                               code=ParseCode.UNSUPPORTED_SERVICE)
        username, password = source.get("username"), source.get("password")
        signed = await self.store.log_in(username=username, password=password,  # type: ignore[arg-type]
                                         address=call.address or "unknown", user_agent=call.user_agent)
        return _json({**wire.encode_row(signed.user), "sessionToken": signed.token})

    async def log_out(self, call: ParseRequest) -> Response:
        self._only_params(call, set())
        principal = await self.principal(call)
        if principal is None:
            raise NotAuthenticated()
        await self.store.log_out(principal=principal)
        return _json({})

    async def me(self, call: ParseRequest) -> Response:
        self._only_params(call, set())
        principal = await self.principal(call)
        if principal is None:
            raise NotAuthenticated()
        user = await self.store.get_user(principal=principal, user_id=principal.user_id)
        return _json({**wire.encode_row(user), "sessionToken": call.session_token})

    # ------------------------------------------------------------------ classes
    async def find(self, call: ParseRequest, class_name: str) -> Response:
        if call.in_batch:  # the batch holds the account's place already
            return await self._find(call, class_name)
        async with self._heavy(call):
            return await self._find(call, class_name)

    async def _find(self, call: ParseRequest, class_name: str) -> Response:
        self._only_params(call, FIND_PARAMS)
        self._no_body(call)
        principal = await self.principal(call)
        params = call.params
        where = params.get("where")
        if where is not None and not isinstance(where, dict):
            raise param_error("where must be a JSON object")
        limit = params.get("limit", 100)
        skip = params.get("skip", 0)
        count = params.get("count")
        if count not in (None, 0, 1, True, False, "0", "1", "true", "false"):
            raise param_error("count must be 1 or 0")
        want_count = count in (1, True, "1", "true")
        # Validate include/keys before reading, so a bad parameter never costs a query.
        wire.parse_include(class_name, params.get("include"))
        wire.parse_keys(class_name, params.get("keys"))
        rows = await self.store.find(principal=principal, class_name=class_name, where=where,
                                     order=params.get("order"), limit=limit, skip=skip)
        if _text_size(rows) > MAX_RESPONSE_BYTES:
            raise _too_large()  # known before the answer is encoded, which would cost as much again
        results = await self._render(call, principal, class_name, [wire.encode_row(r) for r in rows])
        body: dict[str, Any] = {"results": results}
        if want_count:
            body["count"] = await self.store.count(principal=principal, class_name=class_name, where=where)
        return _json(body)

    async def get(self, call: ParseRequest, class_name: str, object_id: str) -> Response:
        self._only_params(call, GET_PARAMS)
        self._no_body(call)
        principal = await self.principal(call)
        wire.parse_include(class_name, call.params.get("include"))
        row = await self.store.get(principal=principal, class_name=class_name, object_id=object_id)
        [result] = await self._render(call, principal, class_name, [wire.encode_row(row)])
        return _json(result, headers=self._etag(row))

    async def create(self, call: ParseRequest, class_name: str) -> Response:
        if class_name == "_User":  # POST classes/_User is POST users, as in Parse
            return await self.sign_up(call)
        principal = await self.principal(call)
        fields = wire.decode_fields(class_name, call.body)
        row = await self.store.create(principal=principal, class_name=class_name, fields=fields,
                                      request_key=call.request_id)  # type: ignore[arg-type]
        return _json({"objectId": row.id, "createdAt": iso(row.created_at)}, 201,  # type: ignore[attr-defined]
                     {**self._location(call, f"classes/{class_name}/{row.id}"),  # type: ignore[attr-defined]
                      **self._etag(row)})

    async def update(self, call: ParseRequest, class_name: str, object_id: str) -> Response:
        principal = await self.principal(call)
        body = dict(call.body)
        reason = body.pop("changeReason", None) if class_name in ("Patient", "EquipmentLog") else None
        expected = self._expected_version(call)
        if class_name == "_User":
            if expected is not None:
                raise param_error("If-Match is not supported for users")
            row = await self.store.update(principal=principal, class_name="_User", object_id=object_id,
                                          changes=wire.decode_fields("_User", body),
                                          request_key=call.request_id)  # type: ignore[arg-type]
        else:
            row = await self.store.update(principal=principal, class_name=class_name, object_id=object_id,
                                          changes=wire.decode_fields(class_name, body),
                                          expected_version=expected, reason=reason,
                                          request_key=call.request_id)  # type: ignore[arg-type]
        return _json({"updatedAt": wire.encode_row(row)["updatedAt"]}, headers=self._etag(row))

    async def delete(self, call: ParseRequest, class_name: str, object_id: str) -> Response:
        self._no_body(call)
        principal = await self.principal(call)
        await self.store.delete(principal=principal, class_name=class_name, object_id=object_id)
        return _json({})  # pragma: no cover - the store never deletes; kept for the contract

    # ------------------------------------------------------------------ batch
    async def batch(self, call: ParseRequest) -> Response:
        body = call.body
        for name in body:
            if name not in ("requests", "transaction"):
                raise InvalidInput(str(name)[:60], "is not a batch field", code=ParseCode.INVALID_KEY_NAME)
        if body.get("transaction") not in (None, False):
            raise param_error("transaction batches are not supported; send the requests without it")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests or len(requests) > MAX_BATCH:
            raise param_error(f"requests must be a list of 1 to {MAX_BATCH} requests")
        calls = [self._batch_call(call, item, i) for i, item in enumerate(requests)]
        rows = sum(_find_limit(sub) for sub in calls)
        if rows > MAX_BATCH_ROWS:
            raise param_error(f"a batch reads at most {MAX_BATCH_ROWS} rows in all (the sum of its limits); "
                               f"this one asks for {rows}")
        # Each answer is already JSON: the batch's answer is assembled from their bytes, not decoded
        # and encoded again.
        parts: list[bytes] = []
        size = 0
        async with self._heavy(call):
            for sub in calls:
                response = await self.handle(sub, in_batch=True)
                size += len(response.body)
                if size > MAX_RESPONSE_BYTES:
                    return error_response(_too_large())
                wrapper = b'{"success":' if response.status_code < 300 else b'{"error":'
                parts.append(wrapper + bytes(response.body) + b"}")
        return Response(b"[" + b",".join(parts) + b"]", media_type="application/json")

    def _batch_call(self, outer: ParseRequest, item: object, index: int) -> ParseRequest:
        where = f"requests[{index}]"
        if not isinstance(item, dict):
            raise param_error(f"{where} must be an object")
        unknown = item.keys() - {"method", "path", "body"}
        if unknown:
            raise param_error(f"{where}: {str(sorted(unknown)[0])[:40]} is not a batch request field")
        method, path, body = item.get("method"), item.get("path"), item.get("body", {})
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise param_error(f"{where}.method must be GET, POST, PUT or DELETE")
        if not isinstance(path, str) or len(path) > 300:
            raise param_error(f"{where}.path must be a path such as {MOUNT}/classes/Patient")
        if path.startswith(MOUNT + "/"):
            path = path[len(MOUNT):]
        if not path.startswith("/") or "?" in path:
            raise param_error(f"{where}.path must be a path such as {MOUNT}/classes/Patient")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise param_error(f"{where}.body must be an object")
        method = method.upper()
        params: dict[str, Any] = {}
        if method == "GET":
            params, body = dict(body), {}
        return ParseRequest(method=method, path=path.lstrip("/"), params=params, body=dict(body),
                            session_token=outer.session_token, installation_id=outer.installation_id,
                            address=outer.address, base_url=outer.base_url, in_batch=True)

    async def health(self, call: ParseRequest) -> Response:
        return _json({"status": "ok"})


Endpoint = Callable[[Request], Awaitable[Response]]


def build_router(settings: Settings, get_store: Callable[[], Store]) -> tuple[APIRouter, ParseApi, Endpoint]:
    api = ParseApi(settings, get_store)
    router = APIRouter()

    async def parse_endpoint(request: Request) -> Response:
        try:
            call = await decode_request(request, request.path_params["path"], settings)
        except Exception as exc:  # noqa: BLE001 - decoding failures are answers too
            return error_response(exc)
        return await api.handle(call)

    # A plain Starlette route: the endpoint decodes the request itself, so FastAPI's per-request
    # dependency solving would be pure cost. The served app reaches it through ParseLane instead.
    router.add_route(MOUNT + "/{path:path}", parse_endpoint, methods=list(METHODS), include_in_schema=False)
    return router, api, parse_endpoint


class ParseLane:
    """ASGI: HTTP requests below /parse/ go straight to the endpoint, past the root app's FastAPI
    middleware and routers (ten layers, each wrapping `send`: a tenth of a REST create's CPU); all
    else to `app`. Nothing is skipped that /parse used: the endpoint answers every failure itself
    (`ParseApi.handle`), the body limit is its own (`_read_body`), and the security headers and the
    fail-closed check sit outside this lane (dashboard/server.py). Paths, methods and the path
    parameter are the route's (`build_router`), which stays for apps mounted without the lane."""

    __slots__ = ("app", "endpoint")
    PREFIX = MOUNT + "/"

    def __init__(self, app: Any, endpoint: Endpoint) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.PREFIX) and scope["method"] in METHODS:
            scope["path_params"] = {"path": scope["path"][len(self.PREFIX):]}
            response = await self.endpoint(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

