"""GL206 parameter-not-registered."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.analysis.facts import UnregisteredTensor
from gradlint.analysis.values import Kind
from gradlint.rule import Report, Rule

_MOVED = (
    "the op after `nn.Parameter(...)` makes a plain non-leaf tensor, so the module registers "
    "no parameter and it never trains; move or cast inside: `nn.Parameter(t.double())`"
)


class ParameterNotRegistered(Rule):
    """Keeps a tensor meant to train on a module as a plain attribute, which registers no parameter.

    **Why is this bad?** A module registers a parameter only when an `nn.Parameter` itself
    is assigned to it. `self.w = nn.Parameter(t).double()` (or `.cuda()`, `.to(...)`,
    `* 0.1`, `.view(...)`) assigns an op's result, a non-leaf copy: `model.parameters()`
    misses it and it never trains. `self.w = torch.randn(..., requires_grad=True)` is a
    plain tensor: not in `parameters()`, so an optimizer built from them never updates
    it, `model.to(device)` does not move it and `state_dict()` does not save it.

    **Example**
    ```python
    self.scale = nn.Parameter(torch.ones(dim)).cuda()
    self.bias = torch.zeros(dim, requires_grad=True)
    ```

    **Use instead**: assign the `nn.Parameter` itself, made from the moved tensor.
    ```python
    self.scale = nn.Parameter(torch.ones(dim, device="cuda"))
    self.bias = nn.Parameter(torch.zeros(dim))
    ```
    """

    code = "GL206"
    name = "parameter-not-registered"
    message = _MOVED

    INVALID = [
        """\
import torch
from torch import nn


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3)).double()  # error

    def forward(self, x):
        return x * self.w


m = Scale()
assert len(list(m.parameters())) == 0
""",
        """\
import torch
from torch import nn, optim


class Affine(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.shift = torch.zeros(3, requires_grad=True)  # error

    def forward(self, x):
        return self.lin(x) + self.shift


model = Affine()
opt = optim.SGD(model.parameters(), lr=0.1)
for _ in range(2):
    opt.zero_grad()
    model(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()
assert torch.equal(model.shift, torch.zeros(3))  # never updated
assert "shift" not in model.state_dict()
""",
        """\
import torch as T
import torch.nn as nn


class Gate(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.build(n)

    def build(self, n):
        self.gate = nn.Parameter(T.zeros(n)).view(1, n)  # error

    def forward(self, x):
        return x * T.sigmoid(self.gate)


g = Gate(4)
assert list(g.parameters()) == []
""",
    ]
    VALID = [
        """\
import torch
from torch import nn


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3).double())
        self.register_buffer("running", torch.zeros(3))
        self.ps = nn.ParameterList([nn.Parameter(torch.ones(2)) for _ in range(2)])
        self.mask = torch.ones(3)
        self.scale = nn.Parameter(torch.randn(3).to("cpu") * 0.1)


m = Good()
assert len(list(m.parameters())) == 4
""",
        """\
import torch
from torch import nn


class Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_parameter("b", nn.Parameter(torch.zeros(3)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        self.feat = self.fc(x) * 2
        return self.feat


assert len(list(Named().parameters())) == 1
assert Net()(torch.randn(2, 3)).shape == (2, 3)
""",
        """\
import torch
from torch import nn, optim


class Affine(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.shift = torch.zeros(3, requires_grad=True)

    def forward(self, x):
        return self.lin(x) + self.shift


model = Affine()
opt = optim.SGD([*model.parameters(), model.shift], lr=0.1)
model(torch.randn(4, 3)).pow(2).sum().backward()
opt.step()
assert not torch.equal(model.shift, torch.zeros(3))
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for found in facts.unregistered_tensors:
            if found.moved is not None:
                yield Report(found.node, _MOVED)
                continue
            line = _optimizer_of(facts, found)
            if line is not None:
                yield Report(
                    found.node,
                    "a plain tensor on a module is no parameter: the optimizer at line "
                    f"{line}, built from the module's parameters, never updates it (nor do "
                    "`.to()` and `state_dict()` see it); wrap it in `nn.Parameter`",
                )


def _optimizer_of(facts: Facts, found: UnregisteredTensor) -> int | None:
    """The line of an optimizer built from `parameters()` of the tensor's module class."""
    for made in facts.optimizers:
        if made.params is None:
            continue
        if any(v.kind is Kind.PARAMS and v.layer == found.cls for v in facts.any_run(made.params)):
            return facts.position(made.node)[0]
    return None
