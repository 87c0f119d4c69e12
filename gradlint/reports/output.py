"""Whether ``--output-file`` can take a report (it is then written with `write_atomic`)."""

from __future__ import annotations

import os


def output_problem(path: str) -> str | None:
    """Why ``path`` cannot take a report, when that shows before any linting is done."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        return "is a folder"
    if not os.path.isdir(os.path.dirname(target)):
        return "its folder does not exist"
    return None
