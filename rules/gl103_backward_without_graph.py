"""GL103 backward-without-graph."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.nodes import walk
from gradlint.analysis.values import NO, UNKNOWN, Value
from gradlint.rule import Report, Rule

_GRAD_FUNCTIONS = frozenset({"torch.autograd.grad", "torch.autograd.backward"})


class BackwardWithoutGraph(Rule):
    """Calls `backward()` (or `torch.autograd.grad`) on a tensor that has no graph.

    **Why is this bad?** A result computed under `torch.no_grad()` or `inference_mode()`,
    from detached values, or from a model whose parameters are all frozen, records no
    graph. Back-propagating it raises `RuntimeError: element 0 of tensors does not require
    grad and does not have a grad_fn`; silencing that with `loss.requires_grad = True`
    trains nothing.

    **Example**
    ```python
    with torch.no_grad():
        loss = criterion(model(x), y)
    loss.backward()
    ```

    **Use instead**: compute the loss with grad enabled.
    ```python
    loss = criterion(model(x), y)
    loss.backward()
    ```
    """

    code = "GL103"
    name = "backward-without-graph"
    message = "back-propagates a tensor that records no graph (made without grad), which raises"
    raises = ("does not require grad and does not have a grad_fn",)

    INVALID = [
        """\
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(3, 1)
pred = model(torch.randn(4, 3))
positives = pred > 10
if positives.any():
    loss = pred[positives].sum()
else:
    loss = torch.tensor(0.0)  # error
loss.backward()
""",
        """\
import torch
from torch import nn
net = nn.Linear(4, 3)
logits = net(torch.randn(5, 4))
pred = torch.argmax(logits, dim=1).float()  # error
loss = (pred - torch.ones(5)).pow(2).mean()
loss.backward()
""",
        """\
import torch
loss = torch.randn(3).pow(2).sum()  # error
loss.backward()
""",
        """\
import torch
model = torch.nn.Linear(4, 1)
with torch.no_grad():  # error
    loss = model(torch.randn(2, 4)).pow(2).mean()
loss.backward()
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 1)
model.requires_grad_(False)  # error
loss = model(torch.randn(2, 4)).sum()
loss.backward()
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
loss = (w.detach() * 2).sum()  # error
torch.autograd.grad(loss, w)
""",
        """\
import torch
model = torch.nn.Linear(4, 1)

@torch.no_grad()  # error
def step(x):
    loss = model(x).sum()
    loss.backward()

step(torch.randn(2, 4))
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for p in model.parameters():  # error
    p.requires_grad = False  # error
model[1] = nn.Identity()  # no parameters: every one left is frozen
loss = model(torch.randn(5, 4)).pow(2).mean()
loss.backward()
""",
    ]
    VALID = [
        """\
import torch
from torch import nn


class Manual(nn.Module):
    automatic_optimization = False

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def step(self, batch):
        loss = self.lin(batch).pow(2).mean()
        loss.backward()
        return loss.detach()


m = Manual()
out = m.step(torch.randn(5, 4))
if getattr(m, "automatic_optimization", True):  # False: this branch never runs
    out.backward()
""",
        """\
import torch
from dataclasses import dataclass


@dataclass
class Options:
    gradient: bool = True


class Solver:
    def __init__(self, field, options):
        self.field, self.options = field, options

    def run(self):
        if not self.options.gradient:
            with torch.no_grad():
                return self.integrate()
        return self.integrate()

    def integrate(self):
        return self.field(torch.ones(3))


def solve(field, options=None):
    return Solver(field, options or Options()).run()


def drive(amp):
    return lambda t: amp * t


warm = solve(drive(torch.tensor(1.0)), Options(gradient=False))
amp = torch.tensor(0.5, requires_grad=True)
out = solve(drive(amp), Options(gradient=True))  # another lambda, closing over `amp`
out.sum().backward()
assert amp.grad is not None
""",
        """\
import torch


class Recorder:
    def __init__(self):
        self.states = torch.zeros(2, 3)

    def save(self, i, y):
        self.states[i] = y  # the buffer takes in the graph of what it is given


