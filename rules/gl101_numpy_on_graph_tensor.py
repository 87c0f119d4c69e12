"""GL101 numpy-on-graph-tensor."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import Call
from gradlint.analysis.torch_api import ARRAY_CONVERTERS, AXES_PLOTS, NUMPY_SAFE
from gradlint.analysis.values import NO, YES, Kind, Value
from gradlint.fixes import Replacement, detached
from gradlint.rule import Report, Rule


def _converts(qualname: str) -> bool:
    if qualname.startswith("numpy."):
        return qualname.rsplit(".", 1)[1] not in NUMPY_SAFE
    return qualname in ARRAY_CONVERTERS


def _requires_grad(value: Value) -> bool:
    if value.kind is Kind.TENSOR:
        return value.requires_grad is YES
    if value.kind is Kind.SEQUENCE and value.item is not None:
        return value.item.kind is Kind.TENSOR and value.item.requires_grad is YES
    return False


_HANDED = (
    "hands a tensor that requires grad to code that converts it to numpy at line {line}, "
    "which raises; `.detach()` it here"
)


def _reports(convert: cst.Call, converted: cst.BaseExpression, facts: Facts) -> Iterator[Report]:
    """The conversion of a tensor that requires grad; of a helper's parameter that other
    calls hand detached tensors (a plotting helper), the calls that handed one with its
    graph."""
    runs = facts.any_run(converted)
    values = [v for v in runs if _requires_grad(v)]
    if not values or facts.flag_ruled_out(convert, converted):
        return
    detached_too = any(v.is_tensor and v.requires_grad is NO for v in runs)
    handed = {id(v.handed): v.handed for v in values if isinstance(v.handed, cst.Call)}
    if (
        detached_too
        and facts.is_parameter(converted, convert)
        and handed
        and all(isinstance(v.handed, cst.Call) for v in values)
    ):
        line = facts.position(convert)[0]
        for call in handed.values():
            yield Report(call, _HANDED.format(line=line))
        return
    yield Report(convert, fix=_detached(convert, converted, facts))


def _detached(convert: cst.Call, converted: cst.BaseExpression, facts: Facts) -> Replacement | None:
    """`.detach()` on what is converted. Safe for values taken out to log, plot or save;
    not inside a model's forward, nor where the numbers go back into a tensor that is
    trained through (`torch.tensor(x.numpy())` in a loss): there the fix would let the
    program run with its graph silently cut, so it is offered as unsafe."""
    if not all(value.is_tensor for value in facts.any_run(converted)):
        return None  # a list of tensors, say: no one place to detach
    new = detached(converted)
    in_forward = facts.in_forward(convert)
    cuts = {*facts.revivals.values(), *(cut for cut, _ in facts.dead_terms)}
    safe = not in_forward and convert not in cuts and converted not in cuts
    return Replacement(converted, new, "Detach before converting", safe)


_SUMMED = (
    "adds a tensor that requires grad, graph and all, to a running total that line {line} "
    "converts to numpy, which raises; add `.item()` instead"
)
_FILLED = (
    "keeps a tensor that requires grad in a list that line {line} converts to numpy, which "
    "raises; keep `.item()` or `.detach()` instead"
)


class NumpyOnGraphTensor(Rule):
    """Converts a tensor that requires grad to a numpy array.

    **Why is this bad?** A tensor that requires grad still belongs to an autograd graph,
    and numpy cannot carry the graph: `.numpy()`, and functions that convert their
    argument (`np.asarray`, `np.mean` over a list of losses, `plt.plot`, `pd.DataFrame`), raise
    `RuntimeError: Can't call numpy() on Tensor that requires grad`. It usually shows
    up late, in the logging or plotting after a step.

    **Example**
    ```python
    out = model(x)
    preds = out.numpy()
    ```

    **Use instead**: detach first, or compute under `torch.no_grad()` when no gradient is needed.
    ```python
    preds = out.detach().cpu().numpy()
    ```
    """

    code = "GL101"
    name = "numpy-on-graph-tensor"
    message = "converts a tensor that requires grad to numpy, which raises; `.detach()` it first"
    raises = ("Can't call numpy() on Tensor that requires grad",)
    fixable = True

    INVALID = [
        """\
import numpy as np
import torch
from torch import nn

model = nn.Linear(3, 1)
history = {"loss": []}
for epoch in range(2):
    total = 0
    for _ in range(4):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        loss.backward()
        total += loss  # error
    history["loss"].append(total / 4)
curve = np.array(history["loss"])
""",
        """\
import numpy as np
import torch


def scatter(xs, ys):
    return np.asarray(xs), np.asarray(ys)


w = torch.randn(3, requires_grad=True)
x = torch.randn(5, 3)
scatter(x[:, 0], x[:, 1])
scatter(x[:, 0], x @ w)  # error
""",
        """\
