"""The tracer names the root of a crash one step out from the failing line: a setting's
default that a helper tested, a helper's `return`, the call that led down to the change,
a type test that let a tensor through, a method without its sibling's decorator. Each
buggy program really raises under PyTorch (`explained` runs it plainly first); each
look-alike runs clean, with no event."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

from gradlint.runtime_check.runner import run_program  # noqa: E402
from helpers import explained, write  # noqa: E402

NO_GRAPH = "does not require grad and does not have a grad_fn"
FREED = "backward through the graph a second time"
IN_PLACE = "modified by an inplace operation"


def clean(tmp_path: Path, source: str) -> None:
    """A look-alike: it runs to the end, and the tracer reports nothing."""
    import textwrap

    script = write(tmp_path / "ok.py", textwrap.dedent(source).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0, report
    assert report.events == [] and not report.faults


# --- GL102: a view of a leaf --------------------------------------------------------------

VIEWED = """
import torch
table = torch.zeros(2, 3, requires_grad=True)
flat = table.reshape(6){fix}
flat[0] = 1.0
"""


def test_a_view_of_a_leaf_changed_in_place_is_named_where_the_view_is_made(
    tmp_path: Path,
) -> None:
    events = explained(tmp_path, VIEWED.format(fix=""), "a view of a leaf Variable", "GL102")
    assert ".clone()" in events[3]


def test_a_copy_of_the_view_changed_in_place_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, VIEWED.format(fix=".clone()"))


PRIORS = """
import torch
bias = torch.nn.Parameter(torch.zeros(6))
grid = bias.view(2, 3){fix}
grid[:, 1] += 0.5
"""


def test_a_view_of_a_view_of_a_leaf_is_named_where_the_first_view_is_made(
    tmp_path: Path,
) -> None:
    events = explained(tmp_path, PRIORS.format(fix=""), "a view of a leaf Variable", "GL102")
    assert ".detach()" in events[3]


def test_the_detached_view_changed_in_place_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, PRIORS.format(fix=".detach()"))


# --- GL102: requires_grad turned off only after the change --------------------------------

POSITION_CODES = """
import torch
def fill_codes(out):
    {before}out[:, 0::2] = torch.sin(torch.arange(6.0)).view(2, 3)
    out.requires_grad = False
table = torch.nn.Embedding(2, 6)
fill_codes(table.weight)
"""


def test_requires_grad_turned_off_after_the_change_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path, POSITION_CODES.format(before=""), "a view of a leaf Variable", "GL102"
    )
    assert "before the change" in events[4]


def test_requires_grad_turned_off_before_the_change_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, POSITION_CODES.format(before="out.requires_grad = False\n    "))


def test_a_view_made_under_no_grad_then_changed_is_no_fault_of_the_tracer(
    tmp_path: Path,
) -> None:
    # Reading the graph node of such a view raises; the program's next use says why.
    source = """
    import torch
    base = torch.zeros(4, requires_grad=True).clone()
    with torch.no_grad():
        view = base[:2]
    base.mul_(2)
    with torch.no_grad():
        view.fill_(1.0)
    """
    report = run_program(str(write(tmp_path / "views.py", textwrap.dedent(source))), [])
    assert report.exit_code == 0 and not report.faults


# --- GL102: a helper that only edits weights -----------------------------------------------

FOLD = """
import torch
conv, scale = torch.nn.Linear(3, 3), torch.rand(3)
{decorator}
def fold(layer, factor):
    folded = torch.nn.Linear(3, 3)
    folded.bias[:] = layer.bias * factor
    return folded
fused = fold(conv, scale)
"""


def test_a_helper_that_edits_weights_in_place_is_named_at_its_def(tmp_path: Path) -> None:
    events = explained(tmp_path, FOLD.format(decorator=""), "a leaf Variable", "GL102")
    assert "@torch.no_grad()" in events[4]


def test_the_helper_under_no_grad_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, FOLD.format(decorator="@torch.no_grad()"))


def test_a_training_function_that_updates_in_place_is_not_named_at_its_def(
    tmp_path: Path,
) -> None:
    # It runs a backward: `@torch.no_grad()` over it would stop training; the update is
    # the place (`with torch.no_grad():` around it).
    source = """
    import torch
    def train_step(w, x):
        loss = (w * x).sum()
        loss.backward()
        w -= 0.1 * w.grad
    train_step(torch.randn(3, requires_grad=True), torch.randn(3))
    """
    events = explained(tmp_path, source, "a leaf Variable", "GL102")
    assert 2 not in events and 5 in events


# --- GL105: what let an integer tensor reach requires_grad ---------------------------------

STAGE_OUTPUTS = """
import torch
def trainable(value):
    if isinstance(value, torch.Tensor){test}:
        value.requires_grad_(True)
    return value
