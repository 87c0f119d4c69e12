"""GL305 retain-graph-in-loop."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class RetainGraphInLoop(Rule):
    """Calls `backward(retain_graph=True)` in a loop where no later backward needs the graph.

    **Why is this bad?** A tensor carried from one iteration to the next without
    `.detach()` (an RNN's hidden state, a running state) links each iteration's graph to
    the one before. Without `retain_graph=True`, the second backward raises "Trying to
    backward through the graph a second time"; with it, nothing raises, but no graph is
    ever freed: the graph grows by one iteration every step, and every backward goes all
    the way back to the first iteration. Memory and the time of each step grow without
    bound, and the gradients mix every earlier step into the current one.

    When no later backward goes through the graph at all, `retain_graph=True` only keeps
    each iteration's saved activations alive after its backward: memory for nothing.

    **Example**
    ```python
    hidden = torch.zeros(1, batch, size)
    for x, y in batches:
        out, hidden = rnn(x, hidden)
        loss = criterion(head(out), y)
        loss.backward(retain_graph=True)
    ```

    **Use instead**: cut the carried state from the previous iteration's graph, and let
    backward free the graph.
    ```python
    for x, y in batches:
        hidden = hidden.detach()
        out, hidden = rnn(x, hidden)
        loss = criterion(head(out), y)
        loss.backward()
    ```
    """

    code = "GL305"
    name = "retain-graph-in-loop"
    message = (
        "keeps a graph that reaches back into earlier loop iterations, so it grows every "
        "iteration; `.detach()` the carried state and drop retain_graph=True"
    )

    INVALID = [
        """\
import torch

def graph_size(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent, _ in fn.next_functions)
    return len(seen)

w = torch.randn(3, 3, requires_grad=True)
state = torch.zeros(3)
sizes = []
for t in range(6):
    state = torch.tanh(w @ state + torch.randn(3))
    loss = state.pow(2).sum()
    loss.backward(retain_graph=True)  # error
    sizes.append(graph_size(loss))
assert sizes[-1] > 3 * sizes[0]  # each backward runs through every earlier step
""",
        """\
import torch as T
from torch import nn

def graph_size(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent, _ in fn.next_functions)
    return len(seen)

class Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x, h):
        return T.tanh(self.lin(h) + x)

cell = Cell()
h = T.zeros(1, 8)
sizes = []
for step in range(5):
    h = cell(T.randn(1, 8), h)
    cell.zero_grad()
    T.autograd.backward(h.sum(), retain_graph=True)  # error
    sizes.append(graph_size(h))
assert sizes[-1] > 3 * sizes[0]
""",
        """\
import torch

def graph_size(t):
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            todo.extend(parent for parent, _ in fn.next_functions)
    return len(seen)

def step(x, h, w):
    h = torch.sigmoid(h * w + x)
    (g,) = torch.autograd.grad(h.sum(), w, retain_graph=True)  # error
    return h, g

w = torch.ones(4, requires_grad=True)
h = torch.zeros(4)
sizes = []
for x in torch.randn(5, 4):
    h, g = step(x, h, w)
    sizes.append(graph_size(h))
assert sizes[-1] > 3 * sizes[0]  # the state's graph grows every iteration
""",
        """\
import torch
from torch import nn
rnn = nn.GRU(4, 8, batch_first=True)
head = nn.Linear(8, 1)
opt = torch.optim.SGD([*rnn.parameters(), *head.parameters()], lr=0.01)
hidden = torch.zeros(1, 2, 8)
for step in range(3):
    hidden = hidden.detach()
    out, hidden = rnn(torch.randn(2, 5, 4), hidden)
    loss = head(out).pow(2).mean()
    opt.zero_grad()
    loss.backward(retain_graph=True)  # error
    opt.step()
    pow_node = loss.grad_fn.next_functions[0][0]
    assert pow_node._saved_self is not None  # still held after the backward
""",
    ]
    VALID = [
        """\
import torch
from torch import nn
trunk = nn.Linear(4, 8)
head_a, head_b = nn.Linear(8, 1), nn.Linear(8, 1)
params = [*trunk.parameters(), *head_a.parameters(), *head_b.parameters()]
opt = torch.optim.SGD(params, lr=0.1)
for step in range(3):
    feats = trunk(torch.randn(5, 4)).relu()
    loss_a = head_a(feats).pow(2).mean()
    loss_b = head_b(feats).abs().mean()
    opt.zero_grad()
    loss_a.backward(retain_graph=True)
    loss_b.backward()
    opt.step()
""",
        """\
import torch
from torch import nn
backbone = nn.Linear(4, 8)
heads = [nn.Linear(8, 1) for _ in range(3)]
feats = backbone(torch.randn(6, 4)).tanh()
for head in heads:
    loss = head(feats).pow(2).mean()
    loss.backward(retain_graph=True)
assert backbone.weight.grad is not None
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
fast = w
for inner in range(3):
    inner_loss = (fast * torch.randn(3)).pow(2).sum()
    (g,) = torch.autograd.grad(inner_loss, fast, create_graph=True, retain_graph=True)
    fast = fast - 0.1 * g
meta_loss = fast.pow(2).sum()
meta_loss.backward()
assert w.grad is not None
""",
    ]

    unused_message = (
        "keeps a graph that no later backward goes through, so each iteration's saved "
        "activations outlive its backward; drop retain_graph=True"
    )

    def check(self, facts: Facts) -> Iterator[Report]:
        for growing in facts.growing_graphs.values():
            yield Report(growing.node)
        growing_backwards = {growing.backward for growing in facts.growing_graphs.values()}
        for backward, kept in facts.retained_graphs.items():
            if backward in facts.retained_used or backward in growing_backwards:
                continue
            if any(node[0] in facts.escaped_sites for node in kept):
                continue  # the graph reaches code that may back-propagate it
            keyword = next(
                (a for a in backward.args if a.keyword and a.keyword.value == "retain_graph"),
                None,
            )
            yield Report(keyword or backward, self.unused_message)
