"""The tracer on training steps: what each optimizer step applies (GL202, GL213), frozen
parameters that move (GL303), and parameters given gradients that nothing uses (GL304,
GL204). Each misuse is run twice: once to show what PyTorch does with it, once traced."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coverage")

from gradlint.runtime_check.runner import run_program  # noqa: E402


def events_of(tmp_path: Path, source: str) -> list[tuple[str, int]]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.faults
    return [(e.code, e.line) for e in report.events]


# --- GL202: gradients cleared before the step that should apply them -----------------------

STEP_ORDER = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    {first}
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    {between}
    opt.step()
"""


@pytest.mark.parametrize(
    "first, between, expected",
    [
        ("pass", "opt.zero_grad()", [("GL202", 9)]),
        ("pass", "opt.zero_grad(set_to_none=False)", [("GL202", 9)]),
        ("pass", "model.zero_grad()", [("GL202", 9)]),
        ("opt.zero_grad()", "pass", []),
        ("model.zero_grad()", "print(loss.item())", []),
    ],
)
def test_gradients_cleared_between_backward_and_step(
    tmp_path: Path, first: str, between: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, STEP_ORDER.format(first=first, between=between)) == expected


def test_a_step_that_makes_its_own_gradients_after_a_clear_is_silent(tmp_path: Path) -> None:
    # MetaBalance-style: the step runs a backward of its own for each loss it is given, so
    # the clear before it throws nothing away.
    source = """
    import torch
    class Balanced(torch.optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, {})
        @torch.no_grad()
        def step(self, losses):
            params = [p for g in self.param_groups for p in g["params"]]
            total = [torch.zeros_like(p) for p in params]
            for i, loss in enumerate(losses):
                with torch.enable_grad():
                    loss.backward(retain_graph=i < len(losses) - 1)
                for acc, p in zip(total, params):
                    acc += p.grad / (p.grad.norm() + 1e-12)
                    p.grad = None
            for acc, p in zip(total, params):
                p.grad = acc
    shared = torch.nn.Linear(4, 4)
    balance = Balanced(shared.parameters())
    opt = torch.optim.SGD(shared.parameters(), lr=0.1)
    for step in range(3):
        out = shared(torch.randn(8, 4))
        losses = [out[:, 0].pow(2).mean(), out[:, 1].abs().mean()]
        sum(losses).backward(retain_graph=True)
        shared.zero_grad()
        balance.step(losses)
        opt.step()
    """
    assert events_of(tmp_path, source) == []


def test_the_first_clear_of_a_fresh_process_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each `gradlint run` starts with no function's kind known: the first `.grad = None`
    # that `zero_grad()` runs must be seen as one all the same.
    from gradlint.runtime_check import tracer

    monkeypatch.setattr(tracer, "_KINDS", {})
    source = STEP_ORDER.format(first="pass", between="opt.zero_grad()")
    assert events_of(tmp_path, source) == [("GL202", 9)]


def test_step_before_backward(tmp_path: Path) -> None:
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        opt.zero_grad()
        loss = model(torch.randn(8, 3)).pow(2).mean()
        opt.step()
        loss.backward()
    """
    # Each step finds the gradients of the last iteration's backward cleared.
    assert events_of(tmp_path, source) == [("GL202", 5)]


def test_what_a_step_after_zero_grad_does() -> None:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    model(torch.randn(8, 3)).pow(2).mean().backward()
    opt.zero_grad()
    opt.step()
    assert torch.equal(model.weight, before)  # nothing learned


ACCUMULATE = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(4):
    {each}
    loss = model(torch.randn(8, 3)).pow(2).mean() / 2
    loss.backward()
    if step % 2 == 1:
        opt.step()
        {after}
"""


@pytest.mark.parametrize(
    "each, after, expected",
    [
        ("opt.zero_grad()", "pass", [("GL202", 6)]),  # clears each micro-batch's gradients
        ("opt.zero_grad(set_to_none=False)", "pass", [("GL202", 6)]),
        ("pass", "opt.zero_grad()", []),
        ("if step % 2 == 0: opt.zero_grad()", "pass", []),
    ],
)
def test_accumulated_gradients_cleared_before_the_step(
    tmp_path: Path, each: str, after: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, ACCUMULATE.format(each=each, after=after)) == expected


def test_a_trainer_that_runs_each_optimizers_loss_in_turn_clears_rightly(
    tmp_path: Path,
) -> None:
    # The generator's loss gives the discriminator gradients too; the trainer clears them
    # before the discriminator's own loss, after the generator's step: no step lost them.
    source = """
    import torch
    G, D = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
    model = torch.nn.ModuleList([G, D])
    optimizers = [torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)]
    for _ in range(3):
        z = torch.randn(8, 2)
        for index, optimizer in enumerate(optimizers):
            model.zero_grad()
            fake = G(z) if index == 0 else G(z).detach()
            loss = D(fake).mean() * (1 if index == 0 else -1)
            loss.backward()
            optimizer.step()
    """
    assert events_of(tmp_path, source) == []


IN_TURN = """
import torch
G, D = torch.nn.Linear(2, 4), torch.nn.Linear(4, 1)
optimizers = [torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)]
left = 0
for _ in range(3):
    z = torch.randn(8, 2)
    for index, optimizer in enumerate(optimizers):
        {before}
        fake = G(z) if index == 0 else G(z).detach()
        if index == 1 and D.weight.grad is not None:
            left += int(D.weight.grad.abs().sum() > 0)
        loss = D(fake).mean() * (1 if index == 0 else -1)
        loss.backward()
        optimizer.step()
        {after}
print("left", left)
"""


def test_gradients_another_networks_loss_left_are_named(tmp_path: Path) -> None:
    import subprocess
    import sys

    source = IN_TURN.format(before="pass", after="optimizer.zero_grad()")
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert plain.stdout.split()[-1] != "0"  # the discriminator steps on the generator's loss
    assert ("GL201", 13) in events_of(tmp_path, source)


def test_gradients_cleared_before_each_loss_are_clean(tmp_path: Path) -> None:
    source = IN_TURN.format(before="G.zero_grad(); D.zero_grad()", after="pass")
    assert events_of(tmp_path, source) == []


def test_an_update_by_hand_that_clears_what_it_used_is_no_finding(tmp_path: Path) -> None:
    source = """
    import torch
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    a = torch.zeros(2, 1, requires_grad=True)
    for step in range(4):
        loss = (x @ a - y).pow(2).mean()
        loss.backward()
        with torch.no_grad():
            a.sub_(0.1 * a.grad)
            a.grad.zero_()
    """
    assert events_of(tmp_path, source) == []


def test_what_clearing_each_micro_batch_does() -> None:
    model = torch.nn.Linear(2, 1, bias=False)
    batches = [torch.ones(1, 2), 2 * torch.ones(1, 2)]
    for batch in batches:
        model.zero_grad()
        model(batch).sum().backward()
    assert model.weight.grad is not None
    assert model.weight.grad.tolist() == [[2.0, 2.0]]  # only the last batch: [[3, 3]] meant


# --- GL213: clipping where it changes nothing ----------------------------------------------

CLIP = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    {before}
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    {between}
    opt.step()
    {after}
"""
CLIPS = "torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)"


@pytest.mark.parametrize(
    "before, between, after, expected",
    [
        ("pass", "pass", CLIPS, [("GL213", 12)]),  # the step already applied them
        (CLIPS, "pass", "pass", [("GL213", 7)]),  # no gradients yet
        ("pass", CLIPS, "pass", []),
        ("pass", "torch.nn.utils.clip_grad_value_(model.parameters(), 0.1)", "pass", []),
    ],
)
def test_clipping_out_of_place(
    tmp_path: Path, before: str, between: str, after: str, expected: list[tuple[str, int]]
) -> None:
    source = CLIP.format(before=before, between=between, after=after)
    assert events_of(tmp_path, source) == expected


def test_clipping_a_frozen_module_is_no_finding(tmp_path: Path) -> None:
    # Its parameters have no gradients, rightly: there is nothing to clip, and no misuse.
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    frozen = torch.nn.Linear(3, 3).requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        model(frozen(torch.randn(8, 3))).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        torch.nn.utils.clip_grad_norm_(frozen.parameters(), 1.0)
        opt.step()
    """
    assert events_of(tmp_path, source) == []


def test_what_clipping_after_the_step_does() -> None:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    (100 * model(torch.ones(1, 3))).sum().backward()
    opt.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    moved = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert moved.norm() > 10  # the step was not clipped


# --- GL303: frozen parameters an optimizer still moves -------------------------------------

FREEZE = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
opt = torch.optim.Adam(model.parameters(), lr=0.1)
for step in range(4):
    if step == 1:
        model[0].requires_grad_(False)
    opt.{clear}
    model(torch.randn(8, 3)).pow(2).mean().backward()
    {decay}
    opt.step()
