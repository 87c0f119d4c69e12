"""The user's source files as Python's `ast` reads them, each parsed once: the tracer and
the verdicts look up blocks, calls and statement starts in the lines that ran."""

from __future__ import annotations

import ast
from functools import cache


@cache
def parsed(path: str) -> ast.Module | None:
    """The file's tree; None where it cannot be read or parsed (it changed since it ran)."""
    try:
        with open(path, "rb") as file:
            return ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return None


_TO_NUMBER = ("item", "tolist", "float", "int")


@cache
def numbers_in_sums(path: str) -> frozenset[int]:
    """The lines of assignments that compute with a number taken out of a tensor
    (`loss = loss - log_prob.item() * reward`), as opposed to keeping or showing it
    (`total += loss.item()`, `print(loss.item())`)."""
    tree = parsed(path)
    if tree is None:
        return frozenset()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign)) and any(
            isinstance(part, ast.BinOp) and any(_to_number(call) for call in ast.walk(part))
            for part in ast.walk(node.value)
        ):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def _to_number(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in _TO_NUMBER
