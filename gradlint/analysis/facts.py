"""Stub: replaced by the real analysis."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


class Facts:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self._positions: dict[cst.CSTNode, object] | None = None

    def position(self, node: cst.CSTNode) -> tuple[int, int, int, int]:
        """1-based (line, column, end_line, end_column); computed only when a rule reports."""
        if self._positions is None:
            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            self._positions = dict(wrapper.resolve(PositionProvider))
        span = self._positions[node]
        return (span.start.line, span.start.column + 1, span.end.line, span.end.column + 1)  # type: ignore[attr-defined]


def analyze(module: cst.Module) -> Facts:
    return Facts(module)
