"""Where nodes are in the source, computed one top-level statement at a time.

libcst's `PositionProvider` generates the code of the whole module while it records every
node's span: on a file of a thousand lines that costs more than the analysis. A finding
needs the places of a few nodes only, so each is placed within its top-level statement
(a module of that statement alone, whose code starts at column 0 as it does in the file),
and that statement's first line is found by counting the lines of the code before it.
"""

from __future__ import annotations

import re

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from gradlint.analysis.nodes import Parents

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class Positions:
    """1-based (line, column, end_line, end_column) of nodes of one module, on demand."""

    def __init__(self, module: cst.Module, parents: Parents) -> None:
        self.module = module
        self.parents = parents
        self._spans: dict[cst.CSTNode, CodeRange] = {}
        self._index: dict[cst.CSTNode, int] | None = None
        self._done: set[int] = set()  # top-level statements placed
        self._starts: list[int] = [len(module.header)]  # lines before each statement
        self._whole = False

    def of(self, node: cst.CSTNode) -> tuple[int, int, int, int]:
        span = self._spans.get(node)
        if span is None:
            self._place(node)
            span = self._spans[node]
        return (span.start.line, span.start.column + 1, span.end.line, span.end.column + 1)

    def _place(self, node: cst.CSTNode) -> None:
        if self._index is None:
            self._index = {statement: at for at, statement in enumerate(self.module.body)}
        around = self.parents.ancestors(node)
        top = around[-2] if len(around) >= 2 else node
        at = self._index.get(top)
        if at is None or at in self._done:
            # Not below a statement (the module itself), or a node the parent map does not
            # hold: the whole module, as libcst places it.
            self._place_whole()
            return
        self._done.add(at)
        statement = self.module.body[at]
        alone = self.module.with_changes(body=[statement], header=[], footer=[])
        offset = self._lines_before(at)
        for placed, span in (
            MetadataWrapper(alone, unsafe_skip_copy=True).resolve(PositionProvider).items()
        ):
            if placed is alone:
                continue
            self._spans[placed] = CodeRange(
                (span.start.line + offset, span.start.column),
                (span.end.line + offset, span.end.column),
            )

    def _lines_before(self, at: int) -> int:
        while len(self._starts) <= at:
            previous = self.module.body[len(self._starts) - 1]
            code = self.module.code_for_node(previous)
            self._starts.append(self._starts[-1] + len(_LINE_BREAK.findall(code)))
        return self._starts[at]

    def _place_whole(self) -> None:
        if self._whole:
            return
        self._whole = True
        wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self._spans.update(wrapper.resolve(PositionProvider))
