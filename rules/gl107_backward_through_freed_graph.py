"""GL107 backward-through-freed-graph."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class BackwardThroughFreedGraph(Rule):
    """Back-propagates a second time through a graph that an earlier `backward()` freed.

    **Why is this bad?** `backward()` frees the tensors the graph saved, unless asked to
    keep them. A second backward through the same part of the graph raises `RuntimeError:
    Trying to backward through the graph a second time`. It happens when a GAN's
    discriminator step uses the generator's output without `.detach()` and the generator
    step reuses it, or when an RNN's hidden state is carried from one batch to the next
    without `.detach()`.

    **Example**
    ```python
    hidden = model.init_hidden()
    for x, y in batches:
        out, hidden = model(x, hidden)
        loss = criterion(out, y)
        loss.backward()
    ```

    **Use instead**: cut the carried or shared tensor from the old graph.
    ```python
    for x, y in batches:
        hidden = hidden.detach()
        out, hidden = model(x, hidden)
    ```
    """

    code = "GL107"
    name = "backward-through-freed-graph"
    message = "back-propagates through a graph an earlier backward() already freed, which raises"
    raises = ("Trying to backward through the graph a second time",)

    INVALID = [
        """\
import torch
from torch import nn
rnn = nn.GRU(4, 8, batch_first=True)
head = nn.Linear(8, 1)
hidden = torch.zeros(1, 2, 8)
for step in range(3):
    out, hidden = rnn(torch.randn(2, 5, 4), hidden)  # error
    loss = head(out).pow(2).mean()
    loss.backward()
""",
        """\
import torch
from torch import nn
G = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3))
D = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
bce = nn.BCEWithLogitsLoss()
opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
fake = G(torch.randn(5, 2))
d_loss = bce(D(fake), torch.zeros(5, 1))  # error
d_loss.backward()
opt_d.step()
opt_d.zero_grad()
g_loss = bce(D(fake), torch.ones(5, 1))
g_loss.backward()
opt_g.step()
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
loss = (w * w).sum()
loss.backward()
loss.backward()  # error
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
h = torch.sigmoid(w * 2)
first = (h * 1.5).sum()
second = (h**2).sum()
first.backward()  # error
second.backward()  # error
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
state = torch.zeros(3)
for step in range(3):
    state = torch.tanh(state * w + 1)  # error
    state.sum().backward()
    state.detach()  # error
""",
        """\
from torch import nn, randn, zeros
from torch.optim import SGD

class Criterion:
    def __init__(self):
        self.parts = {}

    def __call__(self, step, pred, target):
        # Each step under a key of its own: the dict keeps every step's loss.
        self.parts[step] = (pred - target).pow(2).mean()
        return sum(self.parts.values())

net = nn.Linear(3, 1)
opt = SGD(net.parameters(), lr=0.1)
criterion = Criterion()
for epoch in range(2):
    for step in range(3):
        loss = criterion(step, net(randn(8, 3)), zeros(8, 1))
        opt.zero_grad()
        loss.backward()  # error
        opt.step()
""",
    ]
    VALID = [
        """\
import torch
model = torch.nn.Linear(3, 1)
pairs = [(torch.randn(2, 3), torch.randn(2, 1)), (torch.randn(2, 3), torch.randn(2, 1))]
# one graph per pair, each taken by its own autograd.grad
grads = [torch.autograd.grad((model(a) - b).pow(2).sum(), model.weight)[0] for a, b in pairs]
""",
        """\
import torch
from torch import nn
rnn = nn.GRU(4, 8, batch_first=True)
head = nn.Linear(8, 1)
hidden = torch.zeros(1, 2, 8)
for step in range(3):
    hidden = hidden.detach()
    out, hidden = rnn(torch.randn(2, 5, 4), hidden)
    loss = head(out).pow(2).mean()
    loss.backward()
""",
        """\
import torch
from torch import nn
G = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3))
D = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
bce = nn.BCEWithLogitsLoss()
opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
fake = G(torch.randn(5, 2))
d_loss = bce(D(fake.detach()), torch.zeros(5, 1))
d_loss.backward()
opt_d.step()
opt_d.zero_grad()
g_loss = bce(D(fake), torch.ones(5, 1))
g_loss.backward()
opt_g.step()
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
loss = (w * w).sum()
loss.backward(retain_graph=True)
loss.backward()
total = w + 1
total.sum().backward()
total.sum().backward()
h = torch.sigmoid(w * 2)
first = (h * 1.5).sum()
second = (h**2).sum()
first.backward(retain_graph=True)
second.backward()
""",
        """\
