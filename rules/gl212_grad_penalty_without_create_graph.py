"""GL212 grad-penalty-without-create-graph."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class GradPenaltyWithoutCreateGraph(Rule):
    """Back-propagates a gradient penalty whose gradients were taken without `create_graph`.

    **Why is this bad?** `torch.autograd.grad` returns gradients without a graph of their own
    unless `create_graph=True`. A penalty on their size (WGAN-GP, R1, input-gradient
    regularisers) is then a constant: added to a loss it contributes nothing to the
    backward, and the model is trained as if there were no penalty, with no error. (Alone,
    its backward raises "does not require grad".)

    **Example**
    ```python
    grad, = torch.autograd.grad(critic(x).sum(), x)
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    (loss + 10 * penalty).backward()
    ```

    **Use instead**
    ```python
    grad, = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    ```
    """

    code = "GL212"
    name = "grad-penalty-without-create-graph"
    message = (
        "these gradients have no graph, so a penalty on them trains nothing; "
        "pass `create_graph=True`"
    )

    INVALID = [
        """\
import torch
from torch import nn

critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
real, fake = torch.randn(8, 4), torch.randn(8, 4)
alpha = torch.rand(8, 1)
mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
grad = torch.autograd.grad(critic(mixed).sum(), mixed)[0]  # error
penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
loss = critic(fake).mean() - critic(real).mean() + 10 * penalty
loss.backward()
with_penalty = critic[0].weight.grad.clone()
critic.zero_grad()
(critic(fake).mean() - critic(real).mean()).backward()
assert torch.equal(critic[0].weight.grad, with_penalty)  # the penalty changed nothing
""",
        """\
import torch as T
from torch import nn, autograd


def r1_penalty(d_out, images):
    (grad,) = autograd.grad(outputs=d_out.sum(), inputs=images)  # error
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


D = nn.Linear(4, 1)
images = T.randn(8, 4, requires_grad=True)
loss = nn.functional.softplus(-D(images)).mean() + 5.0 * r1_penalty(D(images), images)
loss.backward()
plain = D.weight.grad.clone()
D.zero_grad()
nn.functional.softplus(-D(images)).mean().backward()
assert T.equal(D.weight.grad, plain)  # no gradient from the penalty
""",
        """\
import torch
from torch import nn
from torch.autograd import grad

# Fit a function and its derivative (forces as -dE/dx): the derivative loss goes through
# a loss module.
model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
x, forces = torch.randn(16, 3, requires_grad=True), torch.randn(16, 3)
energy = model(x)
slope = grad(energy.sum(), x, retain_graph=True)[0]  # error
loss = energy.pow(2).mean() + nn.MSELoss()(-slope, forces)
loss.backward()
with_forces = model[0].weight.grad.clone()
model.zero_grad()
model(x).pow(2).mean().backward()
assert torch.equal(model[0].weight.grad, with_forces)  # the force term changed nothing
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

critic = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
mixed = torch.randn(8, 4, requires_grad=True)
grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
(critic(mixed).mean() + 10 * penalty).backward()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 2)
x, y = torch.randn(8, 4, requires_grad=True), torch.randint(0, 2, (8,))
loss = nn.functional.cross_entropy(model(x), y)
grad = torch.autograd.grad(loss, x)[0]
x_adv = (x + 0.1 * grad.sign()).detach()
adv_loss = nn.functional.cross_entropy(model(x_adv), y)
adv_loss.backward()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
x = torch.randn(8, 4, requires_grad=True)
grad = torch.autograd.grad(model(x).sum(), x)[0]
saliency = grad.abs().mean(dim=0)
print(saliency.norm().item())
model(x).pow(2).mean().backward()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
params = list(model.parameters())
x, y = torch.randn(8, 4), torch.randn(8, 1)
grads = torch.autograd.grad(nn.functional.mse_loss(model(x), y), params)
fast = [p - 0.1 * g for p, g in zip(params, grads)]
query_loss = nn.functional.mse_loss(nn.functional.linear(x, fast[0], fast[1]), y)
query_loss.backward()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for call, _ in facts.penalties_without_graph:
            if isinstance(call, cst.CSTNode):
                yield Report(call)
