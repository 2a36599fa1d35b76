"""POST and GET /graphql: one Starlette route over the store (GRAPHQL.md §1, §7).

Every request goes through the same steps: credentials (Parse's headers), decode, parse, the
introspection gate, limits, validation, variables, execute, then errors in Parse's shapes. Nothing
here reads or filters data: the resolvers ask the store with the request's principal.
"""
from __future__ import annotations

import hmac
import inspect
import json
import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError
from graphql.execution.values import get_variable_values
from starlette.requests import Request
from starlette.responses import Response

from dashboard.access import Principal
from dashboard.api import wire
from dashboard.api.graphql import limits
from dashboard.api.graphql.resolvers import Context
from dashboard.api.graphql.schema import build_schema
from dashboard.api.rest import MAX_RESPONSE_BYTES, ApiError, ParseJSONResponse
from dashboard.config import Settings
from dashboard.errors import NotAuthenticated, ParseCode, RateLimited, StoreError
from dashboard.store import Store

log = logging.getLogger("ot_tracker.api")

MOUNT = "/graphql"
MAX_BODY_BYTES = 1024 * 1024
MAX_QUERY_CHARS = 100_000
HINT = re.compile(r" Did you mean .*\?$")


class Refused(Exception):
    """An answer given before execution, in its own HTTP status and shape."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


def _errors(status: int, message: str, code: str) -> Refused:
    return Refused(status, {"errors": [{"message": message, "extensions": {"code": code}}]})


def _invalid_token() -> Refused:
    return Refused(400, {"code": ParseCode.INVALID_SESSION_TOKEN, "error": "Invalid session token"})


@dataclass
class Operation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return ParseJSONResponse(body, status_code=status, headers=headers)


def _text(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _errors(400, f"{name} must be a string", "BAD_REQUEST")
    return value


def decode_operation(payload: object, *, from_url: bool) -> Operation:
    if isinstance(payload, list):
        raise _errors(400, "Operation batching disabled.", "BAD_REQUEST")
    if not isinstance(payload, Mapping):
        raise _errors(400, "POST body must be a JSON object", "BAD_REQUEST")
    query = _text(payload.get("query"), "query")
    if query is None:
        raise _errors(400, "GraphQL operations must contain a non-empty `query`.", "BAD_REQUEST")
    if len(query) > MAX_QUERY_CHARS:
        raise _errors(400, f"query must be at most {MAX_QUERY_CHARS} characters", "BAD_REQUEST")
    variables = payload.get("variables")
    if from_url and isinstance(variables, str):
        try:
            variables = wire.loads_strict(variables)
        except ValueError:
            raise _errors(400, "variables must be JSON", "BAD_REQUEST") from None
    if variables is not None and not isinstance(variables, Mapping):
        raise _errors(400, "variables must be an object", "BAD_REQUEST")
    return Operation(query, dict(variables) if variables else None, _text(payload.get("operationName"), "operationName"))


def refusal_body(error: GraphQLError, code: str, *, hints: bool) -> dict[str, Any]:
    """A validation or variables error: graphql-core's message (its "Did you mean" hints for leads)."""
    body: dict[str, Any] = error.formatted
    body["message"] = body["message"] if hints else HINT.sub("", body["message"])
    body["extensions"] = {"code": code}
    return body


def error_body(error: GraphQLError, *, hints: bool) -> dict[str, Any]:
    """A GraphQL error as Parse formats it: the store's code as a number, never a stack trace."""
    original = error.original_error
    body: dict[str, Any] = error.formatted
    body.pop("extensions", None)
    if isinstance(original, StoreError):
        body["message"] = original.message
        body["extensions"] = {"code": int(original.parse_code)}
    else:  # a resolver's bug, or a value our own types could not carry: logged, never shown
        log.error("GraphQL: unexpected error at %s: %s", ".".join(map(str, error.path or ())), error.message,
                  exc_info=original)
        body["message"] = "Internal server error"
        body["extensions"] = {"code": int(ParseCode.INTERNAL_SERVER_ERROR)}
    if not hints:
        body["message"] = HINT.sub("", body["message"])
    return body