"""
DECAY = "for p in model.parameters(): p.data.mul_(0.99)"


@pytest.mark.parametrize(
    "clear, decay, expected",
    [
        ("zero_grad(set_to_none=False)", "pass", [("GL303", 11)]),  # stale zero grads
        ("zero_grad()", DECAY, [("GL303", 11)]),  # every parameter decayed by hand
        ("zero_grad()", "pass", []),  # frozen, held, but never moved
    ],
)
def test_frozen_parameters_that_move(
    tmp_path: Path, clear: str, decay: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, FREEZE.format(clear=clear, decay=decay)) == expected


MOMENTUM_ENCODER = """
import torch
torch.manual_seed(0)
query, key = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
key.load_state_dict(query.state_dict())
key.requires_grad_(False)
model = torch.nn.ModuleDict({"query": query, "key": key})
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
for step in range(4):
    with torch.no_grad():
        for q, k in zip(query.parameters(), key.parameters()):
            k.data = k.data * 0.9 + q.data * 0.1
    loss = (query(torch.randn(8, 3)) - key(torch.randn(8, 3))).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_a_momentum_encoder_moved_between_steps_is_no_finding(tmp_path: Path) -> None:
    # MoCo's key encoder: frozen, held by the optimizer (it skips parameters without a
    # gradient), and moved between steps by the program's own moving average.
    assert events_of(tmp_path, MOMENTUM_ENCODER) == []


def test_what_an_optimizer_does_to_a_frozen_parameter_without_a_gradient() -> None:
    frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    trained = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([frozen, trained], lr=0.1, momentum=0.9, weight_decay=0.1)
    trained.sum().backward()
    opt.step()
    assert torch.equal(frozen, torch.ones(3)) and not torch.equal(trained, torch.ones(3))


def test_a_master_copy_given_its_gradient_by_hand_is_not_frozen(tmp_path: Path) -> None:
    # Mixed-precision style: the optimizer holds plain fp32 copies, not the module's weights.
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    master = [p.detach().clone().float() for p in model.parameters()]
    opt = torch.optim.Adam(master, lr=0.1)
    for step in range(3):
        model.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        for copy, p in zip(master, model.parameters()):
            copy.grad = p.grad.float()
        opt.step()
        with torch.no_grad():
            for copy, p in zip(master, model.parameters()):
                p.copy_(copy)
    """
    assert events_of(tmp_path, source) == []


def test_what_adam_does_to_a_frozen_parameter_with_a_zero_grad() -> None:
    layer = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(torch.randn(4, 3)).sum().backward()
    opt.step()
    layer.requires_grad_(False)
    opt.zero_grad(set_to_none=False)
    frozen = layer.weight.detach().clone()
    opt.step()
    assert not torch.equal(layer.weight, frozen)  # momentum moves it


# --- GL304 and GL204: gradients that nothing uses ------------------------------------------

HEAD = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
body, head = model
{freeze}
opt = torch.optim.SGD({params}, lr=0.1)
for step in range(3):
    opt.zero_grad()
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "freeze, params, expected",
    [
        ("pass", "body.parameters()", [("GL304", 10)]),
        ("pass", "model.parameters()", []),
        ("head.requires_grad_(False)", "body.parameters()", []),
    ],
)
def test_parameters_given_gradients_and_no_optimizer(
    tmp_path: Path, freeze: str, params: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, HEAD.format(freeze=freeze, params=params)) == expected


CONTAINER = """
import torch
torch.manual_seed(0)
class Trainer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(3, 4)
        self.projector = torch.nn.Linear(4, 2)
    def training_step(self, x):
        features = self.body(x)
        return features.pow(2).mean() + self.projector(features).pow(2).mean()
module = Trainer()
before = module.projector.weight.clone()
opt = torch.optim.SGD({params}, lr=0.1)
for step in range(3):
    opt.zero_grad()
    module.training_step(torch.randn(8, 3)).backward()
    opt.step()
# PyTorch's truth: the projector gets gradients, and never moves.
print(module.projector.weight.grad is not None, torch.equal(before, module.projector.weight))
"""


@pytest.mark.parametrize(
    "params, expected, printed",
    [
        ("module.body.parameters()", [("GL304", 16)], "True True"),
        ("module.parameters()", [], "True False"),
    ],
)
def test_a_part_of_a_module_run_by_its_methods_and_no_optimizer(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    params: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    # The module's parts run from a method, not its forward: the module still holds both.
    assert events_of(tmp_path, CONTAINER.format(params=params)) == expected
    assert capsys.readouterr().out.strip() == printed


ADAPTED = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
{early}
model.requires_grad_(False)
model.append(torch.nn.Linear(1, 1))  # an adapter, the only part left to train
before = model[2].weight.clone()
{late}
for step in range(3):
    opt.zero_grad()
    model(torch.randn(8, 3)).pow(2).mean().backward()
    opt.step()
print(model[2].weight.grad is not None, torch.equal(before, model[2].weight))
"""
EARLY = "opt = torch.optim.AdamW(model.parameters(), lr=0.1)"
TRAINABLE = "[p for p in model.parameters() if p.requires_grad]"


@pytest.mark.parametrize(
    "early, late, expected, printed",
    [
        # Built before the adapter: it holds only what is frozen since (GL303), and the
        # adapter trains in no optimizer (GL304).
        (EARLY, "", [("GL303", 4), ("GL304", 11)], "True True"),
        ("", EARLY.replace("model.parameters()", TRAINABLE), [], "True False"),
    ],
)
def test_layers_added_after_the_optimizer_was_built(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    early: str,
    late: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, ADAPTED.format(early=early, late=late)) == expected
    assert capsys.readouterr().out.strip() == printed


def test_another_network_that_never_moves_and_piles_up_gradients(tmp_path: Path) -> None:
    # A network the generator's loss goes through, that nothing trains or clears: its
    # gradients pile up (a loss network left trainable, a discriminator never trained).
    # One trained elsewhere moves, or has its gradients cleared: see the GAN tests above.
    source = """
    import torch
    g, d = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    for step in range(3):
        opt_g.zero_grad()
        d(g(torch.randn(8, 2))).mean().backward()
        opt_g.step()
    """
    assert events_of(tmp_path, source) == [("GL304", 6)]


def test_a_backward_that_trains_nothing_is_no_finding(tmp_path: Path) -> None:
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    model(torch.randn(8, 3)).sum().backward()  # a gradient check: no optimizer at all
    print(model.weight.grad.norm())
    """
    assert events_of(tmp_path, source) == []


TARGET = """
import torch
torch.manual_seed(0)
online, target = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
opt = torch.optim.SGD(online.parameters(), lr=0.1)
for step in range(4):
    s, s2 = torch.randn(8, 3), torch.randn(8, 3)
    opt.zero_grad()
    {goal}
    loss = (online(s) - (1 + 0.9 * goal)).pow(2).mean()
    loss.backward()
    opt.step()
    if step % 2 == 1:
        target.load_state_dict(online.state_dict())
"""


@pytest.mark.parametrize(
    "goal, expected",
    [
        ("goal = target(s2)", [("GL204", 10)]),  # the loss trains the target network
        # Detached, the target's forward still records a graph for nothing (GL306).
        ("goal = target(s2).detach()", [("GL306", 8)]),
        ("with torch.no_grad(): goal = target(s2)", []),
        ("goal = target.requires_grad_(False)(s2)", []),  # frozen: no graph recorded
        ("goal = online(s2).detach()", []),  # the trained network, run once more
    ],
)
def test_a_target_network(tmp_path: Path, goal: str, expected: list[tuple[str, int]]) -> None:
    assert events_of(tmp_path, TARGET.format(goal=goal)) == expected


def test_a_target_network_of_a_users_class_around_library_layers(tmp_path: Path) -> None:
    # The layers run inside `nn.Sequential`, unseen one by one: the network is judged whole.
    source = """
    import torch
    class QNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layers = [torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)]
            self.body = torch.nn.Sequential(*layers)
        def forward(self, x):
            return self.body(x)
    online, target = QNet(), QNet()
    opt = torch.optim.SGD(online.parameters(), lr=0.1)
    for step in range(4):
        s, s2 = torch.randn(8, 3), torch.randn(8, 3)
        opt.zero_grad()
        goal = target(s2).detach()
        (online(s) - (1 + 0.9 * goal)).pow(2).mean().backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == [("GL306", 14)]  # the target's forward


def test_a_replica_whose_parameters_are_computed_is_no_idle_network(tmp_path: Path) -> None:
    # As `DataParallel` replicates: the replica's parameters are views of the module's own,
    # which train through them.
    source = """
    import copy
    import torch
    base = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(base.parameters(), lr=0.1)
    replica = copy.copy(base)
    replica._parameters = {k: v.view_as(v) for k, v in base._parameters.items()}
    for step in range(3):
        opt.zero_grad()
        replica(torch.randn(4, 3)).pow(2).mean().backward()
        opt.step()
    print(base.weight.grad is not None)
    """
    assert events_of(tmp_path, source) == []


def test_a_tensor_updated_by_hand_is_no_network(tmp_path: Path) -> None:
    # A memory bank that requires grad (for nothing), updated under no_grad each step.
    source = """
    import torch
    encoder = torch.nn.Linear(4, 3)
    bank = torch.randn(16, 3).requires_grad_()
    opt = torch.optim.SGD(encoder.parameters(), lr=0.1)
    for step in range(3):
        idx = torch.randperm(16)[:4]
        feats = encoder(torch.randn(4, 4))
        loss = torch.nn.functional.cross_entropy(feats @ bank.t(), idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            bank.index_copy_(0, idx, feats.detach())
    """
    assert events_of(tmp_path, source) == []


def test_a_gan_generator_loss_through_the_discriminator_is_no_leak(tmp_path: Path) -> None:
    source = """
    import torch
    torch.manual_seed(0)
    g, d = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3)
    for step in range(3):
        real, z = torch.randn(8, 3), torch.randn(8, 2)
        opt_d.zero_grad()
        d_loss = d(real).mean() - d(g(z).detach()).mean()
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = d(g(z)).mean()
        g_loss.backward()
        opt_g.step()
    """
    assert events_of(tmp_path, source) == []


