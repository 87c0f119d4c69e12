"""Lint many paths: discovery, configuration and the engine, one file at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gradlint import engine
from gradlint.config import Config, ConfigResolver, Selection
from gradlint.discovery import SourceFile, discover
from gradlint.files import read_source
from gradlint.finding import Finding, LintError


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[LintError] = field(default_factory=list)
    files: int = 0  # files attempted, including those that failed

    def exit_code(self, exit_zero: bool = False) -> int:
        """0 clean, 1 findings, 2 when any file could not be linted (even with --exit-zero:
        a file that was not checked is not a clean result)."""
        if self.errors:
            return 2
        if self.findings and not exit_zero:
            return 1
        return 0


def lint_file(file: SourceFile, config: Config) -> tuple[list[Finding], list[LintError]]:
    """One file's findings and errors; never raises for a bad file."""
    errors: list[LintError] = []
    try:
        source = read_source(file.path, file.display)
        findings = engine.lint(source, file.display, config, errors)
    except LintError as exc:
        return [], [*errors, exc]
    except Exception as exc:  # a bug of ours in one file must not stop the others
        return [], [*errors, LintError(file.display, f"internal error: {exc!r}")]
    return findings, errors


def run(
    paths: Sequence[str],
    selection: Selection | None = None,
    *,
    resolver: ConfigResolver | None = None,
) -> RunResult:
    """Lint every file under ``paths``.

    Raises `gradlint.config.ConfigError` for a bad selection or pyproject.toml: that is
    a usage error for the whole run, not a problem of one file.
    """
    resolver = resolver or ConfigResolver(selection)
    found = discover(paths, resolver)
    result = RunResult(errors=list(found.errors), files=len(found.files))
    for file in found.files:
        findings, errors = lint_file(file, resolver.for_file(file.path))
        result.findings.extend(findings)
        result.errors.extend(errors)
    result.findings.sort()
    result.errors.sort(key=lambda error: (error.path, error.message))
    return result
