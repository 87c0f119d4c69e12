"""The tracer on a backward that finds no graph (GL103): where autograd was off and who
turned it off, and layers that are frozen from the start."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gradlint.runtime_check.runner import run_program  # noqa: E402
from helpers import explained, write  # noqa: E402

NO_GRAPH = "does not require grad and does not have a grad_fn"

# A framework that runs the user's evaluation hook under its own `no_grad`; the hook fits a
# probe, whose loss then has no graph.
FRAMEWORK = """
import torch

def run_evaluation(hook, batch):
    with torch.no_grad():
        return hook(batch)

def fit_probe(features, labels):
    probe = torch.nn.Linear(4, 2)
    loss = torch.nn.functional.cross_entropy(probe(features), labels)
    loss.backward()
    return loss.item()

def evaluate(batch):
    features, labels = batch
    return fit_probe(features, labels){fix}

run_evaluation(evaluate, (torch.randn(6, 4), torch.randint(0, 2, (6,))))
"""


def test_a_hook_run_under_its_callers_no_grad_is_named_with_the_block(tmp_path: Path) -> None:
    found = explained(tmp_path, FRAMEWORK.format(fix=""), NO_GRAPH, "GL103")
    # The block, and the hook's call that runs the probe's training under it.
    assert 4 in found and 15 in found
    assert "enable_grad" in found[15] and "line 4" in found[15]


def test_a_hook_that_turns_autograd_back_on_is_silent(tmp_path: Path) -> None:
    fixed = FRAMEWORK.format(fix="").replace(
        "    return fit_probe(features, labels)",
        "    with torch.enable_grad():\n        return fit_probe(features, labels)",
    )
    script = write(tmp_path / "fixed.py", textwrap.dedent(fixed).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


CHECKPOINTED = """
import torch
from torch.utils.checkpoint import checkpoint

embed = torch.nn.Embedding(10, 4)
embed.weight.requires_grad_(False)
layer = torch.nn.Linear(4, 4)

def encode(ids):
    h = embed(ids)
    return checkpoint(layer, h, use_reentrant={reentrant})

encode(torch.tensor([1, 2, 3])).sum().backward()
"""


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")  # PyTorch's, rightly
def test_a_reentrant_checkpoint_of_an_input_without_grad_is_named(tmp_path: Path) -> None:
    # The reentrant checkpoint runs the layer under no_grad and gives its output a graph
    # only if an input requires grad; the frozen embedding's output does not.
    found = explained(tmp_path, CHECKPOINTED.format(reentrant=True), NO_GRAPH, "GL103")
    assert 10 in found  # the call into the checkpoint
    assert "autograd off" in found[10] and "checkpoint.py" in found[10]
    assert 9 in found  # and the input that does not require grad
    assert "enable_input_require_grads" in found[9]


def test_a_non_reentrant_checkpoint_is_silent(tmp_path: Path) -> None:
    script = write(tmp_path / "fine.py", CHECKPOINTED.format(reentrant=False))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


CHECKPOINTED_MODEL = """
from dataclasses import dataclass
import torch
from torch.utils.checkpoint import checkpoint

@dataclass
class Config:
    use_reentrant: bool = True