GAN = """
import torch
torch.manual_seed(0)
gen, disc = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
opt_g = torch.optim.SGD(gen.parameters(), lr=0.1)
opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
for step in range(3):
    fake = gen(torch.randn(4, 2))
    d_loss = disc(torch.randn(4, 3)).mean() - disc({fake}).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = disc(fake).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
"""


@pytest.mark.parametrize(
    "fake, expected",
    [
        ("fake", [("GL204", 10)]),  # D's loss goes on into G; G's zero_grad throws it away
        ("fake.detach()", []),
    ],
)
def test_a_loss_that_goes_on_into_the_network_behind(
    tmp_path: Path, fake: str, expected: list[tuple[str, int]]
) -> None:
    # (The generator step reaches the discriminator too, on its way to the generator: that
    # is no leak.)
    source = GAN.format(fake=fake).replace(
        "g_loss = disc(fake)", "fake = gen(torch.randn(4, 2))\n    g_loss = disc(fake)"
    )
    assert events_of(tmp_path, source) == expected


def test_what_a_discriminator_loss_does_to_the_generator() -> None:
    gen, disc = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    disc(gen(torch.randn(4, 2))).mean().backward()
    assert gen.weight.grad is not None  # a backward through G, for nothing


def test_what_a_loss_through_a_target_network_does() -> None:
    online, target = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    (online(torch.randn(2, 3)) - target(torch.randn(2, 3))).pow(2).mean().backward()
    assert target.weight.grad is not None  # back-propagated into, for nothing


def test_a_program_stopped_before_the_step_meant_for_them_is_not_judged(
    tmp_path: Path,
) -> None:
    # The head's step would have come after the one that failed: no finding for it.
    source = """
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt_body = torch.optim.SGD(model[0].parameters(), lr=0.1)
    opt_head = torch.optim.SGD(model[1].parameters(), lr=0.1)
    model(torch.randn(8, 3)).pow(2).mean().backward()
    opt_body.step()
    raise RuntimeError("data loader failed")
    """
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    report = run_program(str(script), [])
    assert report.exit_code == 1 and report.events == []


# --- GL204: a sum of losses, one of which leaks into another network ------------------------


def test_a_loss_module_with_weights_of_its_own_is_no_leak(tmp_path: Path) -> None:
    # Learned per-sample weights inside the criterion (noisy-label training): the module
    # returns the loss, and its weights and the model's are both meant to train on it.
    source = """
    import torch
    class Weighted(torch.nn.Module):
        def __init__(self, n, k):
            super().__init__()
            self.u = torch.nn.Parameter(torch.full((n, 1), 0.1))
            self.v = torch.nn.Parameter(torch.full((n, k), 0.1))
        def forward(self, index, outputs, target):
            u, v = self.u[index], self.v[index]
            prediction = torch.softmax(outputs, 1) + u ** 2 * target - (v ** 2).detach()
            fit = ((torch.nn.functional.one_hot(outputs.detach().argmax(1), 3) + u ** 2 * target
                    - v ** 2 * (1 - target)) - target).pow(2).sum() / len(target)
            loss = -(target * prediction.clamp(min=1e-4).log()).sum(1).mean() + fit
            balance = prediction.mean(0).clamp(1e-4, 1.0)
            return loss + 0.1 * (-balance.log() / 3).mean()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    criterion = Weighted(16, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt_loss = torch.optim.SGD(criterion.parameters(), lr=1.0)
    for step in range(3):
        index = torch.randperm(16)[:8]
        target = torch.nn.functional.one_hot(torch.randint(0, 3, (8,)), 3).float()
        loss = criterion(index, model(torch.randn(8, 4)), target)
        opt.zero_grad()
        opt_loss.zero_grad()
        loss.backward()
        opt.step()
        opt_loss.step()
    """
    assert events_of(tmp_path, source) == []


ACTOR_CRITIC = """
import torch
torch.manual_seed(0)
actor, critic = torch.nn.Linear(4, 3), torch.nn.Linear(4, 1)
opt_a = torch.optim.SGD(actor.parameters(), lr=0.1)
opt_c = torch.optim.SGD(critic.parameters(), lr=0.1)
for step in range(2):
    obs, returns = torch.randn(8, 4), torch.randn(8)
    log_probs = actor(obs).log_softmax(-1)[:, 0]
    values = critic(obs).squeeze(-1)
    advantage = returns - {values}
    actor_loss = -(log_probs * advantage).mean()
    critic_loss = (returns - values).pow(2).mean()
    opt_a.zero_grad()
    opt_c.zero_grad()
    (actor_loss + 0.5 * critic_loss).backward()
    opt_a.step()
    opt_c.step()
"""


@pytest.mark.parametrize(
    "values, expected",
    [
        ("values", [("GL204", 10)]),  # the advantage takes the critic's values with its graph
        ("values.detach()", []),
    ],
)
def test_an_actor_loss_summed_with_the_critic_loss_leaks_into_the_critic(
    tmp_path: Path, values: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, ACTOR_CRITIC.format(values=values)) == expected


def test_what_an_undetached_advantage_does_to_the_critic() -> None:
    torch.manual_seed(0)
    actor, critic = torch.nn.Linear(4, 3), torch.nn.Linear(4, 1)
    obs, returns = torch.randn(8, 4), torch.randn(8)
    log_probs = actor(obs).log_softmax(-1)[:, 0]
    values = critic(obs).squeeze(-1)
    critic_loss = (returns - values).pow(2).mean()
    own = torch.autograd.grad(critic_loss, critic.weight, retain_graph=True)[0]
    (-(log_probs * (returns - values)).mean() + critic_loss).backward()
    assert not torch.allclose(critic.weight.grad, own)  # the critic learns the actor's loss


POLICY_THROUGH_Q = """
import torch
torch.manual_seed(0)
policy = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
q = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
opt_pi = torch.optim.Adam(policy.parameters(), lr=1e-3)
opt_q = torch.optim.Adam(q.parameters(), lr=1e-3)


def policy_loss(obs):
    action = policy(obs)
    entropy_bonus = action.pow(2).mean()
    q_pi = {q_pi}
    return entropy_bonus - q_pi.mean()


for step in range(2):
    obs, act, target = torch.randn(8, 3), torch.randn(8, 2), torch.randn(8, 1)
    q_loss = (q(torch.cat([obs, act], -1)) - target).pow(2).mean()
    opt_pi.zero_grad()
    opt_q.zero_grad()
    (q_loss + policy_loss(obs)).backward()
    opt_q.step()
    opt_pi.step()
"""


@pytest.mark.parametrize(
    "q_pi, expected",
    [
        ("q(torch.cat([obs, action], -1))", [("GL204", 12)]),
        (
            "torch.func.functional_call(q, {k: v.detach() for k, v in q.named_parameters()}, "
            "(torch.cat([obs, action], -1),))",
            [],
        ),
    ],
)
def test_a_policy_loss_through_a_q_network_that_its_own_loss_trains(
    tmp_path: Path, q_pi: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, POLICY_THROUGH_Q.format(q_pi=q_pi)) == expected


def test_losses_of_networks_that_feed_each_other_are_no_leak(tmp_path: Path) -> None:
    # A VAE with an optimizer for each half: the reconstruction trains the encoder through
    # the decoder, and the KL term is the encoder's alone. A critic head on a shared trunk,
    # each with its optimizer: its loss reaches the trunk through the head. A critic's
    # penalty on the actor's actions reaches the actor only through the critic.
    source = """
    import torch
    torch.manual_seed(0)
    enc, dec = torch.nn.Linear(6, 4), torch.nn.Linear(2, 6)
    opt_e = torch.optim.SGD(enc.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(dec.parameters(), lr=0.1)
    trunk, pi, v = torch.nn.Linear(4, 8), torch.nn.Linear(8, 3), torch.nn.Linear(8, 1)
    opt_pi = torch.optim.SGD([*trunk.parameters(), *pi.parameters()], lr=0.1)
    opt_v = torch.optim.SGD(v.parameters(), lr=0.1)
    actor, critic = torch.nn.Linear(3, 2), torch.nn.Linear(5, 1)
    opt_actor = torch.optim.SGD(actor.parameters(), lr=0.1)
    opt_critic = torch.optim.SGD(critic.parameters(), lr=0.1)
    for step in range(2):
        x = torch.randn(8, 6)
        mu, log_var = enc(x).chunk(2, -1)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        kl = -0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum(-1).mean()
        opt_e.zero_grad(); opt_d.zero_grad()
        ((dec(z) - x).pow(2).mean() + 0.1 * kl).backward()
        opt_e.step(); opt_d.step()

        obs, returns = torch.randn(8, 4), torch.randn(8)
        h = trunk(obs).relu()
        values = v(h).squeeze(-1)
        actor_loss = -(pi(h).log_softmax(-1)[:, 0] * (returns - values.detach())).mean()
        opt_pi.zero_grad(); opt_v.zero_grad()
        (actor_loss + (returns - values).pow(2).mean()).backward()
        opt_pi.step(); opt_v.step()

        s, a, y = torch.randn(8, 3), torch.randn(8, 2), torch.randn(8, 1)
        q_data = critic(torch.cat([s, a], -1))
        q_pi = critic(torch.cat([s, actor(s)], -1))
        opt_critic.zero_grad()
        ((q_data - y).pow(2).mean() + (q_pi.mean() - q_data.mean())).backward()
        opt_critic.step()
        opt_actor.zero_grad()
        (-critic(torch.cat([s, actor(s)], -1)).mean()).backward()
        opt_actor.step()
    """
    assert events_of(tmp_path, source) == []


