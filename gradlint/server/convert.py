"""Findings and fixes as LSP diagnostics and text edits.

gradlint counts lines and columns from 1, columns in characters (code points); LSP counts
from 0, columns in the code units of the encoding agreed with the client (UTF-16 unless
it asked for another). Lines are split as both Python and LSP split them: at `\\n`, `\\r\\n`
and `\\r` only (`str.splitlines` also splits at form feeds and other characters that
Python reads as whitespace).
"""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from gradlint.finding import Finding
from gradlint.fixes import Edit, source_lines
from gradlint.rule_docs import doc_url

SOURCE = "gradlint"


def lines_of(text: str) -> list[str]:
    return source_lines(text)


def to_position(
    lines: Sequence[str], codec: PositionCodec, line: int, column: int
) -> types.Position:
    """gradlint's 1-based (line, column) as an LSP position."""
    if line > len(lines):  # the end of the text (an edit up to the start of the next line)
        return types.Position(line=len(lines), character=0)
    return codec.position_to_client_units(
        lines, types.Position(line=max(line - 1, 0), character=max(column - 1, 0))
    )


def from_position(
    lines: Sequence[str], codec: PositionCodec, position: types.Position
) -> tuple[int, int]:
    """An LSP position as gradlint's 1-based (line, column)."""
    if position.line >= len(lines):
        return len(lines) + 1, 1
    copy = types.Position(line=position.line, character=position.character)
    placed = codec.position_from_client_units(lines, copy)
    return placed.line + 1, placed.character + 1


def to_range(
    lines: Sequence[str],
    codec: PositionCodec,
    line: int,
    column: int,
    end_line: int,
    end_column: int,
) -> types.Range:
    return types.Range(
        start=to_position(lines, codec, line, column),
        end=to_position(lines, codec, end_line, end_column),
    )


def severity(code: str) -> types.DiagnosticSeverity:
    """GL1xx raise when the code runs: errors. The others (wrong training, waste) run to
    the end: warnings, so that an editor does not paint working code as broken."""
    return (
        types.DiagnosticSeverity.Error
        if code.startswith("GL1")
        else types.DiagnosticSeverity.Warning
    )


def diagnostic(finding: Finding, lines: Sequence[str], codec: PositionCodec) -> types.Diagnostic:
    return types.Diagnostic(
        range=to_range(
            lines, codec, finding.line, finding.column, finding.end_line, finding.end_column
        ),
        message=f"{finding.message} ({finding.name})",
        severity=severity(finding.code),
        code=finding.code,
        code_description=types.CodeDescription(href=doc_url(finding.code)),
        source=SOURCE,
        data={"name": finding.name, "fixable": finding.fixable},
    )


def text_edit(edit: Edit, lines: Sequence[str], codec: PositionCodec) -> types.TextEdit:
    return types.TextEdit(
        range=to_range(lines, codec, edit.line, edit.column, edit.end_line, edit.end_column),
        new_text=edit.text,
    )


def whole_change(old: str, new: str, codec: PositionCodec) -> types.TextEdit:
    """One edit that turns ``old`` into ``new``: the part between what they share at the
    start and at the end, so that the editor keeps the cursor and folds elsewhere."""
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    lines = lines_of(old)
    return types.TextEdit(
        range=types.Range(
            start=_offset_position(old, start, lines, codec),
            end=_offset_position(old, end_old, lines, codec),
        ),
        new_text=new[start:end_new],
    )


def _offset_position(
    text: str, offset: int, lines: Sequence[str], codec: PositionCodec
) -> types.Position:
    line_start = 0
    for number, line in enumerate(lines, start=1):
        if offset < line_start + len(line):
            return to_position(lines, codec, number, offset - line_start + 1)
        line_start += len(line)
    if lines and not lines[-1].endswith(("\n", "\r")):
        return to_position(lines, codec, len(lines), len(lines[-1]) + 1)
    return types.Position(line=len(lines), character=0)


def contains(range_: types.Range, position: types.Position) -> bool:
    start, end = range_.start, range_.end
    after_start = (position.line, position.character) >= (start.line, start.character)
    before_end = (position.line, position.character) <= (end.line, end.character)
    return after_start and before_end


def overlaps(first: types.Range, second: types.Range) -> bool:
    def key(position: types.Position) -> tuple[int, int]:
        return (position.line, position.character)

    return key(first.start) <= key(second.end) and key(second.start) <= key(first.end)
