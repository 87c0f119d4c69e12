"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current directory, shielded from outer configs."""
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path
