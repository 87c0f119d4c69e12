"""A notebook's code cells as one module: linted together, reported cell by cell.

A notebook runs top to bottom, so a model built in one cell and trained in another must be
analysed as one program: the code cells, IPython syntax replaced (`gradlint.magics`), are
joined in order into a virtual module, with a map from its lines back to (cell, line).
Each cell must parse on its own, as Jupyter runs it: so no cell's block can swallow the
next cell, and a syntax error is reported in its cell.

Fixes are computed on the virtual module and made cell by cell: a fix whose edits reach
into two cells or onto a line of IPython syntax is left out, as is one that would leave its
cell unparsable.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import libcst as cst

from gradlint import engine
from gradlint.config import Config
from gradlint.finding import Finding, LintError
from gradlint.fixes import MAX_ROUNDS, Edit, Fix, apply_fixes
from gradlint.magics import MARKER, CellCode, python_of
from gradlint.noqa import add_noqa
from gradlint.notebook import CodeCell, Notebook, lines_of, load, with_sources
from gradlint.parsing import parse_module


@dataclass(frozen=True)
class Virtual:
    """The code cells joined: ``text``, and for each of its lines (1-based, so index 0 is
    unused) the cell number and the line in that cell."""

    text: str
    places: tuple[tuple[int, int], ...]
    magic: frozenset[int]  # lines of `text` that stand for IPython syntax
    foreign: frozenset[int]  # cells that are not Python (%%bash...)
    starts: dict[int, tuple[int, int]]  # cell -> its first line in `text`, its line count

    def place(self, line: int) -> tuple[int, int] | None:
        return self.places[line] if 0 < line < len(self.places) else None

    def cell_text(self, lines: list[str], cell: int) -> str:
        """Cell ``cell``'s part of ``lines`` (the module's, or theirs changed in place)."""
        first, count = self.starts[cell]
        return "".join(lines[first - 1 : first - 1 + count])


def build(codes: dict[int, CellCode], display: str) -> Virtual:
    """Join the cells (given as Python, by cell number); raises `LintError` for a cell that
    does not parse on its own."""
    parts: list[str] = []
    places: list[tuple[int, int]] = [(0, 0)]
    magic: set[int] = set()
    starts: dict[int, tuple[int, int]] = {}
    for number, code in sorted(codes.items()):
        text = code.text
        if text and not text.endswith(("\n", "\r")):
            text += "\n"  # so that the next cell starts on a line of its own
        if code.python:
            _check_cell(text, number, display)
        count = len(lines_of(text))
        start = len(places)
        places.extend((number, line) for line in range(1, count + 1))
        magic.update(start + line - 1 for line in code.magic_lines)
        starts[number] = (start, count)
        parts.append(text)
    foreign = frozenset(number for number, code in codes.items() if not code.python)
    return Virtual("".join(parts), tuple(places), frozenset(magic), foreign, starts)


def _check_cell(text: str, number: int, display: str) -> None:
    try:
        flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        compile(text, display, "exec", flags=flags, dont_inherit=True)
    except SyntaxError as error:
        where = f"line {error.lineno}, column {error.offset}" if error.lineno else "unknown line"
        raise LintError(display, f"cell {number}: syntax error at {where}: {error.msg}") from None
    except (ValueError, RecursionError, MemoryError):
        raise LintError(display, f"cell {number}: cannot be parsed") from None


def parse(virtual: Virtual, display: str) -> cst.Module:
    try:
        return parse_module(virtual.text)
    except cst.ParserSyntaxError as exc:
        place = virtual.place(exc.raw_line)
        where = f"cell {place[0]}, line {place[1]}" if place else f"line {exc.raw_line}"
        first = str(exc.message).splitlines()[0] if exc.message else "invalid syntax"
        raise LintError(display, f"syntax error at {where}: {first}") from None
    except (RecursionError, MemoryError):
        raise LintError(display, "notebook is too deeply nested or too large to parse") from None


def codes_of(notebook: Notebook) -> dict[int, CellCode]:
    return {cell.number: python_of(cell.text) for cell in notebook.cells}


# -- linting -----------------------------------------------------------------------------


def lint_notebook(
    data: bytes, display: str, config: Config, errors: list[LintError] | None = None
) -> list[Finding]:
    """The notebook's findings, in cell coordinates; raises `LintError` for a file that is
    not a notebook or has a cell that does not parse. A notebook of another language is
    skipped without a word, as ruff does: it is not a file for a Python linter."""
    notebook = load(data, display)
    if not notebook.is_python:
        return []
    virtual = build(codes_of(notebook), display)
    findings = _lint_virtual(virtual, display, config, errors)
    return sorted(_to_cell(finding, virtual, notebook) for finding in findings)


def lint_cells(
    texts: Sequence[str], display: str, config: Config, errors: list[LintError] | None = None
) -> list[Finding]:
    """`lint_notebook` for code cells given as texts (an editor's notebook document), in
    cell coordinates, cells counted from 1 in the order given; raises `LintError` for a
    cell that does not parse."""
    cells = tuple(
        CodeCell(number, number - 1, text, as_list=False, file_lines=())
        for number, text in enumerate(texts, start=1)
    )
    notebook = Notebook(display, raw="", data={}, cells=cells)
    virtual = build(codes_of(notebook), display)
    findings = _lint_virtual(virtual, display, config, errors)
    return sorted(_to_cell(finding, virtual, notebook) for finding in findings)


def _lint_virtual(
    virtual: Virtual, display: str, config: Config, errors: list[LintError] | None
) -> list[Finding]:
    return engine.lint_module(parse(virtual, display), virtual.text, display, config, errors)


def _to_cell(finding: Finding, virtual: Virtual, notebook: Notebook) -> Finding:
    start = virtual.place(finding.line)
    if start is None:  # pragma: no cover - every line of the module is in a cell
        return finding
    cell, line = start
    end = virtual.place(finding.end_line)
    if end is not None and end[0] == cell:
        end_line, end_column = end[1], finding.end_column
    else:  # a span that runs into the next cell ends with its own
        lines = lines_of(virtual.cell_text(lines_of(virtual.text), cell))
        end_line, end_column = len(lines), len(lines[-1].rstrip("\r\n")) + 1
    fix = _localize(finding.fix, virtual) if finding.fix is not None else None
    code_cell = notebook.cells[cell - 1]
    file_line = code_cell.file_lines[line - 1] if line <= len(code_cell.file_lines) else None
    return replace(
        finding,
        line=line,
        end_line=end_line,
        end_column=end_column,
        cell=cell,
        fix=fix[1] if fix is not None else None,
        fixable=fix is not None and fix[1].safe,
        file_line=file_line,
    )


def _localize(fix: Fix, virtual: Virtual) -> tuple[int, Fix] | None:
    """The fix in its cell's lines, or None where it reaches another cell or a line of
    IPython syntax."""
    cells: set[int] = set()
    edits: list[Edit] = []
    for edit in fix.edits:
        # An edit that ends at the start of a line ends with the line before.
        last = edit.end_line - 1 if edit.end_column == 1 and edit.end_line > edit.line else None
        end = last if last is not None else edit.end_line
        touched = range(edit.line, end + 1)
        if any(line in virtual.magic for line in touched):
            return None
        places = [virtual.place(line) for line in touched]
        if any(place is None for place in places):
            return None
        owners = {place[0] for place in places if place is not None}
        if len(owners) != 1 or owners & virtual.foreign:
            return None
        cells |= owners
        start, stop = places[0], places[-1]
        assert start is not None and stop is not None
        if last is not None:
            edits.append(Edit(start[1], edit.column, stop[1] + 1, 1, edit.text))
        else:
            edits.append(Edit(start[1], edit.column, stop[1], edit.end_column, edit.text))
    if len(cells) != 1:
        return None
    return cells.pop(), replace(fix, edits=tuple(edits))


# -- fixing ------------------------------------------------------------------------------


@dataclass
class NotebookFix:
    """What fixing a notebook did: its new raw text (None: unchanged), the fixes made, the
    fixes left out (`title: why`) and the changed cells as Python, for `--diff`."""

    text: str | None = None
    applied: int = 0
    dropped: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)


def fix_notebook(data: bytes, display: str, config: Config, unsafe: bool = False) -> NotebookFix:
    """Fix the code cells, re-linting until nothing more is fixable. Raises `LintError`."""
    notebook = load(data, display)
    outcome = NotebookFix()
    if not notebook.is_python:
        return outcome
    codes = codes_of(notebook)
    seen: set[str] = set()

    def drop(title: str, why: str) -> None:
        if title not in seen:
            seen.add(title)
            outcome.dropped.append(f"{title}: fix left out, {why}")

    for _ in range(MAX_ROUNDS):
        virtual = build(codes, display)
        found = _lint_virtual(virtual, display, config, errors=[])
        by_cell: dict[int, list[Fix]] = {}
        for finding in found:
            fix = finding.fix
            if fix is None or not (fix.safe or unsafe):
                continue
            local = _localize(fix, virtual)
            if local is None:
                drop(fix.title, "it reaches into another cell or a line of IPython syntax")
            else:
                by_cell.setdefault(local[0], []).append(local[1])
        made = 0
        for number, fixes in sorted(by_cell.items()):
            step = apply_fixes(codes[number].text, fixes)
            for title in step.dropped or ():
                drop(title, "the cell would not parse")
            if step.applied:
                code = codes[number]
                codes[number] = replace(code, text=step.source)
                made += step.applied
        if not made:
            break
        outcome.applied += made
    texts = _restored(notebook, codes)
    if texts:
        outcome.text = with_sources(notebook, texts)
        outcome.diffs = [_diff(notebook, number, text) for number, text in sorted(texts.items())]
    return outcome


def _restored(notebook: Notebook, codes: dict[int, CellCode]) -> dict[int, str]:
    """The changed cells' new sources, their IPython lines put back as they were."""
    texts: dict[int, str] = {}
    for cell in notebook.cells:
        code = codes[cell.number]
        original = python_of(cell.text)
        if code.text == original.text:
            continue
        old_lines = lines_of(cell.text)
        magic = [old_lines[line - 1] for line in sorted(code.magic_lines)]
        new_lines = lines_of(code.text)
        marked = [i for i, line in enumerate(new_lines) if line.rstrip("\r\n").endswith(MARKER)]
        if len(marked) != len(magic):
            raise LintError(notebook.display, f"cell {cell.number}: cannot put its magics back")
        for index, line in zip(marked, magic, strict=True):
            new_lines[index] = line
        text = "".join(new_lines)
        if not cell.text.endswith(("\n", "\r")) and text.endswith("\n"):
            text = text[:-1]  # the newline that joining the cells added
        if text != cell.text:
            texts[cell.number] = text
    return texts


def _diff(notebook: Notebook, number: int, text: str) -> str:
    where = f"{notebook.display}:cell {number}"
    lines = difflib.unified_diff(
        lines_of(notebook.cells[number - 1].text),
        lines_of(text),
        fromfile=f"a/{where}",
        tofile=f"b/{where}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# -- noqa comments -----------------------------------------------------------------------


def noqa_notebook(
    data: bytes, display: str, config: Config, errors: list[LintError]
) -> tuple[str | None, int, list[Finding]]:
    """The notebook with `# noqa: CODE` on each line with findings (None: unchanged), how
    many lines got one, and the findings left where no comment can go (a line of IPython
    syntax, or inside a string)."""
    notebook = load(data, display)
    if not notebook.is_python:
        return None, 0, []
    codes = codes_of(notebook)
    virtual = build(codes, display)
    findings = _lint_virtual(virtual, display, config, errors)
    wanted: dict[int, set[str]] = {}
    for finding in findings:
        if finding.line not in virtual.magic:
            wanted.setdefault(finding.line, set()).add(finding.code)
    marked, changed, skipped = add_noqa(virtual.text, wanted)
    left = virtual.magic | set(skipped)
    kept = sorted(_to_cell(f, virtual, notebook) for f in findings if f.line in left)
    if not changed:
        return None, 0, kept
    marked_lines = lines_of(marked)
    for number, code in codes.items():
        if code.python:
            codes[number] = replace(code, text=virtual.cell_text(marked_lines, number))
    return with_sources(notebook, _restored(notebook, codes)), changed, kept