hidden = torch.randn(2, 3)
mask = torch.ones(2, 3, dtype=torch.long)
outputs = [trainable(v) for v in (hidden, mask)]
"""


def test_a_type_test_that_lets_an_integer_tensor_through_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path,
        STAGE_OUTPUTS.format(test=""),
        "floating point",
        "GL105",
    )
    assert "is_floating_point()" in events[3]


def test_a_type_test_that_checks_the_dtype_too_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, STAGE_OUTPUTS.format(test=" and value.is_floating_point()"))


CONDITIONS = """
import torch
hidden = torch.randn(2, 3)
mask = torch.ones(2, 3, dtype=torch.long)
for cond in (hidden, None, mask):
    if cond is not None{test}:
        cond.requires_grad_(True)
"""


def test_a_guard_in_a_loop_over_mixed_items_is_named(tmp_path: Path) -> None:
    events = explained(tmp_path, CONDITIONS.format(test=""), "floating point", "GL105")
    assert "is_floating_point()" in events[5]


def test_a_guard_that_checks_the_dtype_too_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, CONDITIONS.format(test=" and cond.dtype.is_floating_point"))


COPIED_ROWS = """
import torch
table = torch.nn.Embedding(5, 3)
table.requires_grad_(False)
reference = torch.nn.Embedding(5, 3)
{block}table.weight[0] = reference.weight[1].clone()
for p in table.parameters():
    p.requires_grad = True
"""


def test_a_parameter_written_into_with_a_graph_is_named_where_it_is_written(
    tmp_path: Path,
) -> None:
    events = explained(tmp_path, COPIED_ROWS.format(block=""), "leaf variables", "GL105")
    assert "torch.no_grad()" in events[5]


def test_rows_written_under_no_grad_are_clean(tmp_path: Path) -> None:
    clean(tmp_path, COPIED_ROWS.format(block="with torch.no_grad(): "))


# --- GL107: state kept on a module, computed by a helper with autograd on -----------------

CACHED_SCALE = """
import torch
{decorator}
def scale_of(weight):
    return 1.0 / weight.abs().max()
class Scaled(torch.nn.Linear):
    def __init__(self):
        super().__init__(3, 3)
        self.scale = None
    def forward(self, x):
        if self.scale is None:
            self.scale = scale_of(self.weight)
        return super().forward(x) * self.scale
layer = Scaled()
for _ in range(2):
    layer(torch.randn(4, 3)).sum().backward()
"""


def test_a_helper_that_computes_state_kept_across_steps_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path, CACHED_SCALE.format(decorator=""), "backward through the graph", "GL107"
    )
    assert "@torch.no_grad()" in events[3]


def test_the_helper_under_no_grad_is_clean_for_state(tmp_path: Path) -> None:
    clean(tmp_path, CACHED_SCALE.format(decorator="@torch.no_grad()"))


# --- GL103: a function that differentiates its own graph, called with autograd off --------

FORCE_FIELD = """
import torch
net = torch.nn.Linear(2, 1)
def field(x):
    {grad_on}x = x.clone().requires_grad_(True)
    {indent}energy = net(x).sum()
    {indent}return torch.autograd.grad(energy, x)[0]
with torch.no_grad():
    force = field(torch.randn(3, 2))
"""


def test_a_derivative_taken_inside_a_no_grad_caller_is_named_where_it_is_computed(
    tmp_path: Path,
) -> None:
    source = FORCE_FIELD.format(grad_on="", indent="")
    events = explained(tmp_path, source, "does not require grad", "GL103")
    assert "torch.enable_grad()" in events[5]


def test_a_derivative_under_enable_grad_is_clean(tmp_path: Path) -> None:
    source = FORCE_FIELD.format(grad_on="with torch.enable_grad():\n        ", indent="    ")
    clean(tmp_path, source)


# --- GL101: a model run only for inference, its parameters still trainable ---------------

LOADED_DETECTOR = """
import numpy as np
import torch
def load_detector():
    detector = torch.nn.Linear(4, 5).eval(){freeze}
    return detector
