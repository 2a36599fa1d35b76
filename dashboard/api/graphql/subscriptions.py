"""GraphQL subscriptions at ws://SERVER/graphql over graphql-transport-ws (GRAPHQL.md §9).

The socket is a live socket like the live-query one (dashboard/api/live_query.py `LiveConnection`):
each subscription is registered with the hub, and its events are worked out there per subscriber
(the record before and after against `where` and against the subscriber's access at delivery),
tracked, resynced and backpressured there, and it ends with its session there. This module speaks
the protocol (graphql-ws's messages and close codes) and writes each event by executing the
subscription's document, validated once at `subscribe` with http.py's steps, with the event as root
value. Pointers in the selection resolve through one loader per principal for everything delivered
in the same step, so the recipients of an event that read as the same principal share their reads.
A query or mutation over the socket runs as over HTTP.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    Executor,
    GraphQLError,
    GraphQLResolveInfo,
    OperationType,
    create_source_event_stream,
    execute,
)
from starlette.websockets import WebSocket

from dashboard.access import Principal
from dashboard.api.graphql.http import (
    GraphQLEndpoint,
    Operation,
    Refused,
    decode_operation,
    error_body,
    refusal_body,
)
from dashboard.api.graphql.loader import PointerLoader
from dashboard.api.graphql.names import find_field, to_global_id
from dashboard.api.graphql.resolvers import Context
from dashboard.api.graphql.schema import LIVE_CLASSES
from dashboard.api.graphql.where import to_rest_where
from dashboard.api.live_query import MAX_MESSAGE_CHARS as LIVE_MESSAGE_CHARS
from dashboard.api.live_query import (
    MAX_SUBSCRIPTIONS,
    Deferred,
    LiveConnection,
    LiveQueryServer,
    LiveSubscription,
    Outgoing,
)
from dashboard.api.rest import MAX_RESPONSE_BYTES
from dashboard.errors import InvalidInput, ParseCode, StoreError
from dashboard.store import Store

log = logging.getLogger("ot_tracker.graphql")

PROTOCOL = "graphql-transport-ws"
# connection_init must arrive this soon after opening (graphql-ws's connectionInitWaitTimeout).
INIT_TIMEOUT_SECONDS = 10.0
# As the live-query socket's: the server's transport bound (server.WS_MAX_SIZE) is derived from it.
MAX_MESSAGE_CHARS = LIVE_MESSAGE_CHARS
# graphql-ws's close codes
BAD_REQUEST = 4400
UNAUTHORIZED = 4401
FORBIDDEN = 4403
SUBPROTOCOL_NOT_ACCEPTABLE = 4406
INIT_TIMEOUT = 4408
SUBSCRIBER_EXISTS = 4409
TOO_MANY_INITS = 4429
INTERNAL_ERROR = 4500
EVENTS = {"create": "CREATE", "enter": "ENTER", "update": "UPDATE", "leave": "LEAVE", "delete": "DELETE"}
LIVE_FIELDS = {find_field(c): c for c in LIVE_CLASSES}  # the Subscription root's fields


@dataclass(frozen=True)
class LiveOperation:
    """A subscription's operation, validated once; executed once per event."""

    document: DocumentNode
    variables: dict[str, Any] | None
    operation_name: str | None
    events: frozenset[str] | None  # the `events` argument; None: all
    hints: bool  # validation hints in its errors (a lead's)


class _RootField:
    """Stands in for the event stream while the operation is checked: the root field and its
    arguments, coerced by graphql-core (variables, fragments and directives included)."""

    def __init__(self, root: Any, info: GraphQLResolveInfo, **args: Any):
        self.field_name = info.field_name
        self.args = args

    def __aiter__(self) -> "_RootField":
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


async def _pointer_by_id_only(target: str, where: dict[str, Any]) -> list[str]:
    """A subscription's `have` names its target by id: a change is matched in memory, with no query
    of the target (GRAPHQL.md §9)."""
    raise InvalidInput("have", f"a subscription matches a {target} pointer by objectId or id only (equalTo, in)",
                       code=ParseCode.INVALID_QUERY)


def _message(kind: str, id: str | None = None, payload: Any = None) -> str:
    body: dict[str, Any] = {"type": kind}
    if id is not None:
        body["id"] = id
    if payload is not None:
        body["payload"] = payload
    return json.dumps(body, separators=(",", ":"))


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8 (RFC 6455)."""
    return text.encode("utf-8")[:123].decode("utf-8", "ignore")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _problem(message: Any) -> str | None:
    """What makes a message invalid, as graphql-ws's validateMessage words it; None when it is valid."""
    if not isinstance(message, dict):
        return "Message is expected to be an object"
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        return "Message is missing the 'type' property"
    if kind in ("connection_init", "ping", "pong"):
        if message.get("payload") is not None and not isinstance(message["payload"], dict):
            return f'"{kind}" message expects the \'payload\' property to be an object or nullish or missing'
        return None
    if kind not in ("subscribe", "complete"):
        return f"Unexpected message of type {kind} received"
    if not isinstance(message.get("id"), str) or not message["id"]:
        return f'"{kind}" message requires a non-empty \'id\' property'
    if kind == "complete":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return '"subscribe" message expects the \'payload\' property to be an object'
    if not isinstance(payload.get("query"), str):
        return '"subscribe" message payload expects the \'query\' property to be a string'
    for name in ("variables", "extensions"):
        if payload.get(name) is not None and not isinstance(payload[name], dict):
            return f'"subscribe" message payload expects the \'{name}\' property to be an object or nullish or missing'
    if payload.get("operationName") is not None and not isinstance(payload["operationName"], str):
        return '"subscribe" message payload expects the \'operationName\' property to be a string or nullish or missing'
    return None


