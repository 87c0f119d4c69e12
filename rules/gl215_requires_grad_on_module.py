"""GL215 requires-grad-on-module."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import AttributeSet
from gradlint.analysis.values import Kind
from gradlint.fixes import Replacement
from gradlint.rule import Report, Rule


class RequiresGradOnModule(Rule):
    """Sets `requires_grad` on an `nn.Module` instead of on its parameters.

    **Why is this bad?** A module has no `requires_grad` flag: `model.requires_grad = False`
    just adds a plain attribute, and every parameter stays trainable. The "frozen"
    backbone keeps training (and keeps costing gradient memory) with no error.

    **Example**
    ```python
    backbone.requires_grad = False
    ```

    **Use instead**: the method, which sets the flag on every parameter.
    ```python
    backbone.requires_grad_(False)
    ```
    """

    code = "GL215"
    name = "requires-grad-on-module"
    message = "a module has no `requires_grad` flag; use `module.requires_grad_(False)`"
    fixable = True

    INVALID = [
        """\
import torch
from torch import nn
backbone = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
backbone.requires_grad = False  # error
assert all(p.requires_grad for p in backbone.parameters())  # nothing was frozen
""",
        """\
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.encoder.requires_grad = False  # error

net = Net()
assert net.encoder.weight.requires_grad
""",
    ]
    FIXED = {
        0: [
            (
                "backbone.requires_grad = False  # error\n",
                "backbone.requires_grad_(False)  # error\n",
            ),
        ],
        1: [
            (
                "        self.encoder.requires_grad = False  # error\n",
                "        self.encoder.requires_grad_(False)  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
from torch import nn
backbone = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
backbone.requires_grad_(False)
for p in backbone.parameters():
    p.requires_grad = False
backbone[0].weight.requires_grad = False
assert not any(p.requires_grad for p in backbone.parameters())
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.attribute_sets:
            if event.target.attr.value == "requires_grad":
                if any(v.kind is Kind.MODULE for v in facts.any_run(event.target.value)):
                    yield Report(event.node, fix=_method_call(event))


def _method_call(event: AttributeSet) -> Replacement | None:
    """`m.requires_grad = flag` -> `m.requires_grad_(flag)`: what the line meant."""
    if len(event.node.targets) != 1:
        return None  # `a = m.requires_grad = False` also sets `a`
    call = cst.Call(
        func=event.target.with_changes(attr=cst.Name("requires_grad_")),
        args=[cst.Arg(event.value)],
    )
    return Replacement(event.node, cst.Expr(call), "Call `requires_grad_()`")
