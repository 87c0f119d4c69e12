"""The concise report: exactly one line per finding and nothing else, for grep, editors'
problem matchers and diffs between runs. No colour, no fix marker, no summary: those are
the text report's, for people."""

from __future__ import annotations

from gradlint.reports.text import place
from gradlint.run import RunResult


def render_concise(result: RunResult) -> str:
    return "".join(
        f"{place(finding)}:{finding.line}:{finding.column}: {finding.code} {finding.message}\n"
        for finding in result.findings
    )
