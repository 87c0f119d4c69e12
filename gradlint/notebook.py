"""Jupyter notebooks (.ipynb, nbformat 4) as files: reading their code cells, finding where
each cell's source sits in the raw JSON, and writing changed sources back.

Writing back splices each changed ``source`` value into the original text, so everything
else (outputs, execution counts, metadata, markdown cells, key order, indentation, escapes,
the final newline) stays byte for byte what it was, whichever tool wrote the file; the
result is parsed again and must hold exactly the intended notebook, or nothing is written.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gradlint.finding import LintError
from gradlint.fixes import source_lines

SUFFIX = ".ipynb"
BOM = b"\xef\xbb\xbf"

_decoder = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
# A \\u escape of a character beyond ASCII: the file was written with ensure_ascii (JSON
# escapes control characters either way, so those say nothing).
_NON_ASCII_ESCAPE = re.compile(
    r"(?<!\\)(?:\\\\)*\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})"
)


def encoding_of(data: bytes) -> str:
    """How to write a notebook back: with the byte-order mark it was read with, if any."""
    return "utf-8-sig" if data.startswith(BOM) else "utf-8"


def is_notebook(path: str) -> bool:
    return path.lower().endswith(SUFFIX)


def lines_of(text: str) -> list[str]:
    """The lines of a cell, each with its line break, as Python counts them."""
    return source_lines(text)


@dataclass(frozen=True)
class CodeCell:
    """One code cell: ``number`` counts code cells from 1, ``index`` all cells from 0."""

    number: int
    index: int
    text: str
    as_list: bool  # ``source`` is a list of strings (Jupyter's way), not one string
    # For each line of `text`: the line of the raw file holding its start (None: unknown).
    file_lines: tuple[int | None, ...]


@dataclass(frozen=True)
class Notebook:
    display: str
    raw: str
    data: dict[str, Any]
    cells: tuple[CodeCell, ...]

    @property
    def is_python(self) -> bool:
        """Like ruff: ``language_info.name`` decides, else ``kernelspec.language``; a
        notebook that names no language is taken to be Python."""
        metadata = self.data.get("metadata")
        if not isinstance(metadata, dict):
            return True
        info = metadata.get("language_info")
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            return bool(info["name"].lower() == "python")
        spec = metadata.get("kernelspec")
        if isinstance(spec, dict) and isinstance(spec.get("language"), str):
            return bool(spec["language"].lower() == "python")
        return True


def load(data: bytes, display: str) -> Notebook:
    """The notebook in ``data``; raises `LintError` for anything but an nbformat-4 notebook."""
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LintError(display, "not UTF-8 text") from None
    try:
        content = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise LintError(display, f"not a notebook: invalid JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise LintError(display, "not a notebook: JSON nested too deeply") from None
    if not isinstance(content, dict) or not (
        isinstance(content.get("cells"), list) or "worksheets" in content
    ):
        raise LintError(display, "not a Jupyter notebook: no `cells` list")
    version = content.get("nbformat")
    if isinstance(version, int) and not isinstance(version, bool) and version < 4:
        raise LintError(
            display,
            f"nbformat {version} notebooks are not supported; convert it to version 4 "
            "(`jupyter nbconvert --to notebook --nbformat 4`)",
        )
    if not isinstance(content.get("cells"), list):
        raise LintError(display, "not a Jupyter notebook: no `cells` list")
    sources = _source_spans(raw)
    newlines = [at for at, char in enumerate(raw) if char == "\n"]
    cells: list[CodeCell] = []
    for index, cell in enumerate(content["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            text, as_list = "".join(source), True
        elif isinstance(source, str):
            text, as_list = source, False
        else:
            raise LintError(display, f"cell {len(cells) + 1}: `source` is not text")
        span = sources.get(index)
        file_lines = _file_lines(text, source, span, newlines) if span else ()
        cells.append(CodeCell(len(cells) + 1, index, text, as_list, file_lines))
    return Notebook(display, raw, content, tuple(cells))


# -- where the sources sit in the raw text -----------------------------------------------


@dataclass(frozen=True)
class _Span:
    start: int  # the value's first character
    end: int  # just past its last
    parts: tuple[int, ...]  # where each string of a list starts (a string: itself)


def _skip(raw: str, at: int) -> int:
    match = _SPACE.match(raw, at)
    return match.end() if match else at


def _members(raw: str, at: int) -> Iterator[tuple[str, int, int]]:
    """(key, value start, value end) of the JSON object starting at ``at``."""
    at = _skip(raw, at + 1)
    while raw[at] != "}":
        key, at = _decoder.raw_decode(raw, at)
        at = _skip(raw, _skip(raw, at) + 1)  # past the colon
        end = _decoder.raw_decode(raw, at)[1]
        yield key, at, end
        at = _skip(raw, end)
        if raw[at] == ",":
            at = _skip(raw, at + 1)


def _elements(raw: str, at: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each value of the JSON array starting at ``at``."""
    at = _skip(raw, at + 1)
    while raw[at] != "]":
        end = _decoder.raw_decode(raw, at)[1]
        yield at, end
        at = _skip(raw, end)
        if raw[at] == ",":
            at = _skip(raw, at + 1)


