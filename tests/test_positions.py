"""Positions placed one top-level statement at a time are libcst's, for every node."""

from __future__ import annotations

import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from gradlint import registry
from gradlint.analysis.nodes import Parents
from gradlint.analysis.positions import Positions
from gradlint.parsing import parse_module

TRICKY = [
    "# a header comment\n\n@decorator\n# between\ndef f():\n\tif x:\n\t\treturn a + b\nx = 1",
    "x = 1\r\ny = (a +\r\n  b)\r\n",
    "\n\n\nclass A:\n  def f(self): return 1 * 2 ;y=3\n# trailing\n",
    "x = 1\n\n\n# end\n",
    "if x:\n    y = 1\n    # indented comment\n# dedented comment\nz = not y and x < 2\n",
    's = """\nmany\nlines\n"""\nt = f"{s!r:>10}"\n',
    "",
]


def _sources() -> list[str]:
    found = list(TRICKY)
    for rule in registry.all_rules():
        found.extend(rule.VALID)
        found.extend(rule.INVALID)
    return found


@pytest.mark.parametrize("index", range(len(_sources())))
def test_positions_match_libcst(index: int) -> None:
    source = _sources()[index]
    module = parse_module(source)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    parents = Parents(module)
    parents.ancestors(module)  # builds the map
    positions = Positions(module, parents)
    nodes = list(parents._parent)
    for node in nodes:
        span = expected[node]
        want = (span.start.line, span.start.column + 1, span.end.line, span.end.column + 1)
        assert positions.of(node) == want, (type(node).__name__, source)
    assert not positions._whole  # never fell back to placing the whole module
