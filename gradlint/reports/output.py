"""Writing a report to ``--output-file``: whole or not at all."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def output_problem(path: str) -> str | None:
    """Why ``path`` cannot take a report, when that shows before any linting is done."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        return "is a folder"
    if not os.path.isdir(os.path.dirname(target)):
        return "its folder does not exist"
    return None


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a
    rename, so that a reader (or a crash) never sees half a report. Raises OSError."""
    # Through a symbolic link to the file it names, which a rename would replace.
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target) and not os.path.isdir(target):
        # A device or a pipe (/dev/stdout) cannot be renamed over: write into it.
        with open(target, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        return
    folder, name = os.path.split(target)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, _mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _mode(target: str) -> int:
    """The mode the report gets: the replaced file's, else what a plain open would give
    (mkstemp makes files only their owner can read)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
