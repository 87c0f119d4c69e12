"""GL303 frozen-params-in-optimizer."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import OptimizerMade
from gradlint.analysis.values import YES
from gradlint.rule import Report, Rule


class FrozenParamsInOptimizer(Rule):
    """Gives an optimizer the parameters of a module that was frozen before it was built.

    **Why is this bad?** `torch.optim` optimizers keep every parameter they are given in
    their `param_groups`, frozen or not. A frozen parameter gets no `.grad`, so the step
    skips it, but it is still iterated on every step and `zero_grad`, counted in the
    group, saved in the optimizer's `state_dict`, and, if its `.grad` is ever left as a
    tensor of zeros (`zero_grad(set_to_none=False)`), momentum and weight decay keep
    changing the "frozen" weights. The code usually meant to train only what it left
    trainable.

    **Example**
    ```python
    model.backbone.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ```

    **Use instead**: give the optimizer only the trainable parameters (or, for staged
    fine-tuning that unfreezes the backbone later, keep all of them on purpose).
    ```python
    model.backbone.requires_grad_(False)
    opt = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=1e-3)
    ```
    """

    code = "GL303"
    name = "frozen-params-in-optimizer"
    message = (
        "the optimizer is given frozen parameters, which it keeps and iterates for nothing; "
        "pass only the trainable ones (`if p.requires_grad`)"
    )

    INVALID = [
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.Adam(model.parameters(), lr=0.1)  # error
for _ in range(2):
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
assert any(not p.requires_grad for g in opt.param_groups for p in g["params"])
""",
        """\
import torch as T


class Net(T.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = T.nn.Linear(4, 8)
        self.head = T.nn.Linear(8, 2)
        for p in self.backbone.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.head(self.backbone(x).relu())


net = Net()
opt = T.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)  # error
trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
held = sum(p.numel() for g in opt.param_groups for p in g["params"])
assert held > trainable
""",
        """\
import torch
from torch import nn
teacher = nn.Linear(4, 2)
student = nn.Linear(4, 2)
teacher.requires_grad_(False)
opt = torch.optim.SGD(
    list(student.parameters()) + list(teacher.parameters()),  # error
    lr=0.1,
    momentum=0.9,
)
x = torch.randn(8, 4)
for _ in range(2):
    opt.zero_grad()
    (student(x) - teacher(x)).pow(2).mean().backward()
    opt.step()
assert any(p is teacher.weight for g in opt.param_groups for p in g["params"])
""",
    ]
    VALID = [
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
assert all(p.requires_grad for g in opt.param_groups for p in g["params"])
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for p in model[0].parameters():
    p.requires_grad = False
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.Adam(model.parameters(), lr=0.1)  # all of them: the backbone thaws later
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
        self.backbone = nn.Linear(4, 8)
        self.head = nn.Linear(8, 2)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))


net = Net()
opt = torch.optim.Adam(net.head.parameters(), lr=1e-3)
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model.requires_grad_(False)
model[2].requires_grad_(True)
opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        runs: dict[cst.Call, list[OptimizerMade]] = {}
        for made in facts.optimizers:
            runs.setdefault(made.node, []).append(made)
        for node, made_runs in runs.items():
            frozen = _frozen_on_every_run(made_runs)
            if not frozen:
                continue
            built = min(made.clock for made in made_runs)
            # Made trainable again after (a staged fine-tuning that thaws the backbone),
            # or somewhere we cannot place: the optimizer needs all of them then.
            if any(
                change.frozen is not YES and change.clock > built for change in facts.freeze_changes
            ):
                continue
            path, at = frozen[0]
            where = f", frozen at line {facts.position(at)[0]}" if at is not None else ""
            path = path.replace(".[]", "[...]")
            # Where the list was made (`params = list(model.parameters())`), else the
            # argument: the line that chooses what the optimizer gets.
            first = made_runs[0]
            target = first.params_made or first.params or node
            yield Report(
                target,
                f"the optimizer is given the frozen parameters of `{path}`{where}: it keeps "
                "them for nothing, and a leftover grad or a weight decay done by hand still "
                "changes them; pass only the trainable ones (`if p.requires_grad`)",
            )


def _frozen_on_every_run(
    runs: list[OptimizerMade],
) -> list[tuple[str, cst.CSTNode | None]]:
    """The frozen parts the optimizer was given on every run of its construction; none
    where any run kept only the trainable parameters."""
    if any(made.trainable_only or not made.frozen_parts for made in runs):
        return []
    common = set.intersection(*({path for path, _ in made.frozen_parts} for made in runs))
    return [(path, at) for path, at in runs[0].frozen_parts if path in common]
