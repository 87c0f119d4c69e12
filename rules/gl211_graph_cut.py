"""GL211 graph-cut."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class GraphCut(Rule):
    """Back-propagates a loss that was cut from its graph and made to require grad again.

    **Why is this bad?** `.item()`, `.tolist()`, `.numpy()`, `.detach()` and `torch.tensor(x)`
    give values with no history. A loss rebuilt from them has no path back to the model, so
    `backward()` raises "element 0 of tensors does not require grad". Setting
    `loss.requires_grad = True` (or `torch.tensor(value, requires_grad=True)`) silences the
    error by making the loss a new leaf: the backward then runs, reaches no parameter, and
    the model never trains.

    **Example**
    ```python
    loss = torch.tensor(criterion(out, y).item(), requires_grad=True)
    loss.backward()
    ```

    **Use instead**: keep the loss a tensor computed by torch ops from the model's output.
    ```python
    loss = criterion(out, y)
    loss.backward()
    ```
    """

    code = "GL211"
    name = "graph-cut"
    message = (
        "makes a loss cut from its graph require grad again: backward() will reach no "
        "parameter; keep the loss a torch computation from the model's output"
    )
    dead_message = (
        "cuts the prediction that a loss term is computed from, so that term trains nothing; "
        "detach only what must not be trained (a target), or drop the term"
    )
    cut_message = (
        "cuts the loss from the model's graph, so the backward() that follows trains nothing"
    )

    INVALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
x, y = torch.randn(8, 4), torch.randn(8, 1)
value = nn.functional.mse_loss(model(x), y).item()  # error
loss = torch.tensor(value, requires_grad=True)  # error
loss.backward()
assert model.weight.grad is None  # the model got no gradient
""",
        """\
import numpy as np
import torch as T
from torch import nn


def dice_loss(pred, target):
    p = pred.detach().cpu().numpy()  # error
    t = target.numpy()
    score = 2 * (p * t).sum() / (p.sum() + t.sum() + 1e-6)
    return T.tensor(1 - score)


net = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
x, target = T.randn(8, 4), (T.rand(8, 1) > 0.5).float()
loss = dice_loss(net(x), target)
loss.requires_grad = True  # error
loss.backward()
assert net[0].weight.grad is None
""",
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
bce, l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()
z, target = torch.randn(8, 2), torch.randn(8, 4)
fake = G(z)
pred_fake = D(fake).detach()  # error
adv = bce(pred_fake, torch.ones_like(pred_fake))
g_loss = adv + 10 * l1(fake, target)
g_loss.backward()
with_adv = G.weight.grad.clone()
G.zero_grad()
(10 * l1(G(z), target)).backward()
assert torch.equal(G.weight.grad, with_adv)  # the adversarial term added nothing
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
x, y = torch.randn(8, 4), torch.randn(8, 1)
loss = nn.functional.mse_loss(model(x), y)
loss.backward()
print(loss.item())
""",
        """\
import torch
from torch import nn

q_net = nn.Linear(4, 2)
s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)
target = r + 0.99 * q_net(s2).max(1)[0].detach()
loss = nn.functional.mse_loss(q_net(s).max(1)[0], target)
loss.backward()
""",
        """\
import numpy as np
import torch

weights = torch.tensor(np.ones(4), requires_grad=True)
loss = (weights * 2).sum()
loss.backward()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 4)
x = model(torch.randn(2, 4)).detach()
x.requires_grad = True
out = (x ** 2).sum()
out.backward()
saliency = x.grad
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 2)
x = torch.randn(8, 4)
delta = (0.01 * torch.randn(8, 4)).detach()
delta.requires_grad_()
opt = torch.optim.SGD([delta], lr=0.1)
for _ in range(3):
    opt.zero_grad()
    (-model(x + delta).pow(2).mean()).backward()
    opt.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for cut, _ in facts.dead_terms:
            yield Report(facts.focus(cut), self.dead_message)
        for revived, _ in facts.revived_backwards:
            if revived in facts.revived_as_leaves or facts.grad_read(revived=revived):
                continue  # a detached input made a leaf on purpose, for its gradient
            yield Report(revived)
            made_at = facts.revivals.get(revived)
            if isinstance(made_at, cst.CSTNode):
                yield Report(facts.focus(made_at), self.cut_message)
