"""Fixes: each rule's fixed INVALID examples, and applying edits without breaking a file."""

from __future__ import annotations

import warnings

import pytest
from test_rules import execute

from gradlint.engine import fix_source, lint
from gradlint.finding import Finding
from gradlint.fixes import Edit, Fix, apply_fixes, source_lines, splice
from gradlint.registry import all_rules
from gradlint.rule import Rule

FIXED = [
    pytest.param(rule, index, id=f"{rule.code}-fixed-{index}")
    for rule in all_rules()
    for index in sorted(rule.FIXED)
]


def test_fixable_rules_show_their_fixes() -> None:
    for rule in all_rules():
        assert bool(rule.FIXED) == rule.fixable, rule.code
        assert set(rule.FIXED) <= set(range(len(rule.INVALID))), rule.code


@pytest.mark.parametrize(("rule", "index"), FIXED)
def test_fix_makes_the_expected_program(rule: type[Rule], index: int) -> None:
    fixed = fix_source(rule.INVALID[index], "example.py")
    assert fixed.source == rule.fixed_example(index)
    assert fixed.dropped == []
    # Idempotent: nothing left to fix, and no finding of the rule left.
    assert fix_source(fixed.source, "example.py").applied == 0
    assert not [f for f in lint(fixed.source, "example.py") if f.code == rule.code]


@pytest.mark.parametrize(("rule", "index"), FIXED)
def test_fixed_program_no_longer_misbehaves(rule: type[Rule], index: int) -> None:
    source = rule.fixed_example(index)
    if rule.raises:
        execute(source)  # the error is gone
    else:
        # The INVALID example asserts the damage; fixed, that assert no longer holds.
        with pytest.raises(AssertionError):
            execute(source)


def test_finding_carries_a_safe_fix_in_json() -> None:
    source = "import torch\nwith torch.no_grad:\n    pass\n"
    (finding,) = lint(source, "a.py")
    assert finding.fixable
    assert finding.to_json()["fix"] == {
        "title": "Call the grad-mode class",
        "safe": True,
        "edits": [
            {"line": 2, "column": 6, "end_line": 2, "end_column": 19, "text": "torch.no_grad()"}
        ],
    }


def test_splice_edits_across_lines() -> None:
    source = "a = 1\nb = 2\nc = 3\n"
    edits = [Edit(1, 5, 1, 6, "10"), Edit(2, 1, 3, 2, "d")]
    assert splice(source, edits) == "a = 10\nd = 3\n"


def test_overlapping_fixes_apply_the_first_only() -> None:
    first = Fix((Edit(1, 1, 1, 2, "b"),), "one")
    second = Fix((Edit(1, 1, 1, 4, "zzz"),), "two")
    result = apply_fixes("a = 1\n", [first, second])
    assert (result.source, result.applied) == ("b = 1\n", 1)


def test_a_fix_that_breaks_the_file_is_dropped() -> None:
    good = Fix((Edit(1, 5, 1, 6, "2"),), "good")
    bad = Fix((Edit(2, 1, 2, 2, "("),), "bad")
    result = apply_fixes("a = 1\nb = 1\n", [good, bad])
    assert result.source == "a = 2\nb = 1\n"
    assert result.dropped == ["bad"]


def test_an_unsafe_fix_waits_for_unsafe_fixes() -> None:
    # `y` is not a leaf: spelt right, the line raises, which the typo hid.
    source = "import torch\ny = torch.randn(3, requires_grad=True) * 2\ny.requires_grads = True\n"
    (finding,) = lint(source, "a.py")
    assert finding.fix is not None and not finding.fix.safe and not finding.fixable
    assert fix_source(source, "a.py").applied == 0
    assert "y.requires_grad = True" in fix_source(source, "a.py", unsafe=True).source


def test_detach_inside_forward_is_offered_as_unsafe() -> None:
    source = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return torch.from_numpy(self.fc(x).numpy())


Net()(torch.randn(2, 4))
"""
    (finding,) = [f for f in lint(source, "a.py") if f.code == "GL101"]
    assert finding.fix is not None and not finding.fix.safe
    assert fix_source(source, "a.py").applied == 0


def test_no_with_block_fix_where_the_rest_trains_or_is_a_string() -> None:
    trains = """\
import torch