class GraphQLSubscriptions:
    """The websocket at /graphql; its sockets are hosted by the live-query server (one cap per address)."""

    def __init__(self, live: LiveQueryServer, endpoint: GraphQLEndpoint):
        self.live = live
        self.endpoint = endpoint
        self._loaders: dict[Principal, PointerLoader] = {}

    def loader(self, store: Store, principal: Principal) -> PointerLoader:
        """The pointer loader of everything delivered to `principal` in this step of the loop. A read
        is the principal's (the store shapes it for its reader), so recipients share it per principal."""
        loaders = self._loaders
        if not loaders:
            asyncio.get_running_loop().call_soon(loaders.clear)
        loader = loaders.get(principal)
        if loader is None:
            loader = loaders[principal] = PointerLoader(store, principal)
        return loader

    async def serve(self, websocket: WebSocket) -> None:
        await self.live.host(websocket, lambda ws: GraphQLConnection(self, ws))


class GraphQLConnection(LiveConnection):
    """One graphql-transport-ws client."""

    session_close = (FORBIDDEN, "Forbidden")

    def __init__(self, hosted: GraphQLSubscriptions, websocket: WebSocket):
        super().__init__(hosted.live, websocket)
        self.hosted = hosted
        self.endpoint = hosted.endpoint
        self.acknowledged = False
        self.token: str | None = None
        self.address = websocket.client.host if websocket.client else "unknown"

    # ------------------------------------------------------------------ the protocol's part
    async def accept(self) -> bool:
        if PROTOCOL not in (self.ws.scope.get("subprotocols") or ()):
            # As graphql-ws: the handshake completes, and the close says why.
            await self.ws.accept()
            await self.ws.close(SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return False
        await self.ws.accept(subprotocol=PROTOCOL)
        return True

    def ready_timeout(self) -> float:
        return INIT_TIMEOUT_SECONDS

    async def on_ready_timeout(self) -> None:
        self.close(INIT_TIMEOUT, "Connection initialisation timeout")

    def close(self, code: int, reason: str = "") -> None:
        super().close(code, _reason(reason))

    def event_message(self, sub: LiveSubscription, op: str, obj: Mapping[str, Any],
                      original: Mapping[str, Any] | None, *, lost: bool = False) -> Outgoing | None:
        live: LiveOperation = sub.operation
        event = EVENTS[op]
        if live.events is not None and event not in live.events:
            return None
        object_id = obj["objectId"]
        root = {"event": event, "id": to_global_id(sub.class_name, object_id), "objectId": object_id,
                "node": None if lost else obj, "originalNode": None if lost else original}
        context = self._event_context(sub.principal)
        result = execute(self.endpoint.schema, live.document, root_value=root, context_value=context,
                         variable_values=live.variables, operation_name=live.operation_name)
        if isinstance(result, ExecutionResult):
            return self._next(sub.key, live, result)
        return Deferred(result, lambda done: self._next(sub.key, live, done))  # waits on pointer reads

    def ended_message(self, sub: LiveSubscription) -> str | None:
        return _message("error", str(sub.key), [{"message": "Invalid session token",
                                                "extensions": {"code": int(ParseCode.INVALID_SESSION_TOKEN)}}])

    # ------------------------------------------------------------------ messages
    async def on_message(self, text: str | None) -> None:
        try:
            await self._on_message(text)
        except Exception:  # noqa: BLE001 - a fault ends this socket, never the server
            log.exception("GraphQL socket: unexpected error")
            self.close(INTERNAL_ERROR, "Internal server error")

    async def _on_message(self, text: str | None) -> None:
        if text is None or len(text) > MAX_MESSAGE_CHARS:
            self.close(BAD_REQUEST, "Invalid message received")
            return
        try:
            message = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            self.close(BAD_REQUEST, "Invalid message received")
            return
        problem = _problem(message)
        if problem is not None:
            self.close(BAD_REQUEST, problem)
            return
        kind = message["type"]
        if kind == "connection_init":
            await self._init(message.get("payload") or {})
        elif kind == "ping":
            payload = message.get("payload")
            await self.send(_message("pong", payload=payload or None))
        elif kind == "subscribe":
            if not self.acknowledged:
                self.close(UNAUTHORIZED, "Unauthorized")
            elif not await self.store.touch_session(self.principal):  # type: ignore[arg-type]
                self._end_session()  # activity, but not on a session that is over
            else:
                await self._subscribe(message["id"], message["payload"])
        elif kind == "complete":
            self._complete(message["id"])

    async def _init(self, payload: Mapping[str, Any]) -> None:
        if self.ready:
            self.close(TOO_MANY_INITS, "Too many initialisation requests")
            return
        self.ready = True
        headers = {str(k).lower(): v for k, v in payload.items()}  # header names, as in connectionParams
        try:
            token = self.endpoint._credentials(headers)  # noqa: SLF001 - the app id and master key rules of HTTP
            principal = await self.endpoint.principal(self.store, token)
        except Refused:
            principal = None
        if principal is None:  # wrong app id, master key, no token or a bad one
            self.close(FORBIDDEN, "Forbidden")
            return
        self.token = token
        self._watch_session(principal)
        self.acknowledged = True
        await self.send(_message("connection_ack"))

    def _context(self) -> Context:
        """A request's context, with its own loader (an operation, or the check of a subscription)."""
        return Context(store=self.store, principal=self.principal, token=self.token, address=self.address)

    def _event_context(self, principal: Principal) -> Context:
        """An event's context: its pointer reads shared with the other recipients of this step."""
        context = Context(store=self.store, principal=principal, token=self.token, address=self.address)
        context.loader = self.hosted.loader(self.store, principal)
        return context

    async def _subscribe(self, id: str, payload: Mapping[str, Any]) -> None:
        if id in self.subscriptions:
            self.close(SUBSCRIBER_EXISTS, f"Subscriber for {id} already exists")
            return
        context = self._context()
        try:
            operation = decode_operation(payload, from_url=False)
            document, op = self.endpoint.prepare(operation, context)
            if op.operation != OperationType.SUBSCRIPTION:
                await self._run(id, document, operation, context)
                return
            sub = await self._subscription(id, document, operation, context)
        except Refused as refused:
            await self.send(_message("error", id, self._errors(refused)))
            return
        except StoreError as exc:  # a `where` the store refuses (its code, as on a query)
            hints = self.endpoint.is_lead(context)
            await self.send(_message("error", id, [error_body(GraphQLError(exc.message, original_error=exc),
                                                              hints=hints)]))
            return
        if self.closing:  # the session ended while the view was being read
            self._drop(sub)
            return
        self.subscriptions[id] = sub
        self._go_live(sub)

    @staticmethod
    def _errors(refused: Refused) -> list[dict[str, Any]]:
        errors = refused.body.get("errors")
        if errors:
            return errors
        return [{"message": str(refused.body.get("error", "Bad request")),
                 "extensions": {"code": refused.body.get("code", "BAD_REQUEST")}}]

    async def _run(self, id: str, document: DocumentNode, operation: Operation, context: Context) -> None:
        """A query or mutation: one `next`, then `complete`."""
        body, _, _ = await self.endpoint.run(document, operation, context)
        text = _message("next", id, body)
        if len(text) > MAX_RESPONSE_BYTES:
            raise Refused(400, {"errors": [{
                "message": f"The answer would be larger than {MAX_RESPONSE_BYTES // 2**20} MB; ask for fewer "
                           "objects (first) or fewer fields.", "extensions": {"code": "BAD_REQUEST"}}]})
        await self.send(text)
        await self.send(_message("complete", id))

    async def _subscription(self, id: str, document: DocumentNode, operation: Operation,
                            context: Context) -> LiveSubscription:
        """The subscription `operation` asks for, registered with the hub and its view read."""
        hints = self.endpoint.is_lead(context)
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise Refused(400, {"errors": [{"message": f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                                            "extensions": {"code": int(ParseCode.REQUEST_LIMIT_EXCEEDED)}}]})
        executor = Executor.build(self.endpoint.schema, document, context_value=context,
                                  raw_variable_values=operation.variables, operation_name=operation.operation_name,
                                  subscribe_field_resolver=_RootField)
        if isinstance(executor, list):
            raise Refused(400, {"errors": [refusal_body(e, "BAD_USER_INPUT", hints=hints) for e in executor]})
        root = create_source_event_stream(executor)
        if not isinstance(root, _RootField):
            errors = root.errors if isinstance(root, ExecutionResult) else None
            raise Refused(400, {"errors": [refusal_body(e, "BAD_USER_INPUT", hints=hints) for e in errors or ()]
                                or [{"message": "Unable to identify operation"}]})
        class_name = LIVE_FIELDS[root.field_name]
        where = await to_rest_where(class_name, root.args.get("where"), _pointer_by_id_only)
        events = root.args.get("events")
        live = LiveOperation(document, operation.variables, operation.operation_name,
                             None if events is None else frozenset(events), hints)
        sub = LiveSubscription(id, class_name, where or {}, context.signed_in(), operation=live)
        await self._open(sub)
        return sub

    def _complete(self, id: str) -> None:
        """The client stopped listening: nothing more is sent for `id`, not even what is queued."""
        sub = self.subscriptions.pop(id, None)
        if sub is not None:
            self._drop(sub)
            self._forget_queued(id)

    def _next(self, id: int | str, live: LiveOperation, result: ExecutionResult) -> str:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error_body(e, hints=live.hints) for e in result.errors]
        return _message("next", str(id), payload)
