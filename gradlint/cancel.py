"""Stopping a lint whose result nobody will use.

The language server lints on one worker thread, and a change makes the lint running there
stale: its result is dropped, and the lint of the new text waits behind it. So the server
says, for the length of a lint, how to tell that it is stale (`stopping_when`), and the
engine looks at a few places (between statements of the analysis, between rules) and
gives up there by raising `Cancelled`. Elsewhere (`gradlint check`) nothing is set and
the checks cost one attribute read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Cancelled(BaseException):
    """The lint was stopped; not an `Exception`, so that the engine's "a bug in one rule
    must not stop the others" handlers let it through."""


class _Local(threading.local):
    stale: Callable[[], bool] | None = None


_local = _Local()


@contextmanager
def stopping_when(stale: Callable[[], bool]) -> Iterator[None]:
    """Within the block, on this thread, a checkpoint raises `Cancelled` once ``stale()``
    is true (it is called from the linting thread: it must be cheap and thread-safe)."""
    _local.stale = stale
    try:
        yield
    finally:
        _local.stale = None


def checkpoint() -> None:
    """Raise `Cancelled` if the lint running on this thread has gone stale."""
    stale = _local.stale
    if stale is not None and stale():
        raise Cancelled