# --- GL206: layers out of the sight of `parameters()` -------------------------------------

UNREGISTERED = """
import torch
from torch import nn
class Branches(nn.Module):
    def __init__(self):
        super().__init__()
        self.branches = {container}
        self.head = nn.Linear(8, 1)
    def forward(self, x):
        return self.head(torch.cat([branch(x) for branch in self.branches], -1))
model = Branches()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    model(torch.randn(4, 3)).pow(2).mean().backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "container, expected",
    [
        ("[nn.Linear(3, 4), nn.Linear(3, 4)]", [("GL206", 6)]),
        ("nn.ModuleList([nn.Linear(3, 4), nn.Linear(3, 4)])", []),
    ],
)
def test_layers_in_a_plain_list(
    tmp_path: Path, container: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, UNREGISTERED.format(container=container)) == expected


def test_weights_in_an_object_that_is_not_a_module(tmp_path: Path) -> None:
    source = """
    import torch
    from torch import nn
    class Projection:
        def __init__(self, size):
            self.weight = nn.Parameter(torch.randn(1, size))
        def __call__(self, x):
            return x @ self.weight.t()
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 4)
            self.out = Projection(4)
        def forward(self, x):
            return self.out(self.body(x))
    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).mean().backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == [("GL206", 3)]


def test_what_a_plain_list_of_layers_does() -> None:
    # `parameters()` does not look into a plain list: an optimizer built from it never
    # gets those weights, though they get gradients.
    class Branches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.branches = [torch.nn.Linear(3, 1)]

    model = Branches()
    assert list(model.parameters()) == []
    model.branches[0](torch.randn(2, 3)).sum().backward()
    assert model.branches[0].weight.grad is not None


def test_what_a_layer_built_in_forward_does() -> None:
    # A layer built inside `forward` is a new one, with fresh weights, on every call, and
    # never one of the module's parameters: its weight gets a gradient, and the optimizer
    # built from `model.parameters()` never updates it.
    built: list[Any] = []
    base: Any = torch.nn.Module  # (torch is imported at run time here)

    class Net(base):
        def __init__(self) -> None:
            super().__init__()
            self.out = torch.nn.Linear(4, 1)

        def forward(self, x: Any) -> Any:
            hidden = torch.nn.Linear(3, 4)
            built.append(hidden)  # only to look at it below
            return self.out(torch.tanh(hidden(x)))

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(8, 3)
    model(x).pow(2).mean().backward()
    (hidden,) = built
    before, out_before = hidden.weight.detach().clone(), model.out.weight.detach().clone()
    opt.step()
    assert all(p is not hidden.weight for p in model.parameters())
    assert hidden.weight.grad is not None  # a gradient that no optimizer applies
    assert torch.equal(hidden.weight, before)
    assert not torch.equal(model.out.weight, out_before)
    model(x)
    assert not torch.equal(built[1].weight, hidden.weight)  # and new weights each call


# --- GL209, GL215: freezes that set a plain attribute, and the parameters train on ---------

PLAIN_FREEZE = """
import torch
torch.manual_seed(0)
backbone, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
model = torch.nn.Sequential(backbone, head)
{freeze}
before = backbone.weight.clone()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model(torch.randn(4, 3)).sum().backward()
opt.step()
print(torch.equal(before, backbone.weight))
"""


@pytest.mark.parametrize(
    "freeze, expected",
    [
        ("for p in backbone.parameters():\n    p.require_grad = False", [("GL209", 6)]),
        ("backbone.weight.requires_grads = False", [("GL209", 5)]),
        ("backbone.requires_grad = False", [("GL215", 5)]),
        # what was meant: no event, and the backbone stays put
        ("for p in backbone.parameters():\n    p.requires_grad = False", []),
        ("backbone.requires_grad_(False)", []),
        # a misspelt flag on a tensor that is no parameter trains nothing: no event
        ("table = torch.zeros(3)\ntable.require_grad = False", []),
    ],
)
def test_a_freeze_that_sets_a_plain_attribute(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    freeze: str,
    expected: list[tuple[str, int]],
) -> None:
    assert events_of(tmp_path, PLAIN_FREEZE.format(freeze=freeze)) == expected
    # PyTorch's truth: with a plain attribute the backbone still moves.
    moved = capsys.readouterr().out.strip() == "False"
    assert moved == bool(expected) or "table" in freeze


# --- GL305: a graph retained for a backward that never comes ---------------------------------

RETAIN = """
import torch
torch.manual_seed(0)
trunk, head_a, head_b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
opt = torch.optim.SGD([*trunk.parameters(), *head_a.parameters(), *head_b.parameters()], lr=0.1)
kept = []
for step in range(3):
    opt.zero_grad()
    features = torch.tanh(trunk(torch.randn(4, 3)))
    loss_a = head_a(features).pow(2).mean()
    {body}
    opt.step()
    kept.append(features.grad_fn)
# PyTorch's truth: a retained graph still holds its saved tensors after the backward.
try:
    kept[0]._saved_result
    print("kept")
except RuntimeError:
    print("freed")
"""


@pytest.mark.parametrize(
    "body, expected, held",
    [
        # retained every step, and nothing goes through it again
        ("loss_a.backward(retain_graph=True)", [("GL305", 10)], "kept"),
        # a second loss through the shared trunk: the graph was kept for it
        (
            "loss_a.backward(retain_graph=True)\n    head_b(features).mean().backward()",
            [],
            "freed",
        ),
        # another backward in the step, which does not go through it: kept for nothing
        (
            "loss_a.backward(retain_graph=True)\n    head_b(features.detach()).mean().backward()",
            [("GL305", 10)],
            "kept",
        ),
        # a gradient penalty needs the graph of the gradient itself
        (
            "(g,) = torch.autograd.grad(loss_a, features, create_graph=True)\n"
            "    (loss_a + g.pow(2).sum()).backward()",
            [],
            "freed",
        ),
        ("loss_a.backward()", [], "freed"),
    ],
)
def test_a_graph_retained_for_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    expected: list[tuple[str, int]],
    held: str,
) -> None:
    assert events_of(tmp_path, RETAIN.format(body=body)) == expected
    assert capsys.readouterr().out.strip() == held


def test_a_helper_that_retains_for_every_loss_outside_a_training_loop(tmp_path: Path) -> None:
    # (A library's generic backward over a dict of losses: run once, no step between.)
    source = """
    import torch
    w = torch.randn(3, requires_grad=True)
    def backward_all(losses):
        for loss in losses.values():
            loss.backward(retain_graph=True)
    backward_all({"a": (w * 2).sum(), "b": (w * 3).sum()})
    """
    assert events_of(tmp_path, source) == []


# --- GL306: a network run with autograd on that no backward reaches --------------------------


def test_what_a_target_forward_with_autograd_on_records() -> None:
    target = torch.nn.Linear(3, 2)
    out = target(torch.randn(4, 3))
    assert out.grad_fn is not None  # a graph, holding its input for a backward
    out.detach().sum()  # used as a fixed target: the graph is never back-propagated
    assert target.weight.grad is None


ATTACKED = """
import torch
from contextlib import contextmanager
@contextmanager
def frozen(module):
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in module.parameters():
            p.requires_grad_(True)
model = torch.nn.Linear(4, 2)
delta = torch.zeros(4, requires_grad=True)
opt = torch.optim.SGD([delta], lr=0.1)
with {around}:
    for step in range(3):
        loss = -model(torch.randn(8, 4) + delta).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
print(model.weight.grad is None, bool(delta.grad.abs().sum() > 0))
"""


@pytest.mark.parametrize(
    "around, expected",
    [
        # frozen while it runs: its graph carries the gradient to the perturbation
        ("frozen(model)", []),
        # trainable while it runs, in no optimizer: its gradients pile up (GL304)
        ("torch.enable_grad()", [("GL304", 19)]),
    ],
)
def test_a_network_frozen_while_an_attack_runs_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], around: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, ATTACKED.format(around=around)) == expected
    frozen = around.startswith("frozen")
    assert capsys.readouterr().out.strip() == f"{frozen} True"


# --- GL203: training on in eval mode after a validation pass --------------------------------

EVAL_LEFT = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 8), {layer}, torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
modes = []
def validate():
    model.eval()
    with torch.no_grad():
        model(torch.randn(4, 3))
