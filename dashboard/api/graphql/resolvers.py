"""Resolvers: each one calls the store with the request's principal and nothing else.

Objects travel as the Parse JSON of `to_parse` (the REST shape with `className`), so fields resolve
by name; the store has already shaped every record for its reader. Pointers go through the
request's loader. The store's errors become GraphQL errors with the Parse code (`errors` module).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLResolveInfo
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode

from dashboard.access import Principal
from dashboard.api import wire
from dashboard.api.graphql.loader import PointerLoader
from dashboard.api.graphql.names import (
    cursor_to_offset,
    find_field,
    from_global_id,
    get_field,
    graphql_type,
    object_id_of,
    offset_to_cursor,
    to_global_id,
)
from dashboard.api.graphql.where import to_rest_order, to_rest_where
from dashboard.api.rest import OBJECT_ID_LENGTH
from dashboard.errors import InvalidInput, NotAuthenticated, NotFound, ParseCode, PermissionDenied
from dashboard.schema import CLASSES
from dashboard.serialize import pointer, to_parse
from dashboard.store import Store

DEFAULT_FIRST = 100
MAX_FIRST = 1000
SIGN_UP_FIELDS = ("username", "email", "password")


@dataclass
class Context:
    """One request's (or one socket's) state: who asks, through which store."""

    store: Store
    principal: Principal | None
    token: str | None
    address: str
    loader: PointerLoader = field(init=False)

    def __post_init__(self) -> None:
        self.loader = PointerLoader(self.store, self.principal)

    def signed_in(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated("Permission denied")  # code 209 with Parse's words for `viewer`
        return self.principal


def _object_id(value: str, class_name: str) -> str:
    """The objectId an `id:` argument names. A longer one than any id cannot exist: not found, as
    on REST (the audit log's object_id column could not hold it)."""
    object_id = object_id_of(value, class_name)
    if len(object_id) > OBJECT_ID_LENGTH:
        raise NotFound()
    return object_id


def _bad_query(field_name: str, rule: str) -> InvalidInput:
    return InvalidInput(field_name, rule, code=ParseCode.INVALID_QUERY)


# ------------------------------------------------------------------------------- object fields
def node_type(obj: Mapping[str, Any], info: GraphQLResolveInfo, abstract: Any) -> str:
    return graphql_type(obj["className"])


def resolve_global_id(obj: Mapping[str, Any], info: GraphQLResolveInfo) -> str:
    return to_global_id(obj["className"], obj["objectId"])


def resolve_acl(obj: Mapping[str, Any], info: GraphQLResolveInfo) -> dict[str, Any]:
    return {}  # access is the care team's (ACCESS.md): every object's ACL is empty, as on REST


def pointer_resolver(field_name: str, target: str) -> Callable[..., Any]:
    def resolve(obj: Mapping[str, Any], info: GraphQLResolveInfo) -> Any:
        value = obj.get(field_name)
        if not isinstance(value, Mapping) or not isinstance(value.get("objectId"), str):
            return None
        future = info.context.loader.load(target, value["objectId"])
        # Read ahead (`prefetch`): answered at once, so graphql-core stays on its synchronous path.
        return future.result() if future.done() else future
    return resolve


def _fields_named(selection_sets: list[SelectionSetNode], fragments: Mapping[str, Any]) -> dict[str, list[SelectionSetNode]]:
    """Every field these selection sets name, through fragments, with its subselections."""
    out: dict[str, list[SelectionSetNode]] = {}

    def walk(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> None:
        for sel in selection_set.selections if selection_set is not None else ():
            if isinstance(sel, FieldNode):
                subsets = out.setdefault(sel.name.value, [])
                if sel.selection_set is not None:
                    subsets.append(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, seen)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                fragment = fragments.get(sel.name.value)
                if fragment is not None:
                    walk(fragment.selection_set, seen | {sel.name.value})

    for selection_set in selection_sets:
        walk(selection_set, frozenset())
    return out


async def prefetch(ctx: Context, class_name: str, objects: list[dict[str, Any]],
                   selection_sets: list[SelectionSetNode], info: GraphQLResolveInfo) -> None:
    """Reads, before execution reaches them, the pointers these objects' selection follows: one
    `get_many` per class and level (the loader's batches), so each pointer field then resolves at
    once instead of as one awaitable per object."""
    level = [(class_name, objects, selection_sets)]
    while level:
        pending: list[tuple[str, list[asyncio.Future[dict[str, Any] | None]], list[SelectionSetNode]]] = []
        for cls, objs, sets in level:
            specs = CLASSES.get(cls, {})
            for name, subsets in _fields_named(sets, info.fragments).items():
                spec = specs.get(name)
                if spec is None or spec.kind != "Pointer" or not spec.target:
                    continue
                ids = {o[name]["objectId"] for o in objs
                       if isinstance(o.get(name), Mapping) and isinstance(o[name].get("objectId"), str)}
                pending.append((spec.target, [ctx.loader.load(spec.target, i) for i in ids], subsets))
        level = []
        for target, futures, subsets in pending:
            loaded = [o for o in await asyncio.gather(*futures) if o is not None]
            if loaded:
                level.append((target, loaded, subsets))


# ------------------------------------------------------------------------------- queries
def health(root: Any, info: GraphQLResolveInfo) -> bool:
    return True


async def viewer(root: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    ctx: Context = info.context
    principal = ctx.signed_in()
    user = await ctx.store.get_user(principal=principal, user_id=principal.user_id)
    return {"sessionToken": ctx.token, "user": to_parse(user)}


async def _get(ctx: Context, class_name: str, object_id: str) -> dict[str, Any]:
    record = await ctx.store.get(principal=ctx.principal, class_name=class_name, object_id=object_id)
    obj = to_parse(record)
    ctx.loader.prime(obj)
    return obj


async def _get_for(info: GraphQLResolveInfo, class_name: str, object_id: str,
                   selection_sets: list[SelectionSetNode]) -> dict[str, Any]:
    """One object and, read ahead, the pointers its selection follows."""
    obj = await _get(info.context, class_name, object_id)
    await prefetch(info.context, class_name, [obj], selection_sets, info)
    return obj


async def node(root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:
    decoded = from_global_id(id)
    if decoded is None or decoded[0] not in CLASSES:
        decoded = ("Patient", id)  # no such object: the store answers (and audits) as for any missing id
    return await _get(info.context, decoded[0], _object_id(decoded[1], decoded[0]))


def getter(class_name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def resolve(root: Any, info: GraphQLResolveInfo, id: str, options: Any = None) -> dict[str, Any]:
        return await _get_for(info, class_name, _object_id(id, class_name), _own_selections(info))
    return resolve


def _own_selections(info: GraphQLResolveInfo) -> list[SelectionSetNode]:
    return [f.selection_set for f in info.field_nodes if f.selection_set is not None]


def _non_negative(value: int | None, name: str) -> int | None:
    if value is not None and value < 0:
        raise _bad_query(name, "must be a positive number")
    return value


def _cursor(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    offset = cursor_to_offset(value)
    if offset is None:
        raise _bad_query(name, "is not a valid cursor")
    return offset


def skip_and_limit(skip: int | None, first: int | None, after: str | None, last: int | None,
                   before: str | None) -> tuple[int, int | None, bool]:
    """Parse's connection arithmetic (graphql-relay's): (skip, limit, whether `last` needs the count)."""
    skip = _non_negative(skip, "skip") or 0
    limit = _non_negative(first, "first")
    after_offset = _cursor(after, "after")
    before_offset = _cursor(before, "before")
    last = _non_negative(last, "last")
    if after_offset is not None:
        skip += after_offset + 1
    if limit is not None:
        limit = min(limit, MAX_FIRST)
    if before_offset is not None:
        if skip >= before_offset:
            limit = 0
        elif limit is None or skip + limit > before_offset:
            limit = before_offset - skip
    needs_count = False
    if last is not None:
        last = min(last, MAX_FIRST)
        if limit is not None:
            if last < limit:
                skip += limit - last
                limit = last
        elif last == 0:
            limit = 0
        else:
            limit, needs_count = last, True
    return skip, limit, needs_count


async def subquery_ids(ctx: Context, class_name: str, where: dict[str, Any]) -> list[str]:
    """The readable objects of `class_name` matching `where` (a `have` on a pointer)."""
    rows = await ctx.store.find(principal=ctx.principal, class_name=class_name, where=where, limit=1000)
    return [r.id for r in rows]  # type: ignore[attr-defined]


def finder(class_name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def resolve(root: Any, info: GraphQLResolveInfo, where: Any = None, order: Any = None,
                      skip: int | None = None, first: int | None = None, after: str | None = None,
                      last: int | None = None, before: str | None = None, options: Any = None) -> dict[str, Any]:
        ctx: Context = info.context
        wanted = _fields_named(_own_selections(info), info.fragments)
        start, limit, needs_count = skip_and_limit(skip, first, after, last, before)
        rest_where = await to_rest_where(class_name, where,
                                         lambda target, w: subquery_ids(ctx, target, w))
        rest_order = to_rest_order(order)
        page = _fields_named(wanted.get("pageInfo", []), info.fragments)
        total: int | None = None
        if "count" in wanted or needs_count or ("hasNextPage" in page and limit == MAX_FIRST):
            total = await ctx.store.count(principal=ctx.principal, class_name=class_name, where=rest_where)
        if needs_count and total is not None and limit is not None and start + limit < total:
            start = total - limit
        if limit is None:
            limit = DEFAULT_FIRST
        rows: list[dict[str, Any]] = []
        more = False
        if ("edges" in wanted or "pageInfo" in wanted) and limit > 0:
            fetch = min(limit + 1, MAX_FIRST)  # one more than the page tells whether there is a next
            records = await ctx.store.find(principal=ctx.principal, class_name=class_name, where=rest_where,
                                           order=rest_order, limit=fetch, skip=start)
            rows = [to_parse(r) for r in records]
            more = len(rows) > limit or (total is not None and start + min(len(rows), limit) < total)
            rows = rows[:limit]
            for obj in rows:
                ctx.loader.prime(obj)
            nodes = _fields_named(wanted.get("edges", []), info.fragments).get("node", [])
            await prefetch(ctx, class_name, rows, nodes, info)
        edges = [{"cursor": offset_to_cursor(start + i), "node": obj} for i, obj in enumerate(rows)]
        return {
            "count": total,
            "edges": edges,
            "pageInfo": {
                "hasNextPage": more,
                "hasPreviousPage": start > 0 and (bool(rows) or bool(total)),
                "startCursor": edges[0]["cursor"] if edges else None,
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
        }
    return resolve


# ------------------------------------------------------------------------------- mutations
@dataclass
class Fields:
    """A fields input as the store takes it, and the pointers to create with it (`createAndLink`)."""

    values: dict[str, Any]
    create: dict[str, dict[str, Any]] = field(default_factory=dict)  # pointer field -> target's fields


def to_rest_fields(class_name: str, fields: Mapping[str, Any] | None) -> Fields:
    """A fields input as the REST body the store decodes: pointer inputs become pointers, dates
    arrive in the wire form; a `createAndLink` is kept apart for the store to create alongside."""
    body: dict[str, Any] = {}
    create: dict[str, dict[str, Any]] = {}
    specs = CLASSES[class_name]
    for name, value in (fields or {}).items():
        if name == "ACL":
            continue  # accepted and ignored, as on REST
        if name == "authData":
            raise InvalidInput("authData", "third-party sign-in is not supported", code=ParseCode.UNSUPPORTED_SERVICE)
        if name == "emailVerified":
            raise InvalidInput("emailVerified", "is set by the server", code=ParseCode.INVALID_KEY_NAME)
        spec = specs.get(name)
        if spec is not None and spec.kind == "Pointer" and value is not None:
            target = spec.target or ""
            link, linked = value.get("link"), value.get("createAndLink")
            if (link is None) == (linked is None):
                raise InvalidInput(name, f"You need to provide link OR createLink on the pointer mutation of field {name}",
                                   code=ParseCode.INVALID_POINTER)
            if link is not None:
                body[name] = pointer(target, object_id_of(link, target))
            elif target == "_User":
                raise PermissionDenied(f"{name}: users are made by signUp (or by a lead with createUser)")
            else:
                nested = to_rest_fields(target, linked)
                if nested.create:
                    raise PermissionDenied(f"{name}: one level of createAndLink at most")
                create[name] = nested.values
        else:
            body[name] = value
    return Fields(wire.decode_fields(class_name, body), create)


def _payload(class_name: str, obj: dict[str, Any], input: Mapping[str, Any]) -> dict[str, Any]:
    return {get_field(class_name): obj, "clientMutationId": input.get("clientMutationId")}


def creator(class_name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def resolve(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
        ctx: Context = info.context
        fields = to_rest_fields(class_name, input.get("fields"))
        if fields.create:  # the target and this object in one store transaction, or neither
            [(name, target_fields)] = fields.create.items() if len(fields.create) == 1 else [("", {})]
            _, record = await ctx.store.create_for_new_patient(
                principal=ctx.principal, class_name=class_name, fields=fields.values, patient=target_fields,
                pointer=name or ", ".join(fields.create))
        else:
            record = await ctx.store.create(principal=ctx.principal, class_name=class_name, fields=fields.values)
        return _payload(class_name, await _get(ctx, class_name, record.id), input)  # type: ignore[attr-defined]
    return resolve


def updater(class_name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def resolve(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
        ctx: Context = info.context
        object_id = _object_id(input["id"], class_name)
        changes = to_rest_fields(class_name, input.get("fields"))
        if changes.create:
            raise InvalidInput(next(iter(changes.create)), "createAndLink makes a new object with a new one; "
                               "on an update, link an existing object", code=ParseCode.INVALID_POINTER)
        await ctx.store.update(principal=ctx.principal, class_name=class_name, object_id=object_id,
                               changes=changes.values)
        return _payload(class_name, await _get(ctx, class_name, object_id), input)
    return resolve


def deleter(class_name: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def resolve(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
        ctx: Context = info.context
        object_id = _object_id(input["id"], class_name)
        await ctx.store.delete(principal=ctx.principal, class_name=class_name, object_id=object_id)
        return _payload(class_name, await _get(ctx, class_name, object_id), input)  # pragma: no cover
    return resolve


async def sign_up(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
    ctx: Context = info.context
    fields = dict(input.get("fields") or {})
    fields.pop("ACL", None)
    if "role" in fields:
        raise PermissionDenied("signUp makes a contributor; a lead makes other accounts with createUser")
    for name in fields:
        if name not in SIGN_UP_FIELDS:
            to_rest_fields("_User", {name: fields[name]})  # authData, emailVerified: their own error
            raise InvalidInput(name, "is not a sign-up field (username, email, password)",
                               code=ParseCode.INVALID_KEY_NAME)
    signed = await ctx.store.sign_up(username=fields.get("username"), email=fields.get("email"),  # type: ignore[arg-type]
                                     password=fields.get("password"), address=ctx.address)  # type: ignore[arg-type]
    return {"viewer": {"sessionToken": signed.token, "user": to_parse(signed.user)},
            "clientMutationId": input.get("clientMutationId")}


async def log_in(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
    ctx: Context = info.context
    if input.get("authData") is not None:
        raise InvalidInput("authData", "third-party sign-in is not supported", code=ParseCode.UNSUPPORTED_SERVICE)
    signed = await ctx.store.log_in(username=input["username"], password=input["password"], address=ctx.address)
    return {"viewer": {"sessionToken": signed.token, "user": to_parse(signed.user)},
            "clientMutationId": input.get("clientMutationId")}


async def log_out(root: Any, info: GraphQLResolveInfo, input: Mapping[str, Any]) -> dict[str, Any]:
    ctx: Context = info.context
    await ctx.store.log_out(principal=ctx.signed_in())
    return {"ok": True, "clientMutationId": input.get("clientMutationId")}


# ------------------------------------------------------------------------------- subscriptions
def live_event(root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """A subscription document is executed once per delivery with the event as its root value."""
    return root


__all__ = ["Context", "find_field"]
