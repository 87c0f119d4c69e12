"""Real reported bugs (tests/fixtures/real_bugs*): found at the root-cause line, and silence
on their fixes and on correct idioms that look like them. The cases are reproductions of
public reports, written for this suite; `benchmarks/real_bugs.py` prints the full score."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from real_bugs import ROOT, Score, score  # noqa: E402

SETS = {
    # folder: (the least number of marked lines, the recall this suite must keep). Each set
    # after the first was scored once before any change it prompted (see its README); these
    # floors only keep what was reached since from sliding back.
    "real_bugs": (50, 0.80),
    "real_bugs_holdout": (30, 0.80),
    "real_bugs_set3": (24, 0.80),
    "real_bugs_set4": (25, 0.80),
    "real_bugs_set5": (14, 0.80),
    "real_bugs_set6": (15, 0.60),
    "real_bugs_set7": (20, 0.40),
    "real_bugs_set8": (16, 0.50),
    "real_bugs_set9": (19, 0.25),
    "real_bugs_set10": (4, 0.50),
    "real_bugs_set11": (20, 0.30),
    "real_bugs_set12": (20, 0.50),
    "real_bugs_set13": (23, 0.35),
    "real_bugs_set14": (20, 0.35),
    "real_bugs_set15": (21, 0.20),
    "real_bugs_set16": (22, 0.25),
    "real_bugs_set17": (21, 0.05),
    "real_bugs_set18": (21, 0.25),
    "real_bugs_set19": (20, 0.20),
    "real_bugs_set20": (20, 0.20),
    "real_bugs_set21": (21, 0.14),
    "real_bugs_set22": (25, 0.27),
    "real_bugs_set23": (22, 0.36),
    "real_bugs_set24": (21, 0.23),
    "real_bugs_set25": (20, 0.15),
    # Training bugs that do not crash (GL2xx, GL3xx).
    "training_bugs": (48, 0.70),
    "training_bugs_set2": (23, 0.75),
    "training_bugs_set3": (30, 0.30),
    "training_bugs_set4": (24, 0.40),
    "training_bugs_set5": (24, 0.30),
    "training_bugs_set6": (24, 0.40),
    "training_bugs_set7": (14, 0.10),
    "training_bugs_set8": (14, 0.40),
    "training_bugs_set9": (18, 0.40),
    "training_bugs_set10": (21, 0.20),
    "training_bugs_set11": (24, 0.20),
    "training_bugs_set12": (10, 0.20),
    "training_bugs_set13": (12, 0.33),
    "training_bugs_set14": (20, 0.15),
    "training_bugs_set15": (23, 0.08),
}


@pytest.fixture(scope="module", params=sorted(SETS))
def case_set(request: pytest.FixtureRequest) -> tuple[str, Score]:
    root = ROOT.parent / request.param
    if not root.is_dir():
        pytest.skip(f"no {request.param} fixtures")
    return request.param, score(root)


def test_silent_on_every_fix_and_near_miss(case_set: tuple[str, Score]) -> None:
    _, result = case_set
    assert result.noisy == []


def test_recall_at_root_cause_line(case_set: tuple[str, Score]) -> None:
    name, result = case_set
    least, recall = SETS[name]
    total = sum(len(hits) for hits in result.found.values())
    found = sum(sum(hits) for hits in result.found.values())
    assert total >= least
    assert found / total >= recall, result.missed
