"""The analysis facts that rules query: names through imports, grad mode, values."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from gradlint.analysis import Facts, analyze
from gradlint.analysis.values import NO, UNKNOWN, YES, Kind, Tri, Value


def facts_of(source: str) -> tuple[Facts, cst.Module]:
    module = cst.parse_module(textwrap.dedent(source))
    return analyze(module), module


def value_at(source: str, name: str, occurrence: int = -1) -> Value:
    """The value of the `occurrence`-th use of `name` in the source (default: the last)."""
    facts, module = facts_of(source)
    found = [node for node in facts.values if isinstance(node, cst.Name) and node.value == name]
    found.sort(key=lambda node: facts.position(node)[:2])
    return facts.value(found[occurrence])


def grad_at(source: str, marker: str = "probe") -> Tri:
    """Grad mode at the call `probe()`."""
    facts, _ = facts_of(source)
    for call in facts.calls:
        if isinstance(call.node.func, cst.Name) and call.node.func.value == marker:
            return facts.grad_enabled(call.node)
    raise AssertionError("no probe() call")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("probe()", YES),
        ("import torch\nwith torch.no_grad():\n    probe()", NO),
        ("import torch as T\nwith T.no_grad():\n    probe()", NO),
        ("from torch import no_grad as ng\nwith ng():\n    probe()", NO),
        ("import torch\nwith torch.inference_mode():\n    probe()", NO),
        (
            "import torch\nwith torch.no_grad():\n    with torch.enable_grad():\n        probe()",
            YES,
        ),
        ("import torch\nwith open('f') as f, torch.no_grad():\n    probe()", NO),
        ("import torch\ntorch.set_grad_enabled(False)\nprobe()", NO),
        ("import torch\ntorch.set_grad_enabled(False)\ntorch.set_grad_enabled(True)\nprobe()", YES),
        ("import torch\nwith torch.set_grad_enabled(phase == 'train'):\n    probe()", UNKNOWN),
        ("import torch\nwith torch.set_grad_enabled(False):\n    probe()", NO),
        ("import torch\n@torch.no_grad()\ndef f():\n    probe()\nf()", NO),
        ("import torch\n@torch.no_grad\ndef f():\n    probe()\nf()", NO),
        ("import torch\n@torch.inference_mode()\ndef f():\n    probe()", NO),
        # Every caller in the module runs without grad; one caller with grad makes it mixed.
        ("import torch\ndef f():\n    probe()\nwith torch.no_grad():\n    f()", NO),
        ("import torch\ndef f():\n    probe()\nwith torch.no_grad():\n    f()\nf()", UNKNOWN),
        ("def f():\n    probe()", YES),  # no caller here: PyTorch's default
        ("class C:\n    def f(self):\n        probe()", UNKNOWN),  # a method: callers unknown
        ("def f():\n    probe()\ncallbacks = [f]", UNKNOWN),  # passed around: unknown
        ("import torch\ndef f():\n    probe()\n    loss.backward()", YES),  # training code
        (
            "import pytorch_lightning as pl\n"
            "class M(pl.LightningModule):\n"
            "    def validation_step(self, batch, i):\n"
            "        probe()\n",
            NO,
        ),
        (
            "import torch\nclass T:\n    @torch.no_grad()\n"
            "    def run(self):\n        self.step()\n"
            "    def step(self):\n        probe()\n",
            NO,
        ),
    ],
)
def test_grad_mode(source: str, expected: Tri) -> None:
    assert grad_at(source) is expected


def test_imports_resolve_aliases() -> None:
    facts, _ = facts_of(
        """
        import torch as t
        import torch.nn as nn
        from torch import nn as tnn, optim
        from torch.autograd import Variable
        a = t.randn(3)
        b = nn.Linear(2, 2)
        c = tnn.ReLU()
        d = optim.SGD(b.parameters(), lr=0.1)
        e = Variable(a, requires_grad=True)
        """
    )
    names = {call.qualname for call in facts.calls if call.qualname}
    assert {
        "torch.randn",
        "torch.nn.Linear",
        "torch.nn.ReLU",
        "torch.optim.SGD",
        "torch.autograd.Variable",
    } <= names


def test_values_follow_pytorch() -> None:
    source = """
    import torch
    from torch import nn
    w = torch.randn(3, requires_grad=True)
    x = torch.randn(3)
    y = w * x
    z = y.detach()
    i = y.argmax()
    model = nn.Linear(3, 1)
    out = model(x)
    with torch.no_grad():
        quiet = model(x)
    p = nn.Parameter(torch.zeros(2))
    print(w, x, y, z, i, model, out, quiet, p)
    """
    w, x, y, z = (value_at(source, n) for n in "wxyz")
    assert (w.requires_grad, w.leaf) == (YES, YES)
    assert (x.requires_grad, x.leaf) == (NO, YES)
    assert (y.requires_grad, y.leaf) == (YES, NO)
    assert z.requires_grad is NO and value_at(source, "i").requires_grad is NO
    assert value_at(source, "model").kind is Kind.MODULE
    assert value_at(source, "out").requires_grad is YES
    assert value_at(source, "quiet").requires_grad is NO
    assert (value_at(source, "p").requires_grad, value_at(source, "p").leaf) == (YES, YES)


def test_modules_of_local_classes_and_their_attributes() -> None:
    source = """
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.w = nn.Parameter(torch.zeros(2))
        def forward(self, x):
            return self.fc(x) * self.w
    net = Net()
    print(net, net.fc, net.w)
    """
    net = value_at(source, "net")
    assert net.kind is Kind.MODULE and net.has_params is YES
    facts, _ = facts_of(source)
    attrs = {
        node.attr.value: facts.value(node)
        for node in facts.values
        if isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "net"
    }
    assert attrs["fc"].kind is Kind.MODULE
    assert attrs["w"].requires_grad is YES and attrs["w"].leaf is YES


def test_freezing_is_tracked() -> None:
    source = """
    import torch
    from torch import nn
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    for p in model.parameters():
        p.requires_grad = False
    frozen = model(torch.randn(1, 2))
    model[1].requires_grad_(True)
    partly = model(torch.randn(1, 2))
    print(frozen, partly)
    """
    assert value_at(source, "frozen").requires_grad is NO
    assert value_at(source, "partly").requires_grad is not NO


def test_loops_see_state_carried_across_iterations() -> None:
    source = """
    import torch
    w = torch.randn(2, requires_grad=True)
    total = 0
    for step in range(3):
        loss = (w * 2).sum()
        total += loss
    print(total)
    """
    total = value_at(source, "total")
    assert total.kind is Kind.TENSOR and total.requires_grad is YES


def test_arguments_flow_into_a_function_with_one_caller() -> None:
    source = """
    import torch
    def report(t):
        print(t)
    w = torch.randn(2, requires_grad=True)
    report(w * 2)
    """
    assert value_at(source, "t").requires_grad is YES


def test_unknown_stays_unknown() -> None:
    source = """
    def f(model, x):
        out = model(x)
        print(out)
    """
    assert value_at(source, "out").requires_grad is UNKNOWN


def test_plotting_a_graph_tensor_is_a_numpy_conversion() -> None:
    from gradlint.engine import lint

    source = textwrap.dedent(
        """
        import matplotlib.pyplot as plt
        import pandas as pd
        import torch
        w = torch.randn(3, requires_grad=True)
        plt.plot(w * 2)
        frame = pd.DataFrame(w)
        plt.plot((w * 2).detach())
        """
    )
    assert [(f.line, f.code) for f in lint(source)] == [(6, "GL101"), (7, "GL101")]


def test_a_class_that_freezes_itself_in_init_makes_frozen_instances() -> None:
    source = """
    import torch
    from torch import nn
    class Blur(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            for p in self.parameters():
                p.requires_grad = False
        def forward(self, x):
            return self.conv(x)
    op = Blur()
    y = op(torch.randn(1, 1, 8, 8))
    print(y)
    """
    assert value_at(source, "op").frozen is YES
    assert value_at(source, "y").requires_grad is NO


def codes(source: str) -> list[tuple[int, str]]:
    from gradlint.engine import lint

    return [(f.line, f.code) for f in lint(textwrap.dedent(source))]


def test_a_call_changes_the_tensors_and_modules_it_is_handed() -> None:
    source = """
    import torch
    from torch import nn
    def freeze(model):
        for p in model.parameters():
            p.requires_grad = False
    def track(x):
        x.requires_grad = True
    def track_copy(x):
        x = x.clone()
        x.requires_grad = True
    net = nn.Linear(3, 3)
    freeze(net)
    a = torch.randn(3)
    track(a)
    b = torch.randn(3)
    track_copy(b)
    print(net, a, b)
    """
    assert value_at(source, "net").frozen is YES
    assert value_at(source, "a").requires_grad is YES
    assert value_at(source, "b").requires_grad is NO


def test_lambdas_and_callbacks_run_when_called() -> None:
    source = """
    import torch
    class Metric:
        def __init__(self, fn):
            self.fn = fn
        def final(self, x):
            return self.fn(x)
    w = torch.randn(3, requires_grad=True)
    m = Metric(lambda t: t.numpy())
    m.final(w * 2)
    """
    assert codes(source) == [(9, "GL101")]


def test_super_calls_run_the_base_method_on_the_instance() -> None:
    source = """
    import torch
    class Base:
        def __init__(self, scale):
            self.scale = scale
            self.items = []
    class Child(Base):
        def __init__(self):
            super().__init__(2.0)
        def add(self, t):
            self.items.append(t)
        def total(self):
            return torch.stack(self.items).numpy()
    c = Child()
    c.add(torch.randn(3, requires_grad=True) * 2)
    c.total()
    """
    assert codes(source) == [(13, "GL101")]


def test_namespaces_dicts_and_grad_mode_objects() -> None:
    source = """
    import torch
    from types import SimpleNamespace
    opt = SimpleNamespace(freeze=True, lr=0.1)
    cfg = {"freeze": False}
    ctx = torch.no_grad() if opt.freeze else torch.inference_mode()
    w = torch.randn(3, requires_grad=True)
    with ctx:
        y = w * 2
    print(opt.freeze, cfg["freeze"], y)
    """
    facts, module = facts_of(source)
    truths = [
        facts.value(node).truth
        for node in facts.values
        if isinstance(node, (cst.Attribute, cst.Subscript))
        and module.code_for_node(node) in ("opt.freeze", 'cfg["freeze"]')
    ]
    assert YES in truths and NO in truths
    assert value_at(source, "y").requires_grad is NO


def test_distributions_carry_the_graph_and_samples_do_not() -> None:
    source = """
    import torch
    from torch.distributions import Categorical
    logits = torch.randn(4, requires_grad=True)
    dist = Categorical(logits=logits * 2)
    action = dist.sample()
    logp = dist.log_prob(action)
    print(action, logp)
    """
    assert value_at(source, "action").requires_grad is NO
    assert value_at(source, "logp").requires_grad is YES


def test_properties_and_loss_modules() -> None:
    source = """
    import torch
    from torch import nn
    class Holder:
        def __init__(self):
            self.w = torch.randn(3, requires_grad=True)
        @property
        def doubled(self):
            return self.w * 2
    h = Holder()
    d = h.doubled
    loss = nn.BCEWithLogitsLoss()(torch.randn(3), torch.rand(3))
    print(d, loss)
    """
    assert value_at(source, "d").requires_grad is YES
    assert value_at(source, "loss").requires_grad is NO


def test_a_list_handed_to_a_converting_helper_is_reported_where_it_was_filled() -> None:
    source = """
    import numpy as np
    import torch
    def plot(ys):
        return np.asarray(ys)
    class Log:
        def __init__(self):
            self.seen = []
        def add(self, t):
            self.seen.append(t)
        def dump(self):
            return np.asarray(self.seen)
    w = torch.randn(3, requires_grad=True)
    losses = []
    for step in range(3):
        losses.append((w * step).sum())
    plot(losses)
    log = Log()
    log.add(w * 2)
    log.dump()
    """
    # The list also keeps each step's graph for nothing (GL302): not what this test is about.
    assert [c for c in codes(source) if c[1] == "GL101"] == [(12, "GL101"), (16, "GL101")]


def test_isinstance_is_decided_where_the_kind_is_known() -> None:
    source = """
    import torch
    def as_tensor(x):
        if isinstance(x, torch.Tensor):
            return x
        return torch.as_tensor(x)
    w = torch.zeros(3, requires_grad=True)
    same = as_tensor(w)
    print(same)
    """
    assert value_at(source, "same").requires_grad is YES


def test_classes_passed_as_values_and_buffers() -> None:
    source = """
    import torch
    from torch import nn
    class Buffered(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("weight", torch.randn(3, requires_grad=True))
    def fit(make_model, opt_class):
        model = make_model()
        return opt_class(model.parameters(), lr=0.1)
    for opt_class in (torch.optim.Adam, torch.optim.SGD):
        fit(Buffered, opt_class)
    """
    assert codes(source) == [(10, "GL109")]


def test_data_loaders_yield_batches_of_their_dataset() -> None:
    source = """
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    data = TensorDataset(torch.randint(0, 9, (20,)), torch.randn(20, 3))
    for ids, feats in DataLoader(data, batch_size=4):
        if ids.is_floating_point():
            ids.requires_grad = True
        feats.requires_grad = True
        ids.requires_grad = True
    """
    assert codes(source) == [(9, "GL105")]


def test_models_from_unknown_code_and_code_that_may_unfreeze() -> None:
    source = """
    import torch
    from peft import add_lora
    model = torch.load("model.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.requires_grad_(False)
    add_lora(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    torch.optim.SGD(trainable, lr=0.1)
    print(model(torch.randn(2, 3)).detach().numpy())
    """
    assert value_at(source, "model", 1).kind is Kind.MODULE
    assert codes(source) == []


def test_constant_defaults_lists_extended_and_calls_on_local_instances() -> None:
    source = """
    import torch
    from torch import nn
    class Block(nn.Module):
        def __init__(self, act_cfg=dict(type="ReLU")):
            super().__init__()
            self.act = nn.ReLU() if act_cfg is not None else None
        def forward(self, x):
            return self.act(x)
    class Embedder:
        def __init__(self):
            self.table = nn.Embedding(10, 4)
        def __call__(self, ids):
            return self.table(ids)
    class Data:
        def __init__(self, embed):
            self.embed = embed
        def build(self):
            self.frame = {"emb": self.embed(torch.arange(3))}
            return self
    y = Block()(torch.randn(2, requires_grad=True))
    out = [y]
    out.extend([torch.zeros(2)])
    joined = out
    data = Data(Embedder()).build()
    frame = data.frame
    """
    assert value_at(source, "y").requires_grad is YES
    joined = value_at(source, "joined")
    assert joined.item is not None and joined.item.is_tensor
    frame = value_at(source, "frame")
    emb = frame.field("emb")
    assert emb is not None and emb.requires_grad is YES


def test_named_tuples_optional_values_and_local_datasets() -> None:
    source = """
    import torch
    from collections import namedtuple
    from torch.utils.data import DataLoader, Dataset
    Pred = namedtuple("Pred", "noise start")
    w = torch.randn(3, requires_grad=True)
    start = Pred(w * 2, start=w.detach()).start
    cond = None
    if torch.rand(1) > 0.5:
        cond = w * 3
    maybe = cond
    class Windows(Dataset):
        def __init__(self, series):
            self.series = series
        def __len__(self):
            return len(self.series)
        def __getitem__(self, i):
            return self.series[i]
    for batch in DataLoader(Windows(w * 4), batch_size=2):
        print(batch)
    """
    assert value_at(source, "start").requires_grad is NO
    maybe = value_at(source, "maybe")
    assert maybe.requires_grad is YES and maybe.nullable
    assert value_at(source, "batch").requires_grad is YES


def test_first_pass_of_a_counted_loop_takes_its_own_branch() -> None:
    # The first block's outputs start the sums; later blocks add into them in place, and
    # the first block's ReLU saved its output: backward raises.
    source = """
    import torch
    from torch import nn
    blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(2)])
    x = torch.randn(2, 4)
    for i, block in enumerate(blocks):
        x = block(x)
        if i == 0:
            total = x
        else:
            total += x
    total.sum().backward()
    """
    assert codes(source) == [(11, "GL108")]
    import torch
    from torch import nn

    blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(2)])
    x = torch.randn(2, 4)
    for i, block in enumerate(blocks):
        x = block(x)
        if i == 0:
            total = x
        else:
            total += x
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        total.sum().backward()


def test_nested_functions_read_the_names_of_the_call_that_made_them() -> None:
    source = """
    import torch
    from torch import nn
    def make_step(model, batch):
        def closure():
            out = model(batch)
            return out
        return closure
    step = make_step(nn.Linear(3, 1), torch.randn(2, 3))
    result = step()
    """
    assert value_at(source, "result").requires_grad is YES


def test_instances_of_local_classes_iterate_through_their_iterator_methods() -> None:
    source = """
    import torch
    class Batches:
        def __init__(self, data):
            self.data = data
        def __iter__(self):
            self.start = 0
            return self
        def __next__(self):
            return self.data[self.start : self.start + 2]
    class Windows:
        def __init__(self, data):
            self.data = data
        def __iter__(self):
            for i in range(3):
                yield self.data[i]
    w = torch.randn(6, requires_grad=True)
    for batch in Batches(w * 2):
        first = batch
    for window in Windows(w.detach()):
        second = window
    """
    assert value_at(source, "first").requires_grad is YES
    assert value_at(source, "second").requires_grad is NO


def test_matplotlib_axes_convert_what_they_plot() -> None:
    # matplotlib turns data into arrays with numpy, as `plt.plot` does: a tensor that
    # requires grad raises there.
    source = """
    import matplotlib.pyplot as plt
    import torch
    w = torch.randn(3, requires_grad=True)
    fig, ax = plt.subplots()
    ax.plot(w * 2)
    ax.plot((w * 2).detach())
    fig, grid = plt.subplots(2, 2)
    grid[0, 1].scatter(w, w)
    plt.figure().add_subplot(111).hist(w.detach())
    """
    assert codes(source) == [(6, "GL101"), (9, "GL101")]


def test_layers_named_by_known_strings() -> None:
    # `getattr(nn, activation)` with the name known builds that layer: here an in-place
    # ReLU on a sigmoid's output, which sigmoid saved for backward.
    source = """
    import torch
    from torch import nn
    class Block(nn.Module):
        def __init__(self, activation="ReLU"):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.act = getattr(nn, activation)(inplace=True)
        def forward(self, x):
            return self.act(torch.sigmoid(self.fc(x)))
    Block()(torch.randn(2, 3)).sum().backward()
    """
    assert codes(source) == [(8, "GL108")]
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        exec(textwrap.dedent(source), {})
    assert torch.is_grad_enabled()


def test_lists_kept_on_an_agent_grow_until_cleared() -> None:
    # An agent's log-probs kept across episodes are back-propagated again after the first
    # update freed them; clearing the list (`del xs[:]`, `.clear()`) after each update is
    # the fix and stays silent.
    source = """
    import torch
    from torch import nn
    from torch.distributions import Categorical
    class Agent:
        def __init__(self):
            self.policy = nn.Linear(4, 2)
            self.opt = torch.optim.Adam(self.policy.parameters(), lr=1e-2)
            self.log_probs = []
        def act(self, s):
            dist = Categorical(logits=self.policy(s))
            self.log_probs.append(dist.log_prob(dist.sample()))
        def learn(self):
            loss = -torch.stack(self.log_probs).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            CLEAR
    agent = Agent()
    for episode in range(2):
        for t in range(3):
            agent.act(torch.randn(4))
        agent.learn()
    """
    assert codes(source.replace("CLEAR", "pass")) == [(16, "GL107")]
    assert codes(source.replace("CLEAR", "del self.log_probs[:]")) == []
    assert codes(source.replace("CLEAR", "self.log_probs.clear()")) == []
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        exec(textwrap.dedent(source.replace("CLEAR", "pass")), {})
    exec(textwrap.dedent(source.replace("CLEAR", "self.log_probs.clear()")), {})
    assert torch.is_grad_enabled()


def test_a_module_level_policy_list_emptied_inside_a_function() -> None:
    # REINFORCE with the policy at module level: each update empties its list of
    # log-probs, so no update goes through an earlier episode's graph.
    source = """
    import torch
    from torch import nn
    from torch.distributions import Categorical
    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.saved_log_probs = []
        def forward(self, x):
            return torch.softmax(self.fc(x), dim=-1)
    policy = Policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    def select_action(state):
        m = Categorical(policy(state))
        action = m.sample()
        policy.saved_log_probs.append(m.log_prob(action))
    def finish_episode():
        loss = -torch.stack(policy.saved_log_probs).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        del policy.saved_log_probs[:]
    for episode in range(2):
        for t in range(3):
            select_action(torch.randn(4))
        finish_episode()
    """
    assert codes(source) == []
    torch = pytest.importorskip("torch")
    exec(textwrap.dedent(source), {})
    assert torch.is_grad_enabled()


def test_integer_dtypes_survive_views_casts_and_numpy() -> None:
    # Views, reshapes and `.long()` keep an integer dtype, and so does a numpy integer
    # array turned into a tensor: none of them can require grad.
    source = """
    import numpy as np
    import torch
    grid = torch.arange(10).view(2, 5)
    labels = torch.from_numpy(np.random.randint(0, 5, size=10))
    scores = torch.randn(3).long()
    ok = torch.arange(10).float().view(2, 5)
    ok.requires_grad_()
    """
    assert value_at(source, "grid").integer is YES
    assert value_at(source, "labels").integer is YES
    assert value_at(source, "scores").integer is YES
    assert value_at(source, "ok").integer is NO
    torch = pytest.importorskip("torch")
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(source), namespace)
    for name in ("grid", "labels", "scores"):
        tensor = namespace[name]
        assert isinstance(tensor, torch.Tensor)
        with pytest.raises(RuntimeError, match="floating point"):
            tensor.requires_grad_()


def test_layers_frozen_one_by_one_freeze_the_model() -> None:
    # Freezing model[0] and model[2] of a Sequential whose middle layer has no parameters
    # freezes all of it: the filtered optimizer gets nothing.
    source = """
    import torch
    from torch import nn
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    for p in model[0].parameters():
        p.requires_grad = False
    for p in model[2].parameters():
        p.requires_grad = False
    opt = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.1)
    """
    assert "GL109" in {code for _, code in codes(source)}
    assert codes(source.replace("model[2]", "model[0]")) == []
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="empty parameter list"):
        exec(textwrap.dedent(source), {})
    exec(textwrap.dedent(source.replace("model[2]", "model[0]")), {})


@pytest.mark.parametrize(
    ("expression", "requires_grad"),
    [
        ("x.max(1)[1]", NO),
        ("torch.max(x, dim=1).indices", NO),
        ("torch.topk(x, 2)[1]", NO),
        ("x.sort(dim=1).values", YES),
        ("x.max(1)[0]", YES),
        ("x.max(torch.zeros(3, 4))", YES),
        ("torch.max(x)", YES),
    ],
)
def test_values_and_indices(expression: str, requires_grad: Tri) -> None:
    # Ops that return (values, indices): only the values keep the graph.
    source = f"import torch\nx = torch.randn(3, 4, requires_grad=True)\nprobe = {expression}\n"
    value = value_at(source, "probe")
    assert value.kind is Kind.TENSOR and value.requires_grad is requires_grad


def test_integer_literals_choose_a_calls_branch() -> None:
    source = """
    import torch
    from torch import nn
    net = nn.Linear(2, 2)

    def pick(x, idx):
        if idx == 0:
            return net(x)
        return net(x).detach()

    first = pick(torch.randn(1, 2), 0)
    second = pick(torch.randn(1, 2), idx=1)
    """
    assert value_at(source, "first").requires_grad is YES
    assert value_at(source, "second").requires_grad is NO


def test_a_sequential_subclass_has_its_layers_parameters() -> None:
    source = """
        import torch.nn as nn

        class Critic(nn.Sequential):
            def __init__(self):
                super().__init__(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

        class Pool(nn.Sequential):
            def __init__(self):
                super().__init__(nn.ReLU(), nn.Flatten())

        critic = Critic()
        pool = Pool()
        critic, pool
    """
    assert value_at(source, "critic").has_params is YES
    assert value_at(source, "pool").has_params is NO


def test_blocks_on_their_header_line_run() -> None:
    # `if ready: x = ...` holds its statement bare, not in a line of its own.
    source = """\
import torch
w = torch.ones(2, requires_grad=True)
if True: a = w * 2
for _ in range(2): b = a.sum()
while False: pass
with torch.no_grad(): c = w * 3
probe = (a, b, c)
"""
    found = {name: value_at(source, name) for name in ("a", "b", "c")}
    assert found["a"].requires_grad is YES and found["b"].requires_grad is YES
    assert found["c"].requires_grad is NO


def test_a_tensor_made_under_no_grad_has_no_graph() -> None:
    # `alpha * q` under no_grad has no grad_fn: alpha's graph does not come with it.
    source = """
    import torch
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha = log_alpha.exp()
    with torch.no_grad():
        target = alpha * torch.randn(3)
    probe = target
    """
    assert value_at(source, "alpha", 0).graph
    made = value_at(source, "target")
    assert made.requires_grad is NO and made.graph == frozenset()


@pytest.mark.parametrize(
    ("setting", "truth"),
    [("model.eval()", NO), ("model.train()", YES), ("model.train(False)", NO), ("", UNKNOWN)],
)
def test_a_modules_training_flag_is_its_mode(setting: str, truth: Tri) -> None:
    source = f"""
    from torch import nn
    model = nn.Linear(2, 2)
    {setting}
    flag = model.training
    probe = flag
    """
    assert value_at(source, "flag").truth is truth


def test_a_constant_key_replaces_what_the_dict_held() -> None:
    # `parts["fit"] = ...` on each pass: the dict holds this pass's loss, not the last one's.
    source = """
    import torch
    w = torch.randn(3, requires_grad=True)
    parts = {}
    for step in range(3):
        parts["fit"] = (w * torch.randn(3)).sum()
        probe = parts
    """
    held = value_at(source, "parts")
    assert held.item is not None and held.fields is not None
    assert held.item.graph == dict(held.fields)["fit"].graph
    assert all(age == 0 for _, age in held.item.graph)


def test_a_helper_freezes_the_parameters_it_is_handed() -> None:
    source = """
    import torch
    from torch import nn
    def freeze(params):
        for p in params:
            p.requires_grad = False
    backbone, head = nn.Linear(4, 4), nn.Linear(4, 1)
    freeze(backbone.parameters())
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for step in range(2):
        opt.zero_grad()
        head(backbone(torch.randn(8, 4))).sum().backward()
        opt.step()
    probe = backbone
    """
    assert value_at(source, "backbone").frozen is YES
    assert codes(source) == []
    assert "GL304" in {code for _, code in codes(source.replace("freeze(backbone", "len(backbone"))}


ACCUMULATION = """
import torch
from torch import nn
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
batches = [torch.randn(8, 4) for _ in range(8)]
for i, x in enumerate(batches):
    if i % 4 == 0:
        optimizer.zero_grad()
    (model(x).pow(2).mean() / 4).backward()
    if (i + 1) % 4 == 0:
        optimizer.step()
"""


def _clears(facts: Facts) -> set[cst.CSTNode]:
    return {
        call.node
        for call in facts.calls
        if isinstance(call.node.func, cst.Attribute) and call.node.func.attr.value == "zero_grad"
    }


@pytest.mark.parametrize(
    ("source", "guarded", "found"),
    [
        # zero_grad at the start of each window: it clears right after the last step.
        (ACCUMULATION, True, []),
        # zero_grad on every micro-batch: it throws away the window's earlier backwards.
        (
            ACCUMULATION.replace("    if i % 4 == 0:\n        optimizer", "    optimizer"),
            False,
            [8],
        ),
    ],
)
def test_a_clear_under_its_own_test_may_start_each_accumulation_window(
    source: str, guarded: bool, found: list[int]
) -> None:
    facts, _ = facts_of(source)
    (clear,) = _clears(facts)
    assert clear in facts.pending_clears  # on some path it follows a backward no step applied
    assert (clear in facts.guarded_clears) is guarded
    assert [line for line, code in codes(source) if code == "GL202"] == found


FROZEN_THEN_ATTACHED = """
import torch
from torch import nn
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
    def forward(self, x):
        return self.proj(x)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 1)
    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x)
