"""What the tracer costs: a small CNN and a small transformer training loop on CPU (or the
GPU with --device cuda), untraced and traced, alternately, median of several runs.

    python benchmarks/tracer_overhead.py [--repeat 5] [--steps 30] [--device cpu]

Each run is the same loop from the same seed: forward, loss, zero_grad, backward, step.
Traced runs are inside `gradlint.runtime_check.trace()`, lines included (coverage.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from gradlint.runtime_check import trace
from torch import nn


def cnn() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    return model, lambda: (torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)))


def transformer() -> tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(100, 64)
            layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.1)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.head = nn.Linear(64, 100)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.encoder(self.embed(tokens)).mean(1))

    return Tiny(), lambda: (torch.randint(0, 100, (16, 32)), torch.randint(0, 100, (16,)))


def train(
    make: Callable[..., tuple[nn.Module, Callable[[], tuple[torch.Tensor, torch.Tensor]]]],
    steps: int,
    device: str,
) -> float:
    torch.manual_seed(0)
    model, batch = make()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(steps):
        inputs, targets = (t.to(device) for t in batch())
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, device {args.device}, {args.steps} steps, "
        f"median of {args.repeat}"
    )
    for name, make in (("small CNN", cnn), ("small transformer", transformer)):
        train(make, 3, args.device)  # warm-up
        plain, traced = [], []
        for _ in range(args.repeat):
            plain.append(train(make, args.steps, args.device))
            with trace():
                traced.append(train(make, args.steps, args.device))
        a, b = statistics.median(plain), statistics.median(traced)
        print(f"{name:18s} untraced {a:7.3f} s   traced {b:7.3f} s   overhead {b / a:5.2f}x")


if __name__ == "__main__":
    main()