def track(boxes):
    return np.asarray(boxes).sum()
model = load_detector()
for _ in range(2):
    track(model(torch.rand(3, 4)))
"""


def test_a_model_used_only_for_inference_is_named_where_it_is_bound(tmp_path: Path) -> None:
    events = explained(tmp_path, LOADED_DETECTOR.format(freeze=""), "requires grad", "GL101")
    assert "requires_grad_(False)" in events[4] and "requires_grad_(False)" in events[8]


def test_a_model_frozen_where_it_is_loaded_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, LOADED_DETECTOR.format(freeze=".requires_grad_(False)"))


# --- GL103: a helper that picks the grad mode of a block ---------------------------------

PICKED_MODE = """
import contextlib
import torch
class Backend:
    def __init__(self, model):
        self.model = model
    def _mode(self):
        return {mode}
    def run(self, x):
        with self._mode():
            return self.model(x)
def normals(points):
    points = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(points).sum(), points)
    return grad
net = torch.nn.Linear(3, 1)
print(Backend(normals).run(torch.randn(4, 3)).shape)
"""


def test_the_return_of_a_helper_that_picks_no_grad_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path, PICKED_MODE.format(mode="torch.no_grad()"), "does not require grad", "GL103"
    )
    assert "nullcontext()" in events[7]


def test_a_helper_that_picks_a_null_context_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, PICKED_MODE.format(mode="contextlib.nullcontext()"))


# --- GL103: a freezing default left by a call that forwards `**kwargs` --------------------

PRETRAINED = """
import torch
class Pretrained(torch.nn.Module):
    def __init__(self, layer, freeze_params=True):
        super().__init__()
        self.layer = layer
        if freeze_params:
            self.layer.requires_grad_(False)
    @classmethod
    def from_hparams(cls, size, **kwargs):
        return cls(torch.nn.Linear(size, 1), **kwargs)
model = Pretrained.from_hparams(3{passed})
model.layer(torch.randn(2, 3)).sum().backward()
"""


def test_a_default_left_by_a_call_that_forwards_kwargs_is_named_further_out(
    tmp_path: Path,
) -> None:
    events = explained(tmp_path, PRETRAINED.format(passed=""), NO_GRAPH, "GL103")
    assert "`freeze_params`" in events[10] and "`freeze_params`" in events[11]


def test_the_setting_passed_through_kwargs_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, PRETRAINED.format(passed=", freeze_params=False"))


# --- GL103: a layer whose base class runs it with autograd off ----------------------------

NON_TRAINABLE_BASE = """
import torch
class Frozen(torch.nn.Module):
    def __call__(self, *args):
        with torch.no_grad():
            return super().__call__(*args)
class Trainable(torch.nn.Module):
    pass
class Scale({base}):
    def forward(self, x):
        return x / x.norm()
encoder = torch.nn.Linear(3, 3)
out = Scale()(encoder(torch.randn(2, 3)))
out.sum().backward()
"""


def test_a_layer_whose_base_turns_autograd_off_is_named_at_its_class(tmp_path: Path) -> None:
    events = explained(tmp_path, NON_TRAINABLE_BASE.format(base="Frozen"), NO_GRAPH, "GL103")
    assert "`Frozen`" in events[8]


def test_a_layer_with_a_trainable_base_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, NON_TRAINABLE_BASE.format(base="Trainable"))


# --- GL103 / GL109: a setting at its default that a call after a freeze tested ------------

ADAPTED = """
from dataclasses import dataclass
import torch

@dataclass
class Config:
    adapt: tuple = {adapt}

