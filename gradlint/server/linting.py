"""What the language server asks of the engine: lint a document's text (or a notebook's
code cells) with the configuration its path would get from `gradlint check`, and fix it.

No LSP here: plain functions over text, which the server runs on a worker thread. The
configuration is resolved afresh for every lint (reading a pyproject.toml costs well under
a millisecond), so an edited pyproject.toml applies at the next keystroke.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradlint import engine
from gradlint.cells import lint_cells
from gradlint.config import Config, ConfigError, ConfigResolver
from gradlint.discovery import is_force_excluded
from gradlint.finding import Finding, LintError
from gradlint.fixes import Fix, apply_fixes
from gradlint.reparse import Reparser

UNTITLED = "<untitled>"


@dataclass
class Linted:
    """One lint of one document: its findings, and why it was not (fully) linted."""

    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # for the log: syntax, config, bugs
    excluded: bool = False


def config_for(path: str | None, root: str | None) -> tuple[Config, bool]:
    """The configuration for the file at ``path`` (None: an unsaved buffer, configured
    from ``root``), and whether the project's excludes skip it. Raises `ConfigError`."""
    resolver = ConfigResolver(cwd=root or os.getcwd())
    if path is None:
        return resolver.for_folder(resolver.cwd), False
    return resolver.for_file(path), is_force_excluded(path, resolver)


def lint_document(
    source: str, path: str | None, root: str | None = None, reparser: Reparser | None = None
) -> Linted:
    """Lint one Python document (with the document's own ``reparser``, only what changed
    since its last lint is parsed again). Never raises: what went wrong is in ``problems``."""
    return _linted(
        path,
        root,
        lambda config, errors: engine.lint(source, _shown(path), config, errors, reparser),
    )


def lint_cells_of(texts: Sequence[str], path: str | None, root: str | None = None) -> Linted:
    """Lint a notebook's code cells as one program; findings carry their cell (1-based,
    counting the texts given). Never raises."""
    return _linted(
        path, root, lambda config, errors: lint_cells(texts, _shown(path), config, errors)
    )


def _shown(path: str | None) -> str:
    return path or UNTITLED


def _linted(
    path: str | None,
    root: str | None,
    lint: Callable[[Config, list[LintError]], list[Finding]],
) -> Linted:
    result = Linted()
    try:
        config, result.excluded = config_for(path, root)
        if result.excluded:
            return result
        errors: list[LintError] = []
        result.findings = lint(config, errors)
        result.problems = [str(error) for error in errors]
    except ConfigError as exc:
        result.problems = [f"configuration error: {exc}"]
    except LintError as exc:
        result.problems = [str(exc)]
    except Exception as exc:  # a bug of ours must not take the server down
        result.problems = [f"{_shown(path)}: internal error: {exc!r}"]
    return result


def fix_document(source: str, path: str | None, root: str | None = None) -> str:
    """The source with every safe fix made (re-linted until nothing more is fixable), or
    the source itself where it cannot be fixed. Never raises."""
    try:
        config, excluded = config_for(path, root)
        if excluded:
            return source
        return engine.fix_source(source, path or UNTITLED, config).source
    except (ConfigError, LintError):
        return source
    except Exception:  # a bug of ours must not take the server down
        return source


def fix_cell(text: str, fixes: Sequence[Fix]) -> str:
    """A cell's text with its safe fixes made (those that still parse)."""
    return apply_fixes(text, [fix for fix in fixes if fix.safe]).source
