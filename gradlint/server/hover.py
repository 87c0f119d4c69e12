"""Hover on a finding: the documentation of its rule, as `gradlint rule CODE` shows it."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from gradlint import registry
from gradlint.finding import Finding
from gradlint.rule_docs import markdown
from gradlint.server.convert import contains, diagnostic, lines_of


def hover(
    text: str, findings: Sequence[Finding], position: types.Position, codec: PositionCodec
) -> types.Hover | None:
    """The docs of every rule with a finding under ``position`` (None: none there)."""
    lines = lines_of(text)
    parts: list[str] = []
    seen: set[str] = set()
    span: types.Range | None = None
    for finding in findings:
        shown = diagnostic(finding, lines, codec)
        if not contains(shown.range, position) or finding.code in seen:
            continue
        seen.add(finding.code)
        span = span or shown.range
        try:
            rule = registry.find_rule(finding.code)
        except registry.UnknownRuleError:  # pragma: no cover - findings come from rules
            continue
        parts.append(f"{finding.message}\n\n{markdown(rule)}")
    if not parts:
        return None
    return types.Hover(
        contents=types.MarkupContent(
            kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)
        ),
        range=span,
    )
