"""GL207 param-missing-from-optimizer."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class ParamMissingFromOptimizer(Rule):
    """Makes parameters trainable after the optimizer was built without them.

    **Why is this bad?** An optimizer steps the tensors it was given when it was built,
    and no others. Built from the trainable parameters only (`filter(lambda p:
    p.requires_grad, ...)`), it never learns of a backbone unfrozen later: the backbone
    gets gradients, and stays as it was. A layer assigned after the optimizer was built
    (`model.fc = nn.Linear(...)`) is a new set of parameters the optimizer does not have
    either. Nothing raises; the unfrozen or new part simply never trains.

    **Example**
    ```python
    opt = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()))
    ...
    model.backbone.requires_grad_(True)
    ```

    **Use instead**: give the optimizer the new parameters, or build it again.
    ```python
    model.backbone.requires_grad_(True)
    opt.add_param_group({"params": model.backbone.parameters(), "lr": 1e-5})
    ```
    """

    code = "GL207"
    name = "param-missing-from-optimizer"
    message = (
        "makes parameters trainable that the optimizer built before does not have: they "
        "never change; add them with `add_param_group` or build the optimizer again"
    )

    INVALID = [
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
before = model[0].weight.clone()
for epoch in range(4):
    if epoch == 2:
        model[0].requires_grad_(True)  # error
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
assert model[0].weight.grad is not None
assert torch.equal(before, model[0].weight)  # unfrozen, and never stepped
""",
        """\
import torch as T


class Net(T.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = T.nn.Linear(4, 8)
        self.fc = T.nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.body(x).relu())


net = Net()
opt = T.optim.SGD(net.parameters(), lr=0.1)
net.fc = T.nn.Linear(8, 3)  # error
before = net.fc.weight.clone()
for _ in range(2):
    opt.zero_grad()
    net(T.randn(5, 4)).pow(2).mean().backward()
    opt.step()
assert T.equal(before, net.fc.weight)  # the new head never trains
""",
        """\
import torch
from torch import nn


class Trainer:
    def __init__(self):
        self.model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        for p in self.model[0].parameters():
            p.requires_grad = False
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(trainable, lr=0.1)

    def step(self, x):
        self.opt.zero_grad()
        self.model(x).pow(2).mean().backward()
        self.opt.step()

    def thaw(self):
        for p in self.model.parameters():  # error
            p.requires_grad = True


trainer = Trainer()
trainer.step(torch.randn(5, 4))
trainer.thaw()
before = trainer.model[0].weight.clone()
trainer.step(torch.randn(5, 4))
assert torch.equal(before, trainer.model[0].weight)
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def trainable_sgd(params, lr):
    return torch.optim.SGD([p for p in params if p.requires_grad], lr=lr)


def fit(opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()


for p in model[0].parameters():
    p.requires_grad_(False)
opt = trainable_sgd(model.parameters(), 0.1)
fit(opt, 2)
for p in model[0].parameters():  # error
    p.requires_grad_(True)
before = model[0].weight.clone()
fit(opt, 2)
assert torch.equal(before, model[0].weight)
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def trainable_sgd(params, lr):
    return torch.optim.SGD([p for p in params if p.requires_grad], lr=lr)


def fit(opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()


for p in model[0].parameters():
    p.requires_grad_(False)
opt = trainable_sgd(model.parameters(), 0.1)
fit(opt, 2)
for p in model[0].parameters():
    p.requires_grad_(True)
opt = trainable_sgd(model.parameters(), 0.1)
before = model[0].weight.clone()
fit(opt, 2)
assert not torch.equal(before, model[0].weight)
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
for epoch in range(4):
    if epoch == 2:
        model[0].requires_grad_(True)
        opt = optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.01)
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
for epoch in range(4):
    if epoch == 2:
        model[0].requires_grad_(True)
        opt.add_param_group({"params": model[0].parameters(), "lr": 0.01})
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.SGD(model.parameters(), lr=0.1)
for epoch in range(4):
    if epoch == 2:
        model[0].requires_grad_(True)
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
""",
        """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.body(x).relu())


net = Net()
net.fc = nn.Linear(8, 3)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
opt.zero_grad()
net(torch.randn(5, 4)).pow(2).mean().backward()
opt.step()
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
model[0].requires_grad_(False)
model[0].requires_grad_(True)
opt.zero_grad()
model(torch.randn(5, 4)).pow(2).mean().backward()
opt.step()
""",
        # A wrapper's forward only uses the layer `__init__` stored: it unfreezes nothing.
        """\
import torch
from torch import nn
class Wrap(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
    def forward(self, x):
        return self.model(x)
def trainable(model):
    for p in model.model[0].parameters():
        p.requires_grad = False
    return [p for p in model.parameters() if p.requires_grad]
model = Wrap(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)))
opt = torch.optim.SGD(trainable(model), lr=0.1)
before = model.model[0].weight.clone()
for _ in range(2):
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
assert torch.equal(before, model.model[0].weight)  # frozen, as meant
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        seen: set[cst.CSTNode] = set()
        for missed in facts.params_missed:
            # A loop over parameters whose whole body this is: the loop is the line.
            at = facts.with_freeze_loop(missed.node)[0]
            if at in seen:
                continue
            seen.add(at)
            line = facts.position(missed.optimizer)[0]
            what = (
                "assigns a new layer whose parameters the optimizer built at line {line} lacks: "
                "it never trains; build the optimizer after it, or `add_param_group` them"
                if missed.replaced
                else "makes trainable parameters that the optimizer built at line {line} "
                "left out (it kept only trainable ones): they never change; "
                "`add_param_group` them or build the optimizer again"
            )
            yield Report(at, what.format(line=line))