class Tower(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.layer = torch.nn.Linear(4, 4)
        self.cfg, self.checkpointing = cfg, False
    def gradient_checkpointing_enable(self):
        self.checkpointing = True
    def forward(self, ids):
        h = self.embed(ids)
        if self.checkpointing:
            return checkpoint(self.layer, h, use_reentrant=self.cfg.use_reentrant)
        return self.layer(h)

def freeze_base(model):
    for p in model.parameters():
        p.requires_grad_(False)
    model.layer.bias.requires_grad_(True)

model = Tower(Config())
freeze_base(model)
model.gradient_checkpointing_enable()
model(torch.tensor([1, 2, 3])).sum().backward()
"""


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
def test_a_reentrant_checkpoint_names_the_freeze_the_switch_and_the_setting(
    tmp_path: Path,
) -> None:
    found = explained(tmp_path, CHECKPOINTED_MODEL, NO_GRAPH, "GL103")
    assert 7 in found and "`use_reentrant`, by its default here" in found[7]  # the setting
    assert 25 in found and "froze the parameters" in found[25]  # the freeze, and its call
    assert 29 in found and "froze the parameters" in found[29]
    assert 30 in found and "turns on reentrant checkpointing" in found[30]


PRETRAINED = """
import torch

class Scorer(torch.nn.Module):
    def __init__(self, users, items):
        super().__init__()
        self.users = torch.nn.Embedding.from_pretrained(users, freeze={freeze})
        self.items = torch.nn.Embedding.from_pretrained(items)

    def forward(self, user, item):
        return (self.users(user) * self.items(item)).sum(-1)

model = Scorer(torch.randn(5, 3), torch.randn(7, 3))
score = model.forward(torch.tensor([0, 1]), torch.tensor([2, 3]))
torch.nn.functional.mse_loss(score, torch.ones(2)).backward()
"""


def test_layers_frozen_from_the_start_are_named_where_they_are_set(tmp_path: Path) -> None:
    # `from_pretrained` freezes by default, without a `requires_grad = False` to see.
    found = explained(tmp_path, PRETRAINED.format(freeze=True), NO_GRAPH, "GL103")
    assert sorted(found) == [6, 7, 14]
    assert "cut at line 6, 7" in found[14] and "all frozen" in found[6]


def test_a_model_with_one_trainable_layer_is_silent(tmp_path: Path) -> None:
    script = write(tmp_path / "fine.py", PRETRAINED.format(freeze=False))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


MIXER = """
import torch

class Mixer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(1)) for _ in range(3))

    def forward(self, preds):
        weights = {weights}
        return (weights.softmax(0).unsqueeze(1) * preds).sum(0)

mixer = Mixer()
loss = (mixer(torch.randn(3, 5)) - torch.randn(5)).pow(2).mean()
loss.backward()
"""


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")  # PyTorch's
def test_numbers_taken_out_of_parameters_are_named(tmp_path: Path) -> None:
    # `torch.Tensor([...])` of parameters reads each as a float: the graph ends there,
    # though no torch function made the new tensor where a tracer could see it.
    weights = "torch.Tensor([p for p in self.logits])"
    found = explained(tmp_path, MIXER.format(weights=weights), NO_GRAPH, "GL103")
    assert sorted(found) == [9, 13, 14]  # the cut, the loss computed from it, the backward
    assert "plain numbers" in found[9] and "cut at line 9" in found[14]


def test_parameters_stacked_with_their_graph_are_silent(tmp_path: Path) -> None:
    weights = "torch.stack([p.squeeze(0) for p in self.logits])"
    script = write(tmp_path / "fine.py", MIXER.format(weights=weights))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


# A trainer whose evaluation context is chosen by an option (Lightning's `inference_mode`
# default), and a model that needs autograd even while evaluated (forces as the gradient of
# an energy). `{context}` is how the trainer writes its block.
CHOSEN = """
import torch

class Trainer:
    def __init__(self, inference_mode=True):
        self.inference_mode = inference_mode

    def _context(self):
        return torch.inference_mode() if self.inference_mode else torch.no_grad()

    def validate(self, model, batches):
{context}

def energy_of(model, pos):
    return model(pos).sum()

def forces(model, pos):
    with torch.enable_grad():
        pos = pos.clone().requires_grad_(True)
        energy = energy_of(model, pos)
        return torch.autograd.grad(energy, pos)[0].sum().item()

