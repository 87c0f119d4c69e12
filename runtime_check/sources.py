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
