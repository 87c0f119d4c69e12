"""Re-parsing only what an edit touched gives the tree a whole parse gives, or parses the
whole text (a syntax error included) where it cannot show that it does."""

from __future__ import annotations

import random

import libcst as cst
import pytest

from gradlint import engine, registry
from gradlint.finding import LintError
from gradlint.parsing import parse_module
from gradlint.reparse import Reparser

BASE = '''"""A module."""

import torch

# settings
LR = 1e-3


@decorator
# between
def train(model, data):
    for x in data:
        loss = model(x).sum()
        loss.backward()
    # indented comment
# dedented comment


class Net(torch.nn.Module):
  def forward(self, x):
    return x * 2

if LR:
    pass
elif LR < 0:
    y = 1
else: z = 2
try: a = 1
except ValueError:
    b = 2
finally: c = 3
x = (1,
     2); y = 3
# the end
'''

# Edits as (old, new) on BASE, each touching one place.
EDITS = [
    ("1e-3", "1e-4"),
    ("# settings\n", ""),
    ("# settings\n", "    # settings\n"),
    ("    # indented comment\n", ""),
    ("# dedented comment\n", "    # dedented comment\n"),
    ("import torch\n", "import torch\nimport numpy as np\n"),
    ("class Net", "class Model"),
    ("  def forward(self, x):\n    return x * 2\n", "  def forward(self, x): return x\n"),
    ("def train(model, data):\n    for", "def train(model, data):\n  for"),
    ("if LR:\n    pass\n", "if LR: pass\n"),
    ("else: z = 2\n", "else:\n    z = 2\n"),
    ('"""A module."""\n', ""),
    ("# the end\n", ""),
    ("# the end\n", "# the end"),
    ("y = 3\n", "y = (3\n"),
    ("LR = 1e-3\n", 'LR = """\n'),
    ("@decorator\n", "@decorator\n@another\n"),
    ("\n\nclass Net", "class Net"),
    ("return x * 2", "return x * 2\nmatch x:\n    case 1:\n        pass"),
]


def _same(reparser: Reparser, text: str) -> None:
    try:
        want = parse_module(text)
    except cst.ParserSyntaxError:
        with pytest.raises(cst.ParserSyntaxError):
            reparser.parse(text)
        return
    got = reparser.parse(text)
    assert got.deep_equals(want)
    assert got.code == want.code


@pytest.mark.parametrize(("old", "new"), EDITS)
def test_one_edit_gives_the_whole_parse(old: str, new: str) -> None:
    assert old in BASE
    reparser = Reparser()
    reparser.parse(BASE)
    text = BASE.replace(old, new, 1)
    _same(reparser, text)
    _same(reparser, BASE)  # and back


def test_edits_in_a_row_keep_the_statement_bounds() -> None:
    reparser = Reparser()
    text = BASE
    reparser.parse(text)
    for old, new in EDITS * 2:
        if old in text:
            text = text.replace(old, new, 1)
            _same(reparser, text)


def test_unchanged_statements_are_reused_and_the_edit_is_not_parsed_whole() -> None:
    reparser = Reparser()
    first = reparser.parse(BASE)
    second = reparser.parse(BASE.replace("1e-3", "1e-4"))
    reused = sum(a is b for a, b in zip(first.body, second.body, strict=True))
    assert reused == len(first.body) - 3  # the statement edited and one on each side


def test_other_indentation_and_line_breaks() -> None:
    def tabs(text: str) -> str:
        return text.replace("  ", "\t")

    def crlf(text: str) -> str:
        return text.replace("\n", "\r\n")

    for change in (tabs, crlf):
        base = change(BASE)
        reparser = Reparser()
        reparser.parse(base)
        for old, new in EDITS:
            old, new = change(old), change(new)
            if old in base:
                _same(reparser, base.replace(old, new, 1))


def test_a_syntax_error_is_the_whole_parse_s_and_the_next_edit_still_works() -> None:
    reparser = Reparser()
    reparser.parse(BASE)
    broken = BASE.replace("y = 3\n", "y = (3\n")
    with pytest.raises(LintError) as raised:
        engine.parse(broken, "x.py", reparser)
    with pytest.raises(LintError) as whole:
        engine.parse(broken, "x.py")
    assert str(raised.value) == str(whole.value)
    _same(reparser, BASE.replace("1e-3", "2e-3"))


def test_random_edits_of_the_rules_examples() -> None:
    chosen = random.Random(7)
    pieces = ["(", ")", '"""', "\n", "\n    ", "#", "\\\n", "\t", "x", " ", ":", "def f():\n"]
    sources = [BASE] + [s for rule in registry.all_rules() for s in (*rule.VALID, *rule.INVALID)]
    for source in sources[:: max(1, len(sources) // 60)]:
        reparser = Reparser()
        try:
            reparser.parse(source)
        except cst.ParserSyntaxError:
            continue
        text = source
        for _ in range(8):
            at = chosen.randrange(len(text) + 1)
            end = min(len(text), at + chosen.choice([0, 1, 4]))
            text = text[:at] + chosen.choice(pieces) + text[end:]
            _same(reparser, text)
            if chosen.random() < 0.5:
                text = reparser._text  # go on from the last text that parsed


def test_linting_through_a_reparser_finds_what_a_lint_finds() -> None:
    reparser = Reparser()
    for rule in registry.all_rules():
        for source in rule.INVALID[:2]:
            assert engine.lint(source, "x.py", reparser=reparser) == engine.lint(source, "x.py")
