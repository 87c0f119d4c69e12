"""A small GAN that runs to the end and trains wrong: three mistakes gradlint finds.

Run `gradlint check examples/` to see them; `gradlint rule CODE` explains each one.
"""

import torch
import torch.nn as nn

LATENT = 8


def make_models() -> tuple[nn.Module, nn.Module]:
    generator = nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, 16))
    discriminator = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    return generator, discriminator


def train(steps: int = 50) -> float:
    generator, discriminator = make_models()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4)
    bce = nn.BCEWithLogitsLoss()
    total_g_loss = 0.0
    for _ in range(steps):
        real = torch.randn(32, 16) + 2.0
        fake = generator(torch.randn(32, LATENT))

        opt_d.zero_grad()
        d_real = discriminator(real)
        d_fake = discriminator(fake.detach())
        d_loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        d_loss.backward()
        opt_d.step()

        # The generator's gradients are never cleared: each step applies all earlier ones
        # (GL201).
        d_out = discriminator(fake)
        g_loss = bce(d_out, torch.ones_like(d_out))
        g_loss.backward()
        opt_g.step()
        # Clipping after the step changes nothing the step applied (GL213).
        nn.utils.clip_grad_norm_(generator.parameters(), 1.0)
        # Keeps every iteration's graph alive; `g_loss.item()` is meant (GL302).
        total_g_loss += g_loss
    return float(total_g_loss) / steps


if __name__ == "__main__":
    torch.manual_seed(0)
    print("mean generator loss", train())
