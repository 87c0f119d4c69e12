"""GL215 requires-grad-on-module."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.analysis.values import Kind
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
                    yield Report(event.node)