w = torch.randn(3, requires_grad=True)
recorder = Recorder()
recorder.save(0, w * 2)
recorder.states.sum().backward()
assert w.grad is not None
""",
        """\
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Linear(3, 1)
pred = model(torch.randn(4, 3))
positives = pred > 10
if positives.any():
    loss = pred[positives].sum()
else:
    loss = pred.sum() * 0
loss.backward()
empty = pred[positives].sum() if positives.any() else torch.tensor(0.0)
if empty.requires_grad:
    empty.backward()
""",
        """\
import torch
model = torch.nn.Linear(4, 1)
with torch.no_grad():
    target = model(torch.randn(2, 4))
loss = (model(torch.randn(2, 4)) - target).pow(2).mean()
loss.backward()
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
model.requires_grad_(False)
model[1].requires_grad_(True)
loss = model(torch.randn(2, 4)).sum()
loss.backward()
""",
        """\
import torch
model = torch.nn.Linear(4, 1)

@torch.no_grad()
def evaluate(x):
    with torch.enable_grad():
        loss = model(x).sum()
        loss.backward()

evaluate(torch.randn(2, 4))
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for p in model.parameters():
    p.requires_grad = False
model[2] = nn.Linear(8, 3)  # a new head: Sequential registers it, and it trains
loss = model(torch.randn(5, 4)).logsumexp(-1).mean()
loss.backward()
""",
        """\
import torch
from torch import nn


def pretrained():
    net = nn.Module()
    net.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh())
    net.head = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 10))
    net.forward = lambda x: net.head(net.body(x))
    return net


def for_new_task(classes):
    net = pretrained()
    net.requires_grad_(False)
    net.head[2] = nn.Linear(16, classes)  # the container registers it: it trains
    return net


net = for_new_task(3)
opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
loss = net.forward(torch.randn(6, 4)).logsumexp(-1).mean()
loss.backward()
opt.step()
assert net.head[2].weight.grad is not None and net.body[0].weight.grad is None
""",
        """\
import torch
from torch import nn


