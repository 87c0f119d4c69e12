"""Fixes: text edits that a finding carries, and applying them to a file's source.

A rule proposes a fix as CST nodes (replace this node with that one); the engine turns it
into text edits at the node's position, so that every front end (the CLI's `--fix` and
`--diff`, SARIF, the language server's code actions) speaks in lines and columns. Applying
edits never yields a file that does not parse: a fix that would is dropped and reported.
"""

from __future__ import annotations

import io
import textwrap
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import libcst as cst

from gradlint.analysis.nodes import Parents, ancestors
from gradlint.parsing import parse_module

# How many times `apply_all` re-lints a fixed file: a fix may reveal another (a parenthesised
# call inside a `with` that then needs no other change); more rounds than this mean two fixes
# undo each other.
MAX_ROUNDS = 4


@dataclass(frozen=True)
class Replacement:
    """A rule's proposal: put `new` where `old` is, in the module the rule analysed."""

    old: cst.CSTNode
    new: cst.CSTNode | str
    title: str
    safe: bool = True
    # Replace these whole lines (first, last) with `new` (text) instead of `old`'s span:
    # for fixes that re-indent a block.
    lines: tuple[int, int] | None = None


@dataclass(frozen=True, order=True)
class Edit:
    """Replace the text from (line, column) up to, not including, (end_line, end_column);
    1-based, as findings count."""

    line: int
    column: int
    end_line: int
    end_column: int
    text: str

    def to_json(self) -> dict[str, object]:
        return {
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "text": self.text,
        }


@dataclass(frozen=True)
class Fix:
    edits: tuple[Edit, ...]
    title: str
    safe: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "title": self.title,
            "safe": self.safe,
            "edits": [edit.to_json() for edit in self.edits],
        }


def source_lines(source: str) -> list[str]:
    r"""The source's lines with their endings, as Python and libcst number them: ended by
    `\n`, `\r\n` or `\r` only. `str.splitlines` also splits at form feeds, `\x1c`-`\x1e`,
    `\x85` and `\u2028`, which Python reads as whitespace or as part of a comment or
    string: every line after one would be misnumbered, and an edit land on the wrong line."""
    return io.StringIO(source, newline="").readlines()


def splice(source: str, edits: Iterable[Edit]) -> str:
    """The source with the edits made; they must not overlap."""
    lines = source_lines(source)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, column: int) -> int:
        return starts[min(line, len(starts)) - 1] + column - 1

    result = source
    # From the end, so that earlier offsets stay right.
    for edit in sorted(edits, reverse=True):
        start, end = offset(edit.line, edit.column), offset(edit.end_line, edit.end_column)
        result = result[:start] + edit.text + result[end:]
    return result


def _overlaps(first: Fix, second: Fix) -> bool:
    for a in first.edits:
        for b in second.edits:
            if (a.line, a.column) < (b.end_line, b.end_column) and (b.line, b.column) < (
                a.end_line,
                a.end_column,
            ):
                return True
    return False


def _parses(source: str) -> bool:
    try:
        parse_module(source)
    except Exception:  # any parser failure means: not a file to write
        return False
    return True


@dataclass
class Applied:
    """What applying fixes to one file did."""

    source: str
    applied: int = 0
    dropped: list[str] | None = None  # titles of fixes left out: the file would not parse


def apply_fixes(source: str, fixes: Iterable[Fix]) -> Applied:
    """Apply the fixes that do not overlap an earlier one; leave out any whose result does
    not parse."""
    chosen: list[Fix] = []
    for fix in fixes:
        if not any(_overlaps(fix, other) for other in chosen):
            chosen.append(fix)
    result = Applied(source)
    if not chosen:
        return result
    candidate = splice(source, [edit for fix in chosen for edit in fix.edits])
    if _parses(candidate):
        return Applied(candidate, len(chosen), [])
    # One of them breaks the file: keep those that do not, one at a time.
    dropped: list[str] = []
    current = source
    applied = 0
    for fix in sorted(chosen, key=lambda f: f.edits, reverse=True):
        attempt = splice(current, fix.edits)
        if _parses(attempt):
            current, applied = attempt, applied + 1
        else:
            dropped.append(fix.title)
    return Applied(current, applied, dropped)


def apply_all(
    source: str, fixes_of: Callable[[str], list[Fix]], rounds: int = MAX_ROUNDS
) -> Applied:
    """Fix, re-lint and fix again until nothing more is fixable, so that a second run
    changes nothing."""
    total = Applied(source, 0, [])
    for _ in range(rounds):
        fixes = fixes_of(total.source)
        if not fixes:
            break
        step = apply_fixes(total.source, fixes)
        total.dropped = [*(total.dropped or []), *(step.dropped or [])]
        if step.applied == 0:
            break
        total.source, total.applied = step.source, total.applied + step.applied
    return total


def string_lines(source: str, strict: bool = False) -> set[int]:
    """Lines that continue a multi-line string: re-indenting them would change it. (Where
    the source does not tokenize: every line, or with `strict`, the error.)"""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in _STRINGS and token.end[0] > token.start[0]:
                inside.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        if strict:
            raise
        return set(range(1, source.count("\n") + 2))
    return inside


