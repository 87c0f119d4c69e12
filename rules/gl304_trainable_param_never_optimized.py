"""GL304 trainable-param-never-optimized."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import ENABLED, Trained
from gradlint.rule import Report, Rule


class TrainableParamNeverOptimized(Rule):
    """Back-propagates into a trainable module that no optimizer has.

    **Why is this bad?** A backward computes and stores a gradient for every parameter
    that requires grad on the way, whether or not an optimizer will use it. A teacher
    network called without `torch.no_grad()`, or an encoder left out of the optimizer,
    costs the memory of its activations and gradients and the time of its backward on
    every step, and never changes. Either it was meant to train and is missing from the
    optimizer, or it was meant to stay fixed and should be frozen or run under
    `torch.no_grad()`.

    **Example**
    ```python
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    loss = F.mse_loss(student(x), teacher(x))
    loss.backward()
    ```

    **Use instead**: run the fixed module without autograd (or freeze it), or give it to
    the optimizer.
    ```python
    with torch.no_grad():
        target = teacher(x)
    loss = F.mse_loss(student(x), target)
    ```

    Reported only where every optimizer is built beside the backward from modules it
    knows, and the code updates no weights by hand from their `.grad`.
    """

    code = "GL304"
    name = "trainable-param-never-optimized"
    message = (
        "back-propagates into a trainable module that no optimizer has: its gradients are "
        "computed for nothing; freeze it, run it under `torch.no_grad()`, or optimize it"
    )

    INVALID = [
        """\
import torch
from torch import nn, optim


def reaches(fn, param):
    # Whether the backward graph from `fn` accumulates a gradient into `param`.
    if fn is None:
        return False
    if getattr(fn, "variable", None) is param:
        return True
    return any(reaches(f, param) for f, _ in fn.next_functions)


teacher = nn.Linear(4, 3)
student = nn.Linear(4, 3)
opt = optim.SGD(student.parameters(), lr=0.1)  # error
for x in torch.randn(3, 8, 4):
    opt.zero_grad()
    target = teacher(x)  # error
    loss = (student(x) - target).pow(2).mean()
    assert reaches(loss.grad_fn, teacher.weight)  # backward works out its gradient too
    loss.backward()
    opt.step()
""",
        """\
import torch as T


class Encoder(T.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = T.nn.Linear(4, 8)

    def forward(self, x):
        return self.fc(x).tanh()


def main():
    encoder = Encoder()
    decoder = T.nn.Linear(8, 4)
    opt = T.optim.Adam(decoder.parameters(), lr=1e-2)  # error
    x = T.randn(16, 4)
    before = encoder.fc.weight.clone()
    hits = []
    encoder.fc.weight.register_hook(lambda g: hits.append(g.norm()))
    for _ in range(3):
        opt.zero_grad()
        z = encoder(x)  # error
        loss = (decoder(z) - x).pow(2).mean()
        loss.backward()
        opt.step()
    assert len(hits) == 3 and min(hits) > 0  # a gradient on every step...
    assert T.equal(before, encoder.fc.weight)  # ... and never a change


main()
""",
        """\
import torch
from torch import nn


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)

    def forward(self, h):
        return self.linear(h)


body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
head = Head()
opt = torch.optim.Adam(body.parameters(), lr=1e-2)  # error
before = head.linear.weight.detach().clone()
x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
for _ in range(3):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(head(body(x)), y)  # error
    loss.backward()
    opt.step()
