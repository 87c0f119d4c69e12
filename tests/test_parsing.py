"""gradlint's parse: libcst's tree, without libcst re-checking the nodes its parser made."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst._nodes.base import CSTNode

from gradlint import parsing

SOURCES = [
    "x = (1)\n",
    "def f(a, /, b=2, *c, d, **e) -> int:\n    return (yield from g())\n",
    "async def f():\n    async with a as b, c:\n        await x[1:2, ...]\n",
    "match p:\n    case {'k': [1, *rest]} if rest:\n        pass\n",
    "f'{x!r:>{w}}' ; lambda *a, **k: (a, k)\nclass C(B, metaclass=M): ...\n",
    "\ufeff# comment\r\nif a:  # why\r\n    b = c @ d\r\n",
]


@pytest.mark.parametrize("source", SOURCES)
def test_the_same_tree_as_libcst(source: str) -> None:
    tree, stock = parsing.parse_module(source), cst.parse_module(source)
    assert tree.deep_equals(stock)
    assert tree.code == stock.code


def test_the_same_trees_on_gradlints_own_code() -> None:
    for path in sorted(Path(parsing.__file__).parent.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert parsing.parse_module(source).deep_equals(cst.parse_module(source)), path


def invalid_node() -> None:
    # Unbalanced parentheses: libcst refuses to make it.
    cst.Name("x", lpar=[cst.LeftParen()])


def test_nodes_made_outside_a_parse_are_still_checked() -> None:
    parsing.parse_module("x = 1\n")
    with pytest.raises(cst.CSTValidationError):
        invalid_node()


def test_nodes_are_checked_again_after_a_syntax_error() -> None:
    with pytest.raises(cst.ParserSyntaxError):
        parsing.parse_module("def f(:\n")
    with pytest.raises(cst.CSTValidationError):
        invalid_node()


def test_a_libcst_whose_nodes_do_more_when_made_is_parsed_the_stock_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []

    def post_init(self: CSTNode) -> None:
        made.append(type(self).__name__)
        self._validate()

    monkeypatch.setattr(CSTNode, "__post_init__", post_init)
    monkeypatch.setattr(parsing, "_STOCK_POST_INIT", post_init)
    parsing.parse_module("x = 1\n")
    assert "Name" in made
    assert CSTNode.__post_init__ is post_init


def test_the_libcst_installed_is_one_whose_checks_can_be_skipped() -> None:
    # If this fails, a new libcst changed what its nodes do when made: gradlint still
    # parses right (the stock way), only slower. Look at what `__post_init__` does now.
    assert parsing._only_validates(parsing._STOCK_POST_INIT)
