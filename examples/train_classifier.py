"""A small training script with four autograd mistakes that gradlint finds (five findings).

Run `gradlint check examples/` to see them; `gradlint rule CODE` explains each one.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 4)
        # Meant to freeze the backbone; a module has no such flag (GL215).
        self.backbone.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def make_batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(8, 16), torch.randint(0, 4, (8,))) for _ in range(n)]


def train(model: Classifier, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    for x, y in batches:
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        history.append(loss.numpy())  # needs loss.item() (GL101)
    return history


def evaluate(model: Classifier, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    torch.no_grad()  # does nothing on its own (GL210), so the forward below records (GL301)
    correct = 0
    for x, y in batches:
        correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / (8 * len(batches))


def main() -> None:
    torch.manual_seed(0)
    model = Classifier()
    history = train(model, make_batches(20))
    print("final loss", float(np.mean(history)), "accuracy", evaluate(model, make_batches(5)))

    # A hand-made temperature, tuned after training without torch.no_grad() (GL102).
    temperature = torch.ones(1, requires_grad=True)
    logits = model(torch.randn(8, 16)) / temperature
    logits.logsumexp(dim=1).mean().backward()
    temperature -= 0.01 * temperature.grad


if __name__ == "__main__":
    main()
