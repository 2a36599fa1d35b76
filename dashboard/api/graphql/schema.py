"""The GraphQL schema Parse Server 9.10 generates, built at start-up from the store's field specs.

`build_schema()` walks `dashboard.schema.CLASSES` (never a second list) and makes, for each class,
Parse's output, input, where, order, pointer, connection and Relay mutation types (GRAPHQL.md §2),
then the root Query, Mutation and Subscription types. Names and nullability follow Parse's so that
clients generated from Parse's schema validate here unchanged. Resolvers live in `resolvers`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    ValueNode,
)
from graphql.language import BooleanValueNode, FloatValueNode, IntValueNode, ListValueNode, NullValueNode, ObjectValueNode, StringValueNode

from dashboard.api.graphql import resolvers
from dashboard.api.graphql.names import find_field, get_field, graphql_type
from dashboard.schema import CLASSES, FieldSpec
from dashboard.serialize import from_iso, iso

# The record classes a subscription may follow (GRAPHQL.md §9): not users.
LIVE_CLASSES = tuple(c for c in CLASSES if c != "_User")
# Fields Parse's _User has whatever the app adds (schema parity); ours never sets them.
USER_BUILTINS: dict[str, str] = {"emailVerified": "Boolean", "authData": "Object"}
USER_OUTPUT_ONLY: dict[str, str] = {"authDataResponse": "Object"}


def _non_null(t: Any) -> GraphQLNonNull:
    return GraphQLNonNull(t)


# ----------------------------------------------------------------------------------- scalars
def _date_out(value: Any) -> str:
    if isinstance(value, Mapping) and value.get("__type") == "Date":
        value = value.get("iso")
    if isinstance(value, str) and len(value) == 24 and value[-1] == "Z" and value[19] == ".":
        return value  # already Parse's form (serialize.iso): the store's every date
    parsed = from_iso(value)
    if parsed is None:
        raise TypeError("Date cannot represent this value")
    return iso(parsed)


def _date_in(value: Any) -> dict[str, str]:
    """Input: an ISO-8601 string or {__type: "Date", iso}; the store's wire form comes out."""
    if isinstance(value, Mapping) and value.get("__type") == "Date":
        value = value.get("iso")
    parsed = from_iso(value)
    if parsed is None:
        raise ValueError("Date must be an ISO-8601 string such as 2026-01-02T03:04:05.006Z")
    return {"__type": "Date", "iso": iso(parsed)}


def _literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    from graphql import value_from_ast_untyped
    return value_from_ast_untyped(node, variables)


def _date_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> dict[str, str]:
    if isinstance(node, (StringValueNode, ObjectValueNode)):
        return _date_in(_literal(node, variables))
    raise ValueError("Date must be an ISO-8601 string")


