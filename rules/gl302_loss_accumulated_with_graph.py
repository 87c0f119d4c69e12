"""GL302 loss-accumulated-with-graph."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.fixes import Replacement, detached
from gradlint.rule import Report, Rule


class LossAccumulatedWithGraph(Rule):
    """Keeps losses with their graphs across loop iterations (`total += loss`, `xs.append(loss)`).

    **Why is this bad?** A loss is not just a number: it holds its autograd graph, and the
    graph holds what the forward pass saved for backward. A running total of losses is a
    graph that adds every iteration's graph to itself, and a list of losses keeps each of
    them. Nothing is ever back-propagated through the total or the list, so nothing needs
    those graphs, yet they stay alive as long as it does: memory grows with the number of
    iterations (the activations too, where the losses were never back-propagated, as in a
    validation loop), until the process runs out of it.

    **Example**
    ```python
    running_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss
    ```

    **Use instead**: keep the number (or a detached tensor).
    ```python
        running_loss += loss.item()
        losses.append(loss.detach())
    ```
    """

    code = "GL302"
    name = "loss-accumulated-with-graph"
    message = (
        "keeps a tensor with its graph across loop iterations, so every iteration's graph "
        "stays in memory; keep `loss.item()` (or `loss.detach()`)"
    )
    fixable = True

    INVALID = [
        """\
import torch as T
from torch import nn, optim

def graph_size(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent, _ in fn.next_functions)
    return len(seen)