class Adapter(torch.nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.extra = torch.nn.Linear(base.out_features, base.out_features)

    def forward(self, x):
        return self.extra(self.base(x))

def add_adapters(model, names):
    for name, child in list(model.named_children()):
        if name in names:
            setattr(model, name, Adapter(child))

def main(cfg):
    model = torch.nn.Sequential()
    model.add_module("proj", torch.nn.Linear(3, 3))
    model.requires_grad_(False)
    add_adapters(model, cfg.adapt)
    {train}

main(Config())
"""
BACKWARD = "model(torch.randn(4, 3)).sum().backward()"
OPTIMIZER = "torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)"


def test_a_setting_left_empty_after_a_freeze_is_named_at_its_default(tmp_path: Path) -> None:
    source = ADAPTED.format(adapt="()", train=BACKWARD)
    events = explained(tmp_path, source, NO_GRAPH, "GL103")
    assert "its default here (())" in events[6] and "made nothing trainable" in events[6]
    assert 25 in events  # the freeze


def test_a_setting_that_matches_nothing_is_named_at_its_default(tmp_path: Path) -> None:
    source = ADAPTED.format(adapt='("to_q",)', train=OPTIMIZER)
    events = explained(tmp_path, source, "empty parameter list", "GL109")
    assert "matched nothing to train" in events[6]


def test_a_setting_that_matches_a_layer_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, ADAPTED.format(adapt='("proj",)', train=BACKWARD))


# --- GL107: what carries a freed graph down to the backward ---------------------------------

RECEIVED = """
import torch
net = torch.nn.Linear(3, 2)
before = [p.detach().clone() for p in net.parameters()]
(net(torch.randn(4, 3)).sum() * 0.5).backward()
store = {{"client": [torch.tanh(b - p) for p, b in zip(net.parameters(), before)]}}
def distance(fake, real):
    return sum(((f - r) ** 2).sum() for f, r in zip(fake, real))
def attack(real):
    guess = torch.randn(2, 3, requires_grad=True)
    for step in range(2):
        distance([guess, guess[:, 0]], real).backward()
received = store["client"]{fix}
attack(received)
"""


def test_a_list_that_carries_a_freed_graph_is_named_where_it_is_taken(tmp_path: Path) -> None:
    events = explained(tmp_path, RECEIVED.format(fix=""), FREED, "GL107")
    assert "`received`" in events[12]


def test_the_list_taken_detached_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, RECEIVED.format(fix="\nreceived = [g.detach() for g in received]"))


TUNED = """
import torch
def tune(model):
    x = torch.rand(1, 2, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)
    for step in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    return x
model = torch.nn.Linear(2, 1)
data = torch.rand(3, 2)
for round in range(3):
    fit = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        fit.zero_grad()
        model(data).pow(2).mean().backward()
        fit.step()
    best = tune(model){fix}
    data = torch.cat([data, best * 2])
"""


def test_a_tuned_input_taken_with_its_graph_is_named_where_it_is_taken(tmp_path: Path) -> None:
    events = explained(tmp_path, TUNED.format(fix=""), FREED, "GL107")
    assert "`best`" in events[18]


def test_a_tuned_input_taken_detached_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, TUNED.format(fix=".detach()"))


# --- GL103: `use_reentrant` given in a dict of settings ------------------------------------

REENTRANT = """
import torch
from torch.utils.checkpoint import checkpoint
SETTINGS = {{"use_reentrant": {reentrant}}}
class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.layer = torch.nn.Linear(4, 4)

    def forward(self, ids):
        hidden = self.embed(ids)
        return checkpoint(self.layer, hidden, **SETTINGS)
model = Model()
model.embed.requires_grad_(False)
model(torch.tensor([1, 2])).sum().backward()
"""


def test_use_reentrant_from_a_dict_of_settings_is_named_there(tmp_path: Path) -> None:
    events = explained(tmp_path, REENTRANT.format(reentrant=True), NO_GRAPH, "GL103")
    assert "use_reentrant" in events[3]


def test_a_non_reentrant_checkpoint_from_a_dict_of_settings_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, REENTRANT.format(reentrant=False))


# --- GL107: a helper's return, state read straight from `self` ----------------------------

CENTROIDS = """
import torch
def centroids(net, x):
    means = net(x).mean(0)
    return means{fix}
net = torch.nn.Linear(3, 2)
x = torch.randn(8, 3)
kept = None
for step in range(2):
    if kept is None:
        kept = centroids(net, x)
    loss = (net(x) - kept).pow(2).mean()
    loss.backward()
"""


def test_a_helpers_return_kept_past_a_backward_is_named(tmp_path: Path) -> None:
    events = explained(tmp_path, CENTROIDS.format(fix=""), FREED, "GL107")
    assert "returns the part made at line 3" in events[4]


def test_a_helpers_detached_return_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, CENTROIDS.format(fix=".detach()"))


STATEFUL = """
import torch
class Predictor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = torch.nn.GRU(3, 3, batch_first=True)
        self.state = None

    def forward(self, x):
        out, state = self.cell(x, self.state)
        self.state = state{fix}
        return out
model = Predictor()
for chunk in range(2):
    model(torch.randn(2, 4, 3)).sum().backward()
"""


def test_state_read_straight_from_self_is_named_where_it_is_kept(tmp_path: Path) -> None:
    events = explained(tmp_path, STATEFUL.format(fix=""), FREED, "GL107")
    assert "keeps `self.state` for the next call" in events[10]


def test_state_kept_detached_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, STATEFUL.format(fix=".detach()"))


# --- GL108: an item of a kept dict, a helper's default, the calls down to a change ---------

CACHED = """
import torch
class Solver:
    def __init__(self):
        self.net = torch.nn.Linear(3, 3)
        self.critic = torch.nn.Linear(3, 1)
        params = [*self.net.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.SGD(params, lr=0.1)
        self.cache = {{}}

    def net_step(self, x):
        z = self.net(x)
        score = self.critic(z)
        self.opt.zero_grad()
        score.sum().backward(retain_graph=True)
        self.opt.step()
        self.cache = {{"z": z, "score": score}}

    def critic_step(self, x):
        score = {take}
        score.pow(2).sum().backward()

solver = Solver()
x = torch.randn(4, 3)
solver.net_step(x)
solver.critic_step(x)
"""


def test_an_item_of_a_kept_dict_is_named_where_it_is_taken(tmp_path: Path) -> None:
    source = CACHED.format(take='self.cache["score"]')
    events = explained(tmp_path, source, IN_PLACE, "GL108")
    assert "hands the part made at line" in events[19] and "`score`" in events[19]


def test_a_score_computed_anew_from_the_kept_dict_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, CACHED.format(take='self.critic(self.cache["z"].detach())'))


BLOCKS = """
import torch
def block(width, inplace={inplace}):
    return [torch.nn.Linear(width, width), torch.nn.Sigmoid(), torch.nn.ReLU(inplace=inplace)]
model = torch.nn.Sequential(*block(3), *block(3))
model(torch.randn(4, 3)).sum().backward()
"""


def test_an_in_place_layer_made_by_a_helpers_default_is_named_at_the_default(
    tmp_path: Path,
) -> None:
    # ReLU(inplace) right after Sigmoid changes the output Sigmoid saved for backward.
    events = explained(tmp_path, BLOCKS.format(inplace=True), IN_PLACE, "GL108")
    assert 2 in events


def test_a_helper_whose_layers_are_not_in_place_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, BLOCKS.format(inplace=False))


REFIT = """
import torch
class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3, 3))

    def forward(self, x):
        return x @ self.weight

    @torch.no_grad()
    def refit(self):
        self.weight.mul_(0.5)

