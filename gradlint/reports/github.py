"""GitHub Actions workflow commands: each finding an annotation on its line of the diff."""

from __future__ import annotations

from gradlint.finding import Finding, LintError
from gradlint.reports.paths import relative_to_cwd
from gradlint.run import RunResult


def render_github(result: RunResult) -> str:
    lines = [error_annotation(error) for error in result.errors]
    lines += [finding_annotation(finding) for finding in result.findings]
    return "".join(f"{line}\n" for line in lines)


def finding_annotation(finding: Finding) -> str:
    if finding.cell is not None:
        # GitHub shows a notebook's diff as its JSON: annotate the line of the JSON that
        # holds the source line, and name the place in the cell in the title.
        return _command(
            finding.severity,
            finding.message,
            file=_file(finding.path),
            line=str(finding.file_line or 1),
            title=f"{finding.code} {finding.name} "
            f"(cell {finding.cell}, line {finding.line}, column {finding.column})",
        )
    return _command(
        finding.severity,  # "error" or "warning": both are annotation commands
        finding.message,
        file=_file(finding.path),
        line=str(finding.line),
        col=str(finding.column),
        endLine=str(finding.end_line),
        endColumn=str(finding.end_column),
        title=f"{finding.code} {finding.name}",
    )


def error_annotation(error: LintError) -> str:
    return _command("error", error.message, file=_file(error.path), title="gradlint: not linted")


def _file(path: str) -> str:
    # GitHub resolves annotation paths against the checkout, the job's working folder.
    return relative_to_cwd(path) or path


def _command(kind: str, message: str, **properties: str) -> str:
    listed = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{kind} {listed}::{escape_data(message)}"


def escape_data(text: str) -> str:
    """A command's message: ``%`` and line breaks would end or garble the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: also ``:`` and ``,``, which separate the properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
