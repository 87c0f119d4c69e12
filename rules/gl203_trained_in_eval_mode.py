"""GL203 trained-in-eval-mode."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.analysis.facts import TrainedInEval
from gradlint.rule import Report, Rule


class TrainedInEvalMode(Rule):
    """Leaves a model in eval mode inside a training loop, and the next iteration trains it so.

    **Why is this bad?** `model.eval()` stays in force until `model.train()`. A validation
    pass at the end of each epoch (or a helper that evaluates) that sets eval mode and
    never sets it back makes every later epoch train in eval mode: dropout is off and
    BatchNorm normalizes with its running statistics and stops updating them. Nothing
    raises; the model just trains worse, and differently from the first epoch.

    **Example**
    ```python
    for epoch in range(epochs):
        for x, y in train_loader:
            loss = criterion(model(x), y)
            ...
        model.eval()
        validate(model)
    ```

    **Use instead**: set training mode at the start of each epoch (or when validation ends).
    ```python
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            ...
    ```

    Reported at the `.eval()` (or the call of the helper that leaves the model in eval
    mode) whose mode a later backward trains in; where the training runs in a routine of
    its own that loops over batches, at that loop, before which the routine should set
    its mode. Code that applies no gradient (no optimizer, no `.step()`, no weight's
    `.grad` read) trains nothing: its backwards in eval mode are for the gradients of
    inputs (a saliency map), which eval mode is right for.
    """

    code = "GL203"
    name = "trained-in-eval-mode"
    message = (
        "leaves the model in eval mode, and the next iteration trains it so (dropout off, "
        "BatchNorm frozen); call `model.train()` before training resumes"
    )

    INVALID = [
        """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
batches = torch.randn(4, 16, 4)
for epoch in range(3):
    for x in batches:
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
    model.eval()  # error
    with torch.no_grad():
        val_loss = model(torch.randn(16, 4)).pow(2).mean().item()
# BatchNorm saw batches in training mode only in the first epoch.
assert model[1].num_batches_tracked.item() == len(batches)
""",
        """\
import torch as T
from torch import nn, optim


def evaluate(net, data):
    net.eval()
    with T.no_grad():
        return sum(net(x).abs().mean().item() for x in data)


def train_step(net, opt, x):
    opt.zero_grad()
    loss = net(x).pow(2).mean()
    loss.backward()
    opt.step()


model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
opt = optim.Adam(model.parameters(), lr=1e-3)
x = T.randn(8, 4)
for epoch in range(3):
    score = evaluate(model, T.randn(2, 8, 4))  # error
    train_step(model, opt, x)
assert not model.training
assert T.equal(model(x), model(x))  # dropout is off: training forwards are deterministic
""",
        """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.bn(self.fc(x)).relu())


class Trainer:
    def __init__(self):
        self.model = Net()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def train_epoch(self, batches):
        for x in batches:  # error
            self.opt.zero_grad()
            loss = self.model(x).logsumexp(-1).mean()
            loss.backward()
            self.opt.step()

    def validate(self, batches):
        self.model.eval()
        with torch.no_grad():
            return [self.model(x).argmax(-1) for x in batches]

    def fit(self, epochs):
        for epoch in range(epochs):
            self.train_epoch(torch.randn(2, 16, 4))
            self.validate(torch.randn(1, 16, 4))


trainer = Trainer()
trainer.fit(3)
assert trainer.model.bn.num_batches_tracked.item() == 2  # only the first epoch's batches
""",
        """\
import torch
from torch import nn, optim


def validate(net, data):
    net.eval()
    with torch.no_grad():
        return sum(nn.functional.mse_loss(net(x), y).item() for x, y in data)


model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.01)
train_data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(6)]
model.train()
for step, (x, y) in enumerate(train_data):
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    if step % 3 == 0:
        validate(model, train_data[:1])  # error
# BatchNorm learnt from 1 of the 6 training batches: the rest trained in eval mode.
assert model[1].num_batches_tracked.item() == 1
""",
        """\
import torch
from torch import nn


def evaluate(model, batches):
    model.eval()
    was_training = model.training  # read after eval(): restoring it keeps eval mode
    with torch.no_grad():
        score = sum(model(x).mean().item() for x in batches)
    model.train(was_training)
    return score


model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [torch.randn(8, 4) for _ in range(3)]
model.train()
for epoch in range(2):
    for x in batches:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    evaluate(model, batches)  # error
assert not model.training  # the second epoch trained with dropout off
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
batches = torch.randn(3, 16, 4)
for epoch in range(2):
    for x in batches:
        model.zero_grad()
        model(x).pow(2).mean().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad  # plain SGD by hand
    model.eval()  # error
    with torch.no_grad():
        score = model(batches[0]).mean().item()
# BatchNorm saw the batches of the first epoch only.
assert model[1].num_batches_tracked.item() == len(batches)
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

class Trainer:
    # One model evaluated, then trained beside another it never set: the other's mode
    # is its own, not the evaluated one's.
    def __init__(self):
        self.g = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1))
        self.d = nn.Sequential(nn.Linear(3, 1), nn.Dropout(0.1))
        self.opt_g = torch.optim.Adam(self.g.parameters())
        self.opt_d = torch.optim.Adam(self.d.parameters())

    def train_gan(self):
        self.g.train()
        for _ in range(2):
            fake = self.g(torch.randn(2, 3))
            self.opt_d.zero_grad()
            self.d(fake.detach()).mean().backward()
            self.opt_d.step()
            self.opt_g.zero_grad()
            (-self.d(fake)).mean().backward()
            self.opt_g.step()

    @torch.no_grad()
    def validate(self):
        self.g.eval()
        return self.g(torch.randn(2, 3)).mean()

