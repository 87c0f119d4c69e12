"""The runtime tracer: PyTorch's own errors, each seen at the user's line, and a program
that computes exactly what it computes untraced."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coverage")

from gradlint.runtime_check import errors as autograd_errors  # noqa: E402
from gradlint.runtime_check.events import Event  # noqa: E402
from gradlint.runtime_check.report import ReportError, RuntimeReport, read_report  # noqa: E402
from gradlint.runtime_check.runner import run_program  # noqa: E402
from gradlint.runtime_check.tracer import trace  # noqa: E402
from helpers import explained  # noqa: E402

HERE = str(Path(__file__).resolve())


def line_of(marker: str) -> int:
    """The line of this file that ends with `# marker`."""
    for number, text in enumerate(Path(__file__).read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


def modes() -> int:
    return int(torch._C._len_torch_function_stack())


def test_numpy_on_a_tensor_that_requires_grad() -> None:
    weights = torch.randn(3, requires_grad=True)
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="Can't call numpy"):
            weights.numpy()  # numpy-call
        weights.detach().numpy()
    [event] = tracer.events.events()
    assert (event.code, event.path, event.line) == ("GL101", HERE, line_of("numpy-call"))
    assert "detach" in event.message and event.detail.startswith("Can't call numpy()")


def test_array_conversion_of_a_tensor_that_requires_grad() -> None:
    np = pytest.importorskip("numpy")
    weights = torch.randn(3, requires_grad=True)
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError):
            np.asarray(weights)  # asarray-call
    [event] = tracer.events.events()
    assert (event.code, event.line) == ("GL101", line_of("asarray-call"))


def test_in_place_change_of_a_leaf_and_of_its_view() -> None:
    weights = torch.zeros(3, requires_grad=True)
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="leaf Variable"):
            weights.add_(1)  # leaf-add
        with pytest.raises(RuntimeError, match="leaf Variable"):
            weights[0] = 1.0  # leaf-setitem
        with torch.no_grad():
            weights.add_(1)  # the right way: no event
    found = [(e.code, e.line) for e in tracer.events.events()]
    assert found == [("GL102", line_of("leaf-add")), ("GL102", line_of("leaf-setitem"))]
    assert weights.tolist() == [1.0, 1.0, 1.0]


def causes(events: list[Event]) -> list[tuple[str, int]]:
    """The events that name a cause, without those at the backward that found no graph."""
    return [
        (e.code, e.line)
        for e in events
        if not e.detail.startswith("the tensor has no graph to go back through")
    ]


def test_backward_on_a_tensor_made_without_grad() -> None:
    weights = torch.randn(3, requires_grad=True)
    with trace(lines=False) as tracer:
        with torch.no_grad():  # the-cut
            loss = (weights * 2).sum()
        with pytest.raises(RuntimeError, match="does not have a grad_fn"):
            loss.backward()  # graphless-backward
        (weights * 2).sum().backward()
        graphless = torch.ones(2).sum()  # never-required-grad
        with pytest.raises(RuntimeError, match="does not have a grad_fn"):
            graphless.backward()
        unknown = torch.nn.functional.relu(torch.from_dlpack(torch.ones(2))).sum()
        with pytest.raises(RuntimeError, match="does not have a grad_fn"):
            unknown.backward()  # nothing-known
    found = causes(tracer.events.events())
    # Where the graph was cut, or the tensors without one were made; else the backward.
    assert found == [
        ("GL103", line_of("the-cut")),
        ("GL103", line_of("never-required-grad")),
        ("GL103", line_of("nothing-known")),
    ]
    assert f"backward at line {line_of('graphless-backward')}" in tracer.events.events()[0].detail
    # and the backward itself, with where its tensor lost the graph
    at_backward = [e for e in tracer.events.events() if e.line == line_of("graphless-backward")]
    assert f"cut at line {line_of('the-cut')}" in at_backward[0].detail
    assert weights.grad is not None


def test_a_graph_cut_by_argmax_points_at_the_argmax() -> None:
    weights = torch.randn(3, 4, requires_grad=True)
    with trace(lines=False) as tracer:
        picked = weights.argmax(dim=1).float()  # argmax-cut
        loss = (picked * 2).sum()
        with pytest.raises(RuntimeError, match="does not have a grad_fn"):
            loss.backward()
    assert causes(tracer.events.events()) == [("GL103", line_of("argmax-cut"))]


def test_one_event_per_line_with_a_count() -> None:
    weights = torch.randn(2, requires_grad=True)
    with trace(lines=False) as tracer:
        for _ in range(3):
            try:
                weights.numpy()
            except RuntimeError:
                pass
    [event] = tracer.events.events()
    assert event.count == 3


def test_errors_that_are_not_autograd_misuse_are_not_events() -> None:
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="shape"):
            torch.ones(2, 3) @ torch.ones(2, 3)
    assert len(tracer.events) == 0


def test_hooks_are_removed_on_exit_even_when_the_body_raises() -> None:
    before, tracing = modes(), sys.gettrace()
    with pytest.raises(ValueError):
        with trace() as tracer:
            assert modes() == before + 1
            raise ValueError
    assert modes() == before and sys.gettrace() is tracing
    torch.randn(2, requires_grad=True).sum().backward()  # nothing of the tracer left
    assert len(tracer.events) == 0


def test_a_step_that_fails_leaves_the_program_watched_again() -> None:
    # An optimizer's own update ops go unwatched while it steps. After one that raises, the
    # program is watched again from the next forward, and after the trace in any case.
    class Failing(torch.optim.SGD):
        def step(self, closure: Any = None) -> None:
            raise RuntimeError("out of memory")

    weights = torch.nn.Parameter(torch.randn(3))
    optimizer = Failing([weights], lr=0.1)
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="out of memory"):
            optimizer.step()
        with pytest.raises(RuntimeError, match="Can't call numpy"):
            torch.nn.Identity()(weights).numpy()  # GL101
        with pytest.raises(RuntimeError, match="out of memory"):
            optimizer.step()
    assert torch._C._is_torch_function_enabled()
    assert [e.code for e in tracer.events.events()] == ["GL101"] and not tracer.faults


def test_a_fault_of_the_tracer_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: str) -> None:
        raise KeyError("bug")

    monkeypatch.setattr("gradlint.runtime_check.tracer.classify", broken)
    weights = torch.randn(2, requires_grad=True)
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="Can't call numpy"):  # the user's own error
            weights.numpy()
    assert len(tracer.events) == 0
    assert len(tracer.faults) == 1 and "KeyError" in tracer.faults[0]


def train(steps: int) -> tuple[list[float], Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(torch.randn(16, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, torch.get_rng_state()


def test_the_traced_program_computes_exactly_what_it_computes_untraced() -> None:
    plain_losses, plain_rng = train(5)
    with trace() as tracer:
        traced_losses, traced_rng = train(5)
    assert traced_losses == plain_losses
    assert torch.equal(traced_rng, plain_rng)
    assert len(tracer.events) == 0 and not tracer.faults


class Counted(torch.Tensor):
    """A tensor subclass with its own `__torch_function__`: counts the ops on it while
    `counting` is on."""

    counting = False
    ops = 0

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        Counted.ops += Counted.counting
        return super().__torch_function__(func, types, args, kwargs or {})


def step_a_subclass_parameter() -> tuple[int, torch.Tensor]:
    torch.manual_seed(0)
    weights = torch.nn.Parameter(torch.randn(3).as_subclass(Counted))
    optimizer = torch.optim.SGD([weights], lr=0.1, momentum=0.9, foreach=False)
    Counted.ops = 0
    for _ in range(2):
        optimizer.zero_grad()
        (weights * 2).sum().backward()
        Counted.counting = True  # the step's own ops only
        optimizer.step()
        Counted.counting = False
    return Counted.ops, weights.detach().clone().as_subclass(torch.Tensor)


def test_a_tensor_subclass_sees_its_ops_in_an_optimizer_step_as_untraced() -> None:
    # While an optimizer steps, only the tracer's own watch is set aside: a subclass's own
    # `__torch_function__` runs for each update op, as it does without the tracer.
    plain_ops, plain = step_a_subclass_parameter()
    with trace(lines=False) as tracer:
        traced_ops, traced = step_a_subclass_parameter()
    assert plain_ops > 0 and traced_ops == plain_ops
    assert torch.equal(traced, plain) and not tracer.faults


def test_every_known_error_names_a_rule() -> None:
    for fragment, code, why in autograd_errors.AUTOGRAD_ERRORS:
        assert autograd_errors.classify(f"prefix {fragment} suffix") == (code, why)
    assert autograd_errors.classify("CUDA out of memory") is None


# -- running a program ---------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


SCRIPT = """
import sys
import torch

print(__name__, sys.argv[1:])
w = torch.randn(3, requires_grad=True)
if len(sys.argv) > 2:
    print("never")
try:
    w.numpy()
except RuntimeError:
    pass
