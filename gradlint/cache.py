"""The result cache: each file's findings and errors, kept under what decides them.

An entry's key hashes the file's bytes, the linter (its version, its registered rules, and
a stamp of its own source files), the codes of the rules enabled for that file (which
folds in ``select``, ``ignore`` and ``per-file-ignores``) and whether the file is a
notebook (the same bytes lint differently as one). The path is not part of the key:
findings are stored without it and given the path they are loaded for, so files with the
same bytes (empty ``__init__.py`` files) share one entry.

Layout, in ``<root>/.gradlint_cache/`` (root: the folder of the pyproject.toml that
configures the file, else the current folder)::

    .gitignore        "*": git never sees the cache
    CACHEDIR.TAG      backup tools skip the folder
    .last-prune       its mtime: when the last sweep ran
    entries/ab/ab12...json

Pruning: a hit refreshes an entry's mtime (at most once a day); a sweep, run at most once
a day, deletes entries unused for `MAX_AGE_DAYS` days. The cache never fails a run: an
entry that cannot be read or decoded is a miss (and is overwritten), and a folder that
cannot be written is used without writing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradlint.config import Config
from gradlint.files import write_atomic
from gradlint.finding import Finding, LintError
from gradlint.fixes import Edit, Fix
from gradlint.notebook import is_notebook

CACHE_DIR = ".gradlint_cache"
MAX_AGE_DAYS = 30
FORMAT = 2  # bumped when an entry's layout changes
_DAY = 24 * 60 * 60

_GITIGNORE = "# Written by gradlint: the result cache, never committed.\n*\n"
_CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by gradlint.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)

Outcome = tuple[list[Finding], list[LintError]]


def linter_stamp() -> str:
    """What about the linter itself decides results: version, rules, and its sources."""
    import gradlint
    from gradlint import registry

    parts = [f"cache format {FORMAT}", f"gradlint {gradlint.__version__}"]
    parts += [f"{r.code} {r.__module__}.{r.__qualname__}" for r in registry.all_rules()]
    parts += _source_stamp()
    return "\n".join(parts)


def _source_stamp() -> list[str]:
    # The version changes only at a release; in a development checkout an edited rule or
    # analysis must not be answered with what the old code found.
    import gradlint

    rules = importlib.import_module("gradlint.rules")
    stamps: list[str] = []
    for top in [*gradlint.__path__, *rules.__path__]:
        for folder, subfolders, names in os.walk(top):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    stamps.append(f"{path} {info.st_size} {info.st_mtime_ns}")
    return stamps


class Cache:
    """Entries for one run; the folders are prepared when first needed."""

    def __init__(self, stamp: str | None = None) -> None:
        from gradlint import registry

        self._prefix = hashlib.blake2b((stamp or linter_stamp()).encode()).digest()
        self._codes = [rule.code for rule in registry.all_rules()]
        self._folders: dict[str, Path | None] = {}
        self._read_only: set[Path] = set()

    def key(self, data: bytes, config: Config, path: str) -> str:
        enabled = ",".join(code for code in self._codes if config.is_enabled(code, path))
        digest = hashlib.blake2b(self._prefix, digest_size=20)
        digest.update(enabled.encode())
        # The same bytes mean another thing in a notebook (an empty .py file is clean, an
        # empty .ipynb is not a notebook).
        digest.update(b"\0ipynb\0" if is_notebook(path) else b"\0")
        digest.update(data)
        return digest.hexdigest()

    def load(self, root: str | None, key: str, display: str) -> Outcome | None:
        """The stored findings and errors, given ``display`` as their path; None on a miss."""
        folder = self._folder(root)
        if folder is None:
            return None
        path = _entry_path(folder, key)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
                used = os.fstat(handle.fileno()).st_mtime
            outcome = _decode(json.loads(raw), key, display)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if time.time() - used > _DAY and folder not in self._read_only:
            try:
                os.utime(path)  # still in use: keep it from the sweep
            except OSError:
                pass
        return outcome

    def store(self, root: str | None, key: str, outcome: Outcome) -> None:
        findings, errors = outcome
        if any(error.message.startswith("internal error") for error in errors):
            return  # a crash of ours is retried next time, not remembered
        folder = self._folder(root)
        if folder is None or folder in self._read_only:
            return
        path = _entry_path(folder, key)
        try:
            path.parent.mkdir(exist_ok=True)
            write_atomic(str(path), json.dumps(_encode(key, findings, errors)), durable=False)
        except OSError:
            self._read_only.add(folder)  # not writable: read what is there, write nothing

    def prune(self, now: float | None = None) -> None:
        """Delete the entries of every folder used that went unused for MAX_AGE_DAYS."""
        now = time.time() if now is None else now
        for folder in self._folders.values():
            if folder is not None and folder not in self._read_only:
                _sweep(folder, now)

    def _folder(self, root: str | None) -> Path | None:
        root = root or os.getcwd()
        if root not in self._folders:
            folder = Path(root) / CACHE_DIR
            try:
                _prepare(folder)
            except OSError:
                self._folders[root] = None  # cannot be made: lint without a cache
            else:
                self._folders[root] = folder
        return self._folders[root]


def _prepare(folder: Path) -> None:
    (folder / "entries").mkdir(parents=True, exist_ok=True)
    for name, text in ((".gitignore", _GITIGNORE), ("CACHEDIR.TAG", _CACHEDIR_TAG)):
        if not (folder / name).is_file():
            write_atomic(str(folder / name), text)


def _entry_path(folder: Path, key: str) -> Path:
    # Two-letter subfolders keep each folder small on file systems that slow with size.
    return folder / "entries" / key[:2] / f"{key}.json"


def _sweep(folder: Path, now: float) -> None:
    marker = folder / ".last-prune"
    try:
        if now - marker.stat().st_mtime < _DAY:
            return
    except OSError:
        pass  # never swept
    limit = now - MAX_AGE_DAYS * _DAY
    stale_temp = now - _DAY  # left by a run that was killed while writing
    try:
        for sub in (folder / "entries").iterdir():
            for entry in sub.iterdir():
                info = entry.stat()
                name = entry.name
                if info.st_mtime < limit or (name.endswith(".tmp") and info.st_mtime < stale_temp):
                    entry.unlink()
        marker.touch()
        os.utime(marker, (now, now))
    except OSError:
        pass  # another run sweeping at the same time, or a folder gone read-only


# -- entries as JSON ---------------------------------------------------------------------


def _encode(key: str, findings: Iterable[Finding], errors: Iterable[LintError]) -> dict[str, Any]:
    return {
        "key": key,
        "findings": [_encode_finding(finding) for finding in findings],
        "errors": [error.message for error in errors],
    }


def _encode_finding(finding: Finding) -> dict[str, Any]:
    fix = finding.fix
    return {
        "at": [finding.line, finding.column, finding.end_line, finding.end_column],
        "code": finding.code,
        "name": finding.name,
        "message": finding.message,
        "fixable": finding.fixable,
        "runtime": finding.runtime,
        "cell": finding.cell,
        "file_line": finding.file_line,
        "fix": None
        if fix is None
        else {
            "title": fix.title,
            "safe": fix.safe,
            "edits": [[e.line, e.column, e.end_line, e.end_column, e.text] for e in fix.edits],
        },
    }


def _decode(data: Any, key: str, display: str) -> Outcome:
    """Raises ValueError, KeyError or TypeError for anything but an entry we wrote."""
    if data["key"] != key:
        raise ValueError("an entry of another key")
    findings = [_decode_finding(item, display) for item in data["findings"]]
    errors = [LintError(display, _typed(message, str)) for message in data["errors"]]
    return findings, errors


def _decode_finding(item: Any, display: str) -> Finding:
    line, column, end_line, end_column = (_typed(n, int) for n in item["at"])
    raw_fix = item["fix"]
    fix = None
    if raw_fix is not None:
        edits = tuple(_decode_edit(edit) for edit in raw_fix["edits"])
        fix = Fix(edits, _typed(raw_fix["title"], str), _typed(raw_fix["safe"], bool))
    runtime, cell, file_line = item["runtime"], item["cell"], item["file_line"]
    return Finding(
        path=display,
        line=line,
        column=column,
        code=_typed(item["code"], str),
        name=_typed(item["name"], str),
        message=_typed(item["message"], str),
        end_line=end_line,
        end_column=end_column,
        fixable=_typed(item["fixable"], bool),
        runtime=None if runtime is None else _typed(runtime, str),
        cell=None if cell is None else _typed(cell, int),
        fix=fix,
        file_line=None if file_line is None else _typed(file_line, int),
    )


def _decode_edit(item: Any) -> Edit:
    line, column, end_line, end_column, text = item
    return Edit(
        _typed(line, int),
        _typed(column, int),
        _typed(end_line, int),
        _typed(end_column, int),
        _typed(text, str),
    )


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
