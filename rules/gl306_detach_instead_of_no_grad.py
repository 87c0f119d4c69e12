"""GL306 detach-instead-of-no-grad."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class DetachInsteadOfNoGrad(Rule):
    """Runs a model with autograd recording, only to `.detach()` its output at once, or
    the target it alone went into (`(reward + gamma * target_net(s2)).detach()`).

    **Why is this bad?** While grad mode is on, every layer of the forward saves its inputs
    and activations for a backward that never comes: the memory and time of recording a
    graph, all thrown away by `.detach()`. Under `torch.no_grad()` the forward computes
    the same values without recording anything. Common in target networks (DQN, TD3, EMA
    teachers) and in a GAN's discriminator step.

    **Example**
    ```python
    next_q = target_net(next_states).detach()
    ```

    **Use instead**
    ```python
    with torch.no_grad():
        next_q = target_net(next_states)
    ```
    """

    code = "GL306"
    name = "detach-instead-of-no-grad"
    message = (
        "the forward records a graph that `.detach()` throws away; run it under "
        "`torch.no_grad()` instead"
    )
    target_message = (
        "this forward records a graph only for a target that is then detached; compute the "
        "target under `torch.no_grad()` instead"
    )

    INVALID = [
        """\
import torch
from torch import nn

target_net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
next_states = torch.randn(32, 4)
out = target_net(next_states)
next_q = target_net(next_states).detach()  # error
assert out.grad_fn is not None  # the same forward records a graph each time it runs
assert next_q.grad_fn is None
""",
        """\
import torch as T
from torch import nn


class Agent:
    def __init__(self):
        self.critic = nn.Linear(4, 1)
        self.critic_target = nn.Linear(4, 1)
        self.critic_target.load_state_dict(self.critic.state_dict())

    def td_target(self, reward, next_state):
        recorded = self.critic_target(next_state)
        target = reward + 0.99 * self.critic_target(next_state).detach()  # error
        return target, recorded.grad_fn is not None


agent = Agent()
target, recorded = agent.td_target(T.randn(8, 1), T.randn(8, 4))
assert recorded
""",
        """\
import torch
from torch import nn
import torch.nn.functional as F


def td_loss(q_net, target_net, s, a, r, s2, gamma=0.99):
    q = q_net(s).gather(1, a[:, None]).squeeze(1)
    next_q = target_net(s2).max(1)[0]  # error
    target = r + gamma * next_q
    return F.mse_loss(q, target.detach())


q_net, target_net = nn.Linear(4, 2), nn.Linear(4, 2)
s, s2, a, r = torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(8)
td_loss(q_net, target_net, s, a, r, s2).backward()
assert target_net.weight.grad is None  # its recorded graph was never used
""",
    ]
    VALID = [
        """\
import torch
from torch import nn

target_net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
with torch.no_grad():
    next_q = target_net(torch.randn(32, 4))
""",
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
fake = G(torch.randn(8, 2))
d_fake = D(fake.detach())
g_loss = -D(fake).mean()
g_loss.backward()
""",
        """\
import torch
from torch import nn

teacher = nn.Linear(4, 2)
teacher.requires_grad_(False)
soft = teacher(torch.randn(8, 4)).detach()
""",
        """\
import torch
from torch import nn

model = nn.Linear(4, 2)
out = model(torch.randn(8, 4))
loss = out.pow(2).mean()
loss.backward()
print(out.detach().numpy())
""",
        """\
import torch
from torch import nn
import torch.nn.functional as F

q_net = nn.Linear(4, 2)
states = torch.randn(16, 4)
r = torch.randn(8)
q_all = q_net(states)  # one forward for both halves: the prediction needs its graph
q, next_q = q_all[:8].max(1)[0], q_all[8:].max(1)[0]
target = r + 0.99 * next_q
F.mse_loss(q, target.detach()).backward()
assert q_net.weight.grad is not None
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        dead = {cut for cut, _ in facts.dead_terms}
        for call in facts.detached_forwards:
            if call not in dead:  # a loss term cut by mistake: GL211, not a saving to make
                yield Report(facts.focus(call))
        for call in facts.detached_targets:
            yield Report(call, self.target_message)
