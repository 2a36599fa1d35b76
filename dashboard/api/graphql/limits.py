"""Limits checked before anything runs (GRAPHQL.md §9), counted as Parse counts them: the root
field is depth 1, every field and alias counts, each fragment is expanded once and cycles are cut."""
from __future__ import annotations

from dataclasses import dataclass

from graphql import DocumentNode, FragmentDefinitionNode, OperationDefinitionNode
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode

MAX_DEPTH = 20
MAX_FIELDS = 200
INTROSPECTION = ("__schema", "__type")


@dataclass
class Shape:
    depth: int = 0
    fields: int = 0
    introspects: bool = False  # names __schema or __type anywhere
    only_introspection: bool = True  # every root field is __schema, __type or __typename


def measure(document: DocumentNode, operation: OperationDefinitionNode) -> Shape:
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    shape = Shape()

    def walk(selection_set: SelectionSetNode | None, depth: int, seen: frozenset[str], root: bool) -> None:
        if selection_set is None:
            return
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                shape.fields += 1
                shape.depth = max(shape.depth, depth)
                if name in INTROSPECTION:
                    shape.introspects = True
                if root and name not in (*INTROSPECTION, "__typename"):
                    shape.only_introspection = False
                walk(sel.selection_set, depth + 1, seen, False)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, depth, seen, root)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                if name in seen or name not in fragments:
                    continue  # a cycle (or an unknown fragment: validation names it)
                walk(fragments[name].selection_set, depth, seen | {name}, root)

    walk(operation.selection_set, 1, frozenset(), True)
    return shape


def problem(shape: Shape) -> str | None:
    """Parse's message for the first limit the operation is over, or None."""
    if shape.only_introspection:
        return None  # a tool's introspection query is past 200 fields and reads no data
    if shape.depth > MAX_DEPTH:
        return f"GraphQL query depth of {shape.depth} exceeds maximum allowed depth of {MAX_DEPTH}"
    if shape.fields > MAX_FIELDS:
        return f"Number of GraphQL fields ({shape.fields}) exceeds maximum allowed ({MAX_FIELDS})"
    return None
