"""Real reported bugs (tests/fixtures/real_bugs): found at the root-cause line, and silence
on their fixes and on correct idioms that look like them. The cases are reproductions of
public reports, written for this suite; `benchmarks/real_bugs.py` prints the full score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from real_bugs import ROOT, score  # noqa: E402

pytestmark = pytest.mark.skipif(not ROOT.is_dir(), reason="no real-bug fixtures")


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return score()


def test_silent_on_every_fix_and_near_miss(result) -> None:  # type: ignore[no-untyped-def]
    assert result.noisy == []


def test_recall_at_root_cause_line(result) -> None:  # type: ignore[no-untyped-def]
    total = sum(len(hits) for hits in result.found.values())
    found = sum(sum(hits) for hits in result.found.values())
    assert total >= 50
    assert found / total >= 0.75, result.missed