import torch
from torch import nn

q_a, q_b = nn.Linear(4, 1), nn.Linear(4, 1)
log_alpha = torch.zeros(1, requires_grad=True)
opt_a = torch.optim.Adam(q_a.parameters())
opt_b = torch.optim.Adam(q_b.parameters())
for step in range(3):
    s, r = torch.randn(8, 4), torch.randn(8, 1)
    alpha = log_alpha.exp()
    with torch.no_grad():
        # No graph here: alpha's grad_fn does not make the target part of its graph.
        target = r - alpha * torch.min(q_a(s), q_b(s))
    loss_a = (q_a(s) - target).pow(2).mean()
    loss_b = (q_b(s) - target).pow(2).mean()
    opt_a.zero_grad()
    loss_a.backward()
    opt_a.step()
    opt_b.zero_grad()
    loss_b.backward()
    opt_b.step()
""",
        """\
import torch
from torch import nn

class Losses:
    def __init__(self, weights):
        self.weights = weights
        self.terms = {}

    def smoothness(self, pred):
        return pred.diff(dim=0).abs().mean()

    def __call__(self, pred, target):
        # The same keys on every call: each replaces the last step's term.
        self.terms["fit"] = (pred - target).pow(2).mean()
        self.terms["smooth"] = self.smoothness(pred) * self.weights["smooth"]
        return sum(self.terms.values()), dict(self.terms)

def fit(net, batches, epochs):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = Losses({"smooth": 0.1})
    for epoch in range(epochs):
        for x, y in batches:
            total, _ = criterion(net(x), y)
            opt.zero_grad()
            total.backward()
            opt.step()
    return criterion

fit(nn.Linear(3, 1), [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(3)], 2)
""",
        # A method that sets the fake batch on the instance, run anew before each backward
        # (CycleGAN's `forward()`, called again for the discriminator's pass): each call's
        # fake is a new tensor, not the one the generator's backward freed.
        """\
import torch
from torch import nn


class Model:
    def __init__(self):
        self.G, self.D = nn.Linear(4, 4), nn.Linear(4, 1)
        self.opt_G = torch.optim.Adam(self.G.parameters())
        self.opt_D = torch.optim.Adam(self.D.parameters())

    def forward(self):
        self.fake = self.G(self.real)

    def step(self):
        self.forward()
        self.opt_G.zero_grad()
        self.D(self.fake).sum().backward()
        self.opt_G.step()
        self.forward()
        self.opt_D.zero_grad()
        self.D(self.fake.detach()).sum().backward()
        self.opt_D.step()


model = Model()
for it in range(2):
    model.real = torch.randn(2, 4)
    model.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for call in facts.statement_calls:
            # `h.detach()` alone returns a detached copy and drops it: `h` keeps its graph,
            # and the next backward through it raises.
            if (
                call.method == "detach"
                and call.receiver is not None
                and not call.node.args
                and any(value.is_tensor for value in facts.any_run(call.receiver))
            ):
                yield Report(
                    call.node,
                    "does nothing: detach() returns a new tensor and this drops it, so the "
                    "tensor keeps its graph; assign the result (`x = x.detach()`) or use "
                    "`x.detach_()`",
                )
        for event in facts.freed_graphs:
            freed = facts.position(event.freed_by)[0]
            again = facts.position(event.node)[0]
            if event.together:
                # Two losses of one forward pass: the fix is at either backward (keep the
                # graph in the first, or add the losses and back-propagate once).
                yield Report(
                    event.freed_by,
                    f"frees the graph that the backward() at line {again} goes through again, "
                    "which raises; pass retain_graph=True here, or add the losses and call "
                    "backward() once",
                )
                yield Report(
                    event.node,
                    f"goes through the graph that the backward() at line {freed} freed, which "
                    "raises; add the losses and call backward() once",
                )
            elif event.entry is None:
                yield Report(
                    event.node,
                    f"back-propagates through a graph that the backward() at line {freed} "
                    "already freed; keep it with retain_graph=True or rebuild it",
                )
            else:
                yield Report(
                    event.entry,
                    f"takes in a graph that the backward() at line {freed} frees; the backward() "
                    f"at line {again} then goes through it again and raises: `.detach()` it here "
                    "if no gradient should reach it, else compute it anew for each backward",
                )