def step(layer, opt, x):
    loss = layer(x).pow(2).sum()
    {first}
    opt.zero_grad()
    loss.backward()
    {second}
    opt.step()

layer = Layer()
opt = torch.optim.SGD(layer.parameters(), lr=0.1)
step(layer, opt, torch.randn(2, 3, requires_grad=True))
"""


def test_the_call_that_leads_down_to_an_in_place_change_is_named(tmp_path: Path) -> None:
    source = REFIT.format(first="layer.refit()", second="")
    events = explained(tmp_path, source, IN_PLACE, "GL108")
    assert 12 in events  # the change, inside the helper
    assert "call it after that backward" in events[16]


def test_the_same_call_after_the_backward_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, REFIT.format(first="", second="layer.refit()"))


# --- GL109: a name that keeps a one-pass iterator of parameters ----------------------------

ENGINE = """
import torch
class Engine:
    def __init__(self, model, params):
        params = {keep}
        self.count = sum(p.numel() for p in params)
        self.optimizer = torch.optim.SGD(params, lr=0.1)
Engine(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3).parameters())
"""


def test_a_name_that_keeps_a_one_pass_iterator_is_named(tmp_path: Path) -> None:
    events = explained(tmp_path, ENGINE.format(keep="params"), "empty parameter list", "GL109")
    assert "list(...)" in events[4]


def test_a_name_that_keeps_a_list_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, ENGINE.format(keep="list(params)"))


# --- GL109: a one-pass iterator made right in the call to a helper that goes through it ---

BUILDER = """
import torch
def build(params, lr):
    if not any(p.is_sparse for p in params):
        print("dense parameters")
    return torch.optim.Adam(params, lr=lr)