class GraphQLEndpoint:
    """The /graphql route; `schema` is built once, at start-up."""

    def __init__(self, settings: Settings, get_store: Callable[[], Store], schema: GraphQLSchema | None = None,
                 heavy_place: Callable[[Principal | None, str | None], AbstractAsyncContextManager[None]] | None = None):
        self.settings = settings
        self.get_store = get_store
        self.schema = schema or build_schema()
        # REST's places for heavy reads (rest.ParseApi.heavy_place): a query holds one, so an account
        # runs at most four finds at once across both channels.
        self.heavy_place = heavy_place

    async def handle(self, request: Request) -> Response:
        try:
            return await self._answer(request)
        except Refused as refused:
            return _json(refused.body, refused.status, refused.headers)
        except StoreError as exc:  # the store refused before execution (a session read failed, say)
            return _json({"code": int(exc.parse_code), "error": exc.message}, exc.http_status)
        except Exception:  # a bug: logged, and answered as Parse does (never a stack trace)
            log.exception("GraphQL: unexpected error")
            return _json({"data": None, "errors": [{"message": "Internal server error",
                                                     "extensions": {"code": int(ParseCode.INTERNAL_SERVER_ERROR)}}]})

    def _credentials(self, headers: Mapping[str, str]) -> str | None:
        app_id = headers.get("x-parse-application-id")
        expected = self.settings.parse_app_id
        if not isinstance(app_id, str) or not hmac.compare_digest(
                app_id.encode("utf-8", "surrogatepass"), expected.encode()):
            raise Refused(403, {"error": "unauthorized"})
        if headers.get("x-parse-master-key") or headers.get("x-parse-maintenance-key"):
            raise Refused(403, {"error": "unauthorized"})  # there is no master key
        return headers.get("x-parse-session-token") or None

    async def _read(self, request: Request) -> Operation:
        if request.method == "GET":
            return decode_operation(dict(request.query_params), from_url=True)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _errors(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.", "BAD_REQUEST")
        raw, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _errors(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.", "BAD_REQUEST")
            raw.append(chunk)
        try:
            payload = wire.loads_strict(b"".join(raw))
        except ValueError:
            raise _errors(400, "POST body is not valid JSON", "BAD_REQUEST") from None
        return decode_operation(payload, from_url=False)

    async def principal(self, store: Store, token: str | None) -> Principal | None:
        if token is None:
            return None
        try:
            return await store.resolve_session(token)
        except NotAuthenticated:
            raise _invalid_token() from None

    async def _answer(self, request: Request) -> Response:
        token = self._credentials(request.headers)
        operation = await self._read(request)
        store = self.get_store()
        principal = await self.principal(store, token)
        context = Context(store=store, principal=principal, token=token,
                          address=request.client.host if request.client else "unknown")
        document, op = self.prepare(operation, context)
        if request.method == "GET" and op.operation != OperationType.QUERY:
            raise _errors(405, "Can only perform a query operation from a GET request.", "BAD_REQUEST")
        if op.operation == OperationType.SUBSCRIPTION:
            raise _errors(400, "Subscriptions run over the websocket at /graphql (graphql-transport-ws).",
                          "BAD_REQUEST")
        if op.operation == OperationType.QUERY and self.heavy_place is not None:
            try:
                async with self.heavy_place(principal, context.address):
                    body, headers, status = await self.run(document, operation, context)
            except ApiError as exc:
                raise Refused(exc.status, {"errors": [{"message": exc.body.get("error"),
                                                       "extensions": {"code": exc.body.get("code")}}]},
                              exc.headers) from None
        else:
            body, headers, status = await self.run(document, operation, context)
        encoded = json.dumps(body, allow_nan=False, separators=(",", ":"))
        if len(encoded) > MAX_RESPONSE_BYTES:
            raise _errors(400, f"The answer would be larger than {MAX_RESPONSE_BYTES // 2**20} MB; ask for fewer "
                               "objects (first) or fewer fields.", "BAD_REQUEST")
        return Response(encoded.encode(), status_code=status, media_type="application/json", headers=headers)

    def is_lead(self, context: Context) -> bool:
        if context.principal is None:
            return False
        try:
            return context.store.permissions(principal=context.principal).is_lead
        except StoreError:
            return False

    def prepare(self, operation: Operation, context: Context) -> tuple[DocumentNode, OperationDefinitionNode]:
        """Parse, gate introspection, check the limits and validate: every refusal before a read."""
        try:
            document = parse(operation.query, max_tokens=20_000)
        except GraphQLSyntaxError as exc:
            raise Refused(400, {"errors": [{**exc.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]}) from None
        op = get_operation_ast(document, operation.operation_name)
        lead = self.is_lead(context)
        if op is None:
            errors = validate(self.schema, document)
            if errors:
                raise self._invalid(errors, lead)
            raise _errors(400, "Unknown operation named \"%s\"." % (operation.operation_name or "")
                          if operation.operation_name else "Must provide operation name if query contains "
                          "multiple operations.", "BAD_REQUEST")
        shape = limits.measure(document, op)
        if shape.introspects and not lead:
            raise _errors(403, "Introspection is not allowed", "FORBIDDEN")
        problem = limits.problem(shape)
        if problem is not None:
            raise _errors(400, problem, "BAD_REQUEST")
        errors = validate(self.schema, document)
        if errors:
            raise self._invalid(errors, lead)
        return document, op

    @staticmethod
    def _invalid(errors: list[GraphQLError], lead: bool) -> Refused:
        return Refused(400, {"errors": [
            refusal_body(e, "GRAPHQL_VALIDATION_FAILED", hints=lead) for e in errors]})

    async def run(self, document: DocumentNode, operation: Operation,
                  context: Context) -> tuple[dict[str, Any], dict[str, str], int]:
        op = get_operation_ast(document, operation.operation_name)
        assert op is not None
        coerced = get_variable_values(self.schema, op.variable_definitions or (), operation.variables or {})
        if isinstance(coerced, list):
            lead = self.is_lead(context)
            raise Refused(400, {"errors": [refusal_body(e, "BAD_USER_INPUT", hints=lead) for e in coerced]})
        result = execute(self.schema, document, context_value=context, variable_values=operation.variables,
                         operation_name=operation.operation_name)
        if inspect.isawaitable(result):
            result = await result
        body: dict[str, Any] = {}
        status, headers = 200, {}
        if result.errors:
            lead = self.is_lead(context)
            body["errors"] = [error_body(e, hints=lead) for e in result.errors]
            limited = next((e.original_error for e in result.errors if isinstance(e.original_error, RateLimited)), None)
            if limited is not None:
                status, headers = limited.http_status, {"Retry-After": str(limited.seconds)}
        body["data"] = result.data
        return body, headers, status
