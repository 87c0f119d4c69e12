"""Paths as CI tools want them: relative to the current folder where they can be."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def relative_to_cwd(path: str) -> str | None:
    """``path`` relative to the current folder, with ``/`` separators; None when it lies
    outside it (or on another drive), where only an absolute path can name it."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, os.getcwd())
    except ValueError:  # Windows: another drive
        return None
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return PurePosixPath(*Path(relative).parts).as_posix()


def absolute_uri(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri()