for epoch in range(3):
    {start}
    loss = model(torch.randn(4, 3)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    modes.append(model.training)
    validate()
print(modes)
"""


@pytest.mark.parametrize(
    "layer, start, expected, modes",
    [
        # the validation's eval() stays in force: epochs 2 and 3 train with dropout off
        ("torch.nn.Dropout(0.5)", "pass", [("GL203", 12)], "[True, False, False]"),
        ("torch.nn.BatchNorm1d(8)", "pass", [("GL203", 12)], "[True, False, False]"),
        # what was meant
        ("torch.nn.Dropout(0.5)", "model.train()", [], "[True, True, True]"),
        # no layer that behaves differently: eval mode changes nothing
        ("torch.nn.ReLU()", "pass", [], "[True, False, False]"),
        # trained in eval mode throughout, on purpose (frozen batch statistics)
        ("torch.nn.BatchNorm1d(8)", "model.eval()", [], "[False, False, False]"),
    ],
)
def test_training_in_eval_mode_after_training_in_train_mode(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layer: str,
    start: str,
    expected: list[tuple[str, int]],
    modes: str,
) -> None:
    assert events_of(tmp_path, EVAL_LEFT.format(layer=layer, start=start)) == expected
    assert capsys.readouterr().out.strip() == modes


# --- GL211: a loss term cut from its graph, summed into the loss --------------------------

DEAD_TERM = """
import torch
torch.manual_seed(0)
gen, disc = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
fake = gen(torch.randn(4, 3))
score = {score}
adversarial = torch.nn.functional.softplus(-score).mean()
content = fake.pow(2).mean()
loss = adversarial + content
{use}
# PyTorch's truth: does the adversarial term reach the generator at all?
print(adversarial.requires_grad)
"""


@pytest.mark.parametrize(
    "score, use, expected, trains",
    [
        ("disc(fake).detach()", "loss.backward()", [("GL211", 5)], "False"),
        ("disc(fake)", "loss.backward()", [], "True"),
        # summed only to be printed: nothing is trained on it
        ("disc(fake).detach()", "print(float(loss))", [], "False"),
        ("torch.zeros(4, 1)", "loss.backward()", [], "False"),  # made without grad: no cut
    ],
)
def test_a_loss_term_cut_from_its_graph(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    score: str,
    use: str,
    expected: list[tuple[str, int]],
    trains: str,
) -> None:
    assert events_of(tmp_path, DEAD_TERM.format(score=score, use=use)) == expected
    assert capsys.readouterr().out.strip().splitlines()[-1] == trains


def test_a_loss_term_cut_on_the_line_that_sums_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `(a + b).detach() + main`: the cut and the sum on one line (attention distillation).
    source = """
    import torch
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for step in range(2):
        out = student(torch.randn(4, 3))
        attention = out.pow(2).mean()
        loss = (attention * 10).detach() + out.sum(1).abs().mean()
        main, = torch.autograd.grad(out.sum(1).abs().mean(), student.weight, retain_graph=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # PyTorch's truth: the weights got the main term's gradient alone.
    print(torch.equal(student.weight.grad, main))
    """
    assert events_of(tmp_path, source) == [("GL211", 8)]
    assert capsys.readouterr().out.strip() == "True"


# --- GL214: the gradient of a tensor computed from others, read after the backward --------

NON_LEAF_GRAD = """
import torch
layer = torch.nn.Linear(3, 2)
out = layer(torch.randn(4, 3))
{before}
out.pow(2).sum().backward()
print(out.grad is None, layer.weight.grad is None)
"""


@pytest.mark.parametrize(
    "before, expected, printed",
    [
        ("pass", [("GL214", 6)], "True False"),
        ("out.retain_grad()", [], "False False"),
    ],
)
def test_the_grad_of_a_non_leaf_tensor(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch's own warning of the read
        assert events_of(tmp_path, NON_LEAF_GRAD.format(before=before)) == expected
    assert capsys.readouterr().out.strip() == printed


# --- GL302: losses kept alive after their backward -----------------------------------------

KEPT = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
history = []
for step in range(4):
    opt.zero_grad()
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    opt.step()
    history.append({kept})
# PyTorch's truth: what the list holds still has its graph.
print(getattr(history[0], "grad_fn", None) is not None)
"""


@pytest.mark.parametrize(
    "kept, expected, printed",
    [
        ("loss", [("GL302", 8)], "True"),
        ("loss.item()", [], "False"),
        ("loss.detach()", [], "False"),
    ],
)
def test_losses_kept_in_a_list_after_their_backward(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kept: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, KEPT.format(kept=kept)) == expected
    assert capsys.readouterr().out.strip() == printed


METRICS = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Sigmoid())
opt = torch.optim.SGD(model.parameters(), lr=0.1)
metrics = []
for step in range(4):
    out = model(torch.randn(8, 3))
    loss = out.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    metrics.append(((({out} - 0.5) ** 2).mean()))
# PyTorch's truth: each kept metric has a graph of its own, holding what it saved.
print(metrics[0].grad_fn is not None)
"""


@pytest.mark.parametrize(
    "out, expected, printed",
    [("out", [("GL302", 12)], "True"), ("out.detach()", [], "False")],
)
def test_metrics_of_outputs_kept_after_the_backward(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    out: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, METRICS.format(out=out)) == expected
    assert capsys.readouterr().out.strip() == printed


# --- GL211: a loss rebuilt from plain numbers ----------------------------------------------

REINFORCE = """
import torch
torch.manual_seed(0)
policy = torch.nn.Linear(4, 3)
opt = torch.optim.Adam(policy.parameters(), lr=0.01)
seen = []
opt.register_step_pre_hook(lambda o, a, k: seen.append(policy.weight.grad))
loss = torch.zeros(1, requires_grad=True)
for t in range(3):
    log_probs = torch.log_softmax(policy(torch.randn(1, 4)), 1)
    print(f"log prob {{log_probs[0, 0].item():.3f}}")
    loss = loss - {term} * 0.9 ** t
opt.zero_grad()
loss.backward()
opt.step()
assert (seen[0] is None) == {untrained}
"""


@pytest.mark.parametrize(
    "term, untrained, expected",
    [
        ("log_probs[0, 0].item()", True, [("GL211", 11)]),  # the policy gets no gradient
        ("log_probs[0, 0]", False, []),  # logged with .item(), trained on as a tensor
    ],
)
def test_a_loss_rebuilt_from_plain_numbers(
    tmp_path: Path, term: str, untrained: bool, expected: list[tuple[str, int]]
) -> None:
    source = REINFORCE.format(term=term, untrained=untrained)
    assert events_of(tmp_path, source) == expected


# --- GL213: a clip of gradients that later backwards add to ---------------------------------

MICRO_BATCHES = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(8):
    loss = model(torch.randn(8, 4)).pow(2).mean() * 100 / 4
    loss.backward()
    {inside}
    if step % 4 == 3:
        {before_step}
        opt.step()
        opt.zero_grad()
"""
CLIP_NORM = "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"


@pytest.mark.parametrize(
    "inside, before_step, expected",
    [
        (CLIP_NORM, "pass", [("GL213", 8)]),  # clipped after each micro-batch
        ("pass", CLIP_NORM, []),  # clipped once, the accumulated sum
    ],
)
def test_a_clip_of_gradients_a_later_backward_adds_to(
    tmp_path: Path, inside: str, before_step: str, expected: list[tuple[str, int]]
) -> None:
    source = MICRO_BATCHES.format(inside=inside, before_step=before_step)
    assert events_of(tmp_path, source) == expected


def test_a_clip_after_each_backward_with_a_step_each_time_is_silent(tmp_path: Path) -> None:
    source = MICRO_BATCHES.format(inside=CLIP_NORM, before_step="pass").replace(
        "if step % 4 == 3:", "if True:"
    )
    assert events_of(tmp_path, source) == []


def test_what_clipping_each_micro_batch_does() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    batches = [torch.randn(8, 4) for _ in range(4)]

    def accumulated(clip_each: bool) -> torch.Tensor:
        model.zero_grad()
        for x in batches:
            (model(x).pow(2).mean() * 100).backward()
            if clip_each:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not clip_each:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    each, once = accumulated(True), accumulated(False)
    # Both end clipped, but in another direction: the sum of clipped parts is not the
    # clipped sum, whose direction is the plain sum's.
    cosine = torch.nn.functional.cosine_similarity(each, once, dim=0)
    assert cosine < 0.99


# --- GL208: changes through `.data` that a pending backward cannot see ---------------------

RESCALE = """
import torch
torch.manual_seed(0)
class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)
    def forward(self, x):
        out = torch.sigmoid(self.fc(x))
        {rescale}
        return out
model = Scaled()
x = torch.randn(4, 3)
model(x).sum().backward()
got = model.fc.weight.grad.clone()
model.zero_grad()
# PyTorch's truth: sigmoid saved its output, and its backward used the changed values.
torch.sigmoid(model.fc(x)).mul(2.0).sum().backward()
print(torch.allclose(got, model.fc.weight.grad))
"""


@pytest.mark.parametrize(
    "rescale, expected, printed",
    [
        ("out.data.mul_(2.0)", [("GL208", 9)], "False"),  # backward sees the scaled output
        ("out = out * 2.0", [], "True"),
    ],
)
def test_a_change_through_data_inside_a_forward(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rescale: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, RESCALE.format(rescale=rescale)) == expected
    assert capsys.readouterr().out.strip() == printed


def test_data_changed_after_the_backward_is_silent(tmp_path: Path) -> None:
    # Weight clipping and hand-written updates: after the backward, nothing is pending.
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    for step in range(3):
        model(torch.randn(4, 3)).pow(2).mean().backward()
        for p in model.parameters():
            p.data.add_(-0.1 * p.grad)
            p.data.clamp_(-0.5, 0.5)
            p.grad = None
        model.weight.data = model.weight.data * 0.99
    """
    assert events_of(tmp_path, source) == []


INNER_STEP = """
import torch
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(3))
x, y = torch.randn(8, 3), torch.randn(8)
def adapted(weight):
    loss = (x @ weight - y).pow(2).mean()
    grad, = torch.autograd.grad(loss, [weight], create_graph=True)
    return {start} - 0.1 * grad