def step(model, opt, x):
    torch.no_grad()
    loss = model(x).sum()
    loss.backward()
    opt.step()
"""
    (finding,) = [f for f in lint(trains, "a.py") if f.code == "GL210"]
    assert finding.fix is None
    text = '''\
import torch


def show(model, x):
    torch.no_grad()
    doc = """two
lines"""
    return model(x), doc
'''
    (finding,) = [f for f in lint(text, "a.py") if f.code == "GL210"]
    assert finding.fix is None


def test_splice_keeps_a_form_feed_on_its_line() -> None:
    # A form feed is whitespace to Python (and libcst), not a line break as to splitlines.
    source = "a = 1\n\x0cb = 2\r\nc = 3\n"
    assert splice(source, [Edit(3, 5, 3, 6, "4")]) == "a = 1\n\x0cb = 2\r\nc = 4\n"


def _gl205(source: str) -> list[Finding]:
    return [f for f in lint(source, "a.py") if f.code == "GL205"]


def test_gl205_asks_for_grad_after_the_whole_copy() -> None:
    source = """\
import torch
w = torch.randn(3, requires_grad=True) * 0.01
v = torch.ones(2, device="cpu", requires_grad=True,).double().float()
u = torch.zeros(
    2,
    requires_grad=True,  # trained by hand
    dtype=torch.float32,
).view(2, 1)
w.grad, v.grad, u.grad
"""
    assert [f.fixable for f in _gl205(source)] == [True, True, True]
    assert (
        fix_source(source, "a.py").source
        == """\
import torch
w = (torch.randn(3) * 0.01).requires_grad_()
v = torch.ones(2, device="cpu",).double().float().requires_grad_()
u = torch.zeros(
    2,  # trained by hand
    dtype=torch.float32,
).view(2, 1).requires_grad_()
w.grad, v.grad, u.grad
"""
    )


def test_gl205_fixed_copy_holds_the_same_numbers_and_trains() -> None:
    torch = pytest.importorskip("torch")
    source = """\