trainer = Trainer(){fix}
print(trainer.validate(torch.nn.Linear(3, 1), [torch.randn(4, 3)]))
"""
IN_A_HELPER = (
    "        with self._context():\n            return [forces(model, b) for b in batches]"
)
BOUND = (
    "        ctx = torch.inference_mode() if self.inference_mode else torch.no_grad()\n"
    "        with ctx:\n            return [forces(model, b) for b in batches]"
)


@pytest.mark.parametrize("context, block", [(IN_A_HELPER, 11), (BOUND, 12)])
def test_a_block_chosen_by_an_option_names_where_the_object_was_made(
    tmp_path: Path, context: str, block: int
) -> None:
    found = explained(
        tmp_path, CHOSEN.format(context=context, fix=""), "does not require grad", "GL103"
    )
    made = block + 12  # `trainer = Trainer()`
    assert block in found and made in found
    assert "its settings chose the grad mode of the block" in found[made]
    # The call that runs the model under the block, where `enable_grad()` inside inference
    # mode turns nothing on: the advice says so.
    assert "cannot undo" in found[made - 3]


def test_a_block_chosen_by_an_option_set_right_is_silent(tmp_path: Path) -> None:
    fixed = CHOSEN.format(context=IN_A_HELPER, fix="").replace(
        "trainer = Trainer()", "trainer = Trainer(inference_mode=False)"
    )
    script = write(tmp_path / "fixed.py", textwrap.dedent(fixed).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


def test_a_block_written_as_such_names_no_maker(tmp_path: Path) -> None:
    source = CHOSEN.format(
        context="        with torch.inference_mode():\n"
        "            return [forces(model, b) for b in batches]",
        fix="",
    )
    found = explained(tmp_path, source, "does not require grad", "GL103")
    assert 11 in found and 23 not in found and 20 in found


def test_a_graph_cut_by_data_names_that_line(tmp_path: Path) -> None:
    source = """
    import torch
    model = torch.nn.Linear(3, 2)
    logits = model(torch.randn(4, 3)).data
    loss = logits.pow(2).mean()
    loss.backward()
    """
    found = explained(tmp_path, source, NO_GRAPH, "GL103")
    assert 3 in found


NO_GRAD_CACHE = """
import torch

class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.cached = None

    def forward(self, x):
        if self.cached is None:
            self.cached = self.proj(x)
        return self.cached

    def clear(self):
        self.cached = None

@torch.no_grad()
def evaluate(model, x):
    return model(x).sum().item()

model = Encoder()
x = torch.randn(3, 4)
evaluate(model, x)
{clear}
model(x).sum().backward()
"""


def test_a_cache_filled_under_no_grad_is_named_where_it_is_kept(tmp_path: Path) -> None:
    found = explained(tmp_path, NO_GRAD_CACHE.format(clear=""), NO_GRAPH, "GL103")
    assert 11 in found and "self.cached" in found[11]


def test_a_cache_cleared_after_the_no_grad_code_is_silent(tmp_path: Path) -> None:
    script = write(tmp_path / "fine.py", NO_GRAD_CACHE.format(clear="model.clear()"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


# An evaluation that turns autograd off by a call and back on at its end; a failing batch
# skips the second call, the trainer carries on, and the training loss has no graph.
SWITCHED = """
import torch

net = torch.nn.Linear(4, 2)

def evaluate(batches):
    torch.set_grad_enabled(False){guard}
    for x in batches:
        if x.shape[0] < 2:
            raise ValueError("a batch of one")
        net(x)
    torch.set_grad_enabled(True)

try:
    evaluate([torch.randn(1, 4)])
except ValueError:
    pass
{after}
net(torch.randn(3, 4)).sum().backward()
"""


def test_a_grad_mode_turned_off_by_a_call_and_left_off_is_named(tmp_path: Path) -> None:
    found = explained(tmp_path, SWITCHED.format(guard="", after=""), NO_GRAPH, "GL103")
    assert "use `with torch.no_grad():`" in found[6]
    assert "turned off by a call" in found[18]  # the forward that ran with it off


def test_a_grad_mode_turned_back_on_is_not_blamed_for_a_detach(tmp_path: Path) -> None:
    # Autograd was turned back on; the loss has no graph because of a `.detach()`.
    source = SWITCHED.format(guard="", after="torch.set_grad_enabled(True)").replace(
        ".sum().backward()", ".detach().sum().backward()"
    )
    found = explained(tmp_path, source, NO_GRAPH, "GL103")
    assert found and 6 not in found


# Which parts train is a command-line option; its default freezes everything.
OPTIONS = """
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--train-head", type=int, default={default})
args = parser.parse_args([])

body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
body.requires_grad_(False)
for p in head.parameters():
    p.requires_grad = bool(args.train_head)
