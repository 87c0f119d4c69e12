"""GL204 cross-network-gradient-leak."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
from gradlint.rule import Report, Rule


class CrossNetworkGradientLeak(Rule):
    """Weights a policy-gradient loss by a critic's value that still has its graph, or
    regresses a network onto a bootstrapped target that still has that network's graph.

    **Why is this bad?** In REINFORCE with a baseline, A2C and PPO, the advantage
    (`reward - value`) only scales the gradient of the action's log-probability. Left with
    its graph, the policy loss back-propagates into the critic too: the critic is trained to
    move its value in whatever direction increases the policy objective, on top of its own
    regression loss, and the value estimates drift. No error is raised.

    A temporal-difference target (`reward + gamma * q_net(next_state)`) is the same
    mistake in value learning: left with its graph through the network being trained, the
    loss also pulls the target toward the prediction, and DQN and critic updates stop
    following the semi-gradient they are meant to (and often diverge).

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

    target_message = (
        "this bootstrapped target still has the graph of the network the loss trains, so "
        "the loss trains the target too; compute it under `torch.no_grad()` or `.detach()` it"
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
        """\
import torch
from torch import nn


class DQN:
    def __init__(self):
        self.policy_net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.target_net = self.policy_net
        self.optimizer = torch.optim.Adam(self.policy_net.parameters(), lr=1e-3)
        self.gamma = 0.9

    def loss(self, state, action, reward, next_state):
        q = self.policy_net(state).gather(1, action[:, None]).squeeze(1)
        next_q = self.target_net(next_state).max(1)[0]
        target = reward + self.gamma * next_q  # error
        return nn.functional.mse_loss(q, target)


agent = DQN()
s, s2, a, r = torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 2, (8,)), torch.randn(8)
agent.optimizer.zero_grad()
agent.loss(s, a, r, s2).backward()
got = agent.policy_net[2].weight.grad.clone()
q = agent.policy_net(s).gather(1, a[:, None]).squeeze(1)
with torch.no_grad():
    target = r + agent.gamma * agent.policy_net(s2).max(1)[0]
semi = torch.autograd.grad(nn.functional.mse_loss(q, target), agent.policy_net[2].weight)[0]
assert not torch.allclose(got, semi)  # the target was trained too
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
        """\
import torch
from torch import nn

q_net = nn.Linear(4, 2)
target_net = nn.Linear(4, 2)
target_net.load_state_dict(q_net.state_dict())
optimizer = torch.optim.Adam(q_net.parameters())
for step in range(3):
    s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)
    q = q_net(s).max(1)[0]
    with torch.no_grad():
        target = r + 0.9 * q_net(s2).max(1)[0]
    detached = r + 0.9 * q_net(s2).max(1)[0].detach()
    separate = r + 0.9 * target_net(s2).max(1)[0]  # a network no optimizer trains
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(q, target) + nn.functional.mse_loss(q, detached)
    (loss + nn.functional.smooth_l1_loss(q, separate)).backward()
    optimizer.step()
""",
        """\
import torch
from torch import nn

encoder = nn.Linear(4, 8)
optimizer = torch.optim.Adam(encoder.parameters())
x = torch.randn(16, 4)
z1 = encoder(x + 0.1 * torch.randn(16, 4))
z2 = encoder(x + 0.1 * torch.randn(16, 4))
optimizer.zero_grad()
nn.functional.mse_loss(z1, z2).backward()  # both views trained, on purpose
optimizer.step()
""",
        """\
import torch
from torch import nn


class QNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


q_net, q_target = QNet(), QNet()
q_target.load_state_dict(q_net.state_dict())
optimizer = torch.optim.Adam(q_net.parameters())
s, s2, r = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8)
target = r + 0.9 * q_target(s2).max(1)[0]  # no optimizer trains q_target
optimizer.zero_grad()
nn.functional.mse_loss(q_net(s).max(1)[0], target).backward()
optimizer.step()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for weight, _ in facts.policy_weights:
            yield Report(weight)
        for target, _ in facts.leaky_targets:
            yield Report(target, self.target_message)
