"""libcst's parse, without re-validating the nodes its own parser builds.

Every libcst node checks itself when it is made (`CSTNode.__post_init__` calls
`_validate()`): are the parentheses balanced, is there whitespace where the grammar needs
it. That guards trees built by hand. A tree from libcst's parser is valid by construction,
yet the checks run on each of its nodes: about a tenth of what parsing a file costs.
libcst's own source notes that validation could be skipped when parsing; until it is,
gradlint skips it for the length of a parse, and only there: nodes that fixes build are
still checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import libcst as cst
from libcst._nodes.base import CSTNode

_STOCK_POST_INIT: Callable[[CSTNode], None] = CSTNode.__post_init__
_lock = threading.Lock()


def _only_validates(post_init: Callable[[CSTNode], None]) -> bool:
    """Whether ``__post_init__`` is the one that just calls ``self._validate()``: a libcst
    whose nodes do more when made is parsed the stock way."""
    code = getattr(post_init, "__code__", None)
    return code is not None and code.co_names == ("_validate",)


def _skip_validation(self: CSTNode) -> None:
    pass


def parse_module(source: str) -> cst.Module:
    """`libcst.parse_module`, the same tree, faster. Raises what it raises."""
    if not _only_validates(_STOCK_POST_INIT):
        return cst.parse_module(source)
    # The switch is process-wide: a lock keeps another thread from parsing at the same
    # time (the language server), and threads that build nodes meanwhile only skip checks
    # that their nodes, made by gradlint's fixes, are re-parsed for anyway.
    with _lock:
        CSTNode.__post_init__ = _skip_validation  # type: ignore[method-assign,assignment]
        try:
            return cst.parse_module(source)
        finally:
            CSTNode.__post_init__ = _STOCK_POST_INIT  # type: ignore[method-assign,assignment]
