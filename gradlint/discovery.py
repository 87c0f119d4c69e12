"""Turn the paths given on the command line into the files to lint."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gradlint.config import ConfigResolver
from gradlint.finding import LintError

# Jupyter notebooks are linted cell by cell (gradlint.cells).
SOURCE_SUFFIXES: frozenset[str] = frozenset({".py", ".ipynb"})


@dataclass(frozen=True, order=True)
class SourceFile:
    """A file to lint: ``display`` is the path shown in reports, ``path`` its absolute path."""

    display: str
    path: str


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    errors: list[LintError] = field(default_factory=list)


def is_source(name: str) -> bool:
    return os.path.splitext(name)[1] in SOURCE_SUFFIXES


def discover(
    paths: Sequence[str], resolver: ConfigResolver, force_exclude: bool = False
) -> Discovery:
    """The files under ``paths``, sorted; a missing path is an error, not a crash.

    A file named explicitly is linted whatever its suffix and whatever the excludes say:
    naming it is a clearer wish than a pattern written for whole trees. With
    ``force_exclude`` (for tools that pass every file they see, such as pre-commit) the
    excludes apply to named paths too, and to the folders they are in.
    """
    found = Discovery()
    seen: set[str] = set()

    def add(display: str) -> None:
        absolute = os.path.abspath(display)
        if absolute not in seen:
            seen.add(absolute)
            found.files.append(SourceFile(display=display, path=absolute))

    for given in paths:
        display = os.path.normpath(given)
        if force_exclude and is_force_excluded(given, resolver):
            continue
        try:
            mode = os.stat(given).st_mode
        except FileNotFoundError:
            found.errors.append(LintError(display, "no such file or directory"))
            continue
        except OSError as exc:
            found.errors.append(LintError(display, exc.strerror or str(exc)))
            continue
        except ValueError:  # e.g. an embedded NUL byte
            found.errors.append(LintError(repr(given), "not a valid path"))
            continue
        if stat.S_ISDIR(mode):
            _walk(given, resolver, add, found.errors)
        elif stat.S_ISREG(mode):
            add(display)
        else:  # a FIFO or device would block or never end
            found.errors.append(LintError(display, "not a regular file or directory"))

    found.files.sort()
    found.errors.sort(key=lambda error: (error.path, error.message))
    return found


def is_force_excluded(path: str, resolver: ConfigResolver) -> bool:
    """Whether the excludes skip ``path`` or a folder it is in, as a walk from its
    project's root would: only folders inside that root (the folder of the pyproject.toml
    that configures it, else the current folder) count, so that a project kept in, say,
    `~/build/` is not excluded as a whole."""
    absolute = os.path.abspath(path)
    config = resolver.for_file(absolute)
    root = config.root or resolver.cwd
    current = absolute
    while True:
        parent = os.path.dirname(current)
        if resolver.for_folder(parent).is_excluded(current):
            return True
        if parent == current or not _is_within(parent, root) or parent == root:
            return False
        current = parent


def _is_within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # another drive on Windows
        return False


def _walk(
    top: str,
    resolver: ConfigResolver,
    add: Callable[[str], None],
    errors: list[LintError],
) -> None:
    def unreadable(exc: OSError) -> None:
        where = os.path.normpath(exc.filename) if exc.filename else os.path.normpath(top)
        errors.append(LintError(where, f"cannot read directory: {exc.strerror or exc}"))

    # Symlinked folders are not followed: they can loop, or lead out of the project.
    for folder, subfolders, names in os.walk(top, onerror=unreadable):
        config = resolver.for_folder(folder)
        subfolders[:] = sorted(
            name for name in subfolders if not config.is_excluded(os.path.join(folder, name))
        )
        for name in names:
            if not is_source(name):
                continue
            display = os.path.normpath(os.path.join(folder, name))
            if config.is_excluded(display) or not os.path.isfile(display):
                continue  # excluded, or a broken symlink
            add(display)
