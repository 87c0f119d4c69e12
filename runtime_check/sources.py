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


_SWITCHES = ("set_grad_enabled", "_set_grad_enabled")


@cache
def grad_switched_off(path: str) -> dict[int, bool]:
    """The statements that set the grad mode for everything after them, not as a `with`:
    `torch.set_grad_enabled(False)` as a call of its own (and `torch._C._set_grad_enabled`).
    Each line with whether it surely turns autograd off (a literal False) or may (a flag)."""
    tree = parsed(path)
    if tree is None:
        return {}
    found: dict[int, bool] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _SWITCHES:
            continue
        given = call.args[0] if call.args else None
        given = given or next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(given, ast.Constant):
            if given.value is False:
                found[node.lineno] = True
        elif given is not None:
            found[node.lineno] = False
    return found