class Adapter(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, 2)
        self.up = nn.Linear(2, base.out_features)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return torch.tanh(self.proj(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(Block() for _ in range(2))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


model = Net()
for p in model.parameters():
    p.requires_grad = False
for layer in model.layers:
    setattr(layer, "proj", Adapter(layer.proj))  # new trainable layers: a graph to train
loss = model(torch.randn(5, 4)).pow(2).mean()
loss.backward()
assert model.layers[0].proj.down.weight.grad is not None
assert model.layers[0].proj.base.weight.grad is None
""",
        """\
import torch
from torch import nn


class Lora(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base, self.down = base, nn.Linear(base.in_features, base.out_features)

    def forward(self, x):
        return self.base(x) + self.down(x)


def add_adapters(model):
    for p in model.parameters():
        p.requires_grad = False
    for module in list(model.modules()):  # a copy: setattr changes what modules() yields
        child = getattr(module, "proj", None)
        if isinstance(child, nn.Linear):
            setattr(module, "proj", Lora(child))
    return model


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.proj(x))


model = add_adapters(Net())
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
loss = model(torch.randn(5, 4)).pow(2).mean()
opt.zero_grad()
loss.backward()
opt.step()
assert model.proj.down.weight.grad is not None
""",
        """\
import torch
from torch import nn


class CachedLoss(nn.Module):
    # GradCache style: an inner backward to the embeddings, skipped where no gradient
    # is wanted (an evaluation step under no_grad).
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        reps = self.model(x)
        if not torch.is_grad_enabled():
            return reps.pow(2).mean()
        leaf = reps.detach().requires_grad_()
        inner = leaf.pow(2).mean()
        inner.backward()
        return (reps * leaf.grad).sum()


model = nn.Linear(4, 2)
loss_fn = CachedLoss(model)
loss_fn(torch.randn(3, 4)).backward()
with torch.no_grad():
    print(loss_fn(torch.randn(3, 4)).item())
assert model.weight.grad is not None
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for call in facts.calls:
            target = None
            if call.method == "backward" and call.receiver is not None:
                target = call.receiver
            elif call.qualname in _GRAD_FUNCTIONS and call.node.args:
                target = call.node.args[0].value
            if target is None:
                continue
            runs = facts.any_run(target)
            value = next((v for v in runs if v.is_tensor and v.requires_grad is NO), None)
            if value is None:
                constant = next(filter(_constant_on_a_branch, runs), None)
                if constant is not None and not _guarded(call.node, target, facts):
                    line = facts.position(call.node)[0]
                    yield Report(
                        facts.where_to_fix(constant.born, call.node),  # type: ignore[arg-type]
                        "makes the loss a constant without a graph on this branch: when it "
                        f"is taken, the backward at line {line} raises; build it from the "
                        "model's output (`pred.sum() * 0`)",
                    )
                continue
            # Point at what cut the graph (a no_grad block, a detach, an argmax, a freeze,
            # a tensor made without requires_grad) when that is the line to change.
            cause = value.cut if value.cut is not None else value.born
            if (
                value.born is not None
                and value.cut is not None
                and facts.grad_read(born=value.born)
            ):
                cause = value.born  # its .grad is read after: it was meant to require grad
            at = facts.where_to_fix(cause, call.node)
            line = facts.position(call.node)[0]
            entry = _call_into(cause, call.node, facts) if at is cause else None
            if entry is not None:
                # Grad turned off around a call whose own backward needs it (an attack or
                # a training step run during evaluation): re-enable it around that call.
                # Either line is the fix, depending on what the block is for.
                off = facts.position(cause)[0]  # type: ignore[arg-type]
                yield Report(
                    entry,
                    f"runs a backward (line {line}) while grad is disabled (line {off}), "
                    "which raises: wrap this call in `torch.enable_grad()`",
                )
                yield Report(
                    cause,  # type: ignore[arg-type]
                    f"disables grad around the call at line {facts.position(entry)[0]}, "
                    f"whose backward at line {line} then raises",
                )
                continue
            if at is call.node:
                yield Report(call.node)
            elif cause is value.born:
                yield Report(
                    at,
                    f"made without requires_grad=True, and nothing after records a "
                    f"graph: the backward at line {line} raises",
                )
            else:
                for node in facts.with_freeze_loop(at):
                    yield Report(
                        node, f"the graph is cut here, so the backward at line {line} raises"
                    )


def _constant_on_a_branch(value: Value) -> bool:
    """A loss that one branch made a constant (`torch.tensor(0.)` when there is nothing to
    match) and another computed: whether it has a graph depends on the branch."""
    return (
        value.is_tensor
        and value.requires_grad is UNKNOWN
        and isinstance(value.born, cst.Call)
        and value.cut is None
    )


def _guarded(call: cst.CSTNode, target: cst.BaseExpression, facts: Facts) -> bool:
    """The backward runs only under a test of the loss itself (`if loss.requires_grad:`,
    `if loss > 0:`): the test may be what keeps the constant out."""
    name = facts.module.code_for_node(target)
    return any(
        isinstance(part, (cst.Name, cst.Attribute))
        and facts.module.code_for_node(part) in (name, "requires_grad", "grad_fn")
        for test in facts.backward_conditions.get(call, ())
        for part in walk(test)
    )


def _call_into(cause: object, backward: cst.CSTNode, facts: Facts) -> cst.Call | None:
    """The call, in the code that turned grad off at `cause`, that leads to a backward in
    another function: the same call on every path that reaches the backward."""
    if not isinstance(cause, (cst.With, cst.Expr)):
        return None
    home = facts.scope.get(cause)
    if facts.scope.get(backward) is home:
        return None
    found: set[cst.Call] = set()
    for path in facts.backward_paths.get(backward, ()):
        entry = next((call for call in path if facts.scope.get(call) is home), None)
        if entry is not None:
            found.add(entry)
    return found.pop() if len(found) == 1 else None
