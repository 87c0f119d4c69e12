"""GL204 cross-network-gradient-leak."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class CrossNetworkGradientLeak(Rule):
    """Back-propagates one network's loss into another network that then steps on it.

    **Why is this bad?** A discriminator's loss computed on a fake batch that was not
    detached also fills the generator's `.grad`; an actor's loss fills the critic's. That is
    harmless when the other network clears its gradients before its own backward. When
    nothing clears them, its next `step()` applies its own gradients plus those of the other
    loss, which pushes it the wrong way (the generator helps the discriminator spot fakes).
    No error is raised.

    **Example**
    ```python
    opt_g.zero_grad(); opt_d.zero_grad()
    d_loss = bce(D(real), ones) + bce(D(G(z)), zeros)
    d_loss.backward()
    opt_d.step()
    bce(D(G(z)), ones).backward()
    opt_g.step()
    ```

    **Use instead**: detach what the other loss must not train (`D(G(z).detach())`), or clear
    the other network's gradients right before its own backward.
    """

    code = "GL204"
    name = "cross-network-gradient-leak"
    message = (
        "this backward also fills the gradients of another optimizer's parameters, and "
        "nothing clears them before that optimizer steps; `.detach()` what this loss must "
        "not train, or `zero_grad()` right before the other backward"
    )

    weight_message = (
        "a policy-gradient loss is weighted by this value, which still has the critic's graph, "
        "so the policy loss trains the critic too; use `.detach()` in the policy loss"
    )

    INVALID = [
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
opt_g = torch.optim.SGD(G.parameters(), lr=0.0)
opt_d = torch.optim.SGD(D.parameters(), lr=0.0)
bce = nn.BCEWithLogitsLoss()
z, real = torch.randn(8, 2), torch.randn(8, 4)
seen = []
opt_g.register_step_pre_hook(lambda *_: seen.append(G.weight.grad.clone()))
for step in range(2):
    opt_g.zero_grad()
    opt_d.zero_grad()
    fake = G(z)
    d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(fake), torch.zeros(8, 1))
    d_loss.backward()  # error
    opt_d.step()
    g_loss = bce(D(G(z)), torch.ones(8, 1))
    g_loss.backward()
    opt_g.step()
own = torch.autograd.grad(bce(D(G(z)), torch.ones(8, 1)), G.weight)[0]
assert not torch.allclose(seen[-1], own)  # G stepped on D's loss too
""",
        """\
import torch
from torch import nn
from torch.distributions import Categorical


class ActorCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.actor = nn.Linear(4, 2)
        self.critic = nn.Linear(4, 1)

    def forward(self, x):
        return Categorical(logits=self.actor(x)), self.critic(x).squeeze(-1)


agent = ActorCritic()
x, reward = torch.randn(8, 4), torch.randn(8)
dist, value = agent(x)
action = dist.sample()
advantage = reward - value  # error
policy_loss = -(dist.log_prob(action) * advantage).mean()
policy_loss.backward()
assert agent.critic.weight.grad is not None  # the policy loss trained the critic
""",
    ]
    VALID = [
        """\
import torch
from torch import nn
from torch.distributions import Categorical

actor, critic = nn.Linear(4, 2), nn.Linear(4, 1)
opt = torch.optim.Adam([*actor.parameters(), *critic.parameters()])
for _ in range(3):
    x, reward = torch.randn(8, 4), torch.randn(8)
    dist = Categorical(logits=actor(x))
    action = dist.sample()
    value = critic(x).squeeze(-1)
    advantage = reward - value
    policy_loss = -(dist.log_prob(action) * advantage.detach()).mean()
    ratio = torch.exp(dist.log_prob(action) - dist.log_prob(action).detach())
    clipped = (ratio * advantage.detach()).mean()
    opt.zero_grad()
    (policy_loss - clipped + advantage.pow(2).mean()).backward()
    opt.step()
""",
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
bce = nn.BCEWithLogitsLoss()
for step in range(3):
    z, real = torch.randn(8, 2), torch.randn(8, 4)
    fake = G(z)
    opt_d.zero_grad()
    d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(fake.detach()), torch.zeros(8, 1))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    bce(D(fake), torch.ones(8, 1)).backward()
    opt_g.step()
""",
        """\
import torch
from torch import nn

G, D = nn.Linear(2, 4), nn.Linear(4, 1)
opt_g = torch.optim.Adam(G.parameters())
opt_d = torch.optim.Adam(D.parameters())
bce = nn.BCEWithLogitsLoss()
for step in range(3):
    z, real = torch.randn(8, 2), torch.randn(8, 4)
    opt_d.zero_grad()
    d_loss = bce(D(real), torch.ones(8, 1)) + bce(D(G(z)), torch.zeros(8, 1))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    bce(D(G(z)), torch.ones(8, 1)).backward()
    opt_g.step()
""",
        """\
import torch
from torch import nn

actor, critic = nn.Linear(4, 2), nn.Linear(6, 1)
actor_opt = torch.optim.Adam(actor.parameters())
critic_opt = torch.optim.Adam(critic.parameters())
for step in range(3):
    s, a, target = torch.randn(8, 4), torch.randn(8, 2), torch.randn(8, 1)
    critic_opt.zero_grad()
    q = critic(torch.cat([s, a], 1))
    nn.functional.mse_loss(q, target).backward()
    critic_opt.step()
    actor_opt.zero_grad()
    (-critic(torch.cat([s, actor(s)], 1)).mean()).backward()
    actor_opt.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for backward, _ in facts.foreign_gradients:
            yield Report(backward)
        for weight, _ in facts.policy_weights:
            yield Report(weight, self.weight_message)