import torch
model = torch.nn.Linear(4, 2)
out = model(torch.randn(3, 4))
preds = out.numpy()  # error
""",
        """\
import numpy as np
import torch as T
w = T.randn(3, requires_grad=True)
arr = np.asarray(w * 2)  # error
""",
        """\
import numpy as np
import torch
from torch import nn
net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
losses = []
for step in range(3):
    loss = net(torch.randn(4, 2)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss)
print("mean loss", np.mean(losses))  # error
""",
        """\
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.fc(x)

def train():
    net = Net()
    opt = torch.optim.Adam(net.parameters())
    loss = net(torch.randn(2, 3)).sum()
    loss.backward()
    opt.step()
    print(loss.cpu().numpy())  # error

train()
""",
    ]
    FIXED = {
        0: [
            (
                "        total += loss  # error\n",
                "        total += loss.detach()  # error\n",
            ),
        ],
        2: [
            (
                "preds = out.numpy()  # error\n",
                "preds = out.detach().numpy()  # error\n",
            ),
        ],
        3: [
            (
                "arr = np.asarray(w * 2)  # error\n",
                "arr = np.asarray((w * 2).detach())  # error\n",
            ),
        ],
        4: [
            (
                "    losses.append(loss)\n",
                "    losses.append(loss.detach())\n",
            ),
        ],
        5: [
            (
                "    print(loss.cpu().numpy())  # error\n",
                "    print(loss.cpu().detach().numpy())  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
layer = torch.nn.Linear(3, 3)
w = layer.weight
# converted as it is only where it does not require grad
table = w.numpy() if not w.requires_grad else w.detach().numpy()
if not layer.bias.requires_grad:
    bias = layer.bias.numpy()
""",
        """\
import numpy as np
import torch
from torch import nn


def trace(func):
    def wrapper(*args):
        args = [a.detach().numpy() if isinstance(a, torch.Tensor) else a for a in args]
        return func(*args)
    return wrapper


@trace
def plot(values):
    return np.asarray(values).mean()


print(plot(nn.Linear(3, 1)(torch.randn(2, 3))))
""",
        """\
import torch
model = torch.nn.Linear(4, 2)
with torch.no_grad():
    out = model(torch.randn(3, 4))
preds = out.numpy()
""",
        """\
import torch
model = torch.nn.Linear(4, 2)
out = model(torch.randn(3, 4))
preds = out.detach().cpu().numpy()
score = out.sum().item()
""",
        """\
import torch
model = torch.nn.Linear(4, 2)

@torch.no_grad()
def predict(x):
    return model(x).numpy()

print(predict(torch.randn(1, 4)))
""",
        """\
import torch
model = torch.nn.Linear(4, 2)

def predict(x):
    return model(x).numpy()

with torch.inference_mode():
    print(predict(torch.randn(1, 4)))
""",
        """\
import numpy as np
import torch
x = torch.randn(3)
arr = np.asarray(x * 2)
labels = (torch.randn(4, 3).argmax(dim=1)).numpy()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for call in facts.calls:
            if call.method == "numpy" and call.receiver is not None:
                forced = any(
                    arg.keyword is not None and arg.keyword.value == "force"
                    for arg in call.node.args
                )
                if not forced:
                    yield from _reports(call.node, call.receiver, facts)
            elif (call.qualname is not None and _converts(call.qualname)) or _plots_on_axes(
                call, facts
            ):
                # numpy functions, and the plotting and table functions built on them, turn
                # tensor arguments into arrays (through `__array__`).
                for arg in call.node.args:
                    if arg.keyword is not None:
                        continue
                    value = next(filter(_requires_grad, facts.any_run(arg.value)), None)
                    if value is None:
                        continue
                    filled_by = value.filled_by
                    line = facts.position(call.node)[0]
                    if isinstance(filled_by, cst.AugAssign):
                        # Losses summed as tensors (`total += loss`), then listed: the
                        # fix is the sum.
                        yield Report(filled_by, _SUMMED.format(line=line))
                    elif isinstance(filled_by, cst.CSTNode) and facts.is_parameter(
                        arg.value, call.node
                    ):
                        # A list handed in and converted here (a plotting helper): the
                        # fix is where a tensor with its graph went into the list.
                        yield Report(filled_by, _FILLED.format(line=line))
                    else:
                        yield from _reports(call.node, arg.value, facts)
                    break


def _plots_on_axes(call: Call, facts: Facts) -> bool:
    """`ax.plot(x, y)` on matplotlib axes (from `plt.subplots()`, `fig.add_subplot()`)."""
    return (
        call.method in AXES_PLOTS
        and call.receiver is not None
        and any(value.layer == "axes" for value in facts.any_run(call.receiver))
    )
