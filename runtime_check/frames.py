"""Which frame is the user's: the innermost one that is not PyTorch's, gradlint's, Python's
own library or an installed package (or, when no frame is, not PyTorch's or gradlint's)."""

from __future__ import annotations

import os
import sys
import sysconfig
from functools import cache
from types import CodeType, FrameType

import torch

import gradlint


def _root(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) + os.sep


@cache
def _tools() -> tuple[str, ...]:
    return tuple(
        _root(os.path.dirname(path))
        for path in (torch.__file__, gradlint.__file__, os.path.abspath(__file__))
    )


@cache
def _libraries() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple(_root(paths[name]) for name in names if paths.get(name))


@cache
def _kind(filename: str) -> int:
    """0: the user's, 1: a library's, 2: PyTorch's or gradlint's (or no file at all)."""
    if filename.startswith("<"):  # `<frozen runpy>`, `<string>`: no file to point at
        return 2
    path = os.path.normcase(os.path.realpath(filename))
    if path.startswith(_tools()):
        return 2
    return 1 if path.startswith(_libraries()) else 0


@cache
def real_path(filename: str) -> str:
    return os.path.realpath(filename)


def is_users(filename: str) -> bool:
    return _kind(filename) == 0


def next_user_frame(frame: FrameType | None) -> FrameType | None:
    """The frame, or the nearest one out from it, that runs the user's code."""
    while frame is not None and not is_users(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


# Per code object: its kind, its file's real path, and the file as the code names it.
# Looked up for every frame out to the user's at each event, so one dictionary lookup
# rather than string work. (Code objects compare by value, not by file: two equal
# functions of two files share an entry, so the file is checked on each lookup.)
_CODES: dict[CodeType, tuple[int, str, str]] = {}
MAX_CODES = 50_000


def _code(code: CodeType) -> tuple[int, str, str]:
    if len(_CODES) > MAX_CODES:  # (code made on the fly, again and again)
        _CODES.clear()
    filename = code.co_filename
    found = _CODES[code] = (_kind(filename), real_path(filename), filename)
    return found


def user_frame(skip: int = 1) -> tuple[str, int] | None:
    """(file, line) of the innermost user frame, looking from `skip` frames above the
    caller outwards; None when only PyTorch or gradlint is on the stack."""
    sys._getframe().f_trace_lines = False  # (a loop over frames: no line events)
    frame: FrameType | None = sys._getframe(skip + 1)
    fallback: tuple[str, int] | None = None
    codes = _CODES
    while frame is not None:
        code = frame.f_code
        entry = codes.get(code)
        if entry is None or entry[2] != code.co_filename:
            entry = _code(code)
        kind, path, _ = entry
        if kind == 0:
            return path, frame.f_lineno
        if kind == 1 and fallback is None:
            fallback = path, frame.f_lineno
        frame = frame.f_back
    return fallback
