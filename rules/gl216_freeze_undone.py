"""GL216 freeze-undone."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class FreezeUndone(Rule):
    """Makes parameters trainable again, wholesale, right after freezing them.

    **Why is this bad?** `model.requires_grad_(True)`, or a loop setting
    `p.requires_grad = True` on every parameter, thaws everything, including the part
    frozen a few lines before (or in the model's `__init__`). With nothing trained in
    between, the freeze does nothing: the "frozen" backbone trains with the rest, and
    forgets what it was pretrained on. (`model.train()` does not touch `requires_grad`;
    it is not needed to undo a freeze either.)

    **Example**
    ```python
    model.backbone.requires_grad_(False)
    model.requires_grad_(True)
    ```

    **Use instead**: make trainable only the part meant to train, or drop the line.
    ```python
    model.backbone.requires_grad_(False)
    model.head.requires_grad_(True)
    ```
    """

    code = "GL216"
    name = "freeze-undone"
    message = (
        "makes trainable again parameters frozen before, with nothing trained in between: "
        "the freeze does nothing; unfreeze only the part meant to train"
    )

    INVALID = [
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for p in model[0].parameters():
    p.requires_grad = False
model.requires_grad_(True)  # error
opt = torch.optim.SGD(model.parameters(), lr=0.1)
before = model[0].weight.clone()
model(torch.randn(5, 4)).pow(2).mean().backward()
opt.step()
assert not torch.equal(before, model[0].weight)  # the frozen layer trained
""",
        """\
import torch as T


class Net(T.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = T.nn.Linear(4, 8)
        self.head = T.nn.Linear(8, 2)
        self.backbone.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x).relu())


net = Net()
for p in net.parameters():  # error
    p.requires_grad = True
assert net.backbone.weight.requires_grad
""",
        """\
import torch
from torch import nn, optim


def unfreeze(module):
    for p in module.parameters():
        p.requires_grad = True


def main():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    unfreeze(model)  # error
    opt = optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(5, 4)).pow(2).mean().backward()
    assert model[0].weight.grad is not None


main()
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
keep_fixed = ("0.",)
for name, p in model.named_parameters():
    if name.startswith(keep_fixed):
        p.requires_grad = False
decay, no_decay = [], []
for name, p in model.named_parameters():
    p.requires_grad = True  # error
    (no_decay if name.endswith("bias") else decay).append(p)
assert model[0].weight.requires_grad  # the layer meant to stay fixed trains
""",
        """\
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def grow_labels(self, n):
        old = self.head
        self.head = nn.Linear(8, n)
        with torch.no_grad():
            self.head.weight[: old.out_features] = old.weight


tagger = Tagger()
tagger.requires_grad_(False)
tagger.grow_labels(5)  # error
assert tagger.head.weight.requires_grad  # the frozen tagger's head trains again
""",
    ]
    VALID = [
        """\
import torch
from torch import nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def grow_labels(self, n):
        old = self.head
        self.head = nn.Linear(8, n)
        with torch.no_grad():
            self.head.weight[: old.out_features] = old.weight


tagger = Tagger()
tagger.requires_grad_(False)
tagger.grow_labels(5)
tagger.head.requires_grad_(False)  # the program freezes what it re-made
assert not tagger.head.weight.requires_grad
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for name, p in model.named_parameters():
    p.requires_grad = True  # each parameter: trainable, unless it is picked to freeze
    if name.startswith("0."):
        p.requires_grad = False
assert not model[0].weight.requires_grad and model[2].weight.requires_grad
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model.requires_grad_(False)
model[2].requires_grad_(True)
assert not model[0].weight.requires_grad
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
opt = optim.SGD(model.parameters(), lr=0.1)
model[0].requires_grad_(False)
for _ in range(2):
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
model.requires_grad_(True)  # the head was trained alone first: now all of it
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
opt = optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    if epoch == 1:
        model[0].requires_grad_(True)
    opt.zero_grad()
    model(torch.randn(5, 4)).pow(2).mean().backward()
    opt.step()
""",
        """\
import torch
from torch import nn
G = nn.Linear(2, 3)
D = nn.Linear(3, 1)
opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
for _ in range(2):
    for p in D.parameters():
        p.requires_grad = True
    opt_d.zero_grad()
    D(G(torch.randn(4, 2)).detach()).mean().backward()
    opt_d.step()
    for p in D.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    (-D(G(torch.randn(4, 2)))).mean().backward()
    opt_g.step()
""",
        """\
import torch
from torch import nn
actor = nn.Linear(3, 2)
critic = nn.Linear(5, 1)
opt = torch.optim.SGD(actor.parameters(), lr=0.1)
obs = torch.randn(4, 3)
critic.requires_grad_(False)  # the actor's loss goes through the critic, frozen for it
actor_loss = -critic(torch.cat([obs, actor(obs)], 1)).mean()
critic.requires_grad_(True)
actor_loss.backward()
opt.step()
assert critic.weight.grad is None
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
for name, p in model.named_parameters():
    if name.startswith("2."):
        p.requires_grad = True
    else:
        p.requires_grad = False
assert not model[0].weight.requires_grad
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model[0].requires_grad_(False)
model.train()
assert not model[0].weight.requires_grad
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        seen: set[cst.CSTNode] = set()
        for undone in facts.freezes_undone:
            # A loop over parameters whose whole body this is: the loop is the line.
            at = facts.with_freeze_loop(undone.node)[0]
            if at in seen:
                continue
            seen.add(at)
            line = facts.position(undone.freeze)[0]
            if undone.remade:
                parts = ", ".join(f"`{part}`" for part in undone.remade)
                yield Report(
                    at,
                    f"makes {parts} anew as trainable layers of `{undone.path}`, frozen at "
                    f"line {line}, and nothing freezes them again: they train; freeze the "
                    "new layers that are not meant to train",
                )
                continue
            yield Report(
                at,
                f"makes `{undone.path}` trainable again, frozen at line {line} with nothing "
                "trained in between: the freeze does nothing; unfreeze only the part meant "
                "to train, or drop one of the two",
            )