model = torch.nn.Embedding(10, 4)
optimizer = build({given}, lr=0.1)
"""


def test_an_iterator_made_in_the_call_to_a_helper_that_uses_it_up_is_named(
    tmp_path: Path,
) -> None:
    events = explained(
        tmp_path, BUILDER.format(given="model.parameters()"), "empty parameter list", "GL109"
    )
    assert "list(...)" in events[7]


def test_a_list_made_in_the_call_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, BUILDER.format(given="list(model.parameters())"))


# --- GL109: weights registered as buffers under names made at run time, on a submodule -----

CONVERTED = """
import torch
class Weights(torch.nn.Module):
    def add(self, key, value):
        self.{register}(key.replace("/", "_"), value)
class Converted(torch.nn.Module):
    def __init__(self, tensors):
        super().__init__()
        self.weights = Weights()
        for key, value in tensors.items():
            self.weights.add(key, value)
    def forward(self, x):
        return x @ self.weights.dense_kernel
model = Converted({{"dense/kernel": torch.randn(3, 2)}})
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model(torch.randn(4, 3)).sum().backward()
optimizer.step()
"""


def test_weights_registered_as_buffers_under_made_names_are_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path, CONVERTED.format(register="register_buffer"), "empty parameter list", "GL109"
    )
    assert "nn.Parameter" in events[4]


def test_weights_registered_as_parameters_are_clean(tmp_path: Path) -> None:
    source = CONVERTED.format(register="register_parameter").replace(
        "value)\n", "torch.nn.Parameter(value))\n", 1
    )
    clean(tmp_path, source)


# --- GL101: a method without the decorator its sibling has --------------------------------

DETECTOR = """
import torch
class Detector:
    def __init__(self):
        self.model = torch.nn.Linear(4, 2).eval()

    @torch.inference_mode()
    def one(self, image):
        return self.model(image[None])

    {decorator}
    def many(self, images):
        return self.model(images)

detector = Detector()
print(detector.one(torch.randn(4)).numpy())
print(detector.many(torch.randn(3, 4)).numpy())
"""


def test_a_method_without_its_siblings_decorator_is_named(tmp_path: Path) -> None:
    events = explained(tmp_path, DETECTOR.format(decorator=""), "requires grad", "GL101")
    assert "`one` beside it runs under the decorator at line 6" in events[11]


def test_a_method_with_the_decorator_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, DETECTOR.format(decorator="@torch.inference_mode()"))


# --- GL103 / GL106: cuts through several results, decorators made by a helper --------------

WRAPPER = """
import torch
class Wrapper:
    def __init__(self, model):
        self.model = model

    {decorator}
    def __call__(self, x):
        return self.model(x)

patch = torch.rand(2, 3, requires_grad=True)
detector = Wrapper(torch.nn.Linear(3, 4))
score = detector(patch).max(dim=1).values.mean()
score.backward()
"""


def test_a_cut_is_followed_through_an_op_with_several_results(tmp_path: Path) -> None:
    events = explained(tmp_path, WRAPPER.format(decorator="@torch.no_grad()"), NO_GRAPH, "GL103")
    assert "autograd is off inside this block" in events[6]


def test_an_op_with_several_results_on_a_graph_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, WRAPPER.format(decorator=""))


FUSED = """
import torch
def smart_inference_mode():
    def decorate(fn):
        return torch.inference_mode()(fn)
    return decorate

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Linear(3, 3)
        self.conv = torch.nn.Linear(3, 3)
        self.fused = None

    def fuse(self):
        self.fused = torch.nn.Linear(3, 3)
        self.fused.weight = torch.nn.Parameter(self.conv.weight * 2)

    def forward(self, x):
        return (self.fused or self.conv)(self.stem(x))

@smart_inference_mode()
def validate(model):
    {fuse}
    return float(model(torch.randn(2, 3)).sum())

model = Net()
for epoch in range(2):
    model(torch.randn(2, 3)).sum().backward()
    validate(model)
"""


def test_a_decorator_made_by_a_helper_and_the_call_inside_it_are_named(tmp_path: Path) -> None:
    events = explained(tmp_path, FUSED.format(fuse="model.fuse()"), "Inference tensors", "GL106")
    assert 21 in events  # the decorator
    assert "calls from inside the grad-mode block at line 21" in events[23]


def test_validation_under_the_helpers_decorator_without_fusing_is_clean(tmp_path: Path) -> None:
    clean(tmp_path, FUSED.format(fuse="pass"))
