"""A generated training script of about N lines with a few autograd bugs, for timing the
language server and the engine on a file of realistic size.

``training_script(1000)`` repeats a handful of realistic pieces (a dataset, models, a
training epoch, evaluation, a GAN step, fine-tuning, logging, checkpoints), each copy
with its own names, and puts one bug into some of the first copies: a loss kept with its
graph (GL302), `.numpy()` on a tensor that requires grad (GL101), a bare `torch.no_grad()`
(GL210) and `requires_grad` set on a module (GL215).

    python benchmarks/training_script.py 1000 > /tmp/train_1000.py
"""

from __future__ import annotations

import sys

HEADER = '''"""Training code for several small models (generated for benchmarks)."""

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


@dataclass
class Settings:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    clip: float = 1.0
    features: int = 16
    classes: int = 4
    out_dir: str = "checkpoints"

'''

DATASET = '''
class RandomSet{i}(Dataset):
    """Random features and labels, the same on every run."""

    def __init__(self, size: int, features: int, classes: int) -> None:
        generator = torch.Generator().manual_seed({i})
        self.x = torch.randn(size, features, generator=generator)
        self.y = torch.randint(0, classes, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

'''

MODEL = """
class Net{i}(nn.Module):
    def __init__(self, features: int, classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, classes)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) * self.scale

"""

TRAIN = """
def train_epoch_{i}(model: nn.Module, loader: DataLoader, settings: Settings) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    model.train()
    history = []
    running = 0.0
    for step, (x, y) in enumerate(loader):
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        history.append({kept})
        if step % 50 == 0:
            print(f"step {{step}}: loss {{running / (step + 1):.4f}}")
    return history

"""

EVALUATE = """
def evaluate_{i}(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = 0
    seen = 0
    {grad_off}
        for x, y in loader:
            logits = model(x)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
    model.train()
    return correct / max(seen, 1)

"""

GAN = """
def gan_step_{i}(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    latent: int,
) -> tuple[float, float]:
    bce = nn.BCEWithLogitsLoss()
    fake = generator(torch.randn(real.shape[0], latent))

    opt_d.zero_grad()
    d_real = discriminator(real)
    d_fake = discriminator(fake.detach())
    d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    d_loss.backward()
    opt_d.step()

    opt_g.zero_grad()
    d_out = discriminator(fake)
    g_loss = bce(d_out, torch.ones_like(d_out))
    g_loss.backward()
    opt_g.step()
    return d_loss.item(), g_loss.item()

"""

FINETUNE = """
def finetune_{i}(model: Net{i}, loader: DataLoader, settings: Settings) -> float:
    {freeze}
    head_params = [p for p in model.head.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(head_params, lr=settings.lr, momentum=0.9)
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / max(len(loader), 1)

"""

LOGGING = """
def summarize_{i}(model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    scores = model(batch)
    probabilities = F.softmax(scores, dim=1)
    values = {probs}
    stats = {{
        "mean": float(np.mean(values)),
        "max": float(np.max(values)),
        "entropy": float(-(probabilities * probabilities.clamp_min(1e-8).log()).sum(1).mean()),
    }}
    for name, parameter in model.named_parameters():
        stats[f"norm/{{name}}"] = parameter.detach().norm().item()
    return stats

"""

CHECKPOINT = """
def save_checkpoint_{i}(model: nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    state = {{"model": model.state_dict(), "optimizer": optimizer.state_dict()}}
    torch.save(state, path)


def load_checkpoint_{i}(model: nn.Module, optimizer: torch.optim.Optimizer, path: str) -> int:
    if not os.path.exists(path):
        return 0
    state = torch.load(path, map_location="cpu")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state.get("epoch", 0))


def warmup_{i}(step: int, total: int) -> float:
    if step < total // 10:
        return step / max(total // 10, 1)
    return 0.5 * (1 + math.cos(math.pi * step / total))

"""

MAIN = """
def main_{i}(settings: Settings) -> None:
    torch.manual_seed({i})
    data = RandomSet{i}(512, settings.features, settings.classes)
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=True)
    model = Net{i}(settings.features, settings.classes)
    for epoch in range(settings.epochs):
        history = train_epoch_{i}(model, loader, settings)
        accuracy = evaluate_{i}(model, loader)
        print(f"epoch {{epoch}}: {{len(history)}} steps, accuracy {{accuracy:.3f}}")
    print(finetune_{i}(model, loader, settings))
    print(summarize_{i}(model, data.x[:8]))

"""

PIECES = (DATASET, MODEL, TRAIN, EVALUATE, GAN, FINETUNE, LOGGING, CHECKPOINT, MAIN)
BUGGY_COPY = 0  # the copy that gets the bugs


def _piece(template: str, i: int) -> str:
    buggy = i == BUGGY_COPY
    return template.format(
        i=i,
        kept="loss" if buggy else "loss.item()",
        grad_off="torch.no_grad()\n    if True:" if buggy else "with torch.no_grad():",
        freeze=(
            "model.body.requires_grad = False" if buggy else "model.body.requires_grad_(False)"
        ),
        probs="probabilities.numpy()" if buggy else "probabilities.detach().numpy()",
    )


def training_script(lines: int = 1000) -> str:
    """A script of about ``lines`` lines (whole pieces: it stops at the first piece that
    reaches the count)."""
    parts = [HEADER]
    count = HEADER.count("\n")
    i = 0
    while count < lines:
        for template in PIECES:
            text = _piece(template, i)
            parts.append(text)
            count += text.count("\n")
            if count >= lines:
                break
        i += 1
    parts.append('\nif __name__ == "__main__":\n    main_0(Settings())\n')
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(training_script(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
