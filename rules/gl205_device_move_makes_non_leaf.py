"""GL205 device-move-makes-non-leaf."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.values import NO, YES, Kind, Value
from gradlint.rule import Report, Rule


class DeviceMoveMakesNonLeaf(Rule):
    """Moves or casts a tensor made with `requires_grad=True`, then uses the copy as the leaf.

    **Why is this bad?** `torch.randn(3, requires_grad=True).cuda()` (or `.double()`,
    `* 0.01`, `.view(...)`) is an op's result: a non-leaf copy of the leaf, and the leaf
    itself is lost. Backward fills the lost leaf's `.grad`, never the copy's: the copy's
    `.grad` stays None (PyTorch only warns), so a hand-written update or a gradient check
    reads nothing and the tensor never trains. (Given to an optimizer, the copy raises:
    GL109 reports that.)

    **Example**
    ```python
    w = torch.randn(784, 10, requires_grad=True) * 0.01
    ...
    w -= lr * w.grad
    ```

    **Use instead**: make the tensor where and as it should be, or ask for grad after
    the move.
    ```python
    w = torch.randn(784, 10, device=device, requires_grad=True)
    w = (torch.randn(784, 10) * 0.01).requires_grad_()
    ```
    """

    code = "GL205"
    name = "device-move-makes-non-leaf"
    message = (
        "makes a non-leaf copy of a tensor made to require grad, whose `.grad` stays None; "
        "create it with device=/dtype=, or call `.requires_grad_()` after the move"
    )

    INVALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True).double()  # error
loss = (w * 2).sum()
loss.backward()
assert w.grad is None
""",
        """\
import torch as T


def sgd_step(param, lr):
    with T.no_grad():
        if param.grad is not None:
            param -= lr * param.grad


w = T.ones(3, requires_grad=True)
w = w * 0.1  # error
before = w.detach().clone()
for x in [T.tensor([1.0, 2.0, 3.0])]:
    loss = (w * x).sum()
    loss.backward()
    sgd_step(w, 0.1)
assert T.equal(w.detach(), before)  # never trained
""",
        """\
import torch


class Scaler:
    def __init__(self):
        self.log_scale = torch.zeros(2, requires_grad=True).view(2, 1)  # error

    def apply(self, x):
        return x * self.log_scale.exp()

    def scale_grad(self):
        return self.log_scale.grad


s = Scaler()
s.apply(torch.ones(2, 3)).sum().backward()
assert s.scale_grad() is None
""",
        """\
import torch
dtype = torch.DoubleTensor  # torch.cuda.FloatTensor on a GPU
x = torch.ones(4, 3, dtype=torch.float64)
w = torch.randn(3, 2, requires_grad=True).type(dtype)  # error
b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
(x @ w + b).sum().backward()
assert w.grad is None and b.grad is not None
""",
    ]
    VALID = [
        """\
import torch
device = torch.device("cpu")
w = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)
v = torch.randn(3).double().requires_grad_()
u = (torch.randn(3) * 0.1).requires_grad_()
loss = (w * v * u).sum()
loss.backward()
assert w.grad is not None and v.grad is not None and u.grad is not None
""",
        """\
import torch
from torch import nn, optim
t = torch.randn(3)
p = nn.Parameter(t.double())
q = nn.Parameter(t.to("cpu"))
opt = optim.SGD([p, q], lr=0.1)
(p.float() * q).sum().backward()
opt.step()
assert p.grad is not None and q.grad is not None
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
w64 = w.double()
scaled = torch.randn(3, requires_grad=True) * 2
loss = (w64 * 2).sum() + scaled.sum()
loss.backward()
assert w.grad is not None
""",
        """\
import torch
w = torch.randn(3, dtype=torch.float64, requires_grad=True).double()
v = torch.randn(3, requires_grad=True).float().to(torch.float32)
(w.float() * v).sum().backward()
assert w.grad is not None and v.grad is not None
""",
        """\
import torch
w = torch.randn(3, requires_grad=True).double()
w.retain_grad()
(w * 2).sum().backward()
assert w.grad is not None
""",
        """\
import torch as T


def step(leaf, lr):
    with T.no_grad():
        leaf -= lr * leaf.grad
        leaf.grad.zero_()


w = T.ones(3, requires_grad=True)
for _ in range(2):
    loss = (w.double() * 3).sum()
    loss.backward()
    step(w, 0.1)
assert not T.equal(w.detach(), T.ones(3))
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        elsewhere = _reported_elsewhere(facts)
        seen: set[int] = set()
        for read, runs in facts.grad_reads.items():
            for tensor in runs:
                moved = tensor.moved
                if (
                    not isinstance(moved, cst.CSTNode)
                    or id(moved) in seen
                    or id(moved) in elsewhere
                    or tensor.leaf is not NO
                    or tensor.requires_grad is not YES
                    or facts.may_retain_grad(tensor)
                ):
                    continue
                seen.add(id(moved))
                line = facts.position(read)[0]
                yield Report(
                    facts.focus(moved),
                    "makes a non-leaf copy of a tensor made to require grad: its `.grad`, read "
                    f"at line {line}, stays None; create the tensor with device=/dtype=, or call "
                    "`.requires_grad_()` after this",
                )


def _reported_elsewhere(facts: Facts) -> set[int]:
    """Copies that another rule reports where they were made: given to an optimizer
    (GL109: that raises), or assigned in a module's constructor (GL206)."""
    found = {id(t.moved) for t in facts.unregistered_tensors if t.moved is not None}
    for made in facts.optimizers:
        if made.params is None:
            continue
        for value in facts.any_run(made.params):
            for part in _parts(value):
                if part.moved is not None:
                    found.add(id(part.moved))
    return found


def _parts(value: Value) -> list[Value]:
    if value.kind is not Kind.SEQUENCE:
        return [value]
    return [v for v in (value.item, *(value.items or ())) if v is not None]
