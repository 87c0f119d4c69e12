"""GL102 inplace-on-grad-leaf."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.analysis.facts import ENABLED
from gradlint.analysis.values import YES
from gradlint.rule import Report, Rule


class InplaceOnGradLeaf(Rule):
    """Changes in place a leaf tensor that requires grad while autograd is recording.

    **Why is this bad?** Autograd cannot record an in-place change of a leaf it is
    differentiating with respect to: `w += ...`, `w.add_(...)`, `w[0] = ...` or
    `w.zero_()` on a parameter or on a tensor made with `requires_grad=True` raise
    `RuntimeError: a leaf Variable that requires grad is being used in an in-place
    operation`. It is the classic hand-written SGD step outside `torch.no_grad()`.

    **Example**
    ```python
    w = torch.randn(3, requires_grad=True)
    loss = (w * x).sum()
    loss.backward()
    w -= lr * w.grad
    ```

    **Use instead**: update parameters with autograd off (or let an optimizer do it).
    ```python
    with torch.no_grad():
        w -= lr * w.grad
    ```
    """

    code = "GL102"
    name = "inplace-on-grad-leaf"
    message = (
        "in-place change of a leaf tensor that requires grad raises; do it under `torch.no_grad()`"
    )
    raises = ("a leaf Variable that requires grad is being used in an in-place operation",)

    INVALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True)
x = torch.randn(3)
for step in range(2):
    loss = (w * x).sum()
    loss.backward()
    w -= 0.1 * w.grad  # error
""",
        """\
import torch.nn as nn
layer = nn.Linear(2, 2)
layer.weight.mul_(0.5)  # error
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
for p in model.parameters():
    p.zero_()  # error
""",
        """\
import torch
b = torch.zeros(4, requires_grad=True)
b[0] = 1.0  # error
""",
        """\
import torch
from torch import nn
conv = nn.Conv2d(3, 6, 1)
rows = conv.bias.view(2, 3)
rows[:, 0] += 1.0  # error
""",
    ]
    VALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True)
x = torch.randn(3)
for step in range(2):
    loss = (w * x).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
    w.grad.zero_()
""",
        """\
import torch.nn as nn
layer = nn.Linear(2, 2)
layer.weight.data.mul_(0.5)
""",
        """\
import torch
from torch import nn
model = nn.Linear(2, 2)

@torch.no_grad()
def reset(m):
    for p in m.parameters():
        p.zero_()

def init_weights():
    for p in model.parameters():
        p.zero_()

reset(model)
with torch.no_grad():
    init_weights()
""",
        """\
import torch
x = torch.randn(4, requires_grad=True)
y = x * 2
y[0] = 1.0
y.add_(1)
y.sum().backward()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.inplace:
            if any(
                value.is_tensor
                and ((value.leaf is YES and value.requires_grad is YES) or value.leaf_view)
                and mode == ENABLED
                for value, mode in facts.runs(event.target)
            ):
                yield Report(event.node)
