"""Every rule against its own examples: the linter's view, and PyTorch's.

INVALID examples must be flagged exactly on the lines marked `# error`, and VALID ones must
stay silent. Then the examples run under torch: an INVALID example of a rule whose misuse
raises must raise that error, and one of a rule whose misuse is silent must demonstrate the
damage with its own `assert`; every VALID example must run clean.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import pytest

from gradlint.engine import lint
from gradlint.registry import all_rules
from gradlint.rule import Rule

RULES = all_rules()
INVALID = [
    pytest.param(rule, index, id=f"{rule.code}-invalid-{index}")
    for rule in RULES
    for index in range(len(rule.INVALID))
]
VALID = [
    pytest.param(rule, index, id=f"{rule.code}-valid-{index}")
    for rule in RULES
    for index in range(len(rule.VALID))
]


def marked_lines(source: str) -> set[int]:
    return {
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if re.search(r"#\s*error\b", line)
    }


def findings_of(rule: type[Rule], source: str) -> set[int]:
    return {f.line for f in lint(source, "example.py") if f.code == rule.code}


def execute(source: str) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        exec(compile(source, "<example>", "exec"), namespace)


def test_every_rule_has_docs_and_examples() -> None:
    assert RULES, "no rules registered"
    for rule in RULES:
        doc = rule.doc()
        assert "**Why is this bad?**" in doc and "**Example**" in doc and "**Use instead**" in doc
        assert rule.INVALID and rule.VALID, rule.code
        assert re.fullmatch(r"GL[123]\d\d", rule.code)
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", rule.name)
        for source in rule.INVALID:
            assert marked_lines(source), f"{rule.code}: an INVALID example marks no line"


@pytest.mark.parametrize(("rule", "index"), INVALID)
def test_invalid_example_is_flagged_on_marked_lines(rule: type[Rule], index: int) -> None:
    source = rule.INVALID[index]
    assert findings_of(rule, source) == marked_lines(source)


@pytest.mark.parametrize(("rule", "index"), VALID)
def test_valid_example_is_silent(rule: type[Rule], index: int) -> None:
    assert findings_of(rule, rule.VALID[index]) == set()


@pytest.mark.parametrize(("rule", "index"), INVALID)
def test_invalid_example_misbehaves_under_torch(rule: type[Rule], index: int) -> None:
    source = rule.INVALID[index]
    if rule.raises:
        with pytest.raises(Exception) as raised:
            execute(source)
        assert any(text in str(raised.value) for text in rule.raises), str(raised.value)
    else:
        # A silent misuse: the example asserts the damage it does.
        assert re.search(r"^\s*assert\b", source, re.MULTILINE), "example shows no damage"
        execute(source)


@pytest.mark.parametrize(("rule", "index"), VALID)
def test_valid_example_runs_clean(rule: type[Rule], index: int) -> None:
    execute(rule.VALID[index])