def _object_in(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("Object must be an object")
    return dict(value)


def _object_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    if isinstance(node, ObjectValueNode):
        return _object_in(_literal(node, variables))
    raise ValueError("Object must be an object")


def _any_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    if isinstance(node, (StringValueNode, IntValueNode, FloatValueNode, BooleanValueNode, ListValueNode,
                         ObjectValueNode, NullValueNode)):
        return _literal(node, variables)
    raise ValueError("Any cannot represent this value")


DATE = GraphQLScalarType("Date", description="The Date scalar type is used in operations and types that involve dates.",
                         serialize=_date_out, parse_value=_date_in, parse_literal=_date_literal)
OBJECT = GraphQLScalarType("Object", description="The Object scalar type is used in operations and types that involve objects.",
                           serialize=lambda v: v, parse_value=_object_in, parse_literal=_object_literal)
ANY = GraphQLScalarType("Any", description="The Any scalar type is used in operations and types that involve any type of value.",
                        serialize=lambda v: v, parse_value=lambda v: v, parse_literal=_any_literal)


class SchemaBuilder:
    """One pass over CLASSES; types are made once and looked up by name."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}
        self._shared()
        # Output types first (pointers between classes need every one), inputs after.
        for class_name in CLASSES:
            self.types[graphql_type(class_name)] = self._object_type(class_name)
        for class_name in CLASSES:
            self._class_inputs(class_name)
        for class_name in CLASSES:
            self._class_outputs(class_name)

    # ------------------------------------------------------------------------------ shared
    def _shared(self) -> None:
        t = self.types
        t["Node"] = GraphQLInterfaceType("Node", {"id": GraphQLField(_non_null(GraphQLID))},
                                         description="An object with an ID",
                                         resolve_type=resolvers.node_type)
        acl_entry = {"read": GraphQLField(_non_null(GraphQLBoolean)), "write": GraphQLField(_non_null(GraphQLBoolean))}
        t["UserACL"] = GraphQLObjectType("UserACL", {"userId": GraphQLField(_non_null(GraphQLID)), **acl_entry})
        t["RoleACL"] = GraphQLObjectType("RoleACL", {"roleName": GraphQLField(_non_null(GraphQLID)), **acl_entry})
        t["PublicACL"] = GraphQLObjectType("PublicACL", {"read": GraphQLField(GraphQLBoolean),
                                                         "write": GraphQLField(GraphQLBoolean)})
        t["ACL"] = GraphQLObjectType("ACL", {
            "public": GraphQLField(t["PublicACL"]),
            "roles": GraphQLField(GraphQLList(_non_null(t["RoleACL"]))),
            "users": GraphQLField(GraphQLList(_non_null(t["UserACL"]))),
        })
        acl_in = {"read": GraphQLInputField(_non_null(GraphQLBoolean)),
                  "write": GraphQLInputField(_non_null(GraphQLBoolean))}
        t["UserACLInput"] = GraphQLInputObjectType("UserACLInput", {"userId": GraphQLInputField(_non_null(GraphQLID)), **acl_in})
        t["RoleACLInput"] = GraphQLInputObjectType("RoleACLInput", {"roleName": GraphQLInputField(_non_null(GraphQLString)), **acl_in})
        t["PublicACLInput"] = GraphQLInputObjectType("PublicACLInput", acl_in)
        t["ACLInput"] = GraphQLInputObjectType("ACLInput", {
            "public": GraphQLInputField(t["PublicACLInput"]),
            "roles": GraphQLInputField(GraphQLList(_non_null(t["RoleACLInput"]))),
            "users": GraphQLInputField(GraphQLList(_non_null(t["UserACLInput"]))),
        })
        t["ParseObject"] = GraphQLInterfaceType("ParseObject", {
            "ACL": GraphQLField(_non_null(t["ACL"])),
            "createdAt": GraphQLField(_non_null(DATE)),
            "objectId": GraphQLField(_non_null(GraphQLID)),
            "updatedAt": GraphQLField(_non_null(DATE)),
        }, resolve_type=resolvers.node_type)
        t["PageInfo"] = GraphQLObjectType("PageInfo", {
            "endCursor": GraphQLField(GraphQLString),
            "hasNextPage": GraphQLField(_non_null(GraphQLBoolean)),
            "hasPreviousPage": GraphQLField(_non_null(GraphQLBoolean)),
            "startCursor": GraphQLField(GraphQLString),
        })
        t["ReadPreference"] = GraphQLEnumType("ReadPreference", {
            v: GraphQLEnumValue(v) for v in ("PRIMARY", "PRIMARY_PREFERRED", "SECONDARY", "SECONDARY_PREFERRED", "NEAREST")})
        t["ReadOptionsInput"] = GraphQLInputObjectType("ReadOptionsInput", {
            "includeReadPreference": GraphQLInputField(t["ReadPreference"]),
            "readPreference": GraphQLInputField(t["ReadPreference"]),
            "subqueryReadPreference": GraphQLInputField(t["ReadPreference"]),
        })
        t["SubqueryInput"] = GraphQLInputObjectType("SubqueryInput", {
            "className": GraphQLInputField(_non_null(GraphQLString)),
            "where": GraphQLInputField(_non_null(OBJECT)),
        })
        t["SelectInput"] = GraphQLInputObjectType("SelectInput", {
            "key": GraphQLInputField(_non_null(GraphQLString)),
            "query": GraphQLInputField(_non_null(t["SubqueryInput"])),
        })
        t["SearchInput"] = GraphQLInputObjectType("SearchInput", {
            "caseSensitive": GraphQLInputField(GraphQLBoolean),
            "diacriticSensitive": GraphQLInputField(GraphQLBoolean),
            "language": GraphQLInputField(GraphQLString),
            "term": GraphQLInputField(_non_null(GraphQLString)),
        })
        t["TextInput"] = GraphQLInputObjectType("TextInput", {"search": GraphQLInputField(_non_null(t["SearchInput"]))})
        for name, scalar in (("Id", GraphQLID), ("String", GraphQLString), ("Number", GraphQLFloat), ("Date", DATE)):
            ops = {op: GraphQLInputField(scalar) for op in ("equalTo", "notEqualTo", "lessThan", "lessThanOrEqualTo",
                                                              "greaterThan", "greaterThanOrEqualTo")}
            ops["in"] = GraphQLInputField(GraphQLList(scalar))
            ops["notIn"] = GraphQLInputField(GraphQLList(scalar))
            ops["exists"] = GraphQLInputField(GraphQLBoolean)
            ops["inQueryKey"] = GraphQLInputField(t["SelectInput"])
            ops["notInQueryKey"] = GraphQLInputField(t["SelectInput"])
            if name == "String":
                ops["matchesRegex"] = GraphQLInputField(GraphQLString)
                ops["options"] = GraphQLInputField(GraphQLString)
                ops["text"] = GraphQLInputField(t["TextInput"])
            t[f"{name}WhereInput"] = GraphQLInputObjectType(f"{name}WhereInput", dict(sorted(ops.items())))
        t["BooleanWhereInput"] = GraphQLInputObjectType("BooleanWhereInput", {
            "equalTo": GraphQLInputField(GraphQLBoolean), "exists": GraphQLInputField(GraphQLBoolean),
            "inQueryKey": GraphQLInputField(t["SelectInput"]), "notEqualTo": GraphQLInputField(GraphQLBoolean),
            "notInQueryKey": GraphQLInputField(t["SelectInput"]),
        })
        t["KeyValueInput"] = GraphQLInputObjectType("KeyValueInput", {
            "key": GraphQLInputField(_non_null(GraphQLString)), "value": GraphQLInputField(_non_null(ANY))})
        key_value = {op: GraphQLInputField(t["KeyValueInput"]) for op in (
            "equalTo", "notEqualTo", "lessThan", "lessThanOrEqualTo", "greaterThan", "greaterThanOrEqualTo")}
        t["ObjectWhereInput"] = GraphQLInputObjectType("ObjectWhereInput", dict(sorted({
            **key_value, "in": GraphQLInputField(GraphQLList(t["KeyValueInput"])),
            "notIn": GraphQLInputField(GraphQLList(t["KeyValueInput"])),
            "exists": GraphQLInputField(GraphQLBoolean),
            "inQueryKey": GraphQLInputField(t["SelectInput"]), "notInQueryKey": GraphQLInputField(t["SelectInput"]),
        }.items())))
        t["LiveEvent"] = GraphQLEnumType("LiveEvent", {v: GraphQLEnumValue(v) for v in
                                                       ("CREATE", "ENTER", "UPDATE", "LEAVE", "DELETE")})

    # ------------------------------------------------------------------------------ per class
    @staticmethod
    def _fields_of(class_name: str) -> dict[str, FieldSpec | str]:
        """The class's fields in Parse's order (alphabetical): specs, plus Parse's _User built-ins."""
        fields: dict[str, FieldSpec | str] = dict(CLASSES[class_name])
        if class_name == "_User":
            fields.update(USER_BUILTINS)
        return dict(sorted(fields.items()))

    @staticmethod
    def _kind(spec: FieldSpec | str) -> str:
        return spec if isinstance(spec, str) else spec.kind

    def _scalar(self, kind: str) -> Any:
        return {"String": GraphQLString, "Number": GraphQLFloat, "Boolean": GraphQLBoolean, "Date": DATE,
                "Object": OBJECT}[kind]

    def _object_type(self, class_name: str) -> GraphQLObjectType:
        name = graphql_type(class_name)

        def fields() -> dict[str, GraphQLField]:
            out: dict[str, GraphQLField] = {
                "ACL": GraphQLField(_non_null(self.types["ACL"]), resolve=resolvers.resolve_acl),
                "createdAt": GraphQLField(_non_null(DATE)),
                "id": GraphQLField(_non_null(GraphQLID), resolve=resolvers.resolve_global_id),
                "objectId": GraphQLField(_non_null(GraphQLID)),
                "updatedAt": GraphQLField(_non_null(DATE)),
            }
            specs = self._fields_of(class_name)
            if class_name == "_User":
                specs.update(USER_OUTPUT_ONLY)
            for field, spec in specs.items():
                if field == "password":
                    continue  # input only
                kind = self._kind(spec)
                if kind == "Pointer":
                    assert isinstance(spec, FieldSpec) and spec.target
                    out[field] = GraphQLField(self.types[graphql_type(spec.target)],
                                              resolve=resolvers.pointer_resolver(field, spec.target))
                else:
                    out[field] = GraphQLField(self._scalar(kind))
            return dict(sorted(out.items()))

        return GraphQLObjectType(name, fields, interfaces=lambda: [self.types["ParseObject"], self.types["Node"]],
                                 description=f"The {name} object type is used in operations that involve outputting "
                                             f"objects of {name} class.")

    def _class_inputs(self, class_name: str) -> None:
        t, name = self.types, graphql_type(class_name)
        specs = self._fields_of(class_name)

        def value_type(spec: FieldSpec | str) -> Any:  # called inside thunks: every type exists
            kind = self._kind(spec)
            if kind == "Pointer":
                assert isinstance(spec, FieldSpec) and spec.target
                return t[f"{graphql_type(spec.target)}PointerInput"]
            return self._scalar(kind)

        def create_fields() -> dict[str, GraphQLInputField]:
            out = {"ACL": GraphQLInputField(t["ACLInput"])}
            for field, spec in specs.items():
                # Required as Parse makes them; the store-set pointers are the caller's own, if given.
                # Parse's _User built-ins are nullable there (and its `role` non-null: a sign-up
                # may leave it out here, a loosening); the store says 142 for a missing one.
                required = isinstance(spec, FieldSpec) and spec.required and not spec.server_set \
                    and class_name != "_User"
                out[field] = GraphQLInputField(_non_null(value_type(spec)) if required else value_type(spec))
            return dict(sorted(out.items()))

        def update_fields() -> dict[str, GraphQLInputField]:
            out = {"ACL": GraphQLInputField(t["ACLInput"])}
            out.update({field: GraphQLInputField(value_type(spec)) for field, spec in specs.items()})
            return dict(sorted(out.items()))

        t[f"Create{name}FieldsInput"] = GraphQLInputObjectType(f"Create{name}FieldsInput", create_fields)
        t[f"Update{name}FieldsInput"] = GraphQLInputObjectType(f"Update{name}FieldsInput", update_fields)
        t[f"{name}PointerInput"] = GraphQLInputObjectType(f"{name}PointerInput", lambda: {
            "createAndLink": GraphQLInputField(t[f"Create{name}FieldsInput"]),
            "link": GraphQLInputField(GraphQLID),
        })

        # Parse makes it for every class; no field here is a Relation, so nothing takes it.
        t[f"{name}RelationInput"] = GraphQLInputObjectType(f"{name}RelationInput", lambda: {
            "add": GraphQLInputField(GraphQLList(_non_null(GraphQLID))),
            "createAndAdd": GraphQLInputField(GraphQLList(_non_null(t[f"Create{name}FieldsInput"]))),
            "remove": GraphQLInputField(GraphQLList(_non_null(GraphQLID))),
        })

        def where_fields() -> dict[str, GraphQLInputField]:
            where = t[f"{name}WhereInput"]
            out: dict[str, GraphQLInputField] = {
                "ACL": GraphQLInputField(t["ObjectWhereInput"]),
                "AND": GraphQLInputField(GraphQLList(_non_null(where))),
                "NOR": GraphQLInputField(GraphQLList(_non_null(where))),
                "OR": GraphQLInputField(GraphQLList(_non_null(where))),
                "createdAt": GraphQLInputField(t["DateWhereInput"]),
                "id": GraphQLInputField(t["IdWhereInput"]),
                "objectId": GraphQLInputField(t["IdWhereInput"]),
                "updatedAt": GraphQLInputField(t["DateWhereInput"]),
            }
            for field, spec in specs.items():
                kind = self._kind(spec)
                if kind == "Pointer":
                    assert isinstance(spec, FieldSpec) and spec.target
                    out[field] = GraphQLInputField(t[f"{graphql_type(spec.target)}RelationWhereInput"])
                else:
                    out[field] = GraphQLInputField(t[f"{kind}WhereInput"])
            return dict(sorted(out.items()))

        t[f"{name}WhereInput"] = GraphQLInputObjectType(f"{name}WhereInput", where_fields)
        t[f"{name}RelationWhereInput"] = GraphQLInputObjectType(f"{name}RelationWhereInput", lambda: {
            "exists": GraphQLInputField(GraphQLBoolean),
            "have": GraphQLInputField(t[f"{name}WhereInput"]),
            "haveNot": GraphQLInputField(t[f"{name}WhereInput"]),
        })
        order: dict[str, GraphQLEnumValue] = {}
        for field in sorted(["ACL", "createdAt", "id", "objectId", "updatedAt", *specs]):
            rest = "objectId" if field == "id" else field
            order[f"{field}_ASC"] = GraphQLEnumValue(rest)
            order[f"{field}_DESC"] = GraphQLEnumValue(f"-{rest}")
        t[f"{name}Order"] = GraphQLEnumType(f"{name}Order", order)

    def _class_outputs(self, class_name: str) -> None:
        t, name, g = self.types, graphql_type(class_name), get_field(class_name)
        t[f"{name}Edge"] = GraphQLObjectType(f"{name}Edge", {
            "cursor": GraphQLField(_non_null(GraphQLString)),
            "node": GraphQLField(t[name]),
        })
        t[f"{name}Connection"] = GraphQLObjectType(f"{name}Connection", {
            "count": GraphQLField(_non_null(GraphQLInt)),
            "edges": GraphQLField(GraphQLList(t[f"{name}Edge"])),
            "pageInfo": GraphQLField(_non_null(t["PageInfo"])),
        })
        mutation_id = {"clientMutationId": GraphQLInputField(GraphQLString)}
        t[f"Create{name}Input"] = GraphQLInputObjectType(f"Create{name}Input", {
            **mutation_id, "fields": GraphQLInputField(t[f"Create{name}FieldsInput"])})
        t[f"Update{name}Input"] = GraphQLInputObjectType(f"Update{name}Input", {
            **mutation_id, "fields": GraphQLInputField(t[f"Update{name}FieldsInput"]),
            "id": GraphQLInputField(_non_null(GraphQLID))})
        t[f"Delete{name}Input"] = GraphQLInputObjectType(f"Delete{name}Input", {
            **mutation_id, "id": GraphQLInputField(_non_null(GraphQLID))})
        for verb in ("Create", "Update", "Delete"):
            t[f"{verb}{name}Payload"] = GraphQLObjectType(f"{verb}{name}Payload", {
                "clientMutationId": GraphQLField(GraphQLString),
                g: GraphQLField(_non_null(t[name])),
            })
        if class_name in LIVE_CLASSES:
            t[f"{name}LiveEvent"] = GraphQLObjectType(f"{name}LiveEvent", {
                "event": GraphQLField(_non_null(t["LiveEvent"])),
                "id": GraphQLField(_non_null(GraphQLID)),
                "node": GraphQLField(t[name]),
                "objectId": GraphQLField(_non_null(GraphQLID)),
                "originalNode": GraphQLField(t[name]),
            })

    # ------------------------------------------------------------------------------ roots
    def find_args(self, name: str) -> dict[str, GraphQLArgument]:
        t = self.types
        return {
            "after": GraphQLArgument(GraphQLString), "before": GraphQLArgument(GraphQLString),
            "first": GraphQLArgument(GraphQLInt), "last": GraphQLArgument(GraphQLInt),
            "options": GraphQLArgument(t["ReadOptionsInput"]),
            "order": GraphQLArgument(GraphQLList(_non_null(t[f"{name}Order"]))),
            "skip": GraphQLArgument(GraphQLInt), "where": GraphQLArgument(t[f"{name}WhereInput"]),
        }

    def schema(self) -> GraphQLSchema:
        t = self.types
        t["Viewer"] = GraphQLObjectType("Viewer", {
            "sessionToken": GraphQLField(_non_null(GraphQLString)),
            "user": GraphQLField(_non_null(t["User"])),
        })
        query: dict[str, GraphQLField] = {
            "health": GraphQLField(_non_null(GraphQLBoolean), resolve=resolvers.health),
            "node": GraphQLField(t["Node"], args={"id": GraphQLArgument(_non_null(GraphQLID))},
                                 resolve=resolvers.node),
            "viewer": GraphQLField(_non_null(t["Viewer"]), resolve=resolvers.viewer),
        }
        mutation: dict[str, GraphQLField] = {}
        subscription: dict[str, GraphQLField] = {}
        for class_name in CLASSES:
            name = graphql_type(class_name)
            g, gs = get_field(class_name), find_field(class_name)
            query[g] = GraphQLField(_non_null(t[name]), args={
                "id": GraphQLArgument(_non_null(GraphQLID)), "options": GraphQLArgument(t["ReadOptionsInput"])},
                resolve=resolvers.getter(class_name))
            query[gs] = GraphQLField(_non_null(t[f"{name}Connection"]), args=self.find_args(name),
                                     resolve=resolvers.finder(class_name))
            for verb, make in (("create", resolvers.creator), ("update", resolvers.updater),
                               ("delete", resolvers.deleter)):
                kind = verb.capitalize()
                mutation[f"{verb}{name}"] = GraphQLField(
                    t[f"{kind}{name}Payload"], args={"input": GraphQLArgument(_non_null(t[f"{kind}{name}Input"]))},
                    resolve=make(class_name))
            if class_name in LIVE_CLASSES:
                subscription[gs] = GraphQLField(
                    _non_null(t[f"{name}LiveEvent"]),
                    args={"where": GraphQLArgument(t[f"{name}WhereInput"]),
                          "events": GraphQLArgument(GraphQLList(_non_null(t["LiveEvent"])))},
                    resolve=resolvers.live_event)
        mutation_id = {"clientMutationId": GraphQLInputField(GraphQLString)}
        t["SignUpInput"] = GraphQLInputObjectType("SignUpInput", {
            **mutation_id, "fields": GraphQLInputField(t["CreateUserFieldsInput"])})
        t["LogInInput"] = GraphQLInputObjectType("LogInInput", {
            "authData": GraphQLInputField(OBJECT), **mutation_id,
            "password": GraphQLInputField(_non_null(GraphQLString)),
            "username": GraphQLInputField(_non_null(GraphQLString))})
        t["LogOutInput"] = GraphQLInputObjectType("LogOutInput", mutation_id)
        viewer_payload = {"clientMutationId": GraphQLField(GraphQLString), "viewer": GraphQLField(_non_null(t["Viewer"]))}
        t["SignUpPayload"] = GraphQLObjectType("SignUpPayload", viewer_payload)
        t["LogInPayload"] = GraphQLObjectType("LogInPayload", viewer_payload)
        t["LogOutPayload"] = GraphQLObjectType("LogOutPayload", {
            "clientMutationId": GraphQLField(GraphQLString), "ok": GraphQLField(_non_null(GraphQLBoolean))})
        mutation["signUp"] = GraphQLField(t["SignUpPayload"], args={"input": GraphQLArgument(_non_null(t["SignUpInput"]))},
                                          resolve=resolvers.sign_up)
        mutation["logIn"] = GraphQLField(t["LogInPayload"], args={"input": GraphQLArgument(_non_null(t["LogInInput"]))},
                                         resolve=resolvers.log_in)
        mutation["logOut"] = GraphQLField(t["LogOutPayload"], args={"input": GraphQLArgument(_non_null(t["LogOutInput"]))},
                                          resolve=resolvers.log_out)
        return GraphQLSchema(
            query=GraphQLObjectType("Query", dict(sorted(query.items()))),
            mutation=GraphQLObjectType("Mutation", dict(sorted(mutation.items()))),
            subscription=GraphQLObjectType("Subscription", dict(sorted(subscription.items()))),
            types=[v for v in t.values() if v.name not in ("Query", "Mutation", "Subscription")] + [ANY],
        )


def build_schema() -> GraphQLSchema:
    return SchemaBuilder().schema()

