"""The tracer on optimizers that refuse what they are given (GL109): an empty parameter
list, or a tensor computed from others. Each case first shows PyTorch's own error, then
checks the lines the tracer names as the cause."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coverage")

from gradlint.runtime_check.runner import run_program  # noqa: E402
from helpers import explained, write  # noqa: E402


def refused(tmp_path: Path, source: str, error: str) -> dict[int, str]:
    """PyTorch refuses the program with `error`; the GL109 events by line."""
    return explained(tmp_path, source, error, "GL109")


def test_layers_in_a_plain_list_are_named(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        from torch import nn
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(3, 3), nn.Linear(3, 1)]
        def make(model):
            return torch.optim.Adam(model.parameters())
        make(MLP())
        """,
        "optimizer got an empty parameter list",
    )
    assert "use nn.ModuleList" in events[6]
    assert 8 in events  # the optimizer


def test_a_misspelt_init_is_named(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        from torch import nn
        class CNN(nn.Module):
            def _init_(self):
                super().__init__()
                self.fc = nn.Linear(3, 1)
        model = CNN()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """,
        "optimizer got an empty parameter list",
    )
    assert "is not `__init__`" in events[4]


def test_freezing_every_parameter_then_filtering_names_the_freeze(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        model = torch.nn.Linear(3, 1)
        for p in model.parameters():
            p.requires_grad = False
        trainable = filter(lambda p: p.requires_grad, model.parameters())
        optimizer = torch.optim.Adam(trainable)
        """,
        "optimizer got an empty parameter list",
    )
    assert sorted(events) == [3, 4, 6]  # the loop, the freeze, the optimizer
    assert "the optimizer at line 6 was left with none" in events[4]


def test_a_user_optimizer_class_is_named_where_it_is_built(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        class Scaled(torch.optim.SGD):
            def __init__(self, params, lr):
                super().__init__(params, lr=lr)
        model = torch.nn.Linear(3, 1)
        model.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = Scaled(params, lr=0.1)
        """,
        "optimizer got an empty parameter list",
    )
    assert {4, 6, 8} <= set(events)  # inside the class, the freeze, and where it is built


def test_a_non_leaf_made_in_a_helper_is_named_with_the_call(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        def param(value):
            return torch.tensor(value, requires_grad=True).exp()
        optimizer = torch.optim.Adam([param(0.5)], lr=0.01)
        """,
        "can't optimize a non-leaf Tensor",
    )
    assert events[3].startswith("made here from other tensors")
    assert events[4].startswith("made here")  # the call, as the optimizer's line sees it


def test_an_optimizer_with_parameters_is_no_event(tmp_path: Path) -> None:
    script = tmp_path / "fine.py"
    script.write_text(
        "import torch\nmodel = torch.nn.Linear(3, 1)\n"
        "model.bias.requires_grad = False\n"
        "opt = torch.optim.Adam(p for p in model.parameters() if p.requires_grad)\n"
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and report.events == []


def test_weights_kept_as_plain_tensors_are_named(tmp_path: Path) -> None:
    events = refused(
        tmp_path,
        """
        import torch
        from torch import nn
        class LowRank(nn.Module):
            def __init__(self, weight):
                super().__init__()
                self.scale = 2
                self.left = weight[:, :2].clone()
                self.right = weight[:2].clone()
        model = LowRank(torch.randn(4, 4))
        torch.optim.SGD(model.parameters(), lr=0.1)
        """,
        "optimizer got an empty parameter list",
    )
    assert sorted(events) == [7, 8, 10]
    assert "wrap it in `nn.Parameter`" in events[7]


def test_weights_registered_as_buffers_are_named(tmp_path: Path) -> None:
    # A readout meant to train, registered as a buffer: the module has no parameter.
    events = refused(
        tmp_path,
        """
        import torch
        from torch import nn
        class Reservoir(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mix", torch.randn(4, 4))
                self.register_buffer("steps", torch.zeros((), dtype=torch.long))
                self.register_buffer("readout", torch.zeros(1, 4))
        model = Reservoir()
        torch.optim.SGD(model.parameters(), lr=0.1)
        """,
        "optimizer got an empty parameter list",
    )
    assert sorted(events) == [6, 8, 10]  # the float buffers, and the optimizer
    assert "make it an `nn.Parameter`" in events[8]


def test_buffers_beside_parameters_are_not_named(tmp_path: Path) -> None:
    script = write(
        tmp_path / "fine.py",
        """
import torch
from torch import nn
class Normed(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
        self.fc = nn.Linear(4, 1)
model = Normed()
torch.optim.SGD(model.parameters(), lr=0.1)
""",
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


LAYERS_MADE_IN_FORWARD = """
import torch
from torch import nn
class VAE(nn.Module):
    def encode(self, x):
        return nn.Linear(8, 4)(x)
    def forward(self, x):
        return nn.Linear(4, 8)(self.encode(x))
model = VAE()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
"""


def test_layers_made_inside_methods_are_named(tmp_path: Path) -> None:
    events = refused(tmp_path, LAYERS_MADE_IN_FORWARD, "optimizer got an empty parameter list")
    assert sorted(events) == [5, 7, 9]
    assert "new layer at each call of `encode`" in events[5]


def test_layers_kept_on_self_outside_init_are_not_named(tmp_path: Path) -> None:
    # A `build()` that keeps its layers registers them: the optimizer gets parameters.
    source = LAYERS_MADE_IN_FORWARD.replace(
        "    def encode(self, x):\n        return nn.Linear(8, 4)(x)",
        "    def build(self):\n        self.enc = nn.Linear(8, 4)\n"
        "    def encode(self, x):\n        return self.enc(x)",
    ).replace("model = VAE()", "model = VAE()\nmodel.build()")
    script = write(tmp_path / "built.py", source.lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events