sys.exit(int(sys.argv[1]))
"""


def test_numpy_inside_a_helper_names_the_calls_that_handed_the_tensor_in(
    tmp_path: Path,
) -> None:
    # A plotting helper converts what it is given; the bug is in the call that gives it a
    # tensor still attached to its graph.
    script = write(
        tmp_path / "plot.py",
        """
        import numpy as np
        import torch
        def scatter(xs, ys):
            return np.asarray(xs), np.asarray(ys)
        def show(points):
            return scatter(*points)
        w = torch.randn(3, requires_grad=True)
        x = torch.randn(3)
        scatter(x, x * 2)
        show([x, x * w])
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL101"}
    assert sorted(events) == [4, 6, 10]  # the conversion, and each call that handed it in
    assert "to scatter(), which converts it to NumPy at line 4" in events[6]
    assert "to show()" in events[10]


def test_numpy_on_a_models_output_names_the_calls_that_made_it(tmp_path: Path) -> None:
    # Acting with a policy: its output still requires grad; the call of the policy (in a
    # helper, not in a forward) is where `torch.no_grad()` belongs.
    script = write(
        tmp_path / "act.py",
        """
        import torch
        class Policy(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)
            def forward(self, obs):
                return self.fc(obs).softmax(-1)
        class Agent:
            def __init__(self):
                self.policy = Policy()
            def act(self, obs):
                return self.policy(obs)
        agent = Agent()
        actions = agent.act(torch.randn(1, 4))
        print(actions.numpy())
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL101"}
    assert sorted(events) == [7, 12, 14, 15]  # made, the policy's call, the agent's, numpy
    assert "converts to NumPy" in events[12]


def test_numpy_of_a_loss_kept_in_a_logging_dict_names_the_dict(tmp_path: Path) -> None:
    # The loss trains (a backward goes through it); the dict built for the logger is the
    # place for `.detach()`, not the loss's computation.
    script = write(
        tmp_path / "lit.py",
        """
        import torch
        def log_metrics(metrics):
            for name, value in metrics.items():
                print(name, value.numpy())
        def training_step(model, x):
            loss = model(x).pow(2).mean()
            logs = {"train_loss": loss}
            return {"loss": loss, "log": logs}
        model = torch.nn.Linear(3, 1)
        out = training_step(model, torch.randn(4, 3))
        out["loss"].backward()
        log_metrics(out["log"])
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL101"}
    assert sorted(events) == [4, 7, 12]  # the conversion, the dict, the call that hands it
    assert "into the dict" in events[7]


def test_what_an_in_place_change_of_a_leaf_handed_in_does() -> None:
    weight = torch.nn.Embedding(4, 2).weight
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        weight[:, 0] = torch.ones(4)


@pytest.mark.parametrize(
    "make",
    [
        "self.table = torch.nn.Embedding(8, 4)",  # a library's layer registers it
        "self.table = torch.nn.Parameter(torch.zeros(8, 4))",
    ],
)
def test_an_in_place_change_of_a_leaf_names_where_it_was_made_and_handed_in(
    tmp_path: Path, make: str
) -> None:
    script = write(
        tmp_path / "codes.py",
        f"""
        import torch
        def fill_codes(out):
            out[:, 0] = torch.arange(8.0)
        class Positions(torch.nn.Module):
            def __init__(self):
                super().__init__()
                {make}
                fill_codes(self.table.weight if hasattr(self.table, "weight") else self.table)
        Positions()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL102"}
    # the helper's def (it only edits weights), the change, made, handed in
    assert sorted(events) == [2, 3, 7, 8]
    assert "@torch.no_grad()" in events[2]
    assert "make this call under `torch.no_grad()`" in events[8]


def test_an_in_place_change_of_an_input_names_where_it_was_set_to_require_grad(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path / "augment.py",
        """
        import torch
        def batch():
            x = torch.randn(4, 3).view(2, 6)
            x.requires_grad_(True)
            return x
        def shift(x):
            x[0] = x[0].roll(1)
            return x
        shift(batch())
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    assert sorted(e.line for e in report.events if e.code == "GL102") == [4, 7, 9]


def test_requires_grad_on_an_integer_parameter_names_the_wrapper_that_made_it(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path / "int8.py",
        """
        import torch
        class Int8Linear(torch.nn.Module):
            def __init__(self, linear):
                super().__init__()
                weight = linear.weight.detach().round().to(torch.int8)
                self.weight = torch.nn.Parameter(weight, requires_grad=False)
        def quantize(model):
            model.fc = Int8Linear(model.fc)
            return model
        model = torch.nn.Module()
        model.fc = torch.nn.Linear(3, 3)
        model = quantize(model)
        for p in model.parameters():
            p.requires_grad = True
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL105"}
    # made, wrapped, the call, the loop that lets it through, the flag set
    assert sorted(events) == [6, 8, 12, 13, 14]
    assert "dtype that cannot require grad" in events[12]
    assert "is_floating_point()" in events[13]


def test_a_script_runs_as_python_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write(tmp_path / "train.py", SCRIPT)
    argv = sys.argv[:]
    report = run_program(str(script), ["3"])
    assert sys.argv == argv
    assert capsys.readouterr().out == "__main__ ['3']\n"
    assert report.exit_code == 3
    path = str(script.resolve())
    assert [(e.code, e.path, e.line) for e in report.events] == [("GL101", path, 9)]
    assert {4, 5, 6, 9, 11, 12} <= report.lines[path]
    assert 7 not in report.lines[path]  # `print("never")` did not run
    assert all("gradlint" not in p.split("/")[-2:] for p in report.lines)


def test_a_module_runs_as_python_m_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    write(package / "__init__.py", "")
    write(package / "job.py", "import sys\nprint(__name__, sys.argv[0].endswith('job.py'))\n")
    monkeypatch.chdir(tmp_path)
    report = run_program("pkg.job", [], module=True)
    assert capsys.readouterr().out == "__main__ True\n"
    assert report.exit_code == 0


def test_the_programs_own_error_is_shown_as_python_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write(
        tmp_path / "bad.py",
        """
        import torch
        loss = torch.ones(2).sum()
        loss.backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert f'File "{script}", line 3, in <module>' in err.splitlines()[1]
    assert "runpy" not in err and "runner.py" not in err and "tracer.py" not in err
    assert err.rstrip().splitlines()[-1].startswith("RuntimeError: element 0 of tensors")
    assert causes(report.events) == [("GL103", 2)]  # made without grad


def test_report_round_trip(tmp_path: Path) -> None:
    script = write(tmp_path / "t.py", SCRIPT)
    report = run_program(str(script), ["0"])
    report.write(tmp_path / "r.json")
    again = read_report(tmp_path / "r.json")
    assert again.to_json() == report.to_json()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["version"] == 1 and set(data["events"][0]) == {
        "code",
        "path",
        "line",
        "message",
        "count",
        "detail",
    }


@pytest.mark.parametrize(
    "text, says",
    [
        ("{", "not JSON"),
        ('{"version": 99, "events": [], "lines": {}}', "expected version 1"),
        ('{"version": 1, "events": [{"code": "GL101"}], "lines": {}}', "not a gradlint"),
    ],
)
def test_a_bad_report_is_a_clear_error(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(ReportError, match=says):
        read_report(tmp_path / "r.json")
    with pytest.raises(ReportError, match="cannot read"):
        read_report(tmp_path / "missing.json")


def test_an_empty_report() -> None:
    assert RuntimeReport().to_json()["events"] == []


# -- the command ---------------------------------------------------------------------------


def test_gradlint_run_passes_the_exit_code_and_prints_the_misuses(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    script = write(tmp_path / "train.py", SCRIPT)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["run", "--report", str(report), str(script), "7", "-x"])
    assert result.exit_code == 7, result.output
    assert "__main__ ['7', '-x']" in result.stdout
    assert "train.py:9: GL101 numpy() on a tensor that requires grad" in result.stderr
    assert "gradlint: 1 autograd misuse seen at run time" in result.stderr
    assert read_report(report).exit_code == 7


def test_gradlint_run_of_a_missing_script(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.py")])
    assert result.exit_code == 2
    assert "cannot run" in result.stderr and "no such file" in result.stderr


def test_gradlint_run_without_torch_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    monkeypatch.setitem(sys.modules, "gradlint.runtime_check.runner", None)
    result = CliRunner().invoke(main, ["run", str(write(tmp_path / "t.py", "pass\n"))])
    assert result.exit_code == 2
    assert "pip install 'torch-gradlint[runtime]'" in result.stderr


# -- root causes ---------------------------------------------------------------------------


def test_a_saved_tensor_changed_in_place_points_at_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write(
        tmp_path / "saved.py",
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        x = w.sigmoid()
        y = x * 2
        x += 1
        y.sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL108"}
    assert "backward at line 6" in events[5]  # `x += 1`, not the backward at 6
    assert 6 not in events
    # and what saved it: the sigmoid keeps its output for its gradient
    assert events[3].startswith("saved a tensor here")
    assert 4 not in events  # `y = x * 2` took it in before the change


def test_a_layer_built_inplace_points_at_where_it_was_made(tmp_path: Path) -> None:
    script = write(
        tmp_path / "layer.py",
        """
        import torch
        from torch import nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(2, 2, 1)
                self.act = nn.Sigmoid()
                self.relu = nn.ReLU(inplace=True)

            def forward(self, x):
                return self.relu(self.act(self.conv(x)))

        Block()(torch.randn(1, 2, 3)).sum().backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL108"}
    # `self.relu = nn.ReLU(inplace=True)`, and the sigmoid whose output it changed, in
    # the forward and as called
    assert sorted(events) == [9, 12, 14]
    assert "in-place op at line 12" in events[9]
    assert events[12].startswith("saved a tensor here")


@pytest.mark.parametrize(
    "build",
    [
        # made in a list, lines before `nn.Sequential` registers it
        "layers = [nn.Sigmoid()]\nlayers.append(nn.ReLU(inplace=True))\n",
        # made plain, then switched to in-place by an attribute
        "layers = [nn.Sigmoid(), nn.ReLU()]\nlayers[1].inplace = True\n",
    ],
)
def test_an_inplace_layer_points_at_what_made_it_inplace(tmp_path: Path, build: str) -> None:
    source = (
        "import torch\nfrom torch import nn\n\n"
        + build
        + "net = nn.Sequential(*layers)\n"
        + "net(torch.randn(2, 3, requires_grad=True)).sum().backward()\n"
    )
    script = tmp_path / "seq.py"
    script.write_text(source)
    report = run_program(str(script), [])
    made, saved = len(build.splitlines()) + 3, len(build.splitlines()) + 5
    assert [(e.code, e.line) for e in report.events] == [("GL108", made), ("GL108", saved)]


def test_a_change_between_saving_and_the_last_change_is_named(tmp_path: Path) -> None:
    # A residual block's `x += residual` after an in-place ReLU, then another in-place
    # ReLU: the error names the version after the last; the first change is the bug.
    script = write(
        tmp_path / "residual.py",
        """
        import torch
        import torch.nn.functional as F
        w = torch.randn(4, requires_grad=True)
        x = F.relu(w * 2, inplace=True)
        x += w
        x = F.relu(x, inplace=True)
        x.sum().backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL108"}
    assert "and again at line 6" in events[5]
    assert 6 in events


def test_a_shape_changing_in_place_op_is_named_over_later_changes(tmp_path: Path) -> None:
    # `unsqueeze_` changes the shape as it bumps the version; an in-place ReLU that
    # changes another tensor of the saved shape and version later is not the culprit.
    script = write(
        tmp_path / "unsqueeze.py",
        """
        import torch
        import torch.nn.functional as F
        w = torch.randn(2, 3, requires_grad=True)
        a = torch.sigmoid(w)
        a.unsqueeze_(0)
        b = F.relu(w * 1, inplace=True)
        (a.sum() + b.sum()).backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL108"}
    assert "changed here" in events[5]
    assert 6 not in events


def test_a_graph_that_took_in_what_a_step_changed_is_named(tmp_path: Path) -> None:
    # A GAN's discriminator steps between the forward and the generator's backward,
    # whose graph runs through the discriminator's stale forward.
    script = write(
        tmp_path / "gan.py",
        """
        import torch
        gen, disc = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
        opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
        fake = gen(torch.randn(4, 2))
        score = disc(fake)
        d_loss = score.mean()
        d_loss.backward(retain_graph=True)
        opt_d.step()
        g_loss = -score.mean()
        g_loss.backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL108"}
    assert "changed here" in events[8]  # the step
    assert events[5].startswith("saved a tensor here")  # the stale forward
    assert events[9].startswith("takes in the part made at line 5")


def test_a_correct_in_place_change_is_no_event(tmp_path: Path) -> None:
    script = write(
        tmp_path / "fine.py",
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        x = w * 2
        x += 1
        x.sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and report.events == []


@pytest.mark.parametrize(
    "body, code, lines",
    [
        (
            "w = torch.randn(2, requires_grad=True)\nv = w * 2\nv.requires_grad = False\n",
            "GL105",
            (2, 3),  # where the non-leaf was computed, and the flag
        ),
        ("m = torch.nn.Module()\nopt = torch.optim.SGD(m.parameters(), lr=0.1)\n", "GL109", (2,)),
        (
            "w = torch.randn(2, requires_grad=True)\nopt = torch.optim.SGD([w * 2], lr=0.1)\n",
            "GL109",
            (2,),
        ),
        ("x = torch.tensor([1, 2], requires_grad=True)\n", "GL105", (1,)),  # an integer tensor
    ],
)
def test_errors_no_torch_hook_sees_are_explained_when_they_end_the_program(
    tmp_path: Path, body: str, code: str, lines: tuple[int, ...]
) -> None:
    script = tmp_path / "t.py"
    script.write_text("import torch\n" + body)
    report = run_program(str(script), [])
    assert report.exit_code == 1
    assert [(e.code, e.line) for e in report.events] == [(code, line + 1) for line in lines]


def test_a_non_leaf_given_to_an_optimizer_is_named_where_it_was_made(tmp_path: Path) -> None:
    script = tmp_path / "t.py"
    script.write_text(
        "import torch\nw = torch.randn(2, requires_grad=True)\nv = w[:1]\n"
        "opt = torch.optim.SGD([v])\n"
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    # where the tensor was made, a line before the optimizer that refused it
    assert [(e.code, e.line) for e in report.events] == [("GL109", 3), ("GL109", 4)]
    assert report.events[0].detail.startswith("made here from other tensors")


def test_a_second_backward_points_at_what_built_the_shared_part(tmp_path: Path) -> None:
    script = write(
        tmp_path / "twice.py",
        """
        import torch
        net = torch.nn.Linear(3, 1)
        hidden = torch.zeros(1, 3)
        for step in range(2):
            hidden = torch.tanh(net.weight * hidden + 1)
            loss = hidden.sum()
            loss.backward()
        """,
    )
    report = run_program(str(script), [])
    made, again = report.events
    assert (made.code, made.line) == ("GL107", 5)  # the state carried from the last step
    assert "backward at line 7" in made.detail
    # The backward itself: each pass goes through what the pass before freed.
    assert (again.code, again.line) == ("GL107", 7)
    assert "freed on an earlier pass" in again.detail


def test_backward_twice_through_one_loss_is_at_the_backward(tmp_path: Path) -> None:
    script = write(
        tmp_path / "again.py",
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        loss = w.sigmoid().sum()
        loss.backward()
        loss.backward()
        """,
    )
    report = run_program(str(script), [])
    # Each place for the fix: the loss to recompute, the first backward to retain it, and
    # the second backward.
    lines = [(e.code, e.line) for e in report.events]
    assert lines == [("GL107", 3), ("GL107", 4), ("GL107", 5)]
    assert "freed by the backward at line 4" in report.events[0].detail
    assert "retain_graph=True" in report.events[1].detail
    assert "which the backward at line 4 freed" in report.events[2].detail


def test_a_second_backward_names_where_each_graph_took_the_shared_part_in(
    tmp_path: Path,
) -> None:
    # A GAN's discriminator step on a generated batch that was not detached, then the
    # generator's step through the same batch.
    script = write(
        tmp_path / "gan.py",
        """
        import torch
        gen, disc = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
        fake = gen(torch.randn(4, 2))
        d_loss = disc(fake).mean()
        d_loss.backward()
        g_loss = -disc(fake).mean()
        g_loss.backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL107"}
    assert sorted(events) == [3, 4, 5, 6, 7]
    assert events[3].startswith("made here")
    assert "`.detach()` it here" in events[4]  # the discriminator step took it in
    assert "retain_graph=True" in events[5]
    assert "already freed" in events[6]  # the generator step took it in again


def test_a_second_backward_inside_a_helper_is_at_each_call(tmp_path: Path) -> None:
    # Both backwards run in one wrapper: the calls to it tell them apart.
    script = write(
        tmp_path / "wrapped.py",
        """
        import torch
        def backward(loss):
            loss.backward()
        w = torch.randn(3, requires_grad=True)
        loss = (w * 2).sum()
        backward(loss)
        backward(loss)
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL107"}
    assert sorted(events) == [5, 6, 7]
    assert "retain_graph=True" in events[6]
    assert "which the backward at line 6 freed" in events[7]


def test_state_kept_from_an_earlier_step_is_named_where_it_is_handed_in(
    tmp_path: Path,
) -> None:
    # The final state of one step is not part of that step's loss, only what it was made
    # from: the call that hands it to the next step's forward is the place to detach it.
    events = explained(
        tmp_path,
        """
        import torch
        from torch import nn
        class Cell(nn.Module):
            def __init__(self):
                super().__init__()
                self.inputs = nn.Linear(3, 4)
            def forward(self, x, state):
                state = self.inputs(x) if state is None else 0.9 * state + self.inputs(x)
                return torch.tanh(state), state - 1
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.cell, self.state = Cell(), None
            def forward(self, xs):
                outs = []
                for x in xs:
                    out, self.state = self.cell(x, self.state)
                    outs.append(out)
                return torch.stack(outs).sum()
        net = Net()
        for step in range(2):
            net(torch.randn(2, 5, 3)).backward()
        """,
        "backward through the graph a second time",
        "GL107",
    )
    assert "as `self.state`, into the next step" in events[17]


EVOLVING = """
import torch
from torch import nn
class Evolving(nn.Module):
    def __init__(self):
        super().__init__()
        self.start = nn.Parameter(torch.randn(3, 3))
        self.weight = None
    def forward(self, x):
        base = self.start if self.weight is None else self.weight + self.start
        evolved = torch.tanh(base)
        self.weight = {kept}
        return x @ evolved
model = Evolving()
for step in range(3):
    model(torch.randn(2, 3)).sum().backward()
"""


def test_state_kept_on_a_module_is_named_where_it_is_assigned(tmp_path: Path) -> None:
    # The evolved weight is kept on the module with its graph: the next step's backward
    # goes back through the last step's, freed.
    events = explained(
        tmp_path,
        EVOLVING.format(kept="evolved"),
        "backward through the graph a second time",
        "GL107",
    )
    assert "`self.weight`" in events[11] and ".detach()" in events[11]


def test_state_kept_detached_on_a_module_is_no_event(tmp_path: Path) -> None:
    script = write(tmp_path / "train.py", EVOLVING.format(kept="evolved.detach()"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and report.events == [] and not report.faults


def test_a_shared_part_is_named_where_its_freed_tensors_were_saved(tmp_path: Path) -> None:
    # `split` saves nothing: the second backward fails further down, at the layer.
    events = explained(
        tmp_path,
        """
        import torch
        layer = torch.nn.Linear(3, 1)
        both = layer(torch.randn(8, 3))
        first, second = both.split(4)
        first.sum().backward()
        second.sum().backward()
        """,
        "backward through the graph a second time",
        "GL107",
    )
    assert "saved tensors here that the backward at line 5 freed" in events[3]
    assert 4 in events and 5 in events and 6 in events


def test_numpy_in_a_custom_backward_is_named_there(tmp_path: Path) -> None:
    events = explained(
        tmp_path,
        """
        import torch
        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x
            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return torch.from_numpy(2 * x.numpy() * grad.numpy())
        x = torch.randn(3, requires_grad=True)
        (g,) = torch.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
        """,
        "Can't call numpy() on Tensor that requires grad",
        "GL101",
    )
    assert sorted(events) == [10]


def test_a_view_whose_base_changed_in_place_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path,
        """
        import torch
        w = torch.randn(4, 4, requires_grad=True)
        x = w * 2
        first = x[:, 0]
        y = first.sin()
        x[:, 0] = 0
        (y.sum() + x.sum()).backward()
        """,
        "modified by an inplace operation",
        "GL108",
    )
    assert "`.clone()` the view" in events[4]
    assert 6 in events  # the change


def test_a_backward_after_the_step_that_changed_its_weights_is_named(tmp_path: Path) -> None:
    events = explained(
        tmp_path,
        """
        import torch
        critic = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
        action = torch.randn(2, 3, requires_grad=True)
        q = critic(action)
        q.pow(2).sum().backward(retain_graph=True)
        optimizer.step()
        actor_loss = -q.mean()
        actor_loss.backward()
        """,
        "modified by an inplace operation",
        "GL108",
    )
    assert "run this backward before that step" in events[9]
    assert 7 in events  # the step


def test_retain_graph_keeps_the_graph_and_no_event(tmp_path: Path) -> None:
    script = write(
        tmp_path / "retained.py",
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        loss = w.sigmoid().sum()
        loss.backward(retain_graph=True)
        loss.backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and report.events == []


TRAIN = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(4):
    {clear}
    loss = model(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    if step % {every} == {every} - 1:
        opt.step()
"""


@pytest.mark.parametrize(
    "clear, every, carried",
    [
        ("pass", 1, True),  # never cleared: each step applies the sum of all before
        ("opt.zero_grad()", 1, False),
        ("opt.zero_grad(set_to_none=False)", 1, False),
        ("model.zero_grad()", 1, False),
        ("opt.zero_grad() if step % 2 == 0 else None", 2, False),  # accumulation over 2
    ],
)
def test_gradients_carried_into_the_next_step(
    tmp_path: Path, clear: str, every: int, carried: bool
) -> None:
    script = write(tmp_path / "train.py", TRAIN.format(clear=clear, every=every))
    report = run_program(str(script), [])
    assert report.exit_code == 0
    expected = [("GL201", 10)] if carried else []
    assert [(e.code, e.line) for e in report.events] == expected


def test_what_a_carried_gradient_does() -> None:
    # Why GL201 matters: without zero_grad the second step applies both steps' gradients.
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.ones_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(2):
        model(torch.ones(1, 1)).sum().backward()
    assert model.weight.grad is not None and model.weight.grad.item() == 2.0
    opt.step()
    assert model.weight.item() == -1.0


ACCUMULATE = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
total = 0
for step in range(3):
    opt.zero_grad()
    loss = model(torch.randn(4, 3)).pow(2).mean()
    loss.backward()
    opt.step()
    total += {kept}
print(float(total))
"""


@pytest.mark.parametrize(
    "kept, wasted",
    [
        ("loss", True),
        ("loss.clone() / 2", True),  # (a helper that averages over workers, say)
        ("loss.item()", False),
        ("loss.detach() / 2", False),
    ],
)
def test_a_total_that_keeps_back_propagated_graphs(tmp_path: Path, kept: str, wasted: bool) -> None:
    report = run_program(str(write(tmp_path / "acc.py", ACCUMULATE.format(kept=kept))), [])
    assert report.exit_code == 0
    found = [(e.code, e.line) for e in report.events]
    assert found == ([("GL302", 11)] if wasted else [])
    assert all(e.count >= 2 for e in report.events)  # (one per iteration after the first)


def test_what_a_kept_total_does() -> None:
    # Why GL302 matters: the total's graph reaches every iteration's graph.
    w = torch.randn(3, requires_grad=True)
    total = torch.zeros(())
    for _ in range(3):
        loss = (w * 2).sum()
        loss.backward()
        total = total + loss
    node, depth = total.grad_fn, 0
    while node is not None and node.next_functions:
        node, depth = node.next_functions[0][0], depth + 1
    assert depth >= 3  # one add per iteration, each holding that iteration's graph


STACKED = """
import torch
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
losses = []
for step in range(3):
    opt.zero_grad()
    loss = model(torch.randn(4, 3)).pow(2).mean()
    loss.backward()
    opt.step()
    losses.append({kept})
print(torch.stack(losses).mean().item())
"""


@pytest.mark.parametrize("kept, wasted", [("loss", True), ("loss.detach()", False)])
def test_losses_kept_with_their_graphs_then_stacked(
    tmp_path: Path, kept: str, wasted: bool
) -> None:
    report = run_program(str(write(tmp_path / "log.py", STACKED.format(kept=kept))), [])
    assert report.exit_code == 0
    found = [(e.code, e.line) for e in report.events]
    assert found == ([("GL302", 11)] if wasted else [])


RUNNING_MEAN = """
import torch
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
mean, n = None, 0
for step in range(4):
    opt.zero_grad()
    loss = model(torch.randn(4, 3)).pow(2).mean()
    loss.backward()
    opt.step()
    value = {kept}
    mean = value if mean is None else (mean * n + value) / (n + 1)
    n += 1
print(torch.is_tensor(mean) and mean.grad_fn is not None)
"""


@pytest.mark.parametrize("kept, wasted", [("loss", True), ("loss.item()", False)])
def test_a_running_mean_that_keeps_back_propagated_graphs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kept: str, wasted: bool
) -> None:
    report = run_program(str(write(tmp_path / "mean.py", RUNNING_MEAN.format(kept=kept))), [])
    assert report.exit_code == 0
    assert capsys.readouterr().out.strip() == str(wasted)  # the mean holds a graph
    found = [(e.code, e.line) for e in report.events]
    assert found == ([("GL302", 11)] if wasted else [])


TERMS = """
import torch
def losses(model, x):
    out = model(x)
    fit = out.pow(2).mean()
    size = out.abs().mean()
    return fit + size, {{"fit": fit, "size": size}}
model = torch.nn.Linear(3, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
log = []
for step in range(4):
    opt.zero_grad()
    loss, terms = losses(model, torch.randn(4, 3))
    loss.backward()
    opt.step()
    log.append({kept})
print(sum(t.grad_fn is not None for entry in log for t in entry.values() if torch.is_tensor(t)))
"""


@pytest.mark.parametrize(
    "kept, held",
    [("terms", 8), ("{k: v.item() for k, v in terms.items()}", 0)],
)
def test_terms_of_a_loss_kept_for_a_log_with_their_graphs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kept: str, held: int
) -> None:
    report = run_program(str(write(tmp_path / "terms.py", TERMS.format(kept=kept))), [])
    assert report.exit_code == 0
    assert capsys.readouterr().out.strip() == str(held)  # terms still holding a graph
    found = sorted((e.code, e.line) for e in report.events)
    assert found == ([("GL302", 4), ("GL302", 5)] if held else [])


def test_what_a_stack_of_kept_losses_holds() -> None:
    # Each loss kept in the list holds its own graph, back-propagated and done with.
    w = torch.randn(3, requires_grad=True)
    losses = []
    for _ in range(3):
        loss = (w * 2).sum()
        loss.backward()
        losses.append(loss)
    stacked = torch.stack(losses)
    assert stacked.grad_fn is not None
    assert all(loss.grad_fn is not None for loss in losses)


EVALUATE = """
import torch
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
model.eval()
{context}
    out = model(torch.randn(2, 3))
{after}
"""


@pytest.mark.parametrize(
    "context, after, wasted",
    [
        ("if True:", "print(out.detach().sum())", True),
        ("with torch.no_grad():", "print(out.sum())", False),
        ("if True:", "out.sum().backward()", False),  # a saliency map needs that graph
        ("if True:", "out.sum().backward(retain_graph=True)", False),
    ],
)
def test_an_eval_forward_whose_graph_no_backward_uses(
    tmp_path: Path, context: str, after: str, wasted: bool
) -> None:
    source = EVALUATE.format(context=context, after=after)
    report = run_program(str(write(tmp_path / "ev.py", source)), [])
    assert report.exit_code == 0
    assert [(e.code, e.line) for e in report.events] == ([("GL301", 5)] if wasted else [])


@pytest.mark.parametrize("traced", [True, False])
def test_an_eval_model_run_by_pytorch_itself_is_pytorchs_to_settle(
    tmp_path: Path, traced: bool
) -> None:
    # A trace for export runs the model in eval mode with autograd on, from PyTorch's code.
    call = "torch.jit.trace(model, x)" if traced else "model(x)"
    source = f"""
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval()
    x = torch.randn(2, 4)
    for _ in range(3):
        out = {call}
    """
    report = run_program(str(write(tmp_path / "export.py", source)), [])
    assert report.exit_code == 0
    assert [(e.code, e.line) for e in report.events] == ([] if traced else [("GL301", 5)])


@pytest.mark.parametrize("forces", [True, False])
def test_an_eval_forward_that_differentiates_inside_needs_autograd(
    tmp_path: Path, forces: bool
) -> None:
    # An interatomic potential: its forces are the gradient of its energy, taken inside its
    # forward, so its evaluation needs autograd on.
    source = f"""
    import torch
    class Potential(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh())
        def forward(self, pos):
            energy = self.net(pos).sum()
            if {forces}:
                return energy, -torch.autograd.grad(energy, pos, create_graph=True)[0]
            return energy, pos
    model = Potential().eval()
    for _ in range(2):
        energy, force = model(torch.randn(4, 3, requires_grad=True))
        print(energy.item(), force.detach().abs().sum().item())
    """
    report = run_program(str(write(tmp_path / "md.py", source)), [])
    assert report.exit_code == 0
    assert [(e.code, e.line) for e in report.events] == ([] if forces else [("GL301", 13)])


@pytest.mark.parametrize("attacked", [True, False])
def test_an_eval_forward_back_propagated_through_its_second_output_needs_autograd(
    tmp_path: Path, attacked: bool
) -> None:
    # A model that returns `probs, logits`, run in eval mode for an adversarial example:
    # the backward goes through the logits, not the first output.
    source = f"""
    import torch
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
        def forward(self, x):
            logits = self.fc(x)
            return logits.softmax(1), logits
    net = Net().eval()
    for _ in range(2):
        x = torch.randn(8, 4, requires_grad=True)
        probs, logits = net(x)
        if {attacked}:
            torch.nn.functional.cross_entropy(logits, probs.argmax(1)).backward()
            print(x.grad.abs().sum().item() > 0)
    """
    report = run_program(str(write(tmp_path / "attack.py", source)), [])
    assert report.exit_code == 0
    assert [(e.code, e.line) for e in report.events] == ([] if attacked else [("GL301", 12)])


def test_a_sum_made_once_from_one_steps_losses_is_no_total(tmp_path: Path) -> None:
    # An LBFGS-style closure returns `a + b` after their backward: a fresh sum each call,
    # not a total carried across iterations.
    script = write(
        tmp_path / "closure.py",
        """
        import torch
        w = torch.randn(3, requires_grad=True)
        for _ in range(3):
            a, b = (w * 2).sum(), (w * 3).sum()
            (a + b).backward()
            print(float(a + b))
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and report.events == []


@pytest.mark.parametrize(
    "wrapped, loss, expected",
    [
        (
            "@torch.inference_mode()\ndef features(x):\n    return body(x)\n",
            "body(feats).sum()",  # saves the inference tensor for backward: raises
            ("GL106", 3),
        ),
        (
            "def features(x):\n    with torch.inference_mode():\n        return body(x)\n",
            "body(feats).sum()",
            ("GL106", 4),
        ),
        (
            "@torch.no_grad()\ndef features(x):\n    return body(x)\n",
            "feats.pow(2).sum()",  # no graph to go through: raises
            ("GL103", 3),
        ),
    ],
)
def test_a_graph_cut_by_a_grad_mode_function_points_at_its_decorator_or_block(
    tmp_path: Path, wrapped: str, loss: str, expected: tuple[str, int]
) -> None:
    # Features made without autograd, then trained on as if they had a graph.
    source = (
        "import torch\nbody = torch.nn.Linear(3, 3)\n"
        + wrapped
        + "feats = features(torch.randn(4, 3))\n"
        + f"loss = {loss}\n"
        + "loss.backward()\n"
    )
    script = tmp_path / "cut.py"
    script.write_text(source)
    report = run_program(str(script), [])
    assert report.exit_code == 1
    assert (report.events[0].code, report.events[0].line) == expected


def test_an_in_place_change_of_an_inference_tensor_outside_inference_mode(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path / "ensemble.py",
        """
        import torch
        with torch.inference_mode():
            total = torch.zeros(3)
        total += torch.ones(3)
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1 and not report.faults
    # The change, and where the tensor was made: the region and the line in it.
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    assert sorted(events) == [2, 3, 4]
    assert events[2] == "made here under inference mode; changed in place at line 4"


ROTARY = """
import torch
class Rotary(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.length, self.cos = 0, None
    def tables(self, n):
        if n > self.length{also}:
            self.length = n
            self.cos = torch.arange(n, dtype=torch.float32).cos()
        return self.cos[:n]
rotary, w = Rotary(), torch.randn(4, requires_grad=True)
with torch.inference_mode():
    rotary.tables(6)
(w * rotary.tables(4)).sum().backward()
"""


@pytest.mark.parametrize("also, raises", [("", True), (" or self.cos.is_inference()", False)])
def test_a_cache_rebuilt_under_inference_mode_names_the_test_that_reuses_it(
    tmp_path: Path, also: str, raises: bool
) -> None:
    # The tables are filled during evaluation under inference mode, and the check whether
    # to rebuild them looks only at their length: training reuses them and fails.
    report = run_program(str(write(tmp_path / "rotary.py", ROTARY.format(also=also))), [])
    assert report.exit_code == (1 if raises else 0) and not report.faults
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    if not raises:
        assert events == {}
        return
    assert "decides whether to rebuild what line 9 made" in events[7]
    assert sorted(events) == [7, 9, 12]


KV_CACHE = """
import torch
class Cache(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.zeros(4))
    def reset(self):
        self.k.zero_()
@torch.inference_mode()
def generate(holder):
    holder.cache = holder.cache or Cache()
    return holder.cache.k + 1
class Holder:
    cache = None
holder = Holder()
generate(holder)
{reset}
"""


@pytest.mark.parametrize(
    "reset, raises",
    [
        ("holder.cache.reset()", True),
        ("with torch.inference_mode():\n    holder.cache.reset()", False),
    ],
)
def test_an_in_place_reset_outside_the_block_names_the_call_beside_the_block(
    tmp_path: Path, reset: str, raises: bool
) -> None:
    # The cache is made inside a decorated `generate()`; the reset beside that call runs
    # outside inference mode: that call is where it should move into the mode.
    report = run_program(str(write(tmp_path / "kv.py", KV_CACHE.format(reset=reset))), [])
    assert report.exit_code == (1 if raises else 0) and not report.faults
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    if not raises:
        assert events == {}
        return
    assert "calls code that changes in place, outside inference mode" in events[16]
    assert sorted(events) == [5, 7, 8, 16]


def test_an_inference_tensor_changed_beside_its_block_names_no_sibling_call(
    tmp_path: Path,
) -> None:
    # The block is in the same function as the change: the block's line is the place.
    script = write(
        tmp_path / "beside.py",
        """
        import torch
        def run():
            with torch.inference_mode():
                total = torch.zeros(3)
            total.add_(1)
        run()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    assert sorted(e.line for e in report.events if e.code == "GL106") == [3, 4, 5]


def test_features_from_an_inference_mode_method_name_its_decorator(tmp_path: Path) -> None:
    # A frozen backbone's feature method decorated with inference_mode, feeding a head
    # that trains: the decorator is the cause, not the freeze of the backbone's weights.
    script = write(
        tmp_path / "backbone.py",
        """
        import torch
        class Backbone(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 4, 3)
            @torch.inference_mode()
            def features(self, x):
                return torch.relu(self.conv(x))
        backbone, head = Backbone().requires_grad_(False), torch.nn.Conv2d(4, 1, 1)
        head(backbone.features(torch.randn(1, 3, 8, 8))).mean().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    assert "used by autograd at line 10" in events[6]  # the decorator


def test_a_table_built_from_positions_under_inference_mode_names_the_region(
    tmp_path: Path,
) -> None:
    # A rotary table cached on first use, inside an inference-mode generation, from integer
    # positions: every tensor on the way is an inference tensor, the first not a float one.
    # The region is named on every run, not whatever inference tensor last had the memory.
    script = write(
        tmp_path / "rotary.py",
        """
        import torch
        class Rotary(torch.nn.Module):
            def forward(self, n):
                if not hasattr(self, "table"):
                    positions = torch.arange(n)
                    self.table = positions.float().repeat(4, 1).t().cos()
                return self.table[:n]
        rotary, proj = Rotary(), torch.nn.Linear(4, 4)
        @torch.inference_mode()
        def generate():
            return proj(rotary(3))
        generate()
        (proj(torch.randn(3, 4)) * rotary(3)).sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    assert "used by autograd at line 13" in events[9]  # the decorator


@pytest.mark.parametrize(
    "setup, loss, line",
    [
        # every parameter frozen: the loss has no graph; the freeze is the cut
        ("for p in net.parameters():\n    p.requires_grad = False\n", "net(x).sum()", 5),
        ("net.requires_grad_(False)\n", "net(x).sum()", 4),
        # a tensor rebuilt from scalars that required grad: the graph stops there
        ("a = net(x).sum()\nm = torch.tensor([[a, a], [a, a]])\n", "m.sum()", 5),
    ],
)
def test_a_loss_without_a_graph_points_at_the_freeze_or_the_rebuild(
    tmp_path: Path, setup: str, loss: str, line: int
) -> None:
    source = (
        "import torch\nnet = torch.nn.Linear(3, 1)\nx = torch.randn(4, 3)\n"
        + setup
        + f"loss = {loss}\nloss.backward()\n"
    )
    script = tmp_path / "frozen.py"
    script.write_text(source)
    report = run_program(str(script), [])
    assert report.exit_code == 1
    found = causes(report.events)
    if setup.startswith("for"):  # the loop says which parameters froze
        assert found == [("GL103", line - 1), ("GL103", line)]
    else:
        assert found == [("GL103", line)]


def test_a_loss_cut_by_two_freezes_names_both(tmp_path: Path) -> None:
    # An encoder frozen on purpose and a head frozen by mistake: either may be the bug.
    script = write(
        tmp_path / "two.py",
        """
        import torch
        encoder, head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
        encoder.requires_grad_(False)
        head.requires_grad_(False)
        head(encoder(torch.randn(2, 3))).sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert causes(report.events) == [("GL103", 3), ("GL103", 4)]
    [at_backward] = [e for e in report.events if e.line == 5]
    assert "cut at line 3, 4" in at_backward.detail


def test_autograd_backward_of_a_constant_names_where_it_was_made(tmp_path: Path) -> None:
    # `torch.autograd.backward` takes its tensors as a tuple.
    script = write(
        tmp_path / "constant.py",
        """
        import torch
        def probe(losses):
            loss = torch.stack(losses).sum() if losses else torch.tensor(0.0)
            torch.autograd.backward(loss)
        probe([])
        """,
    )
    report = run_program(str(script), [])
    assert causes(report.events) == [("GL103", 3)]


def test_unfreezing_forgets_the_freeze(tmp_path: Path) -> None:
    script = write(
        tmp_path / "unfrozen.py",
        """
        import torch
        net = torch.nn.Linear(3, 1)
        net.requires_grad_(False)
        net.requires_grad_(True)
        out = torch.nn.functional.linear(torch.randn(2, 3), net.weight.detach())
        out.sum().backward()
        """,
    )
    report = run_program(str(script), [])
    # The cut is the detach, not the freeze that was undone.
    assert causes(report.events) == [("GL103", 5)]


def test_a_freed_part_handed_on_to_a_helper_is_named_at_the_call(tmp_path: Path) -> None:
    # The critic sees the generated batch detached, but a penalty helper gets it whole:
    # the call to the helper is where the fix goes.
    source = """
        import torch
        gen, critic = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
        def penalty(critic, fake):
            return critic(0.5 * fake).pow(2).mean()
        fake = gen(torch.randn(4, 2))
        for _ in range(2):
            scaled = fake * 2
            loss = critic(scaled.detach()).mean() + penalty(critic, {given})
            loss.backward()
        """
    events = explained(tmp_path, source.format(given="scaled"), "a second time", "GL107")
    assert sorted(events) == [5, 7, 8, 9]
    assert "to penalty()" in events[8]
    fixed = write(tmp_path / "fixed.py", textwrap.dedent(source.format(given="scaled.detach()")))
    assert not run_program(str(fixed), []).events


def test_a_step_before_a_backward_is_named_for_a_transposed_weight(tmp_path: Path) -> None:
    # `linear` saves its weight transposed: the step's change is matched by its dimensions,
    # not taken for a later in-place change that reached the same version.
    events = explained(
        tmp_path,
        """
        import torch
        enc = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        opt = torch.optim.SGD(enc.parameters(), lr=0.1)
        z = enc(torch.randn(5, 3))
        z.pow(2).sum().backward(retain_graph=True)
        opt.step()
        counts = torch.zeros(3, 3)
        counts.add_(1)
        z.sum().backward()
        """,
        "modified by an inplace operation",
        "GL108",
    )
    assert 6 in events and 8 not in events


def test_the_tracers_hot_frames_make_no_line_events() -> None:
    # Under a line tracer (coverage.py's, collecting the user's lines) each line the tracer
    # runs per torch call would cost a call into it: its hot frames turn line events off.
    import inspect

    from gradlint.runtime_check import frames, graphs
    from gradlint.runtime_check.steps import StepWatch
    from gradlint.runtime_check.tracer import Tracer, _Watch

    hot = {
        f.__code__: f
        for f in (
            _Watch.__torch_function__,
            Tracer.after,
            graphs.user_stack,
            graphs.mark_propagated,
            frames.user_frame,
            StepWatch.after,
        )
    }
    last_line_before_off = {}
    for code, function in hot.items():
        lines, first = inspect.getsourcelines(function)
        offset = next(i for i, text in enumerate(lines) if "f_trace_lines = False" in text)
        last_line_before_off[code] = first + offset
    late: list[tuple[str, int]] = []

    def watch(frame: Any, event: str, arg: Any) -> Any:
        limit = last_line_before_off.get(frame.f_code)
        if event == "line" and limit is not None and frame.f_lineno > limit:
            late.append((frame.f_code.co_name, frame.f_lineno))
        return watch

    with trace(lines=False):
        sys.settrace(watch)
        try:
            layer = torch.nn.Linear(3, 1)
            optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
            layer(torch.randn(2, 3)).sum().backward()
            optimizer.step()
        finally:
            sys.settrace(None)
    assert late == []


def test_equal_functions_of_two_files_are_told_apart(tmp_path: Path) -> None:
    # Code objects compare equal across files (name, line and bytecode alike): each event
    # must still name the file whose function ran.
    helper = "import torch\n\ndef show(t):\n    return t.numpy()\n"
    write(tmp_path / "first.py", helper)
    write(tmp_path / "second.py", helper)
    script = write(
        tmp_path / "main.py",
        """
        import torch
        import first, second
        w = torch.ones(2, requires_grad=True)
        for module in (first, second):
            try:
                module.show(w * 2)
            except RuntimeError:
                pass
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.faults
    files = sorted(Path(e.path).name for e in report.events if e.code == "GL101" and e.line == 4)
    assert files == ["first.py", "second.py"]


GRAPH_CACHE = """
import torch

class Rotary(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.freqs = torch.nn.Parameter(torch.rand(4))
        self.cached = None

    def angles(self, n):
        if self.cached is None:
            angles = torch.arange(n)[:, None] * self.freqs
            self.cached = angles
        return self.cached

rotary = Rotary()
opt = torch.optim.SGD(rotary.parameters(), lr=0.1)
for step in range(2):
    loss = rotary.angles(3).cos().sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    {invalidate}
"""


def test_a_graph_kept_in_a_cache_on_a_module_is_named_where_it_is_kept(tmp_path: Path) -> None:
    # The cache is read through a method, not a forward: only the module holding it now
    # tells where the freed graph was kept.
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, GRAPH_CACHE.format(invalidate=""), error, "GL107")
    assert 12 in found and "self.cached" in found[12]


def test_a_cache_rebuilt_after_each_step_is_silent(tmp_path: Path) -> None:
    script = tmp_path / "fine.py"
    script.write_text(GRAPH_CACHE.format(invalidate="rotary.cached = None").lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


HOOK_STORE = """
import torch

class Store:
    def __init__(self):
        self.maps = []

    def hook(self, module, inputs, output):
        self.maps.append(output)

    def first(self):
        return self.maps[0]

net = torch.nn.Linear(3, 3)
store = Store()
net.register_forward_hook(store.hook)
for step in range(2):
    net(torch.randn(2, 3))
    store.first().sum().backward()
"""


def test_a_graph_kept_in_a_list_of_a_hook_store_names_where_it_is_filled_and_read(
    tmp_path: Path,
) -> None:
    # Forward hooks collect outputs into a list on a plain object that is never emptied;
    # the second step reads the first step's output, whose graph was freed.
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, HOOK_STORE, error, "GL107")
    assert "the list `self.maps`" in found[8]  # filled
    assert "the list `self.maps`" in found[11]  # read


SHARED_ALIAS = """
import torch

encoder, critic, actor = (torch.nn.Linear(3, 3) for _ in range(3))

def learn(obs):
    feat = encoder(obs)
    critic(feat).pow(2).mean().backward()
    actor_feat = feat{fix}
    actor(actor_feat).mean().backward()

learn(torch.randn(4, 3))
"""


def test_a_freed_part_handed_on_under_another_name_names_that_assignment(
    tmp_path: Path,
) -> None:
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, SHARED_ALIAS.format(fix=""), error, "GL107")
    assert "hands the part made at line 6 on as `actor_feat`" in found[8]


def test_a_detached_alias_is_silent(tmp_path: Path) -> None:
    script = tmp_path / "fine.py"
    script.write_text(SHARED_ALIAS.format(fix=".detach()").lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


def test_a_shared_part_returned_by_a_helper_names_the_helpers_line(tmp_path: Path) -> None:
    # The helper detaches one embedding and returns the other with its graph: its line is
    # on the way from where the part is made to the loop that reuses it.
    source = """
    import torch
    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 3)
        def forward(self, ids):
            return self.proj(ids).tanh()
    encoder = Encoder()
    def embeddings(ids):
        uncond = encoder(torch.zeros_like(ids))
        cond = encoder(ids)
        return uncond.detach(), cond
    uncond, cond = embeddings(torch.randn(2, 3))
    head = torch.nn.Linear(3, 1)
    for step in range(2):
        head(cond + uncond).sum().backward()
    """
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, source, error, "GL107")
    # made in the forward, by the helper's call, by the script's call of the helper
    assert {7, 11, 13} <= set(found)
    assert "made here" in found[11]


def test_a_freed_part_inside_a_library_module_is_still_found(tmp_path: Path) -> None:
    # The backward steps over `nn.Sequential`'s own nodes; the second backward, through the
    # same output, still finds the part freed and where it was made.
    source = """
    import torch
    body = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    head_a, head_b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    feat = body(torch.randn(2, 3))
    head_a(feat).sum().backward()
    head_b(feat).sum().backward()
    """
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, source, error, "GL107")
    assert 4 in found and "made here" in found[4]  # `feat = body(...)`
    assert 6 in found  # the second backward


def test_an_rnns_state_carried_into_the_next_step_names_the_call(tmp_path: Path) -> None:
    # `nn.RNN` returns its output and its last state: the backward goes through the output
    # only, and the state, kept for the next step, leads into the same freed nodes.
    source = """
    import torch
    rnn, head = torch.nn.RNN(3, 4, batch_first=True), torch.nn.Linear(4, 1)
    state = None
    for step in range(2):
        out, state = rnn(torch.randn(2, 5, 3), state)
        head(out[:, -1]).sum().backward()
    """
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, source, error, "GL107")
    assert 5 in found  # the call that takes the state in and hands the new one on


CARRIED_STATE = """
import torch

cell = torch.nn.RNNCell(3, 3)
last_h = None
for epoch in range(2):
    h = last_h{fix}
    cost = 0
    for x in torch.randn(3, 2, 3):
        h = cell(x, h)
        cost = cost + h.pow(2).mean()
    cost.backward()
    last_h = h
"""


def test_state_carried_into_the_next_round_names_where_it_is_handed_in(tmp_path: Path) -> None:
    error = "Trying to backward through the graph a second time"
    found = explained(tmp_path, CARRIED_STATE.format(fix=""), error, "GL107")
    assert "on as `h`" in found[6]  # the epoch takes the last epoch's state as it is


def test_state_carried_detached_is_silent(tmp_path: Path) -> None:
    fix = ".detach() if last_h is not None else None"
    script = write(tmp_path / "fine.py", CARRIED_STATE.format(fix=fix).lstrip("\n"))
    report = run_program(str(script), [])
    assert report.exit_code == 0 and not report.events


def test_a_flag_set_on_a_view_names_the_call_that_made_the_view(tmp_path: Path) -> None:
    # A wrapper keeps the weights in one flat parameter and leaves views on the layer; a
    # freeze after the wrap raises. The wrap and the freeze are the two places for the fix.
    script = write(
        tmp_path / "flat.py",
        """
        import torch
        def wrap(layer):
            flat = torch.nn.Parameter(layer.weight.detach().reshape(-1))
            del layer.weight
            layer.weight = flat.view(2, 3)
            return layer
        def freeze(layer):
            layer.weight.requires_grad = False
        layer = torch.nn.Linear(3, 2)
        layer = wrap(layer)
        freeze(layer)
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL105"}
    assert sorted(events) == [5, 8, 10, 11]
    assert "computes here (View)" in events[5]
    assert "computes here (View)" in events[10]  # the wrap's call, beside the freeze's
    assert "sets requires_grad (at line 8)" in events[11]


def test_an_op_in_a_users_hook_that_a_library_module_runs_is_named_in_the_hook(
    tmp_path: Path,
) -> None:
    # Ops inside PyTorch's own modules take the user's line that called the module; a hook
    # of the user's that such a module runs is the user's code, and its ops are its own.
    script = write(
        tmp_path / "hook.py",
        """
        import torch
        seq = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
        kept = []
        def hook(module, inputs, output):
            kept.append(output * 2)
        seq[0].register_forward_hook(hook)
        seq(torch.randn(2, 3)).sum().backward()
        kept[0].sum().backward()
        """,
    )
    report = run_program(str(script), [])
    events = {e.line: e.detail for e in report.events if e.code == "GL107"}
    assert "takes in the part made at line 7" in events[5]


def test_a_users_module_inside_a_library_container_is_still_watched(tmp_path: Path) -> None:
    # PyTorch's own modules run with the watch set aside only where nothing of the user's
    # runs inside them: a module of the user's in an `nn.Sequential` is watched.
    script = write(
        tmp_path / "inside.py",
        """
        import torch
        class Probe(torch.nn.Module):
            def forward(self, x):
                self.seen = x.numpy()
                return x
        net = torch.nn.Sequential(torch.nn.Linear(3, 3), Probe(), torch.nn.ReLU())
        net(torch.randn(2, 3)).sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    assert ("GL101", 4) in [(e.code, e.line) for e in report.events]


def test_an_autograd_error_inside_a_library_module_is_explained(tmp_path: Path) -> None:
    # An inference tensor given to `nn.Linear` raises inside it, where the watch is set
    # aside: the error is explained from the module's inputs as it leaves the module.
    script = write(
        tmp_path / "linear.py",
        """
        import torch
        layer = torch.nn.Linear(3, 3)
        with torch.inference_mode():
            x = torch.randn(2, 3)
        layer(x).sum().backward()
        """,
    )
    report = run_program(str(script), [])
    assert report.exit_code == 1
    events = {e.line: e.detail for e in report.events if e.code == "GL106"}
    assert "used by autograd at line 5" in events[3]  # the block


def test_the_watch_is_back_after_a_library_module_raises() -> None:
    # A shape error inside `nn.Linear`, where the watch is set aside, caught by the program:
    # what follows is watched again, and the mode stack is as it was after the trace.
    layer = torch.nn.Linear(3, 3)
    before = modes()
    with trace(lines=False) as tracer:
        with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
            layer(torch.randn(2, 4))
        with pytest.raises(RuntimeError, match="Can't call numpy"):
            layer(torch.randn(2, 3)).numpy()  # GL101
    assert modes() == before
    assert [e.code for e in tracer.events.events()] == ["GL101"] and not tracer.faults


# --- Explanations from the blind set of crashes 18 -----------------------------------------


@pytest.mark.parametrize(
    "returned, expected",
    [
        ('{"grads": grads.numpy(), "logits": logits}', {6: "returns a tensor"}),
        ("loss, grads.numpy()", {6: "returns a tensor"}),
        ('{"grads": grads.numpy(), "logits": logits.detach()}', None),
    ],
)
def test_numpy_of_a_tensor_a_callback_returned_names_the_return(
    tmp_path: Path, returned: str, expected: dict[int, str] | None
) -> None:
    # A library converts what the user's callback hands back; a backward (here
    # `autograd.grad`) went through the tensor, yet the return is where it leaves.
    source = f"""
    import numpy as np
    import torch
    def callback(x):
        logits = model(x)
        loss = logits.sum()
        grads = torch.autograd.grad(loss, x)[0]
        return {returned}
    def library(fun, x):
        out = fun(x)
        return [np.asarray(v) for v in (out.values() if isinstance(out, dict) else out)]
    model = torch.nn.Linear(3, 2)
    library(callback, torch.randn(4, 3, requires_grad=True))
    """
    if expected is None:
        script = write(tmp_path / "cb.py", source)
        assert run_program(str(script), []).exit_code == 0
        return
    events = explained(tmp_path, source, "Use tensor.detach().numpy()", "GL101")
    assert sorted(events) == [7, 10]  # the return, and the conversion
    assert "returns a tensor that requires grad" in events[7]


def test_inference_mode_chosen_through_a_name_names_the_settings_default(
    tmp_path: Path,
) -> None:
    source = """
    from dataclasses import dataclass
    import torch
    @dataclass
    class Config:
        use_inference_mode: bool = True
    class Cached(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.table = torch.nn.Linear(4, 4), None
        def forward(self, x):
            if self.table is None:
                self.table = torch.ones(4)
            return self.fc(x) * self.table
    def predict(model, x, cfg):
        ctx = torch.inference_mode() if cfg.use_inference_mode else torch.no_grad()
        with ctx:
            return model(x)
    model = Cached()
    predict(model, torch.randn(2, 4), Config())
    model(torch.randn(2, 4)).sum().backward()
    """
    events = explained(tmp_path, source, "Inference tensors cannot be saved for backward", "GL106")
    assert 5 in events and "by its default here" in events[5]


FEATURES = """
import torch
def load_features(freeze=False):
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
    if freeze:
        for p in net.parameters():
            p.requires_grad_(False)
    return net
net = load_features({freeze})
target = net(torch.randn(2, 4))
image = torch.randn(2, 4, requires_grad=True)
opt = torch.optim.SGD([image], lr=0.1)
for step in range(2):
    opt.zero_grad()
    (net(image) - target).pow(2).mean().backward()
    opt.step()
"""


def test_a_freeze_skipped_by_a_default_names_the_default(tmp_path: Path) -> None:
    events = explained(
        tmp_path, FEATURES.format(freeze=""), "backward through the graph a second time", "GL107"
    )
    assert 2 in events and "`freeze` kept this default" in events[2]
    assert "line 8" in events[2]


def test_what_a_frozen_feature_network_does(tmp_path: Path) -> None:
    script = write(tmp_path / "train.py", FEATURES.format(freeze="freeze=True"))
    assert run_program(str(script), []).exit_code == 0


@pytest.mark.parametrize("kept", ["self_body = ", "self.body = "])
def test_layers_kept_in_a_local_name_in_init_are_named(tmp_path: Path, kept: str) -> None:
    source = f"""
    import torch
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            {kept}torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU())
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters())
    opt = Model().configure_optimizers()
    """
    if kept.startswith("self."):
        assert run_program(str(write(tmp_path / "ok.py", source)), []).exit_code == 0
        return
    events = explained(tmp_path, source, "optimizer got an empty parameter list", "GL109")
    assert 5 in events and "local name `self_body`" in events[5]


@pytest.mark.parametrize("listed", [False, True])
def test_parameters_used_up_by_an_optimizers_own_init_are_named(
    tmp_path: Path, listed: bool
) -> None:
    source = f"""
    import torch
    class Checked(torch.optim.SGD):
        def __init__(self, params, lr=0.1):
            params = {"list(params)" if listed else "params"}
            for p in params:
                assert isinstance(p, torch.Tensor)
            super().__init__(params, lr=lr)
    model = torch.nn.Linear(3, 1)
    opt = Checked(model.parameters())
    """
    if listed:
        assert run_program(str(write(tmp_path / "ok.py", source)), []).exit_code == 0
        return
    events = explained(tmp_path, source, "optimizer got an empty parameter list", "GL109")
    assert 5 in events and "goes through the one-pass iterator" in events[5]


# --- Explanations from the blind set of crashes 19 -----------------------------------------


def test_a_loss_total_made_under_inference_mode_names_the_accumulation(tmp_path: Path) -> None:
    source = """
    import torch
    model = torch.nn.Linear(4, 3)
    def evaluate(batches):
        total = 0
        with torch.inference_mode():
            for x in batches:
                out = model(x)
                total += out.pow(2).mean()
        total /= len(batches)
        return total
    evaluate([torch.randn(2, 4) for _ in range(3)])
    """
    found = explained(tmp_path, source, "Inplace update to inference tensor", "GL106")
    assert 8 in found and "assigns `total` a tensor made under inference mode" in found[8]


def test_a_cache_kept_under_no_grad_names_where_it_is_filled_not_reset(tmp_path: Path) -> None:
    source = """
    import torch
    class Cast(torch.nn.Linear):
        def __init__(self, *args):
            super().__init__(*args)
            self.cache = None
        def reset(self):
            self.cache = None
        def forward(self, x):
            if self.cache is None:
                self.cache = self.weight.double()
            return x.double() @ self.cache.t()
    layer = Cast(3, 2)
    with torch.no_grad():
        layer(torch.randn(1, 3))
    layer(torch.randn(1, 3)).sum().backward()
    """
    found = explained(tmp_path, source, "does not require grad", "GL103")
    assert 10 in found and "self.cache" in found[10]
    assert 7 not in found  # the reset keeps nothing


def test_state_a_method_keeps_for_its_next_call_names_where_it_starts_from_it(
    tmp_path: Path,
) -> None:
    source = """
    import torch
    class Learner:
        def __init__(self):
            self.w = torch.nn.Parameter(torch.randn(3))
            self.fast = None
        def adapt(self, x):
            fast = self.fast
            if fast is None:
                fast = self.w
            loss = (x * fast).sum()
            (grad,) = torch.autograd.grad(loss, fast)
            fast = torch.tanh(fast - 0.1 * grad)
            self.fast = fast
            return fast
    learner = Learner()
    for step in range(2):
        learner.adapt(torch.randn(3)).pow(2).sum().backward()
    """
    found = explained(tmp_path, source, "backward through the graph a second time", "GL107")
    assert 7 in found and "starts from `self.fast`, which line 13 keeps" in found[7]


def test_an_in_place_layer_of_a_sequential_over_several_lines_is_named_itself(
    tmp_path: Path,
) -> None:
    source = """
    import torch
    def branch():
        return torch.nn.Sequential(
            torch.nn.ReLU(inplace=True),
            torch.nn.Linear(4, 4),
        )
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.branch, self.skip = branch(), torch.nn.Linear(4, 4)
        def forward(self, x):
            return self.skip(x) + self.branch(x)
    torch.nn.Sequential(torch.nn.Linear(4, 4), Block())(torch.randn(2, 4)).sum().backward()
    """
    found = explained(tmp_path, source, "modified by an inplace operation", "GL108")
    assert 4 in found and "in-place op" in found[4]


GAN_STEP = """
import torch
gen, disc = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)
opt_g = torch.optim.SGD(gen.parameters(), lr=0.1)
opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
def disc_step(fake):
    fake_out = disc(fake)
    opt_d.zero_grad()
    fake_out.mean().backward(retain_graph=True)
    opt_d.step()
    return {returned}
fake = gen(torch.randn(4, 2))
{kept}
opt_g.zero_grad()
(-{used}).mean().backward()
opt_g.step()
"""


@pytest.mark.parametrize(
    "returned, kept, used, line",
    [
        ("fake_out", "out = disc_step(fake)", "out", 10),  # the step's stale output returned
        ("None", "before = disc(fake)\ndisc_step(fake)\nstale = before", "stale", 14),
    ],
)
def test_a_discriminator_output_used_after_its_step_names_where_it_was_handed_on(
    tmp_path: Path, returned: str, kept: str, used: str, line: int
) -> None:
    source = GAN_STEP.format(returned=returned, kept=kept, used=used)
    found = explained(tmp_path, source, "modified by an inplace operation", "GL108")
    assert line in found
    assert "returns the part" in found[line] or "on as `stale`" in found[line]


def test_a_discriminator_output_computed_after_its_step_is_fine(tmp_path: Path) -> None:
    source = GAN_STEP.format(returned="disc(fake)", kept="out = disc_step(fake)", used="out")
    assert run_program(str(write(tmp_path / "ok.py", source)), []).exit_code == 0
