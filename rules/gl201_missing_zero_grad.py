"""GL201 missing-zero-grad."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class MissingZeroGrad(Rule):
    """Steps an optimizer again without clearing the gradients the last step applied.

    **Why is this bad?** `backward()` adds to `.grad`; it does not replace it. Without
    `zero_grad()` between steps, each step applies the sum of the gradients of every
    iteration so far: the effective learning rate grows with the step count, and training
    diverges or stalls. No error is raised. A `zero_grad()` that runs once per epoch, outside
    the batch loop, only resets the pile once per epoch.

    Gradient accumulation, where `step()` and `zero_grad()` run together every few
    iterations, is not reported.

    **Example**
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    **Use instead**
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "GL201"
    name = "missing-zero-grad"
    message = (
        "nothing clears the gradients between optimizer steps, so each step applies the sum "
        "of all earlier ones; call `optimizer.zero_grad()` each iteration"
    )
    outside_message = (
        "`zero_grad()` runs outside the loop that steps, so gradients pile up across its "
        "iterations; call it in that loop, before each backward"
    )

    INVALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(16, 4), torch.randn(16, 1)
seen = []
for step in range(3):
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()  # error
    seen.append(model.weight.grad.clone())
    optimizer.step()
# On the same batch, the third step applies about three times the gradient.
assert seen[2].norm() > 2.5 * seen[0].norm()
""",
        """\
import torch as T
from torch import nn, optim


def train(model, optimizer, batches, epochs):
    for epoch in range(epochs):
        optimizer.zero_grad()  # error
        for x, y in batches:
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    return model.weight.grad.clone()


net = nn.Linear(4, 1)
batch = (T.randn(8, 4), T.randn(8, 1))
grad = train(net, optim.SGD(net.parameters(), lr=0.0), [batch] * 3, epochs=1)
fresh = T.autograd.grad(nn.functional.mse_loss(net(batch[0]), batch[1]), net.weight)[0]
assert T.allclose(grad, 3 * fresh)  # three batches' gradients, summed
""",
        """\
import torch
from torch import nn

G = nn.Linear(2, 4)
D = nn.Linear(4, 1)
opt_g = torch.optim.Adam(G.parameters(), lr=0.0)
opt_d = torch.optim.Adam(D.parameters(), lr=0.0)
bce = nn.BCEWithLogitsLoss()
z, real = torch.randn(8, 2), torch.randn(8, 4)
for step in range(2):
    D.zero_grad()
    fake = G(z)
    d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(fake.detach()), torch.zeros(8, 1))
    d_loss.backward()
    opt_d.step()
    g_loss = bce(D(fake), torch.ones(8, 1))
    g_loss.backward()  # error
    opt_g.step()
fresh = torch.autograd.grad(bce(D(G(z)), torch.ones(8, 1)), G.weight)[0]
assert torch.allclose(G.weight.grad, 2 * fresh)  # G was never cleared
""",
    ]
    VALID = [
        """\
import torch
a = torch.nn.Linear(2, 2)
b = torch.nn.Linear(2, 2)
oa = torch.optim.SGD(a.parameters(), lr=0.1)
ob = torch.optim.SGD(b.parameters(), lr=0.1)
for _ in range(3):
    for opt in (oa, ob):  # each optimizer in turn
        opt.zero_grad()
    a(torch.randn(1, 2)).sum().backward()
    oa.step()
    b(torch.randn(1, 2)).sum().backward()
    ob.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(3):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
accumulation = 4
for i in range(12):
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    loss = nn.functional.mse_loss(model(x), y) / accumulation
    loss.backward()
    if (i + 1) % accumulation == 0:
        optimizer.step()
        optimizer.zero_grad()
""",
        """\
import torch
from torch import nn, optim


class Trainer:
    def __init__(self):
        self.model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        self.optimizer = optim.Adam(self.model.parameters())

    def update(self, x, y):
        self.model.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(self.model(x), y)
        loss.backward()
        self.optimizer.step()


trainer = Trainer()
for _ in range(3):
    trainer.update(torch.randn(8, 4), torch.randn(8, 1))
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(3):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
    for p in model.parameters():
        p.grad = None
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.LBFGS(model.parameters())
x, y = torch.randn(16, 4), torch.randn(16, 1)


def closure():
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


for step in range(3):
    optimizer.step(closure)
""",
        """\
import torch
from torch import nn

G = nn.Linear(2, 4)
D = nn.Linear(4, 1)
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
bce = nn.BCEWithLogitsLoss()
for step in range(3):
    z, real = torch.randn(8, 2), torch.randn(8, 4)
    opt_d.zero_grad()
    fake = G(z)
    d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(fake.detach()), torch.zeros(8, 1))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_loss = bce(D(fake), torch.ones(8, 1))
    g_loss.backward()
    opt_g.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for step in facts.piled_steps:
            if step.cleared_at is not None:
                yield Report(step.cleared_at, self.outside_message)
            elif step.piled_by is not None:
                yield Report(step.piled_by)
