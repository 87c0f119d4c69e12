"""Configuration: `[tool.gradlint]` of the nearest pyproject.toml, plus command-line options.

Rule selection follows ruff. Each layer (the pyproject table, then the command line) may
``select`` (which *replaces* the rules enabled so far), ``extend-select`` and ``ignore``
(which adjust them). Within one layer the most specific selector wins (``GL101`` beats
``GL1`` beats ``ALL``); at equal specificity ``ignore`` wins.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gradlint import registry
from gradlint.globs import compile_glob

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 ships no TOML parser
    import tomli as tomllib

PYPROJECT = "pyproject.toml"

KEYS = ("select", "ignore", "extend-select", "exclude", "extend-exclude", "per-file-ignores")

# Folders that hold other people's code or tool output; linting them is slow and noisy.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "env",
    ".env",
    ".tox",
    ".nox",
    "build",
    "dist",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradlint_cache",
    "*.egg-info",
    "site-packages",
)


class ConfigError(Exception):
    """A configuration that cannot be used: bad TOML, an unknown key or rule."""


@dataclass(frozen=True)
class Selection:
    """One layer of rule selectors as written (codes, prefixes, ``ALL`` or names)."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self.select is None and not self.extend_select and not self.ignore


@dataclass(frozen=True)
class Config:
    """The effective configuration for the files under one pyproject.toml.

    ``select`` holds expanded codes (None: every rule). ``per_file_ignores`` and ``exclude``
    hold glob patterns, relative to ``root`` (the pyproject's folder).
    """

    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = field(default=())
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    root: str | None = None
    source: str | None = None  # the pyproject.toml it came from, for messages

    def is_enabled(self, code: str, path: str) -> bool:
        if self.select is not None and code not in self.select:
            return False
        if code in self.ignore:
            return False
        if self.per_file_ignores and code in _ignored_in(self.per_file_ignores, self.root, path):
            return False
        return True

    def is_excluded(self, path: str | os.PathLike[str]) -> bool:
        """Whether discovery skips this entry (a file or folder met while walking)."""
        text = os.fspath(path)
        name = os.path.basename(os.path.normpath(text))
        globs = [compile_glob(pattern) for pattern in self.exclude]
        if any(glob.match_name(name) for glob in globs):
            return True
        anchored = [glob for glob in globs if glob.anchored]
        if not anchored:  # the usual case: spare a relpath per file walked
            return False
        parts = _relative_parts(self.root, text)
        return any(glob.match_path(parts, ancestors=False) for glob in anchored)


@lru_cache(maxsize=4096)
def _ignored_in(
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...], root: str | None, path: str
) -> frozenset[str]:
    # Cached: the engine asks once per rule for the same file.
    parts = _relative_parts(root, path) or (os.path.basename(path),)
    ignored: set[str] = set()
    for pattern, codes in per_file_ignores:
        if compile_glob(pattern).match_path(parts, ancestors=True):
            ignored |= codes
    return frozenset(ignored)


def _relative_parts(root: str | None, path: str) -> tuple[str, ...] | None:
    """The path's parts relative to root, or None when it lies outside root."""
    if root is None:
        return None
    try:
        relative = os.path.relpath(os.path.abspath(path), root)
    except ValueError:  # another drive on Windows
        return None
    parts = tuple(part for part in Path(relative).parts if part != ".")
    if parts and parts[0] == "..":
        return None
    return parts


# -- rule selection ---------------------------------------------------------------------


def _specificity(selector: str, codes: set[str]) -> int:
    key = selector.strip()
    if key.upper() == "ALL":
        return 0
    if key.upper().startswith("GL"):
        return len(key)
    return max(len(code) for code in codes)  # a name is as specific as its code


def resolve_selection(layers: Iterable[Selection]) -> frozenset[str]:
    """The codes enabled after applying each layer in turn.

    Raises `registry.UnknownRuleError` for a selector that names no rule.
    """
    enabled = {rule.code for rule in registry.all_rules()}
    for layer in layers:
        votes: dict[str, tuple[int, bool]] = {}
        groups = (((layer.select or ()) + layer.extend_select, True), (layer.ignore, False))
        for selectors, turn_on in groups:
            for selector in selectors:
                codes = registry.expand(selector)
                rank = _specificity(selector, codes)
                for code in codes:
                    previous = votes.get(code)
                    if (
                        previous is None
                        or rank > previous[0]
                        or (rank == previous[0] and not turn_on)
                    ):
                        votes[code] = (rank, turn_on)
        if layer.select is not None:
            enabled = {code for code, (_, on) in votes.items() if on}
        else:
            for code, (_, on) in votes.items():
                if on:
                    enabled.add(code)
                else:
                    enabled.discard(code)
    return frozenset(enabled)


# -- pyproject.toml ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectSettings:
    """`[tool.gradlint]` of one pyproject.toml, checked but not yet combined with the CLI."""

    path: str
    selection: Selection = Selection()
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def root(self) -> str:
        return os.path.dirname(self.path)


