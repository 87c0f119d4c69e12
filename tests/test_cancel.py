"""A lint that the language server no longer needs stops at the next checkpoint."""

from __future__ import annotations

import threading

import pytest

from gradlint import engine
from gradlint.cancel import Cancelled, checkpoint, stopping_when

SOURCE = "import torch\nx = torch.ones(3, requires_grad=True)\ny = x.numpy()\n"


def test_a_stale_lint_stops() -> None:
    with stopping_when(lambda: True), pytest.raises(Cancelled):
        engine.lint(SOURCE, "x.py", errors=[])  # not taken for an internal error


def test_a_wanted_lint_finds_what_it_finds_without() -> None:
    asked: list[bool] = []

    def stale() -> bool:
        asked.append(True)
        return False

    with stopping_when(stale):
        found = engine.lint(SOURCE, "x.py")
    assert found == engine.lint(SOURCE, "x.py")
    assert [finding.code for finding in found] == ["GL101"]
    assert asked  # the checkpoints were reached


def test_the_setting_is_the_thread_s_own_and_ends_with_the_block() -> None:
    seen: list[BaseException] = []

    def other() -> None:
        try:
            checkpoint()
        except Cancelled as exc:  # pragma: no cover - the failure this test looks for
            seen.append(exc)

    with stopping_when(lambda: True):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    checkpoint()
    assert seen == []