model = Net()
for p in model.parameters():
    p.requires_grad = False
ATTACH
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
model(torch.randn(2, 4)).sum().backward()
"""


@pytest.mark.parametrize(
    "attach",
    [
        "for layer in model.layers:\n    setattr(layer, 'proj', nn.Linear(4, 4))",
        "for layer in model.layers:\n    for name in ('proj',):\n"
        "        setattr(layer, name, nn.Linear(4, 4))",
        "for child in model.children():\n    child.extra = nn.Linear(4, 4)",
        "for m in model.modules():\n    if isinstance(m, nn.Linear):\n"
        "        setattr(m, 'lora', nn.Linear(4, 4))",
        "for name, m in model.named_modules():\n    setattr(m, 'lora', nn.Linear(4, 4))",
        "for block in model.children():\n    for layer in block:\n"
        "        layer.proj = nn.Linear(4, 4)",
        "for child in model.children():\n    child.add_module('lora', nn.Linear(4, 4))",
        "model.layers[0].proj = nn.Linear(4, 4)",
        "model.extra_blocks.append(Block())",
        "setattr(model, 'head', nn.Linear(4, 1))",
        "model.add_module('extra', nn.Linear(4, 4))",
        "model.register_module('extra', nn.Linear(4, 4))",
        "model.layers.append(Block())",
        "model.layers.insert(0, Block())",
        "from peft import make_adapter\nmodel.head = make_adapter(model.head)",
        "model.bias2 = nn.Parameter(torch.zeros(1))",
    ],
)
def test_layers_attached_to_a_frozen_model_may_train(attach: str) -> None:
    # Whatever may hold trainable parameters, set on a frozen model or on a part reached
    # from it, leaves the model not known to be wholly frozen from then on.
    source = FROZEN_THEN_ATTACHED.replace("ATTACH", attach)
    assert value_at(source, "model").frozen is not YES
    assert codes(source) == []


@pytest.mark.parametrize(
    "attach",
    [
        "pass",
        "model.scale = 3",
        "model.name = 'frozen'",
        "for layer in model.layers:\n    layer.scale = 2.0",
        "extra = nn.Linear(4, 4)\nextra.requires_grad_(False)\nmodel.extra = extra",
    ],
)
def test_what_holds_no_trainable_parameters_leaves_a_frozen_model_frozen(attach: str) -> None:
    source = FROZEN_THEN_ATTACHED.replace("ATTACH", attach)
    assert value_at(source, "model").frozen is YES
    assert {code for _, code in codes(source)} == {"GL103", "GL109"}
