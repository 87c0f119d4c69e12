"""GL202 train-step-order."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class TrainStepOrder(Rule):
    """Clears gradients before the `step()` that should apply them.

    **Why is this bad?** `optimizer.step()` applies what `.grad` holds when it runs. A
    `zero_grad()` after the backward and before the step throws the gradients away, and a
    `step()` placed before this iteration's backward finds them already cleared: the
    weights never move (or move only by weight decay and momentum), and the loss stays flat
    with no error. In gradient accumulation, where the step runs every few iterations, a
    `zero_grad()` that runs on every iteration keeps only the last micro-batch's gradient.

    **Example**
    ```python
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    ```

    **Use instead**
    ```python
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ```
    """

    code = "GL202"
    name = "train-step-order"
    message = (
        "`zero_grad()` here clears the gradients of the last `backward()` before `step()` "
        "applies them; clear before the backward instead"
    )
    accumulation_message = (
        "clears the gradients that the conditional `step()` is meant to sum over several "
        "backwards (gradient accumulation); clear right after the step instead"
    )
    early_message = (
        "`step()` runs before this iteration's `backward()`, on gradients already cleared, so "
        "it applies nothing; step after the backward"
    )

    INVALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
before = model.weight.detach().clone()
for step in range(3):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.zero_grad()  # error
    optimizer.step()
assert torch.equal(model.weight, before)  # never trained
""",
        """\
import torch as T
from torch import nn, optim

net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = optim.Adam(net.parameters(), lr=0.1)
before = [p.detach().clone() for p in net.parameters()]
for x in [T.randn(8, 4) for _ in range(3)]:
    opt.zero_grad()
    opt.step()  # error
    net(x).pow(2).mean().backward()
assert all(T.equal(p, b) for p, b in zip(net.parameters(), before))  # never trained
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
x, y = torch.randn(8, 4), torch.randn(8, 1)
accumulation = 4
seen = []
optimizer.register_step_pre_hook(lambda *_: seen.append(model.weight.grad.clone()))
for i in range(8):
    optimizer.zero_grad()  # error
    loss = nn.functional.mse_loss(model(x), y) / accumulation
    loss.backward()
    if (i + 1) % accumulation == 0:
        optimizer.step()
full = torch.autograd.grad(nn.functional.mse_loss(model(x), y), model.weight)[0]
assert torch.allclose(seen[0], full / accumulation)  # one micro-batch, not four
""",
        """\
import torch
from torch import nn


def train(model, optimizer, batches, accumulation):
    count = 0
    for x in batches:
        optimizer.zero_grad()  # error
        (model(x).pow(2).mean() / accumulation).backward()
        count += 1
        if count < accumulation:
            continue
        optimizer.step()
        count = 0


model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
seen = []
optimizer.register_step_pre_hook(lambda *_: seen.append(model.weight.grad.clone()))
x = torch.randn(8, 4)
train(model, optimizer, [x] * 4, accumulation=2)
full = torch.autograd.grad(model(x).pow(2).mean(), model.weight)[0]
assert torch.allclose(seen[0], full / 2)  # one micro-batch, not two
""",
        """\
import torch
from torch import nn


class Trainer:
    def __init__(self, model, accumulate):
        self.model = model
        self.accumulate = accumulate
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

    def fit(self, batches, epochs):
        last_step = -1
        for epoch in range(epochs):
            self.optimizer.zero_grad()  # error
            for i, x in enumerate(batches):
                done = i + len(batches) * epoch
                self.model(x).pow(2).mean().backward()
                if done - last_step >= self.accumulate:
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                    last_step = done


trainer = Trainer(nn.Linear(4, 1), accumulate=2)
seen = []
trainer.optimizer.register_step_pre_hook(
    lambda *_: seen.append(trainer.model.weight.grad.norm().item())
)
trainer.fit([torch.ones(8, 4)] * 3, epochs=2)  # steps at batches 1, 3, 5 of 6
assert seen[1] < 0.6 * seen[0]  # the step across the epochs lost a micro-batch
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

class Balanced(torch.optim.Optimizer):
    # A step that runs a backward of its own for each loss it is given.
    def __init__(self, params):
        super().__init__(params, {})

    @torch.no_grad()
    def step(self, losses):
        total = [torch.zeros_like(p) for g in self.param_groups for p in g["params"]]
        for loss in losses:
            with torch.enable_grad():
                loss.backward(retain_graph=True)
            params = [p for g in self.param_groups for p in g["params"]]
            for acc, p in zip(total, params):
                acc += p.grad / (p.grad.norm() + 1e-12)
                p.grad = None
        for acc, p in zip(total, params):
            p.grad = acc

model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
balance = Balanced(model[0].parameters())
opt_shared = torch.optim.SGD(model[0].parameters(), lr=0.1)
opt_head = torch.optim.SGD(model[1].parameters(), lr=0.1)
for step in range(3):
    model.zero_grad()
    out = model(torch.randn(8, 4))
    losses = [out[:, 0].pow(2).mean(), out[:, 1].abs().mean()]
    sum(losses).backward(retain_graph=True)
    head_grads = [p.grad.clone() for p in model[1].parameters()]
    model.zero_grad()
    balance.step(losses)
    for p, g in zip(model[1].parameters(), head_grads):
        p.grad = g
    opt_head.step()
    opt_shared.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    optimizer.zero_grad()
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
""",
        """\
import torch
from torch import nn

G = nn.Linear(2, 4)
D = nn.Linear(4, 1)
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
for step in range(3):
    fake = G(torch.randn(8, 2))
    opt_d.zero_grad()
    D(fake.detach()).mean().backward()
    opt_d.step()
    opt_g.zero_grad()
    (-D(fake)).mean().backward()
    opt_g.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(8, 4, requires_grad=True)
model(x).sum().backward()
saliency = x.grad.abs()
optimizer.zero_grad()
model(x).pow(2).mean().backward()
optimizer.step()
""",
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
opt_g = torch.optim.RMSprop(G.parameters(), lr=5e-5)
opt_d = torch.optim.RMSprop(D.parameters(), lr=5e-5)
for i in range(10):
    z, real = torch.randn(8, 2), torch.randn(8, 4)
    opt_d.zero_grad()
    (D(G(z).detach()).mean() - D(real).mean()).backward()
    opt_d.step()
    if i % 5 == 0:
        opt_g.zero_grad()
        (-D(G(z)).mean()).backward()
        opt_g.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(8):
    loss = model(torch.randn(8, 4)).pow(2).mean() / 4
    loss.backward()
    if (i + 1) % 4 == 0:
        optimizer.step()
        optimizer.zero_grad()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    optimizer.zero_grad()  # a new accumulation each epoch: the count starts again
    count = 0
    for x in [torch.randn(8, 4) for _ in range(3)]:
        (model(x).pow(2).mean() / 2).backward()
        count += 1
        if count < 2:
            continue
        optimizer.step()
        optimizer.zero_grad()
        count = 0
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
x = torch.randn(8, 4)
accumulation, batches = 4, [x] * 6
seen = []
optimizer.register_step_pre_hook(lambda *_: seen.append(model.weight.grad.clone()))
for i, batch in enumerate(batches):
    if i % accumulation == 0:
        optimizer.zero_grad()  # each window starts clean, right after the last one's step
    (model(batch).pow(2).mean() / accumulation).backward()
    if (i + 1) % accumulation == 0 or i + 1 == len(batches):
        optimizer.step()
full = torch.autograd.grad(model(x).pow(2).mean(), model.weight)[0]
assert torch.allclose(seen[0], full)  # all four micro-batches
assert torch.allclose(seen[1], full / 2)  # the last, short window: its two
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for step in facts.empty_steps:
            if step.recent and step.cleared_at is not None:
                yield Report(step.cleared_at)
            else:
                yield Report(step.node, self.early_message)
        for clear, optimizers in facts.pending_clears.items():
            if clear in facts.guarded_clears:
                # The clear has a test of its own (`if i % k == 0: zero_grad()`): it may
                # run only at the start of each window, right after the last one's step.
                continue
            # Every step of those optimizers is guarded inside its loop: they accumulate.
            if all((guards := facts.step_guards.get(key)) and all(guards) for key in optimizers):
                yield Report(clear, self.accumulation_message)
