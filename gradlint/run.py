"""Lint many paths: discovery, configuration, the cache and the engine."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from gradlint import engine
from gradlint.cells import fix_notebook, lint_notebook, noqa_notebook
from gradlint.config import Config, ConfigResolver, Selection
from gradlint.discovery import SourceFile, discover
from gradlint.files import read_bytes, read_source_encoded, write_atomic
from gradlint.finding import Finding, LintError
from gradlint.fixes import source_lines
from gradlint.noqa import add_noqa as add_noqa_comments
from gradlint.notebook import encoding_of, is_notebook
from gradlint.parallel import Task, lint_all, lint_task


@dataclass(frozen=True)
class Fixing:
    """`--fix` (write the fixed files) or `--diff` (show what it would change)."""

    write: bool
    unsafe: bool = False


@dataclass
class RunResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[LintError] = field(default_factory=list)
    files: int = 0  # files attempted, including those that failed
    fixed: int = 0  # fixes made (or, with --diff, that would be)
    diffs: list[str] = field(default_factory=list)  # with --diff: one unified diff per file
    dropped: list[str] = field(default_factory=list)  # fixes left out: `path: title: why`
    noqa_added: int = 0  # with --add-noqa: lines that got a suppression comment

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
    return lint_task(Task(file, config))


def fix_file(file: SourceFile, config: Config, fixing: Fixing, result: RunResult) -> None:
    """Fix one file (or show the diff), then lint what it became; never raises for a bad
    file, and never writes a file it could not fix whole."""

    def write(text: str) -> None:
        try:
            write_atomic(str(file.path), text, encoding)
        except OSError as exc:
            raise LintError(file.display, f"cannot write the fixes: {exc}") from None

    if is_notebook(file.display):
        try:
            data = read_bytes(file.path, file.display)
        except LintError as exc:
            result.errors.append(exc)
            return
        encoding = encoding_of(data)
        fix_notebook_data(data, file.display, config, fixing, result, write)
        return
    try:
        source, encoding = read_source_encoded(file.path, file.display)
    except LintError as exc:
        result.errors.append(exc)
        return
    fix_text(source, file.display, config, fixing, result, write)


def fix_notebook_data(
    data: bytes,
    display: str,
    config: Config,
    fixing: Fixing,
    result: RunResult,
    write: Callable[[str], None],
) -> None:
    """`fix_text` for a notebook: the fixed notebook's JSON goes to ``write``; --diff shows
    the changed cells' Python."""
    errors: list[LintError] = []
    try:
        outcome = fix_notebook(data, display, config, fixing.unsafe)
        result.dropped.extend(f"{display}: {why}" for why in outcome.dropped)
        if outcome.text is not None:
            result.fixed += outcome.applied
            if fixing.write:
                write(outcome.text)
                data = outcome.text.encode(encoding_of(data))
            else:
                result.diffs.extend(outcome.diffs)
        result.findings.extend(lint_notebook(data, display, config, errors))
    except LintError as exc:
        errors.append(exc)
    except Exception as exc:  # a bug of ours in one file must not stop the others
        errors.append(LintError(display, f"internal error: {exc!r}"))
    result.errors.extend(errors)


def fix_text(
    source: str,
    display: str,
    config: Config,
    fixing: Fixing,
    result: RunResult,
    write: Callable[[str], None],
) -> None:
    """Fix one file's text, handing the fixed text to ``write`` (or, with --diff, adding the
    diff to the result), then lint what it became; never raises for a bad file."""
    errors: list[LintError] = []
    try:
        applied = engine.fix_source(source, display, config, fixing.unsafe)
        result.dropped.extend(
            f"{display}: {title}: fix left out, the file would not parse"
            for title in applied.dropped or ()
        )
        if applied.applied:
            result.fixed += applied.applied
            if fixing.write:
                write(applied.source)
                source = applied.source
            else:
                result.diffs.append(_diff(source, applied.source, display))
        result.findings.extend(engine.lint(source, display, config, errors))
    except LintError as exc:
        errors.append(exc)
    except Exception as exc:  # a bug of ours in one file must not stop the others
        errors.append(LintError(display, f"internal error: {exc!r}"))
    result.errors.extend(errors)