trainer = Trainer()
for epoch in range(2):
    print(trainer.validate().item())
for epoch in range(2):
    trainer.train_gan()
""",
        """\
import torch
from torch import nn


def evaluate(model, x):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).sum().item()
    finally:
        model.train(was_training)


model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for step in range(4):
    optimizer.zero_grad()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    optimizer.step()
    evaluate(model, torch.randn(8, 4))
assert model.training
""",
        """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    model.train()
    for x in torch.randn(4, 16, 4):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = model(torch.randn(16, 4)).pow(2).mean().item()
""",
        """\
import torch
from torch import nn, optim


def evaluate(net, data):
    net.eval()
    with torch.no_grad():
        score = sum(net(x).abs().mean().item() for x in data)
    net.train()
    return score


model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
opt = optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(3):
    opt.zero_grad()
    model(torch.randn(8, 4)).pow(2).mean().backward()
    opt.step()
    evaluate(model, torch.randn(2, 8, 4))
""",
        """\
import torch
from torch import nn, optim

backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
backbone.requires_grad_(False)
head = nn.Linear(8, 1)
opt = optim.SGD(head.parameters(), lr=0.1)
for epoch in range(3):
    backbone.eval()  # a frozen feature extractor keeps its statistics
    head.train()
    for x in torch.randn(2, 16, 4):
        opt.zero_grad()
        loss = head(backbone(x)).pow(2).mean()
        loss.backward()
        opt.step()
""",
        """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
opt = optim.SGD(model.parameters(), lr=0.1)
y = torch.zeros(8, dtype=torch.long)
for x in torch.randn(3, 8, 4):
    model.eval()  # craft adversarial inputs with the model fixed
    x = x.clone().requires_grad_()
    nn.functional.cross_entropy(model(x), y).backward()
    x_adv = (x + 0.1 * x.grad.sign()).detach()
    model.train()
    opt.zero_grad()
    nn.functional.cross_entropy(model(x_adv), y).backward()
    opt.step()
""",
        """\
import torch
from torch import nn, optim

model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
opt = optim.SGD(model.parameters(), lr=0.1)
model.eval()  # fine-tune with BatchNorm statistics kept fixed
for epoch in range(2):
    for x in torch.randn(2, 8, 4):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
""",
        """\
import torch
from torch import nn, optim

teacher = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
student = nn.Linear(4, 2)
opt = optim.SGD(student.parameters(), lr=0.1)
x = torch.randn(16, 4)
for epoch in range(2):
    teacher.eval()  # the teacher is never trained: eval mode is what it should run in
    with torch.no_grad():
        teacher_score = teacher(x).abs().mean().item()
    opt.zero_grad()
    loss = (student(x) - teacher(x)).pow(2).mean()
    loss.backward()
    opt.step()
""",
        """\
import torch
from torch import nn


class Trainer:
    def __init__(self, model, batches, every):
        self.model = model
        self.batches = batches
        self.every = every
        self.opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def validate(self):
        training = self.model.training
        self.model.eval()
        with torch.no_grad():
            score = sum(self.model(x).mean().item() for x in self.batches)
        if training:
            self.model.train()
        return score

    def train_epoch(self):
        self.model.train()
        for i, x in enumerate(self.batches):
            if i % self.every == 0:
                self.validate()  # mid-epoch: hands the model back in the mode it found
            self.opt.zero_grad()
            self.model(x).pow(2).mean().backward()
            self.opt.step()


model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
trainer = Trainer(model, [torch.randn(8, 4) for _ in range(4)], every=2)
for epoch in range(2):
    trainer.train_epoch()
assert model.training
""",
        """\
import torch
from torch import nn


def evaluate(model, batches):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        score = sum(model(x).mean().item() for x in batches)
    model.train(was_training)
    return score


model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [torch.randn(8, 4) for _ in range(3)]
model.train()
for epoch in range(2):
    for x in batches:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    evaluate(model, batches)
assert model.training
""",
        """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
model.eval()  # explain the model as it predicts: BatchNorm on its running statistics
inputs = torch.randn(4, 6)
with torch.no_grad():
    labels = model(inputs).argmax(-1)
saliency = []
for row, label in zip(inputs, labels):
    row = row.unsqueeze(0).requires_grad_()
    model(row)[0, label].backward()  # the gradient wanted is the input's: nothing trains
    saliency.append(row.grad.abs().squeeze(0))
assert not model.training and len(saliency) == 4
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for found in facts.trained_in_eval.values():
            if _held_by_no_optimizer(facts, found):
                continue
            line = facts.position(found.forward)[0]
            if found.node is found.left_by:
                yield Report(
                    found.node,
                    f"leaves `{found.path}` in eval mode, and training resumes in it at line "
                    f"{line} (dropout off, BatchNorm frozen); call `.train()` before training "
                    "resumes",
                )
                continue
            left = facts.position(found.left_by)[0]
            yield Report(
                found.node,
                f"trains `{found.path}` (line {line}) in the eval mode that line {left} left "
                "it in (dropout off, BatchNorm frozen); call `.train()` before this loop",
            )


def _held_by_no_optimizer(facts: Facts, found: TrainedInEval) -> bool:
    """A module kept in eval mode on purpose: every optimizer is built beside it, from
    modules known by name, and none of them has it."""
    scope = facts.scope.get(found.forward, True)
    made = facts.optimizers
    if not made or any(
        (not m.covers and not m.tensors_only) or facts.scope.get(m.node, False) is not scope
        for m in made
    ):
        return False
    path = found.path
    return not any(
        root == path or root.startswith(path + ".") or path.startswith(root + ".")
        for m in made
        for root in m.covers
    )
