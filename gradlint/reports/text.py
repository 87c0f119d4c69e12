"""The text report: one line per finding, then a summary line."""

from __future__ import annotations

from collections import Counter

import click

from gradlint.finding import Finding, LintError
from gradlint.run import RunResult


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def place(finding: Finding) -> str:
    """The file, and in a notebook its cell: ``nb.ipynb:cell 3``."""
    return finding.path if finding.cell is None else f"{finding.path}:cell {finding.cell}"


def format_finding(finding: Finding, color: bool = False) -> str:
    """``path:line:col: CODE [*] message``; in a notebook ``nb.ipynb:cell 3:line:col:``."""
    where = place(finding)
    code = finding.code
    fix = " [*]" if finding.fixable else ""
    if color:
        where = click.style(where, bold=True)
        tint = "yellow" if finding.severity == "warning" else "red"
        code = click.style(code, fg=tint, bold=True)
        fix = click.style(fix, fg="cyan") if fix else ""
    verdict = f" [runtime: {finding.runtime}]" if finding.runtime else ""
    return f"{where}:{finding.line}:{finding.column}: {code}{fix} {finding.message}{verdict}"


def format_error(error: LintError) -> str:
    return f"{error.path}: {error.message}"


def summary_line(result: RunResult) -> str:
    errors = f" ({_plural(len(result.errors), 'error')})" if result.errors else ""
    if result.findings:
        files = len({finding.path for finding in result.findings})
        found = _plural(len(result.findings), "finding")
        return f"Found {found} in {_plural(files, 'file')}{errors}."
    if result.errors:
        return f"No findings in {_plural(result.files, 'file')}{errors}."
    if not result.files:
        return "No Python files found."
    return f"All checked! {_plural(result.files, 'file')}, no findings."


def statistics_lines(result: RunResult) -> list[str]:
    """Counts per code, most frequent first: ``3  GL101  [*] numpy-on-graph-tensor``."""
    counts = Counter(finding.code for finding in result.findings)
    sample = {finding.code: finding for finding in result.findings}
    order = sorted(counts, key=lambda code: (-counts[code], code))
    width = max((len(str(count)) for count in counts.values()), default=1)
    lines = []
    for code in order:
        finding = sample[code]
        fix = "[*] " if finding.fixable else ""
        lines.append(f"{counts[code]:>{width}}  {code}  {fix}{finding.name}")
    return lines


def render_text(result: RunResult, *, color: bool = False, statistics: bool = False) -> str:
    """Findings (or, with ``statistics``, counts per code), then the summary. Files that
    could not be linted are not in it: they go to stderr (`format_error`)."""
    lines = (
        statistics_lines(result)
        if statistics
        else [format_finding(finding, color) for finding in result.findings]
    )
    summary = summary_line(result)
    lines.append(click.style(summary, bold=True) if color else summary)
    fixable = sum(finding.fixable for finding in result.findings)
    if fixable:
        lines.append(f"[*] {fixable} fixable with `gradlint check --fix`.")
    return "".join(f"{line}\n" for line in lines)