head(body(torch.randn(3, 4))).sum().backward()
"""


def test_a_freeze_read_from_an_option_names_where_the_option_is_defined(tmp_path: Path) -> None:
    found = explained(tmp_path, OPTIONS.format(default=0), NO_GRAPH, "GL103")
    assert "the option `train_head`, as given or by its default here" in found[5]


def test_an_option_that_lets_the_head_train_is_silent(tmp_path: Path) -> None:
    script = write(tmp_path / "fine.py", textwrap.dedent(OPTIONS.format(default=1)).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


# --- GL103: the call that led to the cut, in the caller's terms -----------------------------

NO_GRAD_HELPER = """
import torch
class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)
        self.adapter = torch.nn.Linear(4, 4)
    def forward(self, x):
        return self.adapter(self.frozen(x))
    @torch.no_grad()
    def generate(self, x):
        return self.forward(x).argmax(-1, keepdim=True).float()
encoder = Encoder()
def embed(x):
    return encoder.{call}(x)
loss = embed(torch.randn(2, 4)).sum()
loss.backward()
"""


def test_a_call_of_a_no_grad_decorated_helper_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path, NO_GRAD_HELPER.format(call="generate"), "does not have a grad_fn", "GL103"
    )
    # the decorator, the call of the helper, the loss made from it, and the backward; not
    # the frozen layer
    assert sorted(events) == [9, 14, 15, 16]
    assert "calls generate(), which runs with autograd off" in events[14]


def test_the_forward_itself_trains(tmp_path: Path) -> None:
    script = write(tmp_path / "train.py", NO_GRAD_HELPER.format(call="forward"))
    assert run_program(str(script), []).events == []


DEFAULT_FREEZE = """
import torch
def load(state, trainable=False):
    net = torch.nn.Linear(3, 1)
    net.load_state_dict(state)
    if not trainable:
        for p in net.parameters():
            p.requires_grad = False
    return net
state = torch.nn.Linear(3, 1).state_dict()
net = load(state{given})
net(torch.randn(4, 3)).sum().backward()
"""


def test_a_freeze_behind_a_parameters_default_names_the_call_that_kept_it(
    tmp_path: Path,
) -> None:
    events = explained(
        tmp_path, DEFAULT_FREEZE.format(given=""), "does not have a grad_fn", "GL103"
    )
    assert "leaves `trainable` at its default (False) in this call" in events[10]


def test_a_freeze_behind_a_parameter_given_is_silent(tmp_path: Path) -> None:
    script = write(tmp_path / "train.py", DEFAULT_FREEZE.format(given=", trainable=True"))
    assert run_program(str(script), []).events == []


def test_a_loss_computed_from_what_a_helper_cut_names_its_assignment(tmp_path: Path) -> None:
    source = """
    import torch
    def postprocess(logits):
        return {"hard": logits.argmax(1).float(), "soft": logits.softmax(1)}
    def dice(pred):
        return 1 - pred.mean()
    net = torch.nn.Linear(3, 4)
    out = postprocess(net(torch.randn(2, 3)))
    loss = dice(out["hard"])
    loss.backward()
    """
    events = explained(tmp_path, source, "does not have a grad_fn", "GL103")
    assert sorted(events) == [3, 8, 9]  # the cut, the loss made from it, the backward
    assert "computes here what the backward at line 9 finds with no graph" in events[8]


def test_a_block_chosen_by_a_configs_default_names_the_default(tmp_path: Path) -> None:
    # A dataclass config whose field picks inference mode for the sanity validation; a
    # cache filled there is used by training later.
    source = """
    import dataclasses
    import torch
    @dataclasses.dataclass
    class Config:
        inference_mode: bool = True
    class Cached(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)
            self.kernel = None
        def forward(self, x):
            if self.kernel is None:
                self.kernel = self.fc.weight.exp()
            return self.fc(x) @ self.kernel
    class Trainer:
        def __init__(self, config):
            self.config = config
        def _eval_context(self):
            return torch.inference_mode() if self.config.inference_mode else torch.no_grad()
        def fit(self, model):
            with self._eval_context():
                model(torch.randn(2, 3))
            model(torch.randn(2, 3)).sum().backward()
    Trainer(Config()).fit(Cached())
    """
    found = explained(tmp_path, source, "Inference tensors cannot be saved", "GL106")
    assert "the setting `inference_mode`, by its default here" in found[5]