meta = (x @ adapted(w) - y).pow(2).mean()
meta.backward()
# PyTorch's truth: the meta-gradient through the whole inner step
exact, = torch.autograd.grad((x @ (w - 0.1 * torch.autograd.grad(
    (x @ w - y).pow(2).mean(), [w], create_graph=True)[0]) - y).pow(2).mean(), [w])
print(torch.allclose(w.grad, exact))
"""


@pytest.mark.parametrize(
    "start, expected, printed",
    [
        ("weight.data", [("GL208", 8)], "False"),  # the direct path to `w` is lost
        ("weight", [], "True"),
    ],
)
def test_data_of_a_parameter_in_an_inner_gradient_step(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    start: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, INNER_STEP.format(start=start)) == expected
    assert capsys.readouterr().out.strip() == printed


INNER_MODULE = """
import torch
from torch.func import functional_call
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
x, y = torch.randn(8, 3), torch.randn(8, 1)
def loss_with(params):
    return (functional_call(model, params, (x,)) - y).pow(2).mean()
params = dict(model.named_parameters())
grads = torch.autograd.grad(loss_with(params), list(params.values()), create_graph=True)
fast = {{name: {start} - 0.1 * g for (name, p), g in zip(params.items(), grads)}}
loss_with(fast).backward()
print(model.weight.grad is not None)
"""


@pytest.mark.parametrize("start, expected", [("p.data", [("GL208", 10)]), ("p", [])])
def test_data_in_fast_weights_a_library_layer_runs_with(
    tmp_path: Path, start: str, expected: list[tuple[str, int]]
) -> None:
    # `functional_call` swaps the fast weights into the layer without registering them:
    # the backward is followed through the layer into what computed them.
    assert events_of(tmp_path, INNER_MODULE.format(start=start)) == expected


def test_data_combined_and_written_back_through_data_is_silent(tmp_path: Path) -> None:
    # A projection step of an attack: the mixed value only goes back into `.data`, and no
    # backward goes through it.
    source = """
    import torch
    changes = torch.nn.Parameter(torch.rand(6))
    for step in range(3):
        loss = (changes * torch.randn(6)).sum()
        grad, = torch.autograd.grad(loss, changes)
        changes.data.add_(0.1 * grad)
        shift = (changes - 1).min()
        changes.data.copy_(torch.clamp(changes.data - shift, 0, 1))
    """
    assert events_of(tmp_path, source) == []


def test_data_as_a_detach_of_a_generators_output_is_silent(tmp_path: Path) -> None:
    # The old idiom for `.detach()`: what it meets in the discriminator does not depend on it.
    source = """
    import torch
    G, D = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
    for step in range(3):
        fake = G(torch.randn(4, 2))
        opt_d.zero_grad()
        D(fake.data).mean().backward()
        opt_d.step()
        for p in D.parameters():
            p.data.clamp_(-0.1, 0.1)
        opt_g.zero_grad()
        (-D(fake)).mean().backward()
        opt_g.step()
    """
    assert events_of(tmp_path, source) == []


# --- GL212: a loss built from gradients taken without create_graph --------------------------

DERIVATIVE_FIT = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
x, target = torch.randn(32, 3), torch.randn(32, 3)
for step in range(3):
    x.requires_grad_(True)
    out = model(x)
    slope = torch.autograd.grad(out.sum(), x, {flag}=True)[0]
    loss = out.pow(2).mean() + (slope - target).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
# PyTorch's truth: the derivative term reaches the weights only through create_graph.
slope = torch.autograd.grad(model(x).sum(), x, {flag}=True)[0]
print(slope.requires_grad)
"""


@pytest.mark.parametrize(
    "flag, expected, printed",
    [
        ("retain_graph", [("GL212", 9)], "False"),  # a constant to the backward
        ("create_graph", [], "True"),
    ],
)
def test_a_loss_built_from_gradients_without_a_graph(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, DERIVATIVE_FIT.format(flag=flag)) == expected
    assert capsys.readouterr().out.strip() == printed


PENALTY_ADDED_IN_PLACE = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    z = torch.randn(8, 4, requires_grad=True)
    out = model(z)
    grad, = torch.autograd.grad(out.sum(), z, {flag}=True)
    loss = 2 * grad.pow(2).sum(1).mean()
    loss += 0 * out.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
# PyTorch's truth: without a graph the penalty leaves the weights no gradient.
print(model.weight.grad.abs().sum().item() > 0)
"""


@pytest.mark.parametrize(
    "flag, expected, printed",
    [("retain_graph", [("GL212", 8)], "False"), ("create_graph", [], "True")],
)
def test_a_penalty_without_a_graph_that_a_term_is_added_to_in_place(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    # `loss = penalty; loss += other`: the add makes the cut term itself require grad.
    assert events_of(tmp_path, PENALTY_ADDED_IN_PLACE.format(flag=flag)) == expected
    assert capsys.readouterr().out.strip() == printed


def test_gradients_used_without_a_graph_on_purpose_are_silent(tmp_path: Path) -> None:
    # A first-order inner step (MAML's approximation), and a saliency map kept for a log.
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    saliency = []
    for step in range(3):
        x = torch.randn(8, 3, requires_grad=True)
        inner = model(x).pow(2).mean()
        grads = torch.autograd.grad(inner, list(model.parameters()) + [x])
        saliency.append(grads[-1].abs().mean().item())
        fast = [p - 0.1 * g for p, g in zip(model.parameters(), grads)]
        outer = torch.nn.functional.linear(torch.randn(8, 3), fast[0], fast[1]).pow(2).mean()
        opt.zero_grad()
        outer.backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == []


# --- GL303: an optimizer that holds parameters frozen at every step --------------------------

HELD_FROZEN = """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
for p in model[0].parameters():
    p.requires_grad = False
opt = torch.optim.AdamW({params}, lr=0.1)
for step in range(4):
    if step == {unfreeze}:
        model[0].requires_grad_(True)
    opt.zero_grad()
    model(torch.randn(8, 3)).pow(2).mean().backward()
    opt.step()