import torch
w = torch.randn(3, requires_grad=True) * 0.01
(w * 2).sum().backward()
w.grad
"""
    results = []
    for program in (source, fix_source(source, "a.py").source):
        torch.manual_seed(0)
        namespace: dict[str, object] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the buggy program's `.grad` read warns
            exec(compile(program, "<fixed>", "exec"), namespace)
        results.append(namespace["w"])
    before, after = results
    assert torch.equal(before.detach(), after.detach())
    assert after.is_leaf and after.grad is not None


NO_GL205_FIX = [
    # The leaf is a name: other code may still use the tensor it held.
    "import torch as T\nw = T.ones(3, requires_grad=True)\nw = w * 0.1\nw.grad\n",
    # Not the literal True.
    "import torch\nflag = True\nw = torch.randn(3, requires_grad=flag).double()\nw.grad\n",
    # The `.grad` read is of a later copy, which `requires_grad_()` here would not make a leaf.
    "import torch\nw = torch.randn(3, requires_grad=True).double()\nv = w.float()\nv.grad\n",
    # Changed in place after the copy was made: the `.grad` read is of that change.
    "import torch\nw = torch.randn(3, requires_grad=True) * 2\nw[0] = 0\nw.grad\n",
    # Not a factory.
    "import torch\nfrom torch.autograd import Variable\n"
    "w = Variable(torch.ones(3), requires_grad=True).double()\nw.grad\n",
    # The comment after `3,` would be lost.
    "import torch\nw = torch.randn(\n    3,  # size\n    requires_grad=True\n).double()\nw.grad\n",
]


@pytest.mark.parametrize("source", NO_GL205_FIX)
def test_gl205_no_fix(source: str) -> None:
    (finding,) = _gl205(source)
    assert finding.fix is None


UNSAFE_GL205_FIX = [
    # Fine on a copy, an error on a leaf.
    "import torch\nw = torch.randn(3, requires_grad=True).double()\nw.add_(1)\nw.grad\n",
    # Integer data would make `torch.tensor(..., requires_grad=True)` raise.
    "import torch\nw = torch.tensor(data, requires_grad=True).double()\nw.grad\n",
]


@pytest.mark.parametrize("source", UNSAFE_GL205_FIX)
def test_gl205_fix_is_unsafe(source: str) -> None:
    (finding,) = _gl205(source)
    assert finding.fix is not None and not finding.fix.safe
    assert fix_source(source, "a.py").applied == 0
    assert ".requires_grad_()" in fix_source(source, "a.py", unsafe=True).source


# Characters that `str.splitlines` takes for line breaks and Python does not: a form feed
# (a page break in old sources), the separators `\x1c`-`\x1e`, NEL and U+2028.
NOT_LINE_BREAKS = ["\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("odd", NOT_LINE_BREAKS, ids=ascii)
def test_fix_lands_on_its_line_after_a_character_splitlines_breaks_at(odd: str) -> None:
    # Counted with `splitlines`, every line after `odd` was one off: the edit went to the
    # line above, which happens to hold `out` at the same column, and re-linting (the bug
    # still there) added `.detach()` to it again each round.
    source = (
        "import torch\n"
        f"# page {odd} two\n"
        "model = torch.nn.Linear(4, 2)\n"
        "out = model(torch.randn(3, 4))\n"
        "total = out.sum()\n"
        "preds = out.numpy()\n"
    )
    fixed = fix_source(source, "a.py")
    assert fixed.source == source.replace("out.numpy()", "out.detach().numpy()")
    assert (fixed.applied, fixed.dropped) == (1, [])


def test_with_block_fix_after_a_form_feed() -> None:
    source = "import torch\n\x0c\ndef f(m, x):\n    torch.no_grad()\n    return m(x)\n"
    fixed = fix_source(source, "a.py")
    assert fixed.source == source.replace(
        "    torch.no_grad()\n    return m(x)\n",
        "    with torch.no_grad():\n        return m(x)\n",
    )


def test_splice_counts_lines_as_python_does() -> None:
    source = "s = 'a\x0cb'\r\nt = 1\ru = 2\n"
    assert source_lines(source) == ["s = 'a\x0cb'\r\n", "t = 1\r", "u = 2\n"]
    assert splice(source, [Edit(3, 5, 3, 6, "3")]) == "s = 'a\x0cb'\r\nt = 1\ru = 3\n"


# The first block sets the file's indentation unit; the second block uses the other kind.
TABS_AFTER_SPACES = "import torch\n\n\ndef a():\n    return 1\n\n\n"
SPACES_AFTER_TABS = "import torch\n\n\ndef a():\n\treturn 1\n\n\n"


@pytest.mark.parametrize(
    ("head", "unit"),
    [(TABS_AFTER_SPACES, "\t"), (SPACES_AFTER_TABS, "    ")],
    ids=["tabs", "spaces"],
)
def test_block_fixes_indent_as_the_block_does(head: str, unit: str) -> None:
    # Indented by the file's unit, the new `with` body mixed tabs and spaces, which Python
    # refuses: the fix was dropped.
    u = unit
    source = head + (
        f"def predict(model, x):\n{u}torch.no_grad()\n{u}return model(x)\n\n\n"
        f"def step(w):\n{u}if w.requires_grad:\n{u}{u}w.add_(1)\n\n\n"
        "step(torch.zeros(2, requires_grad=True))\n"
    )
    fixed = fix_source(source, "a.py")
    assert (fixed.applied, fixed.dropped) == (2, [])
    assert fixed.source == head + (
        f"def predict(model, x):\n{u}with torch.no_grad():\n{u}{u}return model(x)\n\n\n"
        f"def step(w):\n{u}if w.requires_grad:\n{u}{u}with torch.no_grad():\n{u}{u}{u}w.add_(1)\n"
        "\n\nstep(torch.zeros(2, requires_grad=True))\n"
    )


def test_strings_within_a_region_match_those_of_the_whole_module() -> None:
    import libcst as cst

    from gradlint.fixes import ModuleText, string_lines

    source = (
        "import torch\n"
        "def f(x):\n"
        "    torch.no_grad()\n"
        '    text = """a\n'
        'b"""\n'
        "    y = (x +\n"
        "  1)\n"
        "    return y, text\n"
        "def g():\n"
        "    return '''c\n"
        "d'''\n"
    )
    text = ModuleText(cst.parse_module(source), source)
    whole = string_lines(source)
    for first, last in ((3, 8), (4, 5), (6, 7), (10, 11)):
        assert text.strings_within(first, last) == whole & set(range(first, last + 1))