model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
running_loss = 0.0
for step in range(10):
    loss = model(T.randn(16, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    running_loss += loss  # error
print(f"mean loss {running_loss / 10}")
assert graph_size(running_loss) > 5 * graph_size(loss)  # every step's graph is still held
""",
        """\
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.body(x)

model = Net()
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(5)]
model.eval()
val_losses = []
for x, y in batches:
    val_losses.append(nn.functional.mse_loss(model(x), y))  # error
print(sum(val_losses) / len(val_losses))
# Never back-propagated: each batch's graph, with the activations it saved, is kept.
assert all(loss.grad_fn is not None for loss in val_losses)
""",
        """\
import torch
from torch import nn, optim

class Trainer:
    def __init__(self):
        self.model = nn.Linear(4, 1)
        self.opt = optim.Adam(self.model.parameters(), lr=1e-3)

    def fit(self, epochs):
        history = {}
        for epoch in range(epochs):
            loss = self.model(torch.randn(8, 4)).abs().mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            history[epoch] = loss  # error
        return history

history = Trainer().fit(3)
assert all(loss.grad_fn is not None for loss in history.values())
""",
        """\
import torch
from torch import nn, optim

def train_step(model, opt, x):
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss

model = nn.Linear(4, 1)
opt = optim.SGD(model.parameters(), lr=0.01)
epoch_loss = 0
for x in torch.randn(6, 8, 4):
    epoch_loss = epoch_loss + train_step(model, opt, x)  # error
print(epoch_loss / 6)
assert epoch_loss.requires_grad and epoch_loss.grad_fn is not None
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
running_loss = 0.0
for i in range(20):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    running_loss += loss  # error
    if i % 10 == 8:
        logged = running_loss
    if i % 10 == 9:
        print(f"loss {float(running_loss) / 10:.3f}")
        running_loss = 0.0
# Reset every ten steps, the total still holds the graphs of the steps in between.
assert logged.grad_fn is not None and logged.grad_fn.next_functions[0][0] is not None
""",
    ]
    FIXED = {
        0: [
            (
                "    running_loss += loss  # error\n",
                "    running_loss += loss.detach()  # error\n",
            ),
        ],
        1: [
            (
                "    val_losses.append(nn.functional.mse_loss(model(x), y))  # error\n",
                "    val_losses.append(nn.functional.mse_loss(model(x), y).detach())  # error\n",
            ),
        ],
        2: [
            (
                "            history[epoch] = loss  # error\n",
                "            history[epoch] = loss.detach()  # error\n",
            ),
        ],
        3: [
            (
                "    epoch_loss = epoch_loss + train_step(model, opt, x)  # error\n",
                "    epoch_loss = epoch_loss + train_step(model, opt, x).detach()  # error\n",
            ),
        ],
        4: [
            (
                "    running_loss += loss  # error\n",
                "    running_loss += loss.detach()  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
net = torch.nn.Linear(4, 3)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for _ in range(3):
    actions = []
    for _ in range(5):
        policy = net(torch.randn(1, 4)).softmax(-1)
        action = policy.multinomial(1)  # an index sampled: no graph
        actions.append(action)
    assert not torch.cat(actions).requires_grad
""",
        """\
import torch
from torch import nn, optim
model = nn.Linear(4, 1)
opt = optim.SGD(model.parameters(), lr=0.1)
running, numbers, detached, floats = 0.0, [], [], []
for step in range(5):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    running += loss.item()
    numbers.append(loss.item())
    detached.append(loss.detach())
    floats.append(float(loss))
assert isinstance(running, float) and detached[0].grad_fn is None
""",
        """\
import torch
from torch import nn, optim
model = nn.Linear(4, 1)
opt = optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    opt.zero_grad()
    total = 0
    for micro in torch.randn(4, 2, 4):
        total += model(micro).pow(2).mean() / 4
    total.backward()
    losses = []
    for micro in torch.randn(4, 2, 4):
        losses.append(model(micro).abs().mean())
    loss = sum(losses)
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
batches = [torch.randn(8, 4) for _ in range(3)]

@torch.no_grad()
def evaluate(model, batches):
    total = 0.0
    for x in batches:
        total += model(x).pow(2).mean()
    return total / len(batches)

model.eval()
scores = []
with torch.no_grad():
    for x in batches:
        scores.append(model(x).mean())
assert evaluate(model, batches).grad_fn is None and scores[0].grad_fn is None
""",
        """\
import torch
from torch import nn, optim

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Linear(4, 8)
        self.heads = nn.ModuleList([nn.Linear(8, 1), nn.Linear(8, 1)])

    def forward(self, x):
        h = self.trunk(x).relu()
        return [head(h) for head in self.heads]

def multi_loss(outputs, target):
    total = 0
    for out in outputs:
        total += nn.functional.mse_loss(out, target)
    return total

model = TwoHeads()
opt = optim.SGD(model.parameters(), lr=0.1)
for step in range(3):
    step_loss = 0
    step_loss += multi_loss(model(torch.randn(8, 4)), torch.zeros(8, 1))
    step_loss += 1e-4 * sum(p.pow(2).sum() for p in model.parameters())
    opt.zero_grad()
    step_loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn
from torch.distributions import Categorical

policy = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
for episode in range(2):
    log_probs, rewards = [], []
    for t in range(5):
        dist = Categorical(logits=policy(torch.randn(4)))
        action = dist.sample()
        log_probs.append(dist.log_prob(action))
        rewards.append(float(action))
    loss = -(torch.stack(log_probs) * torch.tensor(rewards)).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn


def keep_confident(batch, threshold):
    # Rows selected from one output: every pass shares that output's graph, and keeps
    # only the rows (and the mask) it selected.
    kept = []
    for rows in batch:
        kept.append(rows[rows[:, 0] > threshold])
    return kept


model = nn.Linear(4, 5 * 3)
scores = model(torch.randn(2, 4)).view(2, 5, 3)
boxes = [k.detach().numpy() for k in keep_confident(scores, 0.0)]
assert len(boxes) == 2
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for kept in facts.kept_unpropagated():
            node = kept.node
            fix = _detach_kept(node, facts)
            if isinstance(node, cst.Call):
                yield Report(
                    node,
                    "keeps a tensor with its graph in a container that lives across loop "
                    "iterations, so every iteration's graph stays in memory; store "
                    "`.item()` (or `.detach()`)",
                    fix,
                )
            else:
                yield Report(node, fix=fix)


def _detach_kept(node: cst.CSTNode, facts: Facts) -> Replacement | None:
    """The kept value with `.detach()`: the same numbers, no graph. (`.item()` would raise
    on a tensor of more than one element, which cannot be told here.)"""
    kept: cst.BaseExpression | None = None
    if isinstance(node, cst.AugAssign):
        kept = node.value  # total += loss
    elif isinstance(node, cst.Call) and len(node.args) == 1 and node.args[0].keyword is None:
        kept = node.args[0].value  # losses.append(loss)
    elif isinstance(node, cst.Assign) and len(node.targets) == 1:
        target, value = node.targets[0].target, node.value
        if isinstance(target, cst.Subscript):
            kept = value  # history[epoch] = loss
        elif (
            isinstance(target, cst.Name)
            and isinstance(value, cst.BinaryOperation)
            and isinstance(value.left, cst.Name)
            and value.left.value == target.value
        ):
            kept = value.right  # total = total + loss
    if kept is None or not all(value.is_tensor for value in facts.any_run(kept)):
        return None  # a dict of outputs, a list of losses: no one tensor to detach
    return Replacement(kept, detached(kept), "Keep the value without its graph (`.detach()`)")
