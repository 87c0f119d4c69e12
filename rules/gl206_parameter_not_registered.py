"""GL206 parameter-not-registered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.nodes import child_nodes
from gradlint.analysis.scopes import FunctionInfo
from gradlint.analysis.values import NO, Kind
from gradlint.rule import Report, Rule

_MOVED = (
    "the op after `nn.Parameter(...)` makes a plain non-leaf tensor, so the module registers "
    "no parameter and it never trains; move or cast inside: `nn.Parameter(t.double())`"
)


class ParameterNotRegistered(Rule):
    """Keeps a tensor or layer meant to train on a module where it registers no parameter,
    or builds a layer with parameters anew inside `forward` (or another method).

    **Why is this bad?** A module registers a parameter only when an `nn.Parameter` itself
    is assigned to it, and a layer's parameters only when the layer is assigned to it or
    kept in an `nn.ModuleList`/`nn.ModuleDict`. `self.w = nn.Parameter(t).double()` (or
    `.cuda()`, `* 0.1`, `.view(...)`) assigns an op's result, a non-leaf copy:
    `model.parameters()` misses it and it never trains. `self.w = torch.randn(...,
    requires_grad=True)` is a plain tensor, and layers appended to a plain list are
    hidden: an optimizer built from `model.parameters()` never updates them,
    `model.to(device)` does not move them and `state_dict()` does not save them.
    A layer built inside `forward` (or a helper it calls, such as `encoder()`) and used
    there, `nn.Linear(8, 32)(x)`, is a new layer with fresh random weights on every call,
    never kept on the module: nothing trains it, the output is noise from call to call,
    and a model built only that way has no parameters at all (its optimizer raises on an
    empty list).

    **Example**
    ```python
    self.scale = nn.Parameter(torch.ones(dim)).cuda()
    self.bias = torch.zeros(dim, requires_grad=True)
    self.blocks = []
    for _ in range(depth):
        self.blocks.append(nn.Linear(dim, dim))

    def forward(self, x):
        return nn.Linear(dim, 1)(x)
    ```

    **Use instead**: assign the `nn.Parameter` itself, made from the moved tensor, keep
    layers in a module container, and build layers once in `__init__`.
    ```python
    self.scale = nn.Parameter(torch.ones(dim, device="cuda"))
    self.bias = nn.Parameter(torch.zeros(dim))
    self.blocks = nn.ModuleList()
    self.head = nn.Linear(dim, 1)

    def forward(self, x):
        return self.head(x)
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
        """\
import torch
from torch import nn


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(32, 1)

    def forward(self, x):
        h = torch.relu(nn.Linear(8, 32)(x))  # error
        return self.out(h)


model = Regressor()
assert len(list(model.parameters())) == 2  # only `out`: the hidden layer is not there
x = torch.randn(4, 8)
assert not torch.equal(model(x), model(x))  # new random weights on every call
""",
        """\
import torch
import torch.nn as nn
from torch.nn import Conv2d


class AutoEncoder(nn.Module):
    def encoder(self, x):
        layer = Conv2d(3, 8, 3, padding=1)  # error
        return torch.relu(layer(x))

    def decoder(self, h):
        return nn.Sequential(nn.Conv2d(8, 3, 3, padding=1), nn.Sigmoid())(h)  # error

    def forward(self, x):
        return self.decoder(self.encoder(x))


model = AutoEncoder()
assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)
try:
    torch.optim.Adam(model.parameters(), lr=1e-3)
except ValueError as error:
    assert "empty parameter list" in str(error)
else:
    raise AssertionError("the model has parameters")
""",
    ]
    VALID = [
        """\
import torch
from torch import nn


class Learner(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 2)
        # groups of layers registered above, for discriminative learning rates
        self.layer_groups = [nn.ModuleList([self.encoder]), nn.ModuleList([self.head])]

    def forward(self, x):
        return self.head(self.encoder(x))


model = Learner()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
""",
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
        """\
import torch
from torch import nn


class Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()

    def build(self, width):
        proj = nn.Linear(width, 4)
        self.add_module("proj", proj)
        for _ in range(2):
            block = nn.Linear(4, 4)
            self.blocks.append(block)
        setattr(self, "norm", nn.LayerNorm(4))

    def forward(self, x):
        if not hasattr(self, "head"):
            self.build(x.shape[-1])
            head = nn.Linear(4, 1)
            self.head = head
        h = self.proj(x)
        for block in self.blocks:
            h = torch.relu(block(h))
        return self.head(self.norm(h))


model = Lazy()
model(torch.randn(3, 5))
assert len(list(model.parameters())) == 10
""",
        """\
import torch
from torch import nn


class Linear:  # the project's own class, not torch.nn.Linear
    def __init__(self, n_in, n_out):
        self.scale = n_out / n_in

    def __call__(self, x):
        return x * self.scale


def make_body():
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = make_body()
        self.head = self.make_head()

    def make_head(self):
        return nn.Linear(3, 3)

    def forward(self, x, y):
        h = nn.Dropout(0.1)(nn.ReLU()(self.body(x)))
        h = nn.BatchNorm1d(3, affine=False)(Linear(3, 3)(h))
        h = nn.LayerNorm(3, elementwise_affine=False)(h)
        scores = self.head(h)
        return nn.CrossEntropyLoss()(scores, y), nn.Softmax(dim=-1)(scores)


model = Classifier()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
before = [p.detach().clone() for p in model.parameters()]
loss, _ = model(torch.randn(4, 2, 2), torch.tensor([0, 1, 2, 0]))
loss.backward()
opt.step()
assert all(not torch.equal(p, b) for p, b in zip(model.parameters(), before))
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
        yield from _built_per_call(facts)

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


# torch.nn layers that own parameters as built by default, and for the norms the argument
# (keyword, position) that can turn them off. InstanceNorm has none unless `affine=True`.
_LAYERS: dict[str, tuple[str, int] | None] = {
    name: None
    for name in (
        "Linear Bilinear LazyLinear Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d "
        "ConvTranspose3d LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d "
        "LazyConvTranspose2d LazyConvTranspose3d Embedding EmbeddingBag RNN LSTM GRU RNNCell "
        "LSTMCell GRUCell MultiheadAttention Transformer TransformerEncoder TransformerDecoder "
        "TransformerEncoderLayer TransformerDecoderLayer PReLU AdaptiveLogSoftmaxWithLoss"
    ).split()
}
_LAYERS.update(
    {
        name: ("affine", 3)
        for name in (
            "BatchNorm1d BatchNorm2d BatchNorm3d LazyBatchNorm1d LazyBatchNorm2d "
            "LazyBatchNorm3d SyncBatchNorm GroupNorm"
        ).split()
    }
)
_LAYERS.update({"LayerNorm": ("elementwise_affine", 2), "RMSNorm": ("elementwise_affine", 2)})
_OPT_IN = {
    name: ("affine", 3)
    for name in (
        "InstanceNorm1d InstanceNorm2d InstanceNorm3d LazyInstanceNorm1d LazyInstanceNorm2d "
        "LazyInstanceNorm3d"
    ).split()
}
# Methods that return the module itself (moved or cast), still unregistered.
_SAME_MODULE = frozenset("to cuda cpu float double half bfloat16 type train".split())


def _layer_class(qualname: str | None) -> str | None:
    """`Linear` for `torch.nn.Linear` (or `torch.nn.modules.linear.Linear`)."""
    if qualname is None or not qualname.startswith("torch.nn."):
        return None
    rest = qualname[len("torch.nn.") :]
    if "." in rest and not rest.startswith("modules."):
        return None  # `torch.nn.functional.linear`, `torch.nn.Embedding.from_pretrained`
    return rest.rsplit(".", 1)[-1]


def _flag(node: cst.Call, keyword: str, position: int, default: bool) -> bool | None:
    """The literal value of a constructor's boolean argument: `default` where it is not
    given, None where it is given and is not a literal."""
    for index, arg in enumerate(node.args):
        named = arg.keyword.value if arg.keyword is not None else None
        if named == keyword or (named is None and not arg.star and index == position):
            value = arg.value
            if type(value) is cst.Name and cast(cst.Name, value).value in ("True", "False"):
                return cast(cst.Name, value).value == "True"
            return None
        if arg.star:
            return None  # `*args` may hold it
    return default


def _has_parameters(name: str, node: cst.Call) -> bool:
    if name in _LAYERS:
        switch = _LAYERS[name]
        return switch is None or _flag(node, *switch, default=True) is True
    if name in _OPT_IN:
        return _flag(node, *_OPT_IN[name], default=False) is True
    return False


def _method_of_module(function: object) -> FunctionInfo | None:
    """The method of an `nn.Module` subclass, other than its constructor, that `function`
    (or a function nested in it) belongs to; None for `__init__` and for other code."""
    current = function if isinstance(function, FunctionInfo) else None
    while current is not None:
        if current.owner is not None:
            if not current.owner.is_module or current.name == "__init__":
                return None
            return None if _run_by_constructor(current) else current
        if current.name == "__init__":
            return None
        current = current.parent
    return None


def _run_by_constructor(method: FunctionInfo) -> bool:
    """Whether every known caller of a method is its class's constructor (or a helper only
    that constructor runs): it builds the module once, like `__init__` itself."""
    seen: set[int] = set()
    todo = [method]
    while todo:
        info = todo.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if info.escapes or not info.call_sites:
            return False
        for caller, _ in info.call_sites:
            if caller is None:
                return False
            if caller.name != "__init__":
                todo.append(caller)
    return True


def _built_per_call(facts: Facts) -> Iterator[Report]:
    """Layers with parameters built inside a module's method (not its constructor) on
    each call and used there, never kept on the module: fresh weights no optimizer sees."""
    candidates: dict[int, tuple[cst.Call, str, FunctionInfo, FunctionInfo]] = {}
    for call in facts.calls:
        name = _layer_class(call.qualname)
        if name is None or id(call.node) in candidates or not _has_parameters(name, call.node):
            continue
        function = facts.scope.get(call.node)
        method = _method_of_module(function)
        if method is None or facts.grad_enabled(call.node) is NO:
            continue
        assert isinstance(function, FunctionInfo)
        candidates[id(call.node)] = (call.node, name, function, method)
    reported: set[int] = set()
    for node, name, function, method in candidates.values():
        target = _discarded(facts, node, function)
        if target is None or id(target[0]) in reported:
            continue
        reported.add(id(target[0]))
        if target[2] is not node:
            name = "Sequential"
        attribute = target[1] or "<name>"
        yield Report(
            target[0],
            f"builds a new `nn.{name}` on every call of `{method.name}()`, with fresh weights "
            "that are not the module's parameters: nothing trains them; build it once in "
            f"`__init__` as `self.{attribute} = nn.{name}(...)` and call that",
        )


def _discarded(
    facts: Facts, node: cst.Call, function: FunctionInfo
) -> tuple[cst.CSTNode, str | None, cst.Call] | None:
    """Where a layer built at `node` is only called and then dropped: the expression that
    builds it (an `nn.Sequential` holding it, a `.to(device)` of it), the local name it was
    given, if any, and the module built (the layer, or that `nn.Sequential`); None where
    it may be kept (assigned to an attribute, stored, handed to a call, returned)."""
    above = facts.parents.ancestors(node)
    top: cst.CSTNode = node
    built = node
    index = 0
    while index < len(above):
        parent = above[index]
        if type(parent) is cst.Arg and index + 1 < len(above):
            outer = above[index + 1]
            if (
                type(outer) is cst.Call
                and facts.imports.resolve(cast(cst.Call, outer).func) == "torch.nn.Sequential"
                and cast(cst.Arg, parent).keyword is None
                and not cast(cst.Arg, parent).star
            ):
                top = built = cast(cst.Call, outer)
                index += 2
                continue
            return None
        if (
            type(parent) is cst.Attribute
            and cast(cst.Attribute, parent).attr.value in _SAME_MODULE
            and index + 1 < len(above)
            and type(above[index + 1]) is cst.Call
            and cast(cst.Call, above[index + 1]).func is parent
        ):
            top, index = above[index + 1], index + 2
            continue
        break
    if index >= len(above):
        return None
    parent = above[index]
    if type(parent) is cst.Call and cast(cst.Call, parent).func is top:
        return top, None, built  # `nn.Linear(8, 32)(x)`
    if type(parent) is cst.Assign:
        assign = cast(cst.Assign, parent)
        if len(assign.targets) == 1 and type(assign.targets[0].target) is cst.Name:
            local = cast(cst.Name, assign.targets[0].target)
            if _only_called(function.node, local):
                return top, local.value, built
    return None


def _only_called(function: cst.FunctionDef, bound: cst.Name) -> bool:
    """Whether a local name, bound once, is used only as the callee of calls (at least
    once) in its function: `layer = nn.Conv2d(...)` and then `layer(x)`."""
    called = False
    todo: list[tuple[cst.CSTNode, cst.CSTNode | None]] = [(function.body, None)]
    while todo:
        current, parent = todo.pop()
        if type(current) is cst.Name and cast(cst.Name, current).value == bound.value:
            if current is bound:
                continue
            if type(parent) is cst.Call and cast(cst.Call, parent).func is current:
                called = True
                continue
            if type(parent) is cst.Attribute and cast(cst.Attribute, parent).attr is current:
                continue  # `obj.layer`: another name
            if type(parent) is cst.Arg and cast(cst.Arg, parent).keyword is current:
                continue  # `f(layer=...)`
            return False  # kept, handed on, rebound, returned, declared global...
        for child in child_nodes(current):
            todo.append((child, current))
    return called
