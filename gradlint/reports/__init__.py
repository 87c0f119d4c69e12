"""Report formats (DESIGN §6): text for people, JSON for scripts, SARIF for code-scanning
services, GitHub workflow annotations, and concise lines for grep and editors."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradlint.run import RunResult

FORMATS = ("text", "json", "sarif", "github", "concise")

# Formats that carry the files that could not be linted inside the report; the others
# name them on stderr, one `path: message` line each.
REPORTS_ERRORS = frozenset({"json", "sarif", "github"})


def render(
    result: RunResult, output_format: str, *, color: bool = False, statistics: bool = False
) -> str:
    """The whole report, as it goes to stdout or to ``--output-file``: empty, or lines that
    each end with a newline. ``color`` and ``statistics`` concern the text format only."""
    # Imported on use: each format pulls in only what it needs.
    if output_format == "text":
        from gradlint.reports.text import render_text

        return render_text(result, color=color, statistics=statistics)
    if output_format == "json":
        from gradlint.reports.json import render_json

        return render_json(result) + "\n"
    if output_format == "sarif":
        from gradlint.reports.sarif import render_sarif

        return render_sarif(result) + "\n"
    if output_format == "github":
        from gradlint.reports.github import render_github

        return render_github(result)
    if output_format == "concise":
        from gradlint.reports.concise import render_concise

        return render_concise(result)
    raise ValueError(f"unknown report format {output_format!r}")
