"""Walking libcst nodes cheaply.

`CSTNode.children` rebuilds every child through a visitor, which costs more than parsing
did; reading the dataclass fields directly costs almost nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from functools import cache

import libcst as cst

# Fields that hold only whitespace, brackets and punctuation.
_SKIPPED = (
    "whitespace",
    "lpar",
    "rpar",
    "comma",
    "dot",
    "semicolon",
    "equal",
    "colon",
    "leading_lines",
    "lines_after",
    "header",
    "footer",
    "trailing",
    "newline",
    "operator",
    "asynchronous",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "indent",
)


@cache
def _child_fields(node_type: type[cst.CSTNode]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(node_type) if not f.name.startswith(_SKIPPED))


def node_types(*classes: type) -> frozenset[type]:
    """The node classes that are, or derive from, `classes`: a `type(x) in` test on them
    is a set lookup, where a failed isinstance on libcst's ABC classes calls into the abc
    machinery."""
    found: set[type] = set()
    todo: list[type] = list(classes)
    while todo:
        kind = todo.pop()
        found.add(kind)
        todo.extend(kind.__subclasses__())
    return frozenset(found)


# type -> whether it is a CSTNode: libcst's node classes are ABCs, and `isinstance` against
# an ABC costs several times a dict lookup.
_IS_NODE: dict[type, bool] = {}


def _is_node(value: object) -> bool:
    kind = type(value)
    known = _IS_NODE.get(kind)
    if known is None:
        known = _IS_NODE[kind] = issubclass(kind, cst.CSTNode)
    return known


def child_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The node's children that can hold code (expressions, statements, suites)."""
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        kind = type(value)
        if kind is list or kind is tuple:
            for item in value:
                if _is_node(item):
                    yield item
        elif _is_node(value):
            yield value


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The node and everything below it, depth first."""
    todo = [node]
    while todo:
        current = todo.pop()
        yield current
        todo.extend(child_nodes(current))


def ancestors(root: cst.CSTNode, node: cst.CSTNode) -> list[cst.CSTNode]:
    """The nodes around `node` inside `root`, innermost first (libcst keeps no parent
    links); empty where `node` is not below `root`."""
    trail = [root]
    pending = [iter(child_nodes(root))]
    while pending:
        child = next(pending[-1], None)
        if child is None:
            pending.pop()
            trail.pop()
        elif child is node:
            return trail[::-1]
        else:
            trail.append(child)
            pending.append(iter(child_nodes(child)))
    return []


class Parents:
    """Each node's parent in one tree, found by one walk the first time it is asked: many
    fixes in a large file each asking `ancestors` would walk the whole tree again."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self._parent: dict[cst.CSTNode, cst.CSTNode] | None = None

    def ancestors(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        """As `ancestors(root, node)`: innermost first, empty where `node` is not below."""
        if self._parent is None:
            parent: dict[cst.CSTNode, cst.CSTNode] = {}
            todo = [self.root]
            while todo:
                current = todo.pop()
                for child in child_nodes(current):
                    parent.setdefault(child, current)
                    todo.append(child)
                # Rules point at an operator (`Facts.focus`): give it its parent too.
                operator = getattr(current, "operator", None)
                if operator is not None and _is_node(operator):
                    parent.setdefault(operator, current)
            self._parent = parent
        found: list[cst.CSTNode] = []
        above = self._parent.get(node)
        while above is not None:
            found.append(above)
            above = self._parent.get(above)
        return found
