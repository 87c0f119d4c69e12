"""GL102 inplace-on-grad-leaf."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import ENABLED
from gradlint.analysis.values import YES
from gradlint.fixes import Replacement, statement_in_block, under_with
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
    fixable = True

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
    FIXED = {
        0: [
            (
                "    w -= 0.1 * w.grad  # error\n",
                "    with torch.no_grad():\n        w -= 0.1 * w.grad  # error\n",
            ),
        ],
        2: [
            (
                "    p.zero_()  # error\n",
                "    with torch.no_grad():\n        p.zero_()  # error\n",
            ),
        ],
        3: [
            (
                "b[0] = 1.0  # error\n",
                "with torch.no_grad():\n    b[0] = 1.0  # error\n",
            ),
        ],
        4: [
            (
                "rows[:, 0] += 1.0  # error\n",
                "with torch.no_grad():\n    rows[:, 0] += 1.0  # error\n",
            ),
        ],
    }
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
                yield Report(event.node, fix=_under_no_grad(event.node, facts))


def _under_no_grad(node: cst.CSTNode, facts: Facts) -> Replacement | None:
    """The statement under `with torch.no_grad():`, the way to update a parameter by
    hand (an optimizer's step does the same). Inside a forward, where the change may hit a
    tensor a backward still needs, it is offered as unsafe."""
    grad_off = _local_name(facts, "torch.no_grad") or _with_attr(_local_name(facts, "torch"))
    found = statement_in_block(facts.module, node, facts.parents)
    if grad_off is None or found is None:
        return None
    first, _, last, _ = facts.position(found[0])
    text = under_with(facts.text, f"{grad_off}()", first, last)
    if text is None:
        return None
    title = "Update under `no_grad()`"
    return Replacement(node, text, title, safe=not facts.in_forward(node), lines=(first, last))


def _local_name(facts: Facts, qualname: str) -> str | None:
    """The name this module imported `qualname` as (`T` for `import torch as T`)."""
    names = [local for local, full in facts.imports.names.items() if full == qualname]
    return min(names, key=len) if names else None


def _with_attr(module: str | None) -> str | None:
    return f"{module}.no_grad" if module is not None else None
