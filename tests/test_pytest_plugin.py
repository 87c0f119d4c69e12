"""`pytest --gradlint-trace`: a test session under the tracer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("coverage")

pytest_plugins = ["pytester"]

TESTS = """
import torch

def test_numpy_on_weights():
    w = torch.randn(2, requires_grad=True)
    try:
        w.numpy()
    except RuntimeError:
        pass

def test_fine():
    assert torch.ones(2).sum().item() == 2.0
"""


def test_a_traced_session_writes_the_report_and_lists_the_misuses(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_model=TESTS)
    result = pytester.runpytest_subprocess("--gradlint-trace=r.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*gradlint runtime trace*", "test_model.py:6: GL101 numpy() on a tensor*"]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    [event] = report["events"]
    assert (event["code"], event["line"]) == ("GL101", 6)
    assert any(path.endswith("test_model.py") for path in report["lines"])


def test_without_the_option_nothing_is_traced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=TESTS)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert "gradlint runtime trace" not in result.stdout.str()
    assert not (pytester.path / "gradlint-runtime.json").exists()