print("head grad norm", head.linear.weight.grad.norm().item())
assert torch.equal(before, head.linear.weight)  # a new head that never trains
""",
    ]
    VALID = [
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
aux = nn.Linear(2, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(2):
    opt.zero_grad()
    aux.zero_grad()
    aux(model(torch.randn(3, 4))).sum().backward()
    opt.step()
    with torch.no_grad():
        for p in aux.parameters():
            p -= 0.1 * p.grad
""",
        """\
import torch
from torch import nn, optim
teacher = nn.Linear(4, 3)
student = nn.Linear(4, 3)
opt = optim.SGD(student.parameters(), lr=0.1)
for x in torch.randn(3, 8, 4):
    opt.zero_grad()
    with torch.no_grad():
        target = teacher(x)
    loss = (student(x) - target).pow(2).mean()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn
encoder = nn.Linear(4, 8)
decoder = nn.Linear(8, 4)
opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-2)
x = torch.randn(16, 4)
loss = (decoder(encoder(x)) - x).pow(2).mean()
loss.backward()
opt.step()
""",
        """\
import torch
from torch import nn
net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
model = nn.DataParallel(net)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for _ in range(2):
    opt.zero_grad()
    loss = model(torch.randn(5, 4)).pow(2).mean()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn
teacher = nn.Linear(4, 3)
teacher.requires_grad_(False)
student = nn.Linear(4, 3)
opt = torch.optim.SGD(student.parameters(), lr=0.1)
for x in torch.randn(3, 8, 4):
    opt.zero_grad()
    loss = (student(x) - teacher(x)).pow(2).mean()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn
G = nn.Linear(2, 3)
D = nn.Linear(3, 1)
opt_g = torch.optim.SGD(G.parameters(), lr=0.1)
opt_d = torch.optim.SGD(D.parameters(), lr=0.1)
for _ in range(2):
    opt_g.zero_grad()
    g_loss = -D(G(torch.randn(4, 2))).mean()
    g_loss.backward()
    opt_g.step()
""",
        """\
import torch
from torch import nn
model = nn.Linear(4, 2)
x = torch.randn(3, 4)
model(x).sum().backward()
with torch.no_grad():
    for p in model.parameters():
        p -= 0.1 * p.grad
""",
        """\
import torch
from torch import nn


def set_trainable(params, flag):
    for p in params:
        p.requires_grad = flag


def build():
    encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
    head = nn.Linear(8, 1)
    set_trainable(encoder.parameters(), False)  # the encoder is pre-trained: only the head learns
    return encoder, head


encoder, head = build()
opt = torch.optim.SGD(head.parameters(), lr=0.1)
for step in range(3):
    loss = head(encoder(torch.randn(8, 4))).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
assert all(p.grad is None for p in encoder.parameters())
""",
        """\
import torch
import torch.nn.functional as F
from torch import nn


class PerceptualLoss(nn.Module):
    def __init__(self):
        super().__init__()
        # Frozen as it is made: its parameters never get gradients.
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).requires_grad_(False)

    def forward(self, out, target):
        return F.l1_loss(self.features(out), self.features(target))


generator = nn.Conv2d(3, 3, 3, padding=1)
loss_fn = PerceptualLoss()
opt = torch.optim.Adam(generator.parameters(), lr=1e-3)
for step in range(2):
    x = torch.rand(2, 3, 8, 8)
    loss = loss_fn(generator(x), x)
    opt.zero_grad()
    loss.backward()
    opt.step()
assert all(p.grad is None for p in loss_fn.parameters())
""",
        """\
import torch
from torch import nn


class LearnedOptimizer(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.lr = nn.Parameter(torch.tensor(0.1))

    def update(self, grads):
        with torch.no_grad():
            for p, g in zip(self.model.parameters(), grads):
                p -= self.lr.detach() * g


model = nn.Linear(4, 1)
learned = LearnedOptimizer(model)
meta_opt = torch.optim.SGD([learned.lr], lr=1e-3)
for step in range(3):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    meta_opt.zero_grad()
    loss.backward()
    meta_opt.step()
    learned.update(grads)
""",
        # Parameters handed out by a method of the model's own (`self.parameters()` in it
        # is `model`'s): the optimizer holds them all.
        """\
import torch
from torch import nn


class Reader(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 4, batch_first=True)
        self.head = nn.Linear(4, 2)

    def trainable_tensors(self):
        return list(self.parameters())

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


model = Reader()
optimizer = torch.optim.SGD(model.trainable_tensors(), lr=0.1)
for step in range(3):
    loss = model(torch.randn(2, 5, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
""",
        # A helper that freezes what it is given, for as long as its `with` lasts: the
        # attacked model is frozen there, where the parameters it sets have no names.
        """\
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def frozen(*modules):
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


model = nn.Linear(4, 2)
shift = nn.Linear(4, 4)
opt = torch.optim.SGD(shift.parameters(), lr=0.1)
with frozen(model):
    for step in range(3):
        loss = -model(shift(torch.randn(8, 4))).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        if _updates_by_hand(facts) or not facts.optimizers:
            return
        if any(not made.covers for made in facts.optimizers):
            return  # an optimizer given parameters we cannot name
        covered = frozenset().union(*(made.covers for made in facts.optimizers))
        scopes = {facts.scope.get(made.node, False) for made in facts.optimizers}
        reported: set[cst.CSTNode] = set()
        for trained in facts.trained:
            # One backward outside any loop is a check or a demo, not a training loop.
            if not trained.looped or trained.call in reported or not _uncovered(trained, covered):
                continue
            if _handed_to_an_object(facts, trained.path):
                continue  # (`LearnableOptimizer(model)`: what it builds may update it)
            if _handed_to_a_freezer(facts, trained.path):
                continue  # (`with frozen(model):`: frozen there, where we cannot follow)
            scope = facts.scope.get(trained.backward, True)
            # Module, backward and every optimizer in one function: one naming of modules.
            if scopes != {scope} or facts.scope.get(trained.call, True) is not scope:
                continue
            reported.add(trained.call)
            line = facts.position(trained.backward)[0]
            yield Report(
                trained.call,
                f"`{trained.path}` gets gradients from the backward at line {line}, but no "
                "optimizer has its parameters; freeze it or run it under `torch.no_grad()`, "
                "or give it to the optimizer",
            )
            builds = {made.node for made in facts.optimizers}
            if len(builds) == 1:
                # The one optimizer: where to add it, if it was meant to train.
                (built,) = builds
                yield Report(
                    built,
                    f"the optimizer does not have `{trained.path}`, which the backward at "
                    f"line {line} gives gradients: add its parameters, or freeze it",
                )


def _handed_to_an_object(facts: Facts, path: str) -> bool:
    """Whether the module is given to the constructor of a class (`Trainer(model)`, a
    learned optimizer's `LearnableOptimizer(model)`), which may train it its own way."""
    for call in facts.calls:
        func = call.node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")
        if not isinstance(name, str) or not name[:1].isupper():
            continue
        if any(
            isinstance(arg.value, cst.Name) and arg.value.value == path for arg in call.node.args
        ):
            return True
    return False


def _handed_to_a_freezer(facts: Facts, path: str) -> bool:
    """Whether the module is given to a function of this file that sets `requires_grad` of
    parameters (`with frozen(model):` over `for p in params: p.requires_grad_(False)`):
    what it freezes of its arguments, and for how long, is not followed here."""
    freezers: set[str] = set()
    for change in facts.freeze_changes:
        around = [n for n in facts.parents.ancestors(change.node) if isinstance(n, cst.FunctionDef)]
        freezers.update(function.name.value for function in around[:1])
    for call in facts.calls:
        func = call.node.func
        if isinstance(func, cst.Name) and func.value in freezers:
            if any(isinstance(a.value, cst.Name) and a.value.value == path for a in call.node.args):
                return True
    return False


def _updates_by_hand(facts: Facts) -> bool:
    """Whether the code reads `.grad` to change weights itself: under `no_grad`, or
    through `.data` (`p.data.add_(p.grad, alpha=-lr)`)."""
    if "grad" not in facts.attributes_read:
        return False
    if "data" in facts.attributes_read:
        return True
    return any(
        isinstance(node, cst.Attribute)
        and node.attr.value == "grad"
        and any(mode != ENABLED for _, mode in facts.runs(node))
        for node in facts.values
    )


def _uncovered(trained: Trained, covered: frozenset[str]) -> bool:
    """A known module none of whose parts, wrappers or wrapped modules an optimizer has."""
    return trained.known and not any(
        a == b or a.startswith(b + ".") or b.startswith(a + ".")
        for a in trained.family
        for b in covered
    )