def read_pyproject(path: Path) -> ProjectSettings | None:
    """The settings in this pyproject.toml, or None when it has no `[tool.gradlint]` table."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    tool = data.get("tool")
    if not isinstance(tool, dict) or "gradlint" not in tool:
        return None
    table = tool["gradlint"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.gradlint] must be a table")
    return parse_settings(table, str(path))


def parse_settings(table: Mapping[str, Any], path: str) -> ProjectSettings:
    where = f"{path}: [tool.gradlint]"
    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key.replace("_", "-"), KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where} unknown key '{key}'{hint}")

    def strings(key: str) -> tuple[str, ...] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where} {key} must be a list of strings")
        return tuple(value)

    def checked_selectors(key: str, selectors: Sequence[str]) -> None:
        for selector in selectors:
            try:
                registry.expand(selector)
            except registry.UnknownRuleError:
                raise ConfigError(
                    f"{where} {key}: unknown rule code or name '{selector}'"
                ) from None

    selection = Selection(
        select=strings("select"),
        extend_select=strings("extend-select") or (),
        ignore=strings("ignore") or (),
    )
    for key, selectors in (
        ("select", selection.select or ()),
        ("extend-select", selection.extend_select),
        ("ignore", selection.ignore),
    ):
        checked_selectors(key, selectors)

    per_file: list[tuple[str, tuple[str, ...]]] = []
    raw = table.get("per-file-ignores", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} per-file-ignores must be a table of glob = [codes]")
    for pattern, codes in raw.items():
        if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
            raise ConfigError(f"{where} per-file-ignores '{pattern}' must be a list of strings")
        checked_selectors(f"per-file-ignores '{pattern}'", codes)
        per_file.append((pattern, tuple(codes)))

    return ProjectSettings(
        path=path,
        selection=selection,
        exclude=strings("exclude"),
        extend_exclude=strings("extend-exclude") or (),
        per_file_ignores=tuple(per_file),
    )


def build_config(
    settings: ProjectSettings | None, overrides: Selection | None = None, root: str | None = None
) -> Config:
    """Combine one project's settings with the command line's selection."""
    layers = [settings.selection] if settings else []
    if overrides is not None:
        layers.append(overrides)
    selected = (
        None
        if not layers or all(layer.is_empty() for layer in layers)
        else (resolve_selection(layers))
    )
    if settings is None:
        return Config(select=selected, root=root)
    exclude = DEFAULT_EXCLUDE if settings.exclude is None else settings.exclude
    return Config(
        select=selected,
        per_file_ignores=tuple(
            (pattern, frozenset(registry.expand_all(codes)))
            for pattern, codes in settings.per_file_ignores
        ),
        exclude=exclude + settings.extend_exclude,
        root=settings.root,
        source=settings.path,
    )


class ConfigResolver:
    """Finds the configuration for each file: the nearest pyproject.toml with a
    `[tool.gradlint]` table, walking up from the file's folder. Results are cached per
    folder, so a tree of thousands of files reads each pyproject.toml once.
    """

    def __init__(self, overrides: Selection | None = None, cwd: str | None = None) -> None:
        self.overrides = overrides
        self.cwd = os.path.abspath(cwd or os.getcwd())
        self._nearest: dict[str, str | None] = {}  # folder -> pyproject.toml path or None
        self._settings: dict[str, ProjectSettings] = {}
        self._configs: dict[str | None, Config] = {}
        try:
            # Built now so that a bad --select fails before any file is read.
            self._configs[None] = build_config(None, overrides, root=self.cwd)
        except registry.UnknownRuleError as exc:
            raise ConfigError(str(exc)) from None

    def for_file(self, path: str | os.PathLike[str]) -> Config:
        return self.for_folder(os.path.dirname(os.path.abspath(path)))

    def for_folder(self, folder: str | os.PathLike[str]) -> Config:
        pyproject = self._find(os.path.abspath(folder))
        config = self._configs.get(pyproject)
        if config is None:
            assert pyproject is not None  # the default config is built in __init__
            try:
                config = build_config(self._settings[pyproject], self.overrides)
            except registry.UnknownRuleError as exc:  # checked in parse_settings already
                raise ConfigError(f"{pyproject}: {exc}") from None
            self._configs[pyproject] = config
        return config

    def _find(self, folder: str) -> str | None:
        visited: list[str] = []
        found: str | None = None
        current = folder
        while True:
            if current in self._nearest:
                found = self._nearest[current]
                break
            visited.append(current)
            candidate = os.path.join(current, PYPROJECT)
            if os.path.isfile(candidate):
                settings = read_pyproject(Path(candidate))
                if settings is not None:
                    self._settings[candidate] = settings
                    found = candidate
                    break
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for seen in visited:
            self._nearest[seen] = found
        return found