# An f-string is one STRING token before Python 3.12; from 3.12 its text is FSTRING_MIDDLE.
_STRINGS = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


# -- building blocks for rules' fixes ------------------------------------------------------

_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript)


def detached(expr: cst.BaseExpression) -> cst.Call:
    """`expr.detach()`, in parentheses where `expr` needs them (`(w * 2).detach()`)."""
    return method_called(expr, "detach")


def method_called(expr: cst.BaseExpression, method: str) -> cst.Call:
    """`expr.method()`, in parentheses where `expr` needs them (`(w * 2).method()`)."""
    if not isinstance(expr, _ATOMS) and not expr.lpar:
        expr = expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Call(func=cst.Attribute(value=expr, attr=cst.Name(method)))


def statement_in_block(
    module: cst.Module, node: cst.CSTNode, parents: Parents | None = None
) -> tuple[cst.SimpleStatementLine, cst.Module | cst.IndentedBlock, int] | None:
    """The line holding `node` as its only statement (`x.add_(1)`, `torch.no_grad()`),
    the block it stands in, and its index there. ``parents`` (of ``module``) spares a walk
    of the whole tree."""
    around = parents.ancestors(node) if parents is not None else ancestors(module, node)
    if around and isinstance(around[0], cst.Expr) and around[0].value is node:
        node, around = around[0], around[1:]
    if len(around) < 2:
        return None
    line, block = around[0], around[1]
    if not (
        isinstance(line, cst.SimpleStatementLine)
        and len(line.body) == 1
        and line.body[0] is node
        and isinstance(block, (cst.Module, cst.IndentedBlock))
    ):
        return None
    index = next(i for i, statement in enumerate(block.body) if statement is line)
    return line, block, index


class ModuleText:
    """A module's code, its lines and the lines inside multi-line strings, each computed
    once: generating a module's code walks the whole tree, too slow to repeat per fix."""

    def __init__(self, module: cst.Module, code: str | None = None) -> None:
        self.module = module
        self._code = code  # the module's code, when the caller has it: the parsed source
        self._lines: list[str] | None = None
        self._in_strings: set[int] | None = None

    @property
    def code(self) -> str:
        if self._code is None:
            self._code = self.module.code
        return self._code

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = source_lines(self.code)
        return self._lines

    @property
    def in_strings(self) -> set[int]:
        if self._in_strings is None:
            self._in_strings = string_lines(self.code)
        return self._in_strings

    def strings_within(self, first: int, last: int) -> set[int]:
        """The lines `first`..`last` that continue a multi-line string, where `first` starts
        a statement and `last` ends one (so that no string crosses either end): tokenizing
        that region alone costs a fraction of the whole file's on a large module."""
        if self._in_strings is None:
            region = "".join(self.lines[first - 1 : last])
            try:
                inside = string_lines(textwrap.dedent(region), strict=True)
            except (tokenize.TokenError, SyntaxError):
                inside = None
            if inside is not None:
                return {first - 1 + line for line in inside}
        return self.in_strings & set(range(first, last + 1))


def under_with(
    module: cst.Module | ModuleText,
    header: str,
    first: int,
    last: int,
    keep_head: bool = False,
) -> str | None:
    """Lines `first`..`last` of the module as the body of `with header:`, one indent deeper.
    With `keep_head`, line `first` is the call to turn into the `with` itself (what follows
    the call on that line, a comment, stays). None where re-indenting would change a
    multi-line string."""
    text_of = module if isinstance(module, ModuleText) else ModuleText(module)
    module = text_of.module
    lines = text_of.lines
    if last > len(lines) or text_of.strings_within(first, last) - {first}:
        return None
    head = lines[first - 1]
    indent = head[: len(head) - len(head.lstrip())]
    if keep_head:
        at = head.find(header)
        if at < 0:
            return None
        text = head[:at] + f"with {header}:" + head[at + len(header) :]
        body = lines[first:last]
    else:
        text = f"{indent}with {header}:{module.default_newline}"
        body = lines[first - 1 : last]
    unit = _indent_unit(indent, module.default_indent)
    text += "".join(_deeper(line, indent, unit) for line in body)
    if not text.endswith(("\n", "\r")):
        text += module.default_newline
    return text


def _indent_unit(indent: str, default: str) -> str:
    """One more level for a block indented by `indent`: the file's usual unit, unless the
    block uses the other whitespace (tabs in a file of spaces, or the reverse, as code
    pasted together does): Python refuses a block that mixes them inconsistently."""
    if not indent or ("\t" in indent) == ("\t" in default):
        return default
    return "\t" if "\t" in indent else "    "


def _deeper(line: str, indent: str, unit: str) -> str:
    if not line.strip():
        return line
    if line.startswith(indent):
        # After the block's own indentation, so that a tab never follows spaces.
        return indent + unit + line[len(indent) :]
    return unit + line
