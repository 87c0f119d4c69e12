"""GL305 at run time: retain_graph=True at each step so that the next step's backward can
go back through state carried over with its graph (an RNN's hidden state). Each step
really keeps every earlier step's graph alive; detaching the state, or a GAN whose
generator loss reuses the discriminator step's kept graph, stays silent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gradlint.runtime_check.runner import run_program  # noqa: E402
from helpers import write  # noqa: E402

CARRIED = """
from weakref import ref
import torch
rnn = torch.nn.RNN(4, 8, batch_first=True)
head = torch.nn.Linear(8, 1)
params = [*rnn.parameters(), *head.parameters()]
optimizer = torch.optim.SGD(params, lr=0.01)
hidden = torch.zeros(1, 1, 8)
saved = []
with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(ref(t)) or t, lambda t: t):
    for _ in range(6):
        out, hidden = rnn(torch.randn(1, 3, 4), hidden{detach})
        loss = head(out[:, -1]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward(retain_graph={retain})
        optimizer.step()
print(sum(r() is not None for r in saved))
"""


def _alive(tmp_path: Path, source: str) -> int:
    """The tensors saved for backward still alive at the end of a plain run."""
    script = write(tmp_path / "plain.py", textwrap.dedent(source).lstrip("\n"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    return int(done.stdout.split()[-1])


def _events(tmp_path: Path, source: str) -> list[tuple[str, int]]:
    script = write(tmp_path / "train.py", textwrap.dedent(source).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.faults, report
    return [(e.code, e.line) for e in report.events]


def test_state_carried_with_its_graph_and_retained_each_step_is_named(tmp_path: Path) -> None:
    buggy = CARRIED.format(detach="", retain=True)
    clean = CARRIED.format(detach=".detach()", retain=False)
    assert _alive(tmp_path, buggy) > 2 * _alive(tmp_path, clean)  # every step's graph kept
    assert ("GL305", 14) in _events(tmp_path, buggy)


def test_state_detached_each_step_is_clean(tmp_path: Path) -> None:
    source = CARRIED.format(detach=".detach()", retain=False)
    assert _events(tmp_path, source) == []


def test_a_kept_graph_reused_by_another_line_after_a_step_is_clean(tmp_path: Path) -> None:
    # The discriminator's backward keeps the generator's graph for the generator's own
    # backward, after the discriminator's step: a use within the same iteration.
    source = """
    import torch
    G, D = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
    for _ in range(4):
        fake = G(torch.randn(8, 2))
        opt_d.zero_grad()
        D(fake).mean().backward(retain_graph=True)
        opt_d.step()
        opt_g.zero_grad()
        (-D(fake)).mean().backward()
        opt_g.step()
    """
    assert [code for code, _ in _events(tmp_path, source)] not in (["GL305"],)
    assert ("GL305", 8) not in _events(tmp_path, source)
