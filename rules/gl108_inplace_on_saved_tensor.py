"""GL108 inplace-on-saved-tensor."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class InplaceOnSavedTensor(Rule):
    """Changes in place a tensor that an op saved for backward, before that backward.

    **Why is this bad?** Ops such as `sigmoid`, `tanh`, `exp` and `relu` save their result,
    and `mul`, `matmul` and trainable layers save their inputs, to compute gradients later.
    Changing one of those tensors in place (`y += 1`, `y[mask] = 0`, `y.clamp_(...)`, an
    `nn.ReLU(inplace=True)`) makes the later `backward()` raise `RuntimeError: one of the
    variables needed for gradient computation has been modified by an inplace operation`.
    For a layer built with `inplace=True`, the finding points at where it is built.
    `optimizer.step()` changes its parameters in place too: a graph built before the step
    and back-propagated after it (a GAN reusing a retained graph) fails the same way.

    **Example**
    ```python
    probs = torch.sigmoid(logits)
    probs[probs < 0.1] = 0
    loss = probs.sum()
    loss.backward()
    ```

    **Use instead**: compute a new tensor instead of changing the saved one.
    ```python
    probs = torch.sigmoid(logits)
    probs = probs.masked_fill(probs < 0.1, 0)
    ```
    """

    code = "GL108"
    name = "inplace-on-saved-tensor"
    message = "in-place change of a tensor saved for backward; the backward() will raise"
    raises = ("has been modified by an inplace operation",)

    INVALID = [
        """\
import torch
x = torch.randn(4, requires_grad=True)
y = torch.relu(x * 2)
out = y  # error
out[:2] = 0
out.sum().backward()
""",
        """\
import torch
logits = torch.randn(4, requires_grad=True)
probs = torch.sigmoid(logits)
probs[probs < 0.1] = 0  # error
probs.sum().backward()
""",
        """\
import torch
from torch import nn
layer = nn.Linear(3, 3)
x = torch.randn(2, 3)
h = torch.tanh(layer(x))
h += 1  # error
loss = h.pow(2).sum()
loss.backward()
""",
        """\
import torch
import torch.nn.functional as F
w = torch.randn(3, requires_grad=True)
a = w.exp()
F.relu(a, inplace=True)  # error
a.sum().backward()
""",
        """\
import torch
from torch import nn

class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.act = nn.Sigmoid()
        self.clip = nn.Hardtanh(0.0, 0.5, inplace=True)  # error

    def forward(self, x):
        g = self.act(self.proj(x))
        g = self.clip(g)
        return g * x

loss = Gate()(torch.randn(2, 4)).sum()
loss.backward()
""",
        """\
import torch
from torch import nn
G = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
D = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
fake = G(torch.randn(5, 2))
g_loss = -D(fake).mean()
g_loss.backward(retain_graph=True)
opt_g.step()  # error
d_loss = D(fake).mean()  # error
d_loss.backward()
""",
        """\
import torch
from torch import nn


class BiasedLoss(nn.Module):
    # Built from a config mapping (`**cfg`): `logit_reg` is whatever the mapping holds.
    def __init__(self, logit_reg=None, **_):
        super().__init__()
        self.logit_reg = logit_reg
        self.bias = torch.full((3,), -0.5)

    def forward(self, scores, labels):
        if not self.logit_reg:
            return nn.functional.binary_cross_entropy(scores, labels)
        scores += self.bias * self.logit_reg["init_bias"]  # error
        return nn.functional.binary_cross_entropy(scores.clamp(0, 1), labels)


cfg = dict(type="BiasedLoss", logit_reg=dict(init_bias=0.1))
model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())  # Sigmoid saves its output
criterion = BiasedLoss(**cfg)
criterion(model(torch.randn(5, 4)), torch.rand(5, 3)).backward()
""",
    ]
    VALID = [
        """\
import torch
from torch import nn