# PyTorch's truth: the optimizer holds the frozen layer and never changes it.
held = {{id(p) for g in opt.param_groups for p in g["params"]}}
print(id(model[0].weight) in held)
"""


@pytest.mark.parametrize(
    "params, unfreeze, expected, printed",
    [
        ("model.parameters()", -1, [("GL303", 6)], "True"),
        (TRAINABLE, -1, [], "False"),  # built from the trainable ones
        ("model.parameters()", 2, [], "True"),  # unfrozen later: the optimizer is ready for it
    ],
)
def test_an_optimizer_holding_parameters_frozen_at_every_step(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    params: str,
    unfreeze: int,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    source = HELD_FROZEN.format(params=params, unfreeze=unfreeze)
    assert events_of(tmp_path, source) == expected
    assert capsys.readouterr().out.strip() == printed


def test_an_optimizer_over_layers_a_schedule_freezes_and_unfreezes_is_silent(
    tmp_path: Path,
) -> None:
    # LISA style: a few layers train at a time, chosen anew every other step; a layer the
    # run never happened to choose stays frozen at every step, as the schedule allows.
    source = """
    import torch
    layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(4))
    opt = torch.optim.AdamW(layers.parameters(), lr=0.1)
    for step in range(4):
        if step % 2 == 0:
            layers.requires_grad_(False)
            layers[step // 2].requires_grad_(True)
        x = torch.randn(8, 4)
        for layer in layers:
            x = layer(x)
        opt.zero_grad()
        x.pow(2).mean().backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == []


def test_an_optimizer_made_in_a_method_is_named_where_it_is_assigned(tmp_path: Path) -> None:
    source = """
    import torch
    class Trainer:
        def __init__(self, model):
            self.model = model
            self.opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(self):
            self.opt.zero_grad()
            self.model(torch.randn(8, 3)).pow(2).mean().backward()
            self.opt.step()
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    model[0].requires_grad_(False)
    trainer = Trainer(model)
    for _ in range(3):
        trainer.step()
    """
    assert events_of(tmp_path, source) == [("GL303", 5)]


# --- GL304: another network whose gradients pile up, never used ------------------------------

DETECTOR = """
import torch
torch.manual_seed(0)
class Corrector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
    def forward(self, x, prob):
        return self.fc(x * prob)
detector = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid())
corrector = Corrector()
{freeze}
opt = torch.optim.Adam({params}, lr=0.1)
before = detector[0].weight.detach().clone()
for step in range(3):
    x = torch.randn(8, 4)
    prob = detector(x)
    loss = corrector(x, prob).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
# PyTorch's truth: the detector's gradients pile up, and it never moves.
print(detector[0].weight.grad is not None, torch.equal(detector[0].weight, before))
"""
BOTH = "list(corrector.parameters()) + list(detector.parameters())"


@pytest.mark.parametrize(
    "freeze, params, expected, printed",
    [
        ("", "corrector.parameters()", [("GL304", 19)], "True True"),
        ("", BOTH, [], "True False"),  # trained with the corrector
        ("detector.requires_grad_(False)", "corrector.parameters()", [], "False True"),
    ],
)
def test_another_network_whose_gradients_pile_up(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    freeze: str,
    params: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    source = DETECTOR.format(freeze=freeze, params=params)
    assert events_of(tmp_path, source) == expected
    assert capsys.readouterr().out.strip() == printed


# --- GL206: a parameter kept only through a tensor computed from it -------------------------

CAST_STATE = """
import torch
class Forecaster(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = torch.nn.Linear(4, 4)
        {state}
    def forward(self, x):
        return self.cell(x + self.state)
torch.manual_seed(0)
model = Forecaster()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    opt.step()
"""


def test_what_a_cast_after_nn_parameter_does() -> None:
    # `.to(...)` after `nn.Parameter(...)` keeps a computed tensor: the module registers no
    # parameter, the optimizer never has it, and its gradients pile up unused.
    state = torch.nn.Parameter(torch.zeros(1, 4)).to(torch.float64)
    assert state.grad_fn is not None and not isinstance(state, torch.nn.Parameter)
    module = torch.nn.Module()
    module.state = state
    assert list(module.parameters()) == []


def test_a_parameter_kept_through_a_cast_is_named_where_it_is_kept(tmp_path: Path) -> None:
    state = "self.state = torch.nn.Parameter(torch.zeros(1, 4)).to(torch.float32).clone()"
    assert ("GL206", 6) in events_of(tmp_path, CAST_STATE.format(state=state))


@pytest.mark.parametrize(
    "state",
    [
        "self.state = torch.nn.Parameter(torch.zeros(1, 4))",  # registered: it trains
        "self.state = torch.zeros(1, 4)",  # a constant, not learned
    ],
)
def test_a_registered_or_constant_state_is_silent(tmp_path: Path, state: str) -> None:
    assert events_of(tmp_path, CAST_STATE.format(state=state)) == []


# --- GL216: a frozen parameter re-made as a copy that requires grad -------------------------

REMADE = """
import torch
class Tagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(20, 4)
        self.head = torch.nn.Linear(4, 3)
    def forward(self, idx):
        return self.head(self.embed(idx).mean(1))
def convert(model):
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            {remake}
torch.manual_seed(0)
model = Tagger()
model.embed.weight.requires_grad_(False)
convert(model)
{after}
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
for step in range(3):
    opt.zero_grad()
    model(torch.randint(0, 20, (8, 5))).logsumexp(1).mean().backward()
    opt.step()
"""
COPY = "module.register_parameter(name, torch.nn.Parameter(param.detach().double().float()))"


def test_what_re_making_a_frozen_parameter_does() -> None:
    # `nn.Parameter` requires grad by default: the copy of a frozen weight trains.
    frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    module = torch.nn.Module()
    module.register_parameter("weight", frozen)
    module.register_parameter("weight", torch.nn.Parameter(frozen.detach().clone()))
    torch.optim.SGD(module.parameters(), lr=1.0).zero_grad()
    module.weight.sum().backward()
    torch.optim.SGD(module.parameters(), lr=1.0).step()
    assert not torch.equal(module.weight.detach(), frozen.detach())


def test_a_frozen_parameter_re_made_trainable_and_trained_is_named_where_re_made(
    tmp_path: Path,
) -> None:
    source = REMADE.format(remake=COPY, after="")
    assert events_of(tmp_path, source) == [("GL216", 12)]


@pytest.mark.parametrize(
    ("remake", "after"),
    [
        # the copy keeps the flag
        (
            "module.register_parameter(name, torch.nn.Parameter(param.detach().clone(), "
            "requires_grad=param.requires_grad))",
            "",
        ),
        # frozen again after the conversion
        (COPY, "model.embed.weight.requires_grad_(False)"),
        # a fresh weight, not a copy: put there to train, on purpose
        ("module.register_parameter(name, torch.nn.Parameter(torch.randn_like(param)))", ""),
    ],
)
def test_a_re_made_parameter_that_keeps_its_freeze_or_is_new_is_silent(
    tmp_path: Path, remake: str, after: str
) -> None:
    assert events_of(tmp_path, REMADE.format(remake=remake, after=after)) == []


# --- GL304: a layer swapped in for training, never given to the optimizer ----------------

SWAPPED = """
import torch
model = torch.nn.Sequential(torch.nn.Embedding(20, 4), torch.nn.Flatten(), torch.nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
full = model[0]
small = torch.nn.Embedding(5, 4)
model[0] = small
{swap}
for step in range(3):
    opt.zero_grad()
    model(torch.randint(0, 5, (3, 2))).logsumexp(1).mean().backward()
    opt.step()
model[0] = full
"""


def test_what_swapping_a_layer_in_after_the_optimizer_does() -> None:
    full = torch.nn.Embedding(4, 2)
    opt = torch.optim.SGD(full.parameters(), lr=0.1)
    small = torch.nn.Embedding(4, 2)
    before = small.weight.detach().clone()
    small.weight.sum().backward()
    opt.step()  # holds the old weight only
    assert torch.equal(small.weight.detach(), before)


def test_a_layer_swapped_in_untrained_and_out_again_is_named(tmp_path: Path) -> None:
    assert events_of(tmp_path, SWAPPED.format(swap="")) == [("GL304", 10)]  # the backward


def test_a_layer_swapped_into_the_optimizer_too_is_silent(tmp_path: Path) -> None:
    swap = 'opt.param_groups[0]["params"][0] = small.weight'
    assert events_of(tmp_path, SWAPPED.format(swap=swap)) == []


def test_a_library_modules_weights_reached_by_a_backward_that_steps_over_it(
    tmp_path: Path,
) -> None:
    # The backward's walk steps over `nn.Sequential`'s own nodes; its weights, which got
    # gradients, are still seen as reached, and the ones no optimizer holds are named.
    source = """
import torch
model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    model(torch.randn(4, 3)).pow(2).mean().backward()
    opt.step()
"""
    assert events_of(tmp_path, source) == [("GL304", 6)]  # the backward


def test_backwards_in_one_helper_are_told_apart_by_their_callers(tmp_path: Path) -> None:
    # The policy's backward reaches the Q network too; the Q network's next update clears
    # that, as it should. Both backwards run at the helper's one line.
    source = """
    import torch
    def update(opt, loss):
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(0)
    q, pi = torch.nn.Linear(3, 1), torch.nn.Linear(3, 3)
    opt_q = torch.optim.SGD(q.parameters(), lr=0.1)
    opt_pi = torch.optim.SGD(pi.parameters(), lr=0.1)
    for step in range(3):
        x = torch.randn(8, 3)
        update(opt_q, (q(x) - 1).pow(2).mean())
        update(opt_pi, -q(pi(x)).mean())
    """
    assert events_of(tmp_path, source) == []


def test_a_graph_kept_twice_then_used_is_not_reported(tmp_path: Path) -> None:
    # Each loss's gradient norm is measured (keeping its graph), then the weighted sum
    # trains through every graph kept.
    source = """
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        x = torch.randn(8, 3)
        losses = [model(x).pow(2).mean(), model(x).abs().mean()]
        for loss in losses:
            torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        norms = []
        for loss in losses:
            model.zero_grad()
            loss.backward(retain_graph=True)
            norms.append(model.weight.grad.norm().item())
        opt.zero_grad()
        sum(loss / n for loss, n in zip(losses, norms)).backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == []


CAST_SETTING = """
import torch
class Element(torch.nn.Module):
    def __init__(self, length):
        super().__init__()
        self.register_setting("length", {value})
        self.gain = torch.nn.Parameter(torch.ones(()))
    def register_setting(self, name, value):
        if isinstance(value, torch.nn.Parameter):
            self.register_parameter(name, value)
        else:
            self.register_buffer(name, value)
    def forward(self, x):
        return x * self.length * self.gain
length = torch.nn.Parameter(torch.tensor(0.5))
element = Element(length)
opt = torch.optim.SGD(element.parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    element(torch.randn(4)).pow(2).mean().backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "value, expected",
    [
        ("torch.as_tensor(length, dtype=torch.float64)", [("GL206", 5)]),
        ("length", []),
    ],
)
def test_a_parameter_registered_as_a_cast_buffer(
    tmp_path: Path, value: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, CAST_SETTING.format(value=value)) == expected


def test_what_a_cast_buffer_does_to_its_parameter() -> None:
    length = torch.nn.Parameter(torch.tensor(0.5))
    module = torch.nn.Module()
    module.register_buffer("length", torch.as_tensor(length, dtype=torch.float64))
    assert list(module.parameters()) == []  # no optimizer built from it can train `length`
    (module.length * 2).backward()
    assert length.grad is not None  # it gets gradients all the same


# --- GL216: a frozen layer re-made as a trainable copy of itself ---------------------------

RESIZED = """
import torch
class LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(6, 4), torch.nn.Linear(4, 6, bias=False)
    def resize(self, n):
        embed, head = torch.nn.Embedding(n, 4), torch.nn.Linear(4, n, bias=False)
        with torch.no_grad():
            embed.weight[:6], head.weight[:6] = self.embed.weight, self.head.weight
        self.embed, self.head = embed, head
    def forward(self, ids):
        return self.head(self.embed(ids))
torch.manual_seed(0)
lm = LM()
lm.requires_grad_(False)
lm.resize(7){refreeze}
adapter = torch.nn.Linear(4, 4)
trainable = [p for p in lm.parameters() if p.requires_grad]
opt = torch.optim.SGD([*adapter.parameters(), *trainable], lr=0.1)
before = lm.head.weight.detach().clone()
for step in range(2):
    opt.zero_grad()
    lm.head(adapter(lm.embed(torch.tensor([1, 6])))).sum().backward()
    opt.step()
# PyTorch's truth: did the head, frozen before the resize, change?
print(not torch.equal(before, lm.head.weight))
"""


@pytest.mark.parametrize(
    "refreeze, expected, printed",
    [
        ("", [("GL216", 10), ("GL216", 16)], "True"),
        ("\nlm.head.requires_grad_(False)\nlm.embed.requires_grad_(False)", [], "False"),
        # the head frozen again, the new embedding left to train on purpose (a new token)
        ("\nlm.head.requires_grad_(False)", [], "False"),
    ],
)
def test_a_frozen_layer_re_made_as_a_trainable_copy(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    refreeze: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    assert events_of(tmp_path, RESIZED.format(refreeze=refreeze)) == expected
    assert capsys.readouterr().out.strip() == printed


def test_a_fresh_head_in_place_of_a_frozen_one_is_silent(tmp_path: Path) -> None:
    # Transfer learning: the backbone and its old head frozen, a new head trained.
    source = """
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model.requires_grad_(False)
    model[2] = torch.nn.Linear(4, 5)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(2):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    """
    assert events_of(tmp_path, source) == []


# --- GL216: a freeze undone before any step ------------------------------------------------

UNFREEZE = """
import torch
def prepare(model):
    for p in model.parameters():
        p.requires_grad_(True)
    return model
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
{freeze}
opt = None
for step in range(3):
    if step == {unfreeze_at}:
        prepare(model)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    elif opt is None:
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    opt.zero_grad()
    model(torch.randn(8, 3)).pow(2).mean().backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "freeze, unfreeze_at, expected",
    [
        ("model[2].requires_grad_(False)", 0, [("GL216", 4)]),  # the head's freeze undone
        ("model[2].requires_grad_(False)", 2, []),  # a warm-up: unfrozen after steps
        ("model.requires_grad_(False); model[2].requires_grad_(True)", -1, []),  # the head
        # modules picked by name, nested (`head` and `head.0`): the head twice, no more
        (
            "model.requires_grad_(False)\n"
            "for name, m in torch.nn.ModuleDict({'head': torch.nn.Sequential(model[2])}"
            ").named_modules():\n"
            "    if 'head' in name:\n"
            "        [p.requires_grad_(True) for p in m.parameters()]",
            -1,
            [],
        ),
    ],
)
def test_a_freeze_undone_by_a_pass_over_every_parameter(
    tmp_path: Path, freeze: str, unfreeze_at: int, expected: list[tuple[str, int]]
) -> None:
    source = UNFREEZE.format(freeze=freeze, unfreeze_at=unfreeze_at)
    assert events_of(tmp_path, source) == expected


def test_what_undoing_a_freeze_does() -> None:
    head = torch.nn.Linear(3, 1)
    head.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    before = head.weight.detach().clone()
    head(torch.randn(4, 3)).sum().backward()
    torch.optim.SGD(head.parameters(), lr=0.1).step()
    assert not torch.equal(head.weight, before)  # the frozen head trained


TARGET_NET = """
import torch
torch.manual_seed(0)
online, target = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
target.load_state_dict(online.state_dict())
opt = torch.optim.SGD(online.parameters(), lr=0.1)
for step in range(3):
    s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)
    {next_q}
    loss = (online(s).max(1)[0] - (r + 0.9 * next_q)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "next_q, expected",
    [
        ("next_q = target(s2).max(1)[0]", [("GL304", 11)]),  # the loss trains through it
        ("with torch.no_grad(): next_q = target(s2).max(1)[0]", []),
    ],
)
def test_a_target_network_the_loss_goes_into(
    tmp_path: Path, next_q: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, TARGET_NET.format(next_q=next_q)) == expected


def test_what_a_target_network_not_detached_gets() -> None:
    online, target = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    for _ in range(2):
        td = online(torch.randn(8, 4)).max(1)[0] - target(torch.randn(8, 4)).max(1)[0]
        td.pow(2).mean().backward()
    assert target.weight.grad is not None and target.weight.grad.abs().sum() > 0  # piled up


# --- GL201: parameters updated by hand from gradients never cleared -----------------------

BY_HAND = """
import torch
torch.manual_seed(0)
w = torch.zeros(3, requires_grad=True)
x, y = torch.randn(16, 3), torch.randn(16)
for step in range(4):
    loss = (x @ w - y).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
    {clear}
# PyTorch's truth: is the last gradient this step's alone?
fresh, = torch.autograd.grad((x @ w - y).pow(2).mean(), w)
(x @ w - y).pow(2).mean().backward()
print(torch.allclose(w.grad, fresh))
"""


@pytest.mark.parametrize(
    "clear, expected, printed",
    [
        ("pass", [("GL201", 7), ("GL201", 9)], "False"),
        ("w.grad.zero_()", [], "True"),
        ("w.grad = None", [], "True"),
    ],
)
def test_an_update_by_hand_from_gradients_never_cleared(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    clear: str,
    expected: list[tuple[str, int]],
    printed: str,
) -> None:
    # No optimizer: the update reads `.grad` at one line each step, and each backward adds
    # to what the last one left unless the loop clears it.
    assert events_of(tmp_path, BY_HAND.format(clear=clear)) == expected
    assert capsys.readouterr().out.strip() == printed


# --- GL201: one loss's gradient read after another's was added to it ----------------------

PER_LOSS_NORMS = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
def grad_norm(loss):
    {clear}
    loss.backward(retain_graph=True)
    return torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
for step in range(3):
    x = torch.randn(8, 3)
    losses = [model(x).pow(2).mean(), model(x).abs().mean()]
    norms = [grad_norm(loss) for loss in losses]
    opt.zero_grad()
    sum(loss / n.detach() for loss, n in zip(losses, norms)).backward()
    opt.step()
"""


@pytest.mark.parametrize(
    "clear, expected",
    [
        ("pass", [("GL201", 7), ("GL201", 8)]),  # the second norm is of both gradients
        ("model.zero_grad()", []),
    ],
)
def test_a_gradient_read_per_loss_without_a_clear_between(
    tmp_path: Path, clear: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, PER_LOSS_NORMS.format(clear=clear)) == expected


def test_what_reading_gradients_per_loss_without_a_clear_reads() -> None:
    w = torch.ones(2, requires_grad=True)
    (w * 2).sum().backward(retain_graph=True)
    first = w.grad.clone()
    (w * 3).sum().backward()
    assert torch.equal(w.grad, first + 3)  # the second loss's gradient, plus the first's


def test_gradients_read_during_accumulation_are_not_reported(tmp_path: Path) -> None:
    # Micro-batches: each backward frees its graph, and the read is of the running sum.
    source = """
    import torch
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        for micro in range(3):
            model(torch.randn(4, 3)).pow(2).mean().backward()
            print(model.weight.grad.norm().item())
        opt.step()
    """
    assert events_of(tmp_path, source) == []


def test_an_optimizer_let_go_of_by_the_end_still_counts(tmp_path: Path) -> None:
    # The optimizer is local to `main()`: gone when the program ends, it still stepped.
    source = """
    import torch
    def prepare(model):
        for p in model.parameters():
            p.requires_grad_(True)
        return torch.optim.SGD(model.parameters(), lr=0.1)
    def main():
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        model[1].requires_grad_(False)
        opt = prepare(model)
        for step in range(3):
            opt.zero_grad()
            model(torch.randn(8, 3)).pow(2).mean().backward()
            opt.step()
    main()
    """
    assert events_of(tmp_path, source) == [("GL216", 4)]


ATTACK = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
delta = torch.zeros_like(x, requires_grad=True)
for it in range(3):
    loss = torch.nn.functional.cross_entropy(model(x + delta), y)
    model.zero_grad()
    loss.backward()
    grad = delta.grad.detach()
    {clear}
    delta.data = (delta + 0.01 * grad.sign()).clamp(-0.1, 0.1)
"""


@pytest.mark.parametrize(
    "clear, expected",
    [
        ("pass", [("GL201", 9), ("GL201", 10)]),  # each step's sign is of the running sum
        ("delta.grad.zero_()", []),
    ],
)
def test_an_attack_that_reads_its_perturbations_gradient_without_a_clear(
    tmp_path: Path, clear: str, expected: list[tuple[str, int]]
) -> None:
    assert events_of(tmp_path, ATTACK.format(clear=clear)) == expected


def test_gradients_zeroed_through_data_are_cleared(tmp_path: Path) -> None:
    # An old-style loop updates and zeroes through `.data` (another tensor, the same memory).
    source = """
    import torch
    w = torch.randn(3, 1, requires_grad=True)
    for step in range(3):
        loss = (torch.randn(8, 3) @ w).pow(2).mean()
        loss.backward()
        w.data.sub_(0.01 * w.grad.data)
        w.grad.data.zero_()
    """
    assert events_of(tmp_path, source) == []


# --- the tracer reads modules as nn.Module defines them ----------------------------------------


def test_a_module_that_redefines_parameters_is_read_without_calling_it(tmp_path: Path) -> None:
    # Meta-learning code redefines `parameters()` (here to return a ParameterList, which is
    # no iterator, and to count its calls): the tracer must neither fail on it nor call it.
    source = """
    import torch
    calls = []
    class Learner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vars = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(4, 3))])
        def forward(self, x):
            return x @ self.vars[0].t()
        def parameters(self, recurse=True):
            calls.append(1)
            return self.vars
    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Learner()
        def forward(self, x):
            return self.net(x)
    model = Outer()
    opt = torch.optim.SGD(list(model.net.parameters()), lr=0.1)
    for step in range(3):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    assert len(calls) == 1, calls
    """
    assert events_of(tmp_path, source) == []
