"""GL213 clip-grad-order."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class ClipGradOrder(Rule):
    """Clips gradients before `backward()` fills them or after `step()` applied them.

    **Why is this bad?** `clip_grad_norm_` and `clip_grad_value_` change what `.grad` holds
    now. Before the backward, the gradients are cleared (or stale), so there is nothing to
    clip and the backward then writes unclipped ones; after the step, the step has already
    applied the unclipped gradients. Either way no clipping reaches the weights, and
    exploding gradients go through unchecked.

    **Example**
    ```python
    loss.backward()
    optimizer.step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    ```

    **Use instead**
    ```python
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    ```
    """

    code = "GL213"
    name = "clip-grad-order"
    message = (
        "clips gradients that `step()` has already applied; clip between `backward()` and `step()`"
    )
    before_message = (
        "clips before `backward()` fills the gradients, so nothing is clipped; clip between "
        "`backward()` and `step()`"
    )

    INVALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
x = 100 * torch.randn(8, 4)
before = model.weight.detach().clone()
optimizer.zero_grad()
model(x).pow(2).mean().backward()
optimizer.step()
nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # error
moved = (model.weight - before).norm()
assert moved > 10  # the step applied the huge, unclipped gradient
""",
        """\
import torch as T
from torch import nn, optim
from torch.nn.utils import clip_grad_norm_

net = nn.Linear(4, 1)
opt = optim.SGD(net.parameters(), lr=1.0)
for _ in range(2):
    before = net.weight.detach().clone()
    opt.zero_grad()
    clip_grad_norm_(net.parameters(), max_norm=1.0)  # error
    net(100 * T.randn(8, 4)).pow(2).mean().backward()
    opt.step()
    assert (net.weight - before).norm() > 10  # unclipped
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def forward_backward(x):
    loss = model(x).pow(2).mean()
    loss.backward()
    return loss.detach()


for step in range(3):
    losses = [forward_backward(x) for x in torch.randn(2, 8, 4)]
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
for _ in range(2):
    optimizer.zero_grad()
    model(100 * torch.randn(8, 4)).pow(2).mean().backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(8):
    loss = model(torch.randn(8, 4)).pow(2).mean() / 4
    loss.backward()
    if (i + 1) % 4 == 0:
        nn.utils.clip_grad_value_(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad()
""",
        """\
import torch
from torch import nn

actor, critic = nn.Linear(4, 2), nn.Linear(4, 1)
actor_opt = torch.optim.Adam(actor.parameters())
critic_opt = torch.optim.Adam(critic.parameters())
for _ in range(2):
    s = torch.randn(8, 4)
    critic_opt.zero_grad()
    critic(s).pow(2).mean().backward()
    critic_opt.step()
    actor_opt.zero_grad()
    actor(s).pow(2).mean().backward()
    nn.utils.clip_grad_norm_(actor.parameters(), 1.0)
    actor_opt.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for clip in facts.misplaced_clips:
            yield Report(clip.node, None if clip.after_step else self.before_message)
