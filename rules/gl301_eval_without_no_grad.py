"""GL301 eval-without-no-grad."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.values import NO
from gradlint.rule import Report, Rule


class EvalWithoutNoGrad(Rule):
    """Runs a model in eval mode with autograd recording, and never back-propagates the result.

    **Why is this bad?** `model.eval()` only changes how layers such as dropout and
    BatchNorm behave; it does not stop autograd. Every forward pass of a validation or
    inference loop still records a graph and keeps the activations it saved for a backward
    that never comes: memory that grows with the batch and the model, and time spent for
    nothing. Under `torch.no_grad()` (or `torch.inference_mode()`) the same forward
    computes the same outputs without recording anything.

    **Example**
    ```python
    model.eval()
    for x, y in val_loader:
        correct += (model(x).argmax(1) == y).sum().item()
    ```

    **Use instead**: the loop (or the whole evaluation function, with `@torch.no_grad()`)
    without autograd.
    ```python
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    ```

    Reported at the first such forward of an evaluation function (or at the call, from the
    code that set eval mode, of the helper that runs the model). Silent where the result is
    back-propagated (adversarial examples, eval-mode fine-tuning) or handed to code the
    analysis cannot follow.
    """

    code = "GL301"
    name = "eval-without-no-grad"
    message = (
        "runs the model in eval mode while autograd records a graph that is never "
        "back-propagated; run it under `torch.no_grad()` (or `torch.inference_mode()`)"
    )

    INVALID = [
        """\
import torch as T
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
model.eval()
correct = 0
for x in T.randn(3, 5, 4):
    logits = model(x)  # error
    correct += (logits.argmax(1) == 0).sum().item()
assert logits.grad_fn is not None  # a graph recorded for every batch
""",
        """\
import torch
from torch import nn, optim


def evaluate(net, batches):
    net.eval()
    total = 0.0
    for x in batches:
        out = net(x)  # error
        total += out.pow(2).mean().item()
    return total / len(batches), out.grad_fn is not None


model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
for epoch in range(2):
    model.train()
    for x in torch.randn(3, 8, 4):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    val_loss, recorded = evaluate(model, torch.randn(2, 8, 4))
    assert recorded
""",
        """\
import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(x))

    def predict(self, x):
        self.train(False)
        probs = self(x).softmax(-1)  # error
        return probs.argmax(-1).tolist(), probs.requires_grad


labels, recorded = Classifier().predict(torch.randn(6, 4))
assert recorded
""",
        """\
import torch
from torch import nn, optim


def run_epoch(model, batches, opt=None):
    total, last = 0.0, None
    for x, y in batches:
        last = nn.functional.mse_loss(model(x), y)
        if opt is not None:
            opt.zero_grad()
            last.backward()
            opt.step()
        total += last.item()
    return total / len(batches), last.requires_grad


model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 1))
opt = optim.Adam(model.parameters(), lr=1e-3)
data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(3)]
model.train()
train_loss, _ = run_epoch(model, data, opt)
model.eval()
val_loss, recorded = run_epoch(model, data)  # error
assert recorded  # the validation epoch recorded graphs too
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
model.eval()
correct = 0
with torch.no_grad():
    for x in torch.randn(3, 5, 4):
        correct += (model(x).argmax(1) == 0).sum().item()
with torch.inference_mode():
    preds = model(torch.randn(2, 4)).argmax(1)
""",
        """\
import torch
from torch import nn


@torch.no_grad()
def evaluate(net, batches):
    net.eval()
    return sum(net(x).pow(2).mean().item() for x in batches)


def score(net, x):
    return net(x).mean().item()


model = nn.Linear(4, 1)
evaluate(model, torch.randn(2, 8, 4))
model.eval()
with torch.no_grad():
    s = score(model, torch.randn(8, 4))
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
model.eval()
x = torch.randn(5, 4, requires_grad=True)
loss = nn.functional.cross_entropy(model(x), torch.zeros(5, dtype=torch.long))
loss.backward()
x_adv = (x + 0.1 * x.grad.sign()).detach()
""",
        """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
model.eval()  # BatchNorm keeps its running statistics while fine-tuning
for x in torch.randn(3, 8, 4):
    opt.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 2)
model.eval()
model.train()
out = model(torch.randn(3, 4))
out.sum().backward()


def predict(net, x):
    net.eval()
    return net(x)
""",
        """\
import torch
from torch import nn


class Potential(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, pos):
        energy = self.net(pos).sum()
        return energy, -torch.autograd.grad(energy, pos, create_graph=self.training)[0]


model = Potential().eval()
energy, forces = model(torch.randn(4, 3, requires_grad=True))
print(energy.item(), forces.abs().max().item())
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        if facts.eval_forwards and _differentiates_in_forward(facts.module):
            # A model whose forward takes gradients (forces as the gradient of an energy)
            # needs autograd on in eval mode too: the file's eval forwards may be its.
            return
        # A forward detached at once is GL306's finding, with its own fix.
        detached = {
            call.func.value
            for call in facts.detached_forwards
            if isinstance(call.func, cst.Attribute)
        }
        # One evaluation function is one fix (`@torch.no_grad()`): one finding, at its first
        # forward; at module level, one per `.eval()`.
        groups: dict[tuple[object, object], list[cst.CSTNode]] = {}
        for node, forward in facts.eval_forwards.items():
            if node in forward.calls and any(
                facts.forward_modes.get(call) is not NO for call in forward.calls
            ):
                continue  # also run in training mode: a helper that training uses too
            if forward.sites & facts.propagated_sites or node in detached:
                continue  # back-propagated, or handed to code that may do so
            scope = facts.scope.get(node)
            key = (scope, None if scope is not None else forward.set_by or node)
            groups.setdefault(key, []).append(node)
        for nodes in groups.values():
            first, *rest = sorted(nodes, key=facts.position)
            if not rest:
                yield Report(first)
                continue
            lines = ", ".join(str(facts.position(node)[0]) for node in rest)
            also = "line" if len(rest) == 1 else "lines"
            yield Report(first, f"{self.message} (also the forward at {also} {lines})")


class _ForwardGrad(cst.CSTVisitor):
    def __init__(self) -> None:
        self.depth = 0
        self.found = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += node.name.value == "forward"

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= original_node.name.value == "forward"

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            self.depth
            and isinstance(func, cst.Attribute)
            and func.attr.value == "grad"
            and (
                (isinstance(func.value, cst.Attribute) and func.value.attr.value == "autograd")
                or (isinstance(func.value, cst.Name) and func.value.value == "autograd")
            )
        ):
            self.found = True


def _differentiates_in_forward(module: cst.Module) -> bool:
    """Whether a `forward` of the file calls `torch.autograd.grad`."""
    visitor = _ForwardGrad()
    module.visit(visitor)
    return visitor.found
