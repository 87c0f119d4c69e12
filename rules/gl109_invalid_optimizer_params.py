"""GL109 invalid-optimizer-params."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import OptimizerMade
from gradlint.analysis.nodes import walk
from gradlint.analysis.values import NO, YES, Kind, Value
from gradlint.rule import Report, Rule

_EMPTY = "the optimizer gets no parameters (all are frozen or filtered out), which raises"
_EXHAUSTED = "this `.parameters()` generator was already used up, so the optimizer gets nothing"
_NO_PARAMETERS = (
    "the module has no parameters yet (none are made in its __init__), so the optimizer "
    "gets an empty list, which raises"
)
_UNCALLED = "passes the method, not the parameters: call it, `model.parameters()`"
_NON_LEAF = "the optimizer gets a non-leaf tensor (made by an op), which raises; pass the leaf"


class InvalidOptimizerParams(Rule):
    """Builds an optimizer from parameters it cannot take: none, non-leaf tensors, a method.

    **Why is this bad?** An optimizer needs leaf tensors. `[p for p in model.parameters()
    if p.requires_grad]` after freezing everything is empty, and so is a `parameters()`
    generator that was already iterated (by `list()`, a loop or another optimizer): both
    raise `ValueError: optimizer got an empty parameter list`. A tensor moved or cast
    after `requires_grad=True` is an op's result, and raises `ValueError: can't optimize a
    non-leaf Tensor`. Passing `model.parameters` without calling it raises `TypeError`.

    **Example**
    ```python
    params = model.parameters()
    print(len(list(params)))
    opt = torch.optim.SGD(params, lr=0.1)
    ```

    **Use instead**: keep the parameters in a list, or call `parameters()` again.
    ```python
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    ```
    """

    code = "GL109"
    name = "invalid-optimizer-params"
    message = _EMPTY
    raises = (
        "optimizer got an empty parameter list",
        "can't optimize a non-leaf Tensor",
        "'method' object is not iterable",
    )

    INVALID = [
        """\
import torch
from torch import nn


class Net(nn.Module):
    def _init_(self):  # error
        super()._init_()  # error
        self.fc = nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)


opt = torch.optim.SGD(Net().parameters(), lr=0.1)
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
params = model.parameters()  # error
print(sum(p.numel() for p in params))  # error
opt = torch.optim.SGD(params, lr=0.1)  # error
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
for p in model.parameters():  # error
    p.requires_grad = False  # error
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.Adam(trainable)
""",
        """\
import torch
w = torch.randn(3, requires_grad=True).double()  # error
opt = torch.optim.SGD([w], lr=0.1)
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
opt = torch.optim.Adam(model.parameters, lr=1e-3)  # error
""",
        """\
import torch
from torch import nn

class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.built = False

    def forward(self, x):
        if not self.built:
            self.w = nn.Parameter(torch.randn(x.shape[-1], 2))
            self.built = True
        return x @ self.w

model = Lazy()
opt = torch.optim.SGD(model.parameters(), lr=0.1)  # error
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

net = nn.Linear(4, 4)


def train_task(task):
    params = filter(lambda p: p.requires_grad, net.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05)
    net(torch.randn(2, 4)).sum().backward()
    optimizer.step()


for task in range(3):
    train_task(task)  # a new generator on each call
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
params = list(model.parameters())
print(sum(p.numel() for p in params))
opt = torch.optim.SGD(params, lr=0.1)
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
for p in model.parameters():
    p.requires_grad = False
for p in model[1].parameters():
    p.requires_grad = True
trainable = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.Adam(trainable)
""",
        """\
import torch
w = torch.randn(3, dtype=torch.float64, requires_grad=True)
v = torch.randn(3).double().requires_grad_()
opt = torch.optim.SGD([w, v], lr=0.1)
""",
        """\
import torch
from torch import nn


class LoraLinear(nn.Module):
    def __init__(self, base, rank=2):
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) * 0.01)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + x @ self.lora_a.T @ self.lora_b.T


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(4, 4)

    def forward(self, x):
        return torch.tanh(self.q_proj(x))


model = nn.Module()
model.layers = nn.ModuleList(Block() for _ in range(2))
for p in model.parameters():
    p.requires_grad_(False)
for layer in model.layers:
    for name in ("q_proj",):
        setattr(layer, name, LoraLinear(getattr(layer, name)))  # adapters that train
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
assert len(opt.param_groups[0]["params"]) == 4
""",
        """\
import torch
from torch import nn


class CastLinear(nn.Linear):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache = None


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = CastLinear(4, 2)

    def forward(self, x):
        return self.proj(x)


model = Encoder()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        def line(made: OptimizerMade) -> int:
            # Positions cost a second pass over the whole file: only for what is reported.
            return facts.position(made.node)[0]

        for made in facts.optimizers:
            if made.exhausted:
                yield Report(made.node, _EXHAUSTED)
                used = made.used_up_at
                if used is not None and used is not made.node:
                    # Either line is the fix: keep a list here, or call parameters() again.
                    yield Report(
                        used,
                        "uses up the `.parameters()` generator that the optimizer at line "
                        f"{line(made)} then gets empty, which raises; make it a list first",
                    )
                    generator = made.generator_made
                    if generator is not None and facts.position(generator)[0] not in (
                        line(made),
                        facts.position(used)[0],
                    ):
                        yield Report(
                            generator,
                            "makes a one-pass generator of parameters, which line "
                            f"{facts.position(used)[0]} uses up before the optimizer at line "
                            f"{line(made)} gets it; make it a list here",
                        )
                continue
            if made.no_parameters and made.unregistered is not None:
                yield Report(
                    made.unregistered,
                    "keeps layers in a plain list, which registers none of their parameters: "
                    f"the optimizer at line {line(made)} gets an empty list, which raises; use "
                    "nn.ModuleList",
                )
                continue
            if made.no_parameters and made.misspelt_init is not None:
                yield Report(
                    made.misspelt_init,
                    "is not `__init__`, so Python never calls it and the module gets no "
                    f"layers: the optimizer at line {line(made)} gets an empty list, which raises",
                )
                for call in _super_calls(made.misspelt_init):
                    yield Report(call, "calls the base class by the same misspelt name")
                continue
            if made.no_parameters:
                yield Report(made.node, _NO_PARAMETERS)
                continue
            if made.params is None:
                continue
            if (
                isinstance(made.params, cst.Attribute)
                and made.params.attr.value in ("parameters", "named_parameters")
                and any(v.kind is Kind.MODULE for v in facts.any_run(made.params.value))
            ):
                yield Report(made.params, _UNCALLED)
                continue
            value = next(
                (v for v in facts.any_run(made.params) if v.kind is Kind.SEQUENCE),
                facts.value(made.params),
            )
            if value.kind is not Kind.SEQUENCE:
                continue
            if value.items == () and value.cut is not None:
                cuts = (
                    facts.with_freeze_loop(value.cut) if isinstance(value.cut, cst.CSTNode) else []
                )
                for cut in cuts:
                    yield self._at(
                        facts,
                        cut,
                        made.node,
                        "freezes every parameter the optimizer "
                        "at line {line} is then given, which raises",
                        _EMPTY,
                    )
            elif (non_leaf := _non_leaf(value)) is not None:
                # Whatever function made it, the op that made the non-leaf is the mistake.
                cause = non_leaf.made_by
                if isinstance(cause, cst.CSTNode):
                    yield Report(
                        facts.focus(cause),
                        "makes a non-leaf tensor that the optimizer at line "
                        f"{line(made)} is given, which raises; keep the leaf",
                    )
                else:
                    yield Report(made.node, _NON_LEAF)

    def _at(
        self, facts: Facts, cause: object, use: cst.CSTNode, template: str, fallback: str
    ) -> Report:
        at = facts.where_to_fix(cause, use)
        if at is use:
            return Report(use, fallback)
        return Report(at, template.format(line=facts.position(use)[0]))


def _non_leaf(value: Value) -> Value | None:
    """An element of the list that is a non-leaf tensor requiring grad: each element where
    the list's are known one by one, else what every element is."""
    for item in value.items if value.items is not None else (value.item,):
        if item is not None and item.is_tensor and item.leaf is NO and item.requires_grad is YES:
            return item
    return None


def _super_calls(method: cst.CSTNode) -> list[cst.Call]:
    """`super()._init_()` inside a misspelt constructor: the same name, to rename too."""
    if not isinstance(method, cst.FunctionDef):
        return []
    name = method.name.value
    return [
        node
        for node in walk(method)
        if isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == name
        and isinstance(node.func.value, cst.Call)
        and isinstance(node.func.value.func, cst.Name)
        and node.func.value.func.value == "super"
    ]
