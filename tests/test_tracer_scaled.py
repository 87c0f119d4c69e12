"""GL213 at run time: gradients clipped while a GradScaler still has them multiplied by the
loss scale. The buggy program really trains too little (the clip sees the scaled norm);
unscaling first, or a scaler that is off, stays silent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gradlint.runtime_check.runner import run_program  # noqa: E402
from helpers import write  # noqa: E402

TRAIN = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu", enabled={enabled})
start = model.weight.detach().clone()
for _ in range(3):
    optimizer.zero_grad()
    loss = model(torch.randn(16, 8)).pow(2).mean()
    scaler.scale(loss).backward()
    {unscale}torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
moved = (model.weight - start).norm().item()
print("moved", moved)
assert moved > 1e-3, moved
"""


def _run(tmp_path: Path, enabled: bool, unscale: str) -> tuple[int, list[tuple[str, int]]]:
    source = textwrap.dedent(TRAIN.format(enabled=enabled, unscale=unscale)).lstrip("\n")
    script = write(tmp_path / "train.py", source)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    report = run_program(str(script), [])
    assert report.exit_code == plain.returncode and not report.faults
    return plain.returncode, [(e.code, e.line) for e in report.events]


def test_a_clip_before_unscaling_is_named_and_really_trains_too_little(tmp_path: Path) -> None:
    code, events = _run(tmp_path, True, "")
    assert code == 1  # the clip cut each step down to almost nothing
    assert ("GL213", 11) in events


def test_a_clip_after_unscaling_is_clean(tmp_path: Path) -> None:
    code, events = _run(tmp_path, True, "scaler.unscale_(optimizer)\n    ")
    assert code == 0 and events == []


def test_a_clip_with_the_scaler_off_is_clean(tmp_path: Path) -> None:
    code, events = _run(tmp_path, False, "")
    assert code == 0 and events == []
