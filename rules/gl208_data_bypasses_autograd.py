"""GL208 data-bypasses-autograd."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class DataBypassesAutograd(Rule):
    """Changes through `.data` a tensor that an op saved for backward, before that backward.

    **Why is this bad?** Ops such as `exp`, `sigmoid`, `relu` and `mul` save tensors to
    compute gradients later. A change through `tensor.data` is hidden from autograd's version
    counter, so the error that protects an ordinary in-place change (GL108) never comes: the
    backward silently uses the changed values and returns wrong gradients.

    **Example**
    ```python
    y = torch.sigmoid(x @ w)
    y.data.clamp_(0.1, 0.9)
    loss = y.sum()
    loss.backward()
    ```

    **Use instead**: an out-of-place op, which autograd records.
    ```python
    y = torch.sigmoid(x @ w).clamp(0.1, 0.9)
    ```
    """

    code = "GL208"
    name = "data-bypasses-autograd"
    message = (
        "changes through `.data` a tensor saved for backward; autograd cannot see it and "
        "computes wrong gradients: use an out-of-place op"
    )

    forward_message = (
        "the forward computes with this parameter's `.data`, outside autograd, and uses it "
        "no other way, so it never gets a gradient: use the parameter itself"
    )

    INVALID = [
        """\
import torch

x = torch.randn(4, requires_grad=True)
y = x.exp()
y.data.mul_(2)  # error
y.sum().backward()
assert torch.allclose(x.grad, 2 * x.detach().exp())  # twice the true gradient
""",
        """\
import torch as T
from torch import nn


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        g = T.sigmoid(self.fc(x))
        g.data.clamp_(0.2, 0.8)  # error
        return g * x


gate = Gate()
x = T.randn(8, 4)
gate(x).sum().backward()
wrong = gate.fc.bias.grad.clone()
gate.zero_grad()
true = T.sigmoid(gate.fc(x)).clamp(0.2, 0.8)
(true * x).sum().backward()
assert not T.allclose(wrong, gate.fc.bias.grad)
""",
        """\
import torch
from torch import nn
import torch.nn.functional as F


class MyLinear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return F.relu(x @ self.weight.data + self.bias.data)  # error


net = nn.Sequential(nn.Linear(4, 8), MyLinear(8, 2))
net(torch.randn(3, 4)).sum().backward()
assert net[1].weight.grad is None and net[0].weight.grad is not None  # never trained
""",
    ]
    VALID = [
        """\
import torch

w = torch.randn(4, requires_grad=True)
for _ in range(3):
    loss = (w * torch.randn(4)).pow(2).sum()
    loss.backward()
    w.data -= 0.1 * w.grad
    w.grad.zero_()
""",
        """\
import torch
from torch import nn

critic = nn.Linear(4, 1)
opt = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
for _ in range(3):
    for p in critic.parameters():
        p.data.clamp_(-0.01, 0.01)
    opt.zero_grad()
    critic(torch.randn(8, 4)).mean().backward()
    opt.step()
""",
        """\
import torch

x = torch.randn(4, requires_grad=True)
y = x.exp()
y.sum().backward()
y.data.mul_(2)
print(y)
""",
        """\
import torch
from torch import nn

layer = nn.Linear(4, 4)
layer.weight.data.normal_(0, 0.02)
layer.bias.data.zero_()
layer(torch.randn(2, 4)).sum().backward()
""",
        """\
import torch
from torch import nn


class WeightNormalized(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 2))
        nn.init.xavier_normal_(self.weight)

    def forward(self, x):
        scale = self.weight.data.norm()  # a constant on purpose: no gradient through it
        return x @ (self.weight / scale)


layer = WeightNormalized()
layer(torch.randn(3, 4)).sum().backward()
assert layer.weight.grad is not None
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for change in facts.hidden_changes:
            yield Report(change.node)
        for reads in facts.param_reads.values():
            # Every read of the parameter where autograd records goes through `.data`:
            # nothing it computes can give it a gradient.
            if reads <= facts.data_reads:
                for read in sorted(reads, key=lambda node: facts.position(node)):
                    yield Report(read, self.forward_message)