class Stage(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.linear = nn.Linear(i, o)

    def forward(self, inputs):
        x = self.linear(inputs)
        return torch.cat([x, x], dim=-1)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Stage(4, 4)
        self.second = Stage(8, 4)

    def forward(self, points, mask):
        x = self.first(points)
        x = self.second(x)  # the second's linear saves the first's output
        x *= mask  # the second's own output, which nothing saved
        return x


Encoder()(torch.randn(3, 4), torch.ones(3, 8)).sum().backward()
""",
        """\
import torch
import torch.nn.functional as F


class Lit(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        return {"loss": loss, "log": {"train_loss": loss.detach()}}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Trainer:
    def __init__(self, max_epochs=2):
        self.max_epochs = max_epochs

    def fit(self, model, loader):
        opt = model.configure_optimizers()
        for epoch in range(self.max_epochs):
            for batch_idx, batch in enumerate(loader):
                out = model.training_step(batch, batch_idx)  # a new graph on every pass
                opt.zero_grad()
                out["loss"].backward()
                opt.step()


loader = [(torch.randn(4, 4), torch.randint(0, 2, (4,)))] * 2
Trainer().fit(Lit(), loader)
""",
        """\
import torch
x = torch.randn(4, requires_grad=True)
y = torch.relu(x * 2)
out = y.clone()
out[:2] = 0
out.sum().backward()
""",
        """\
import torch
from torch import nn
G = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3))
D = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
for step in range(2):
    fake = G(torch.randn(5, 2))
    g_loss = -D(fake).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    d_loss = D(fake.detach()).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
""",
        """\
import torch
logits = torch.randn(4, requires_grad=True)
probs = torch.sigmoid(logits)
probs = probs.masked_fill(probs < 0.1, 0)
probs.sum().backward()
""",
        """\
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        out = self.relu(out)
        return out

loss = Block()(torch.randn(2, 3, 8, 8)).mean()
loss.backward()
""",
        """\
import torch
from torch import nn
conv = nn.Conv2d(3, 4, 3)
bn = nn.BatchNorm2d(4)
relu = nn.ReLU(inplace=True)
x = torch.randn(2, 3, 8, 8)
out = bn(conv(x))
out = relu(out)
loss = out.mean()
loss.backward()
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
h = w * 2
h += 1
h.sum().backward()
y = torch.sigmoid(w)
z = y.clone()
z.mul_(2)
(y + z).sum().backward()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.saved_changes:
            saved_by = facts.position(event.saved_by)[0]
            backward = facts.position(event.backward)[0]
            when = (
                f"back-propagating what forward returns at line {backward} will raise"
                if isinstance(event.backward, cst.Return)
                else f"the backward() at line {backward} will raise"
            )
            if event.stepped:
                # Two lines make this bug, and either is the fix: the step that changed the
                # weights too early, and the use of the graph built before it.
                step = facts.position(event.change)[0]
                if event.node is not event.change:
                    yield Report(
                        event.node,
                        f"takes in a graph built before the optimizer step at line {step} "
                        f"changed the weights it saved; {when}: recompute it, or `.detach()` "
                        "it here",
                    )
                    used = f"the graph taken in at line {facts.position(event.node)[0]}"
                else:
                    used = "a graph built before it"
                yield Report(
                    event.change,
                    f"changes weights that {used} saved for backward; {when}: step after "
                    "that backward",
                )
                continue
            if event.node is event.change:
                what = "changes in place"
            elif isinstance(event.node, cst.Assign):
                # `out = x`, then `out[...] = ...`: the name was meant to be a copy.
                what = (
                    "gives a second name to the same tensor, not a copy (use `.clone()`); "
                    f"line {facts.position(event.change)[0]} changes in place"
                )
            else:
                what = (
                    f"built with inplace=True, it changes at line {facts.position(event.change)[0]}"
                )
            yield Report(
                event.node,
                f"{what} a tensor that the op at line {saved_by} saved for backward; " + when,
            )
