"""Code actions for a document's findings: each safe fix as a quick fix, a `# noqa: CODE`
comment on the finding's line, and "fix all" (`source.fixAll.gradlint`)."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from gradlint.finding import Finding
from gradlint.magics import python_of
from gradlint.noqa import add_noqa
from gradlint.server.convert import diagnostic, lines_of, overlaps, text_edit, to_position

FIX_ALL = f"{types.CodeActionKind.SourceFixAll.value}.gradlint"
FIX_ALL_TITLE = "gradlint: apply every safe fix"


def wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Whether the client asked for actions of this kind: kinds are dotted hierarchies,
    so `source.fixAll` asks for `source.fixAll.gradlint` too."""
    if not only:
        return True
    return any(kind == asked or kind.startswith(f"{asked}.") for asked in only)


def _edit(uri: str, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={uri: edits})


def quick_fixes(
    uri: str,
    text: str,
    findings: Sequence[Finding],
    where: types.Range,
    codec: PositionCodec,
    magic_lines: frozenset[int] = frozenset(),
) -> list[types.CodeAction]:
    """For each finding at ``where``: its safe fix, then a noqa comment on its line."""
    lines = lines_of(text)
    fixes: list[types.CodeAction] = []
    suppressions: list[types.CodeAction] = []
    noqa_done: set[tuple[int, str]] = set()
    for finding in findings:
        shown = diagnostic(finding, lines, codec)
        if not overlaps(shown.range, where):
            continue
        fix = finding.fix
        if fix is not None and fix.safe:
            fixes.append(
                types.CodeAction(
                    title=f"{fix.title} ({finding.code})",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[shown],
                    edit=_edit(uri, [text_edit(edit, lines, codec) for edit in fix.edits]),
                    is_preferred=True,
                )
            )
        if (finding.line, finding.code) in noqa_done or finding.line in magic_lines:
            continue
        noqa_done.add((finding.line, finding.code))
        action = _noqa(uri, text, lines, finding, shown, codec)
        if action is not None:
            suppressions.append(action)
    return fixes + suppressions


def _noqa(
    uri: str,
    text: str,
    lines: list[str],
    finding: Finding,
    shown: types.Diagnostic,
    codec: PositionCodec,
) -> types.CodeAction | None:
    marked, changed, _ = add_noqa(text, {finding.line: [finding.code]})
    if not changed:
        return None  # inside a string, or a bare noqa is there already
    new_line = lines_of(marked)[finding.line - 1]
    old_line = lines[finding.line - 1]
    body = old_line.rstrip("\r\n")
    # Replace the line's text up to its end (not its line break).
    edit = types.TextEdit(
        range=types.Range(
            start=to_position(lines, codec, finding.line, 1),
            end=to_position(lines, codec, finding.line, len(body) + 1),
        ),
        new_text=new_line.rstrip("\r\n"),
    )
    return types.CodeAction(
        title=f"Suppress {finding.code} on this line (# noqa: {finding.code})",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[shown],
        edit=_edit(uri, [edit]),
    )


def magic_lines_of(cell_text: str) -> frozenset[int]:
    """The lines of a notebook cell that are IPython syntax: no comment goes there."""
    return python_of(cell_text).magic_lines


def fix_all(uri: str, edit: types.TextEdit | None) -> types.CodeAction | None:
    if edit is None:
        return None
    return types.CodeAction(title=FIX_ALL_TITLE, kind=FIX_ALL, edit=_edit(uri, [edit]))
