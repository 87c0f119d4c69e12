"""IPython syntax in a notebook cell, turned into Python that keeps every line in place.

IPython accepts lines that are not Python: line magics (``%time f()``), shell escapes
(``!pip install x``, ``files = !ls``), help (``obj?``, ``??obj``), autocall escapes
(``/f x``), and cell magics (``%%bash``) that make the whole cell another language. Each
such line becomes a placeholder at the same indentation: ``pass`` (or ``target = None`` for
an assignment from a magic, so that the name no longer holds what it held before), marked
with `MARKER` so that fixes can keep away from it and the line can be put back as it was.
A line counts as IPython syntax only where a statement starts, never inside brackets, a
multi-line string or a backslash continuation, as IPython itself reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gradlint.notebook import lines_of

MARKER = "# gradlint: IPython syntax"

# Cell magics whose body is Python that IPython runs as it is.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})

_ESCAPES = ("%", "!", "?", "/", ",", ";")
_HELP = re.compile(r"^[%\w.\[\]()'\"*]+\?{1,2}$")
_ASSIGN_MAGIC = re.compile(r"^(?P<target>[^=#'\"!%]+?)\s*=\s*[!%]")


@dataclass(frozen=True)
class CellCode:
    """A code cell as Python: as many lines as the cell, IPython syntax replaced."""

    text: str
    magic_lines: frozenset[int]  # 1-based lines that are placeholders
    python: bool = True  # False: a cell magic such as %%bash; `text` is blank lines


@dataclass
class _State:
    depth: int = 0  # open brackets
    quote: str | None = None  # the quote of a string still open at the line's end
    continued: bool = False  # the line ended with a backslash

    @property
    def at_statement(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued


def python_of(source: str) -> CellCode:
    lines = lines_of(source)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    magic: set[int] = set()
    out = list(lines)
    if first is not None and lines[first].lstrip().startswith("%%"):
        name = lines[first].lstrip()[2:].split(maxsplit=1)
        if not name or name[0] not in PYTHON_CELL_MAGICS:
            return CellCode("".join(_ending(line) for line in lines), frozenset(), python=False)
        out[first] = MARKER + _ending(lines[first])
        magic.add(first + 1)
        start = first + 1
    else:
        start = 0
    state = _State()
    in_magic = False  # continuing a magic's line with a backslash
    for index in range(start, len(lines)):
        line = lines[index]
        body = line.rstrip("\r\n")
        if in_magic:
            out[index] = _indentation(body) + MARKER + _ending(line)
            magic.add(index + 1)
            in_magic = body.endswith("\\")
            continue
        if state.at_statement:
            placeholder = _placeholder(body)
            if placeholder is not None:
                out[index] = placeholder + _ending(line)
                magic.add(index + 1)
                in_magic = body.endswith("\\")
                continue
        _scan(body, state)
    return CellCode("".join(out), frozenset(magic))


def _ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def _indentation(body: str) -> str:
    return body[: len(body) - len(body.lstrip(" \t"))]


def _placeholder(body: str) -> str | None:
    """The Python that stands in for an IPython line, or None for a Python line."""
    stripped = body.strip()
    indent = _indentation(body)
    if not stripped or stripped.startswith("#"):
        return None
    if stripped.startswith(_ESCAPES) or _HELP.match(stripped):
        return f"{indent}pass  {MARKER}"
    assign = _ASSIGN_MAGIC.match(stripped)
    if assign and not stripped.startswith(("if ", "while ", "elif ", "assert ", "return ")):
        return f"{indent}{assign.group('target')} = None  {MARKER}"
    return None


def _scan(body: str, state: _State) -> None:
    """Follow a Python line: brackets, strings and comments, and whether it continues."""
    at, size = 0, len(body)
    comment = False
    while at < size:
        if state.quote is not None:
            if body.startswith(state.quote, at):
                at += len(state.quote)
                state.quote = None
            else:
                at += 2 if body[at] == "\\" else 1
            continue
        char = body[at]
        if char == "#":
            comment = True
            break
        if char in "\"'":
            triple = char * 3
            state.quote = triple if body.startswith(triple, at) else char
            at += len(state.quote)
            continue
        if char in "([{":
            state.depth += 1
        elif char in ")]}":
            state.depth = max(0, state.depth - 1)
        at += 1
    continued = not comment and body.endswith("\\")
    if state.quote is not None and len(state.quote) == 1 and not continued:
        state.quote = None  # an unclosed one-line string: a syntax error Python will report
    state.continued = continued and state.quote is None
