"""GL214 non-leaf-grad-read."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.values import NO, YES, Value
from gradlint.rule import Report, Rule


class NonLeafGradRead(Rule):
    """Reads `.grad` of a non-leaf tensor (an op's result), which backward leaves None.

    **Why is this bad?** Backward fills `.grad` only on leaves: tensors made by the code
    (parameters, `torch.randn(..., requires_grad=True)`), not results of ops. The `.grad`
    of an intermediate result, a model's output or a hidden activation stays None (PyTorch
    only warns), so a gradient norm, a saliency map or a hand-written update silently
    reads nothing. The finding points where the tensor got the name (or the slot) it is
    read by: where `retain_grad()` belongs.

    **Example**
    ```python
    y = x * 2
    y.sum().backward()
    print(y.grad)
    ```

    **Use instead**: read the leaf's `.grad`, or ask backward to keep the result's.
    ```python
    y = x * 2
    y.retain_grad()
    y.sum().backward()
    print(y.grad, x.grad)
    ```
    """

    code = "GL214"
    name = "non-leaf-grad-read"
    message = (
        "reads `.grad` of a non-leaf tensor, which backward leaves None; read the leaf's "
        "`.grad`, or call `.retain_grad()` on it before backward"
    )

    INVALID = [
        """\
import torch
x = torch.randn(3, requires_grad=True)
y = x * 2  # error
y.sum().backward()
assert y.grad is None
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
images = torch.randn(5, 4)
logits = model(images)  # error
logits.max(dim=1).values.sum().backward()
saliency = logits.grad
assert saliency is None and model.weight.grad is not None
""",
        """\
import torch as T
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        self.hidden = self.fc(x)  # error
        return self.head(T.relu(self.hidden))


def grad_of(t):
    return t.grad


net = Net()
grads = []
for _ in range(2):
    net(T.randn(3, 4)).sum().backward()
    grads.append(grad_of(net.hidden))
assert all(g is None for g in grads)
""",
        """\
import torch
from torch import nn


class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.acts = {}

    def forward(self, x):
        h = self.conv(x)
        self.acts["conv"] = h  # error
        return h.relu()


net = Probe()
net(torch.randn(1, 1, 5, 5)).sum().backward()
stats = {k: a.grad for k, a in net.acts.items()}
assert stats["conv"] is None and net.conv.weight.grad is not None
""",
    ]
    VALID = [
        """\
import torch
x = torch.randn(3, requires_grad=True)
y = x * 2
y.retain_grad()
y.sum().backward()
assert y.grad is not None and x.grad is not None
""",
        """\
import torch
from torch import nn, optim
model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
opt = optim.SGD(model.parameters(), lr=0.1)
model(torch.randn(3, 4)).sum().backward()
norms = [p.grad.norm() for p in model.parameters()]
assert model[0].weight.grad is not None and len(norms) == 4
opt.step()
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
images = torch.rand(5, 4, requires_grad=True)
model(images).sum().backward()
saliency = images.grad.abs()
features = model(images).detach().requires_grad_()
features.pow(2).sum().backward()
assert saliency is not None and features.grad is not None
""",
        """\
import torch
device = torch.device("cpu")
x = torch.randn(3, requires_grad=True)
x = x.to(device)
(x * 2).sum().backward()
assert x.grad is not None
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        reported: set[int] = set()
        for read, runs in facts.grad_reads.items():
            found = next((t for t in runs if _non_leaf(facts, t)), None)
            if found is None:
                continue
            kept = [at for at in found.kept_at if isinstance(at, cst.CSTNode)]
            if not kept:
                yield Report(read)
                continue
            # Where the tensor got the name it is read by: `retain_grad()` goes there.
            line = facts.position(read)[0]
            for at in sorted(kept, key=lambda node: facts.position(node)):
                if id(at) not in reported:
                    reported.add(id(at))
                    yield Report(
                        at,
                        f"keeps a non-leaf tensor whose `.grad`, read at line {line}, backward "
                        "leaves None; call `.retain_grad()` on it before backward, or read the "
                        "leaf's `.grad`",
                    )


def _non_leaf(facts: Facts, tensor: Value) -> bool:
    """An op's result that requires grad, not copied from a leaf the code lost (GL205
    reports those where the copy was made), and never given `retain_grad()`."""
    return (
        tensor.leaf is NO
        and tensor.requires_grad is YES
        and tensor.moved is None
        and not facts.may_retain_grad(tensor)
    )