def _source_spans(raw: str) -> dict[int, _Span]:
    """Cell index -> where its ``source`` value sits. Only called on text that parsed, so
    the walk cannot fail; a later duplicate key wins, as in `json.loads`."""
    spans: dict[int, _Span] = {}
    at = _skip(raw, 0)
    for key, start, _ in _members(raw, at):
        if key != "cells":
            continue
        spans = {}
        for index, (cell_start, _) in enumerate(_elements(raw, start)):
            if raw[cell_start] != "{":
                continue
            for name, value, value_end in _members(raw, cell_start):
                if name != "source":
                    continue
                if raw[value] == "[":
                    parts = tuple(part for part, _ in _elements(raw, value))
                else:
                    parts = (value,)
                spans[index] = _Span(value, value_end, parts)
    return spans


def _file_lines(
    text: str, source: str | list[str], span: _Span, newlines: list[int]
) -> tuple[int | None, ...]:
    """For each line of the cell's text, the raw line where its first character is written:
    the line of the JSON string that holds it."""
    pieces = source if isinstance(source, list) else [source]
    if not pieces or len(pieces) != len(span.parts):
        return ()  # an empty cell (`"source": []`) has no line to point at
    starts: list[int] = []  # where each piece begins in `text`
    offset = 0
    for piece in pieces:
        starts.append(offset)
        offset += len(piece)
    result: list[int | None] = []
    line_start = 0
    for line in lines_of(text) or [""]:
        holder = max(bisect.bisect_right(starts, line_start) - 1, 0)
        result.append(bisect.bisect_left(newlines, span.parts[holder]) + 1)
        line_start += len(line)
    return tuple(result)


# -- writing back ------------------------------------------------------------------------


def with_sources(notebook: Notebook, texts: Mapping[int, str]) -> str:
    """The notebook's raw text with the code cells numbered in ``texts`` given those
    sources, in the shape each had; everything else stays as it was. Raises `LintError`
    where that cannot be done exactly."""
    raw = notebook.raw
    spans = _source_spans(raw)
    ensure_ascii = bool(_NON_ASCII_ESCAPE.search(raw))
    expected = json.loads(raw)
    edits: list[tuple[int, int, str]] = []
    for cell in notebook.cells:
        if cell.number not in texts or texts[cell.number] == cell.text:
            continue
        span = spans.get(cell.index)
        if span is None:
            raise LintError(notebook.display, f"cell {cell.number} has no `source` to replace")
        text = texts[cell.number]
        value: str | list[str] = _split(text) if cell.as_list else text
        expected["cells"][cell.index]["source"] = value
        edits.append((span.start, span.end, _render(raw, span, value, ensure_ascii)))
    result = raw
    for start, end, replacement in sorted(edits, reverse=True):
        result = result[:start] + replacement + result[end:]
    if json.loads(result) != expected:  # pragma: no cover - a bug of ours, never a bad write
        raise LintError(notebook.display, "cannot write the cells back exactly; left unchanged")
    return result


def _split(text: str) -> list[str]:
    """Jupyter's list form: one string per line, each but the last ending with its newline."""
    return lines_of(text)


def _render(raw: str, span: _Span, value: str | list[str], ensure_ascii: bool) -> str:
    """``value`` as JSON laid out like the value it replaces."""
    old = raw[span.start : span.end]
    if isinstance(value, str) or "\n" not in old:
        separators = (", ", ": ") if re.search(r",\s", old) or "\n" in old else (",", ":")
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
    if not value:
        return "[]"
    line_start = raw.rfind("\n", 0, span.start) + 1
    indent = raw[line_start : _skip_blanks(raw, line_start)]
    if span.parts:
        first = span.parts[0]
        first_line = raw.rfind("\n", 0, first) + 1
        inner = raw[first_line:first]
    else:
        inner = indent + _indent_unit(raw)
    items = [json.dumps(item, ensure_ascii=ensure_ascii) for item in value]
    return "[\n" + ",\n".join(inner + item for item in items) + "\n" + indent + "]"


def _skip_blanks(raw: str, at: int) -> int:
    while at < len(raw) and raw[at] in " \t":
        at += 1
    return at


def _indent_unit(raw: str) -> str:
    """The file's indentation step: that of its first indented line (Jupyter: one space)."""
    match = re.search(r"\n([ \t]+)\S", raw)
    return match.group(1) if match else " "
