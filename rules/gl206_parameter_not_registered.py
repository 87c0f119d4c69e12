"""GL206 parameter-not-registered."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.analysis.values import Kind
from gradlint.rule import Report, Rule

_MOVED = (
    "the op after `nn.Parameter(...)` makes a plain non-leaf tensor, so the module registers "
    "no parameter and it never trains; move or cast inside: `nn.Parameter(t.double())`"
)


class ParameterNotRegistered(Rule):
    """Keeps a tensor or layer meant to train on a module where it registers no parameter.

    **Why is this bad?** A module registers a parameter only when an `nn.Parameter` itself
    is assigned to it, and a layer's parameters only when the layer is assigned to it or
    kept in an `nn.ModuleList`/`nn.ModuleDict`. `self.w = nn.Parameter(t).double()` (or
    `.cuda()`, `* 0.1`, `.view(...)`) assigns an op's result, a non-leaf copy:
    `model.parameters()` misses it and it never trains. `self.w = torch.randn(...,
    requires_grad=True)` is a plain tensor, and layers appended to a plain list are
    hidden: an optimizer built from `model.parameters()` never updates them,
    `model.to(device)` does not move them and `state_dict()` does not save them.

    **Example**
    ```python
    self.scale = nn.Parameter(torch.ones(dim)).cuda()
    self.bias = torch.zeros(dim, requires_grad=True)
    self.blocks = []
    for _ in range(depth):
        self.blocks.append(nn.Linear(dim, dim))
    ```

    **Use instead**: assign the `nn.Parameter` itself, made from the moved tensor, and
    keep layers in a module container.
    ```python
    self.scale = nn.Parameter(torch.ones(dim, device="cuda"))
    self.bias = nn.Parameter(torch.zeros(dim))
    self.blocks = nn.ModuleList()
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
        """\
import torch
from torch import nn


class Stack(nn.Module):
    def __init__(self, depth=2):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.blocks = []  # error
        for _ in range(depth):
            self.blocks.append(nn.Linear(4, 4))  # error

    def forward(self, x):
        x = self.inp(x)
        for block in self.blocks:
            x = torch.relu(block(x))
        return x


model = Stack()
opt = torch.optim.Adam(model.parameters(), lr=0.1)
before = model.blocks[0].weight.detach().clone()
model(torch.randn(5, 3)).pow(2).sum().backward()
opt.step()
assert torch.equal(model.blocks[0].weight, before)  # never trained
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
        """\
import torch
from torch import nn


class Stack(nn.Module):
    def __init__(self, depth=2):
        super().__init__()
        self.blocks = nn.ModuleList()
        layers = []
        self.heads = []
        for _ in range(depth):
            self.blocks.append(nn.Linear(4, 4))
            layers.append(nn.Linear(4, 4))
            self.heads.append(nn.Linear(4, 1))
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleList(self.heads)
        self.hooks = []

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return [head(self.body(x)) for head in self.heads]


model = Stack()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
assert len(list(model.parameters())) == 12
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for found in facts.unregistered_tensors:
            if found.moved is not None:
                yield Report(found.node, _MOVED)
                continue
            line = _optimizer_of(facts, found.cls)
            if line is not None:
                yield Report(
                    found.node,
                    "a plain tensor on a module is no parameter: the optimizer at line "
                    f"{line}, built from the module's parameters, never updates it (nor do "
                    "`.to()` and `state_dict()` see it); wrap it in `nn.Parameter`",
                )
        yield from self._layers(facts)

    def _layers(self, facts: Facts) -> Iterator[Report]:
        seen: set[int] = set()
        for found in facts.unregistered_layers:
            line = _optimizer_of(facts, found.cls)
            if line is None:
                continue
            if id(found.node) not in seen:
                seen.add(id(found.node))
                yield Report(
                    found.node,
                    "keeps layers in a plain list or dict, which registers none of their "
                    f"parameters: the optimizer at line {line} never trains them (nor do "
                    "`.to()` and `state_dict()` see them); use nn.ModuleList / nn.ModuleDict",
                )
            if found.added is not None and id(found.added) not in seen:
                seen.add(id(found.added))
                where = facts.position(found.node)[0]
                yield Report(
                    found.added,
                    f"puts a layer with parameters in the plain container of line {where}, "
                    "which does not register it: its parameters never train",
                )


def _optimizer_of(facts: Facts, cls: str) -> int | None:
    """The line of an optimizer built from `parameters()` of a module of class `cls` that
    has other parameters (with none, it raises: GL109 reports that)."""
    for made in facts.optimizers:
        if made.params is None or made.no_parameters:
            continue
        if any(v.kind is Kind.PARAMS and v.layer == cls for v in facts.any_run(made.params)):
            return facts.position(made.node)[0]
    return None
