"""GL204 cross-network-gradient-leak."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class CrossNetworkGradientLeak(Rule):
    """Weights a policy-gradient loss by a critic's value that still has its graph.

    **Why is this bad?** In REINFORCE with a baseline, A2C and PPO, the advantage
    (`reward - value`) only scales the gradient of the action's log-probability. Left with
    its graph, the policy loss back-propagates into the critic too: the critic is trained to
    move its value in whatever direction increases the policy objective, on top of its own
    regression loss, and the value estimates drift. No error is raised.

    Gradients that one network's loss leaves in another network (a discriminator's loss
    through a fake batch that was not detached) are not reported: whether a loss is meant
    to train both networks (a joint encoder and generator loss) cannot be told from the
    code, and clearing gradients before each network's own backward makes it harmless.

    **Example**
    ```python
    advantage = returns - critic(states)
    policy_loss = -(dist.log_prob(actions) * advantage).mean()
    ```

    **Use instead**
    ```python
    policy_loss = -(dist.log_prob(actions) * advantage.detach()).mean()
    ```
    """

    code = "GL204"
    name = "cross-network-gradient-leak"
    message = (
        "a policy-gradient loss is weighted by this value, which still has the critic's graph, "
        "so the policy loss trains the critic too; use `.detach()` in the policy loss"
    )

    INVALID = [
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
        for weight, _ in facts.policy_weights:
            yield Report(weight)