def noqa_file(file: SourceFile, config: Config, result: RunResult) -> None:
    """Add `# noqa: CODE` on each line with findings, so that a codebase can adopt
    gradlint now and fix over time; what cannot take a comment stays reported."""
    errors: list[LintError] = []
    if is_notebook(file.display):
        _noqa_notebook(file, config, result)
        return
    try:
        source, encoding = read_source_encoded(file.path, file.display)
        findings = engine.lint(source, file.display, config, errors)
        codes: dict[int, set[str]] = {}
        for finding in findings:
            codes.setdefault(finding.line, set()).add(finding.code)
        marked, changed, skipped = add_noqa_comments(source, codes)
        if changed:
            try:
                write_atomic(str(file.path), marked, encoding)
            except OSError as exc:
                raise LintError(file.display, f"cannot write the comments: {exc}") from None
            result.noqa_added += changed
        result.findings.extend(f for f in findings if f.line in skipped)
    except LintError as exc:
        errors.append(exc)
    except Exception as exc:  # a bug of ours in one file must not stop the others
        errors.append(LintError(file.display, f"internal error: {exc!r}"))
    result.errors.extend(errors)


def _noqa_notebook(file: SourceFile, config: Config, result: RunResult) -> None:
    errors: list[LintError] = []
    try:
        data = read_bytes(file.path, file.display)
        text, changed, left = noqa_notebook(data, file.display, config, errors)
        if text is not None:
            encoding = encoding_of(data)
            try:
                write_atomic(str(file.path), text, encoding)
            except OSError as exc:
                raise LintError(file.display, f"cannot write the comments: {exc}") from None
            result.noqa_added += changed
        result.findings.extend(left)
    except LintError as exc:
        errors.append(exc)
    except Exception as exc:  # a bug of ours in one file must not stop the others
        errors.append(LintError(file.display, f"internal error: {exc!r}"))
    result.errors.extend(errors)


def _diff(before: str, after: str, display: str) -> str:
    lines = difflib.unified_diff(
        source_lines(before),
        source_lines(after),
        fromfile=f"a/{display}",
        tofile=f"b/{display}",
    )
    # A last line without a newline still ends its diff line.
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def run(
    paths: Sequence[str],
    selection: Selection | None = None,
    *,
    resolver: ConfigResolver | None = None,
    fixing: Fixing | None = None,
    add_noqa: bool = False,
    jobs: int = 1,
    cache: bool = False,
    force_exclude: bool = False,
) -> RunResult:
    """Lint every file under ``paths``.

    ``jobs`` processes lint at once; ``cache`` reads and writes the result cache (plain
    checks only: fixes and noqa comments work on each file's current text);
    ``force_exclude`` applies the excludes to the paths given too. Raises
    `gradlint.config.ConfigError` for a bad selection or pyproject.toml: that is a usage
    error for the whole run, not a problem of one file.
    """
    resolver = resolver or ConfigResolver(selection)
    found = discover(paths, resolver, force_exclude)
    result = RunResult(errors=list(found.errors), files=len(found.files))
    if add_noqa or fixing is not None:
        for file in found.files:
            config = resolver.for_file(file.path)
            if add_noqa:
                noqa_file(file, config, result)
            elif fixing is not None:
                fix_file(file, config, fixing, result)
    else:
        tasks = [Task(file, resolver.for_file(file.path)) for file in found.files]
        _check(tasks, result, jobs, cache)
    result.findings.sort()
    result.errors.sort(key=lambda error: (error.path, error.message))
    return result


def _check(tasks: list[Task], result: RunResult, jobs: int, use_cache: bool) -> None:
    if not use_cache:
        for findings, errors in lint_all(tasks, jobs):
            result.findings.extend(findings)
            result.errors.extend(errors)
        return
    from gradlint.cache import Cache

    cache = Cache()
    misses: list[tuple[Task, str]] = []
    for task in tasks:
        try:
            data = read_bytes(task.file.path, task.file.display)
        except LintError as exc:
            result.errors.append(exc)
            continue
        key = cache.key(data, task.config, task.file.display)
        hit = cache.load(task.config.root, key, task.file.display)
        if hit is None:
            misses.append((replace(task, data=data), key))
        else:
            result.findings.extend(hit[0])
            result.errors.extend(hit[1])
    outcomes = lint_all([task for task, _ in misses], jobs)
    for (task, key), outcome in zip(misses, outcomes, strict=True):
        result.findings.extend(outcome[0])
        result.errors.extend(outcome[1])
        cache.store(task.config.root, key, outcome)
    cache.prune()
