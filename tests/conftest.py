"""Fixtures shared by the command-line tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current directory, shielded from outer configs."""
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _hypothesis_profiles() -> None:
    """CI runs a bounded, derandomized search: the same examples every run, so that a red
    run reproduces from its log. `GRADLINT_HYPOTHESIS_EXAMPLES=2000` asks for a longer,
    random search that keeps its failures in `.hypothesis/` to replay them."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # the property tests skip themselves
        return
    common = settings(
        deadline=None,
        # Composed programs are large by design, and hypothesmith throws away the programs
        # that do not compile (how many depends on the hash seed); generating them is not
        # under test, and the tests count what they did test.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
    )
    settings.register_profile("gradlint-ci", common, derandomize=True, database=None)
    examples = int(os.environ.get("GRADLINT_HYPOTHESIS_EXAMPLES", "0"))
    settings.register_profile("gradlint-long", common, max_examples=max(examples, 1))
    settings.load_profile("gradlint-long" if examples else "gradlint-ci")


_hypothesis_profiles()
