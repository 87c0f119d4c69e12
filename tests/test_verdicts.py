"""Static findings judged by a run: confirmed, refuted, not-reached, or left unjudged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from gradlint.runtime_check.events import Event
from gradlint.runtime_check.report import RuntimeReport

from gradlint.cli import main
from gradlint.finding import Finding
from gradlint.verdicts import judge

SOURCE = """\
import torch
def f(t):
    return t.numpy()
def g(t):
    return (t
            .numpy())
def h(t):
    return t.numpy()
"""


def finding(path: Path, line: int, code: str = "GL101", cell: int | None = None) -> Finding:
    return Finding(str(path), line, 5, code, "x", "msg", line, 9, cell=cell)


def verdicts(findings: list[Finding], report: RuntimeReport) -> list[str | None]:
    return [f.runtime for f in judge(findings, report)]


def script(tmp_path: Path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    return path


def test_each_verdict(tmp_path: Path) -> None:
    path = script(tmp_path)
    real = str(path.resolve())
    report = RuntimeReport(
        events=[Event("GL101", real, 3, "numpy")],
        lines={real: {1, 2, 3, 4, 5, 7}},  # f and g ran, h never did
    )
    found = [finding(path, 3), finding(path, 6), finding(path, 8), finding(path, 5, "GL301")]
    assert verdicts(found, report) == ["confirmed", "refuted", "not-reached", None]


def test_an_event_where_no_finding_stands_confirms_the_finding_of_its_code(tmp_path: Path) -> None:
    # The static finding points at the cause (line 2); PyTorch raised at the use (line 3).
    path = script(tmp_path)
    real = str(path.resolve())
    report = RuntimeReport(events=[Event("GL103", real, 3, "m")], lines={real: {1, 2, 3}})
    assert verdicts([finding(path, 2, "GL103")], report) == ["confirmed"]
    # ... but not one of another code, nor one whose line another finding claims.
    report = RuntimeReport(events=[Event("GL101", real, 3, "m")], lines={real: {1, 2, 3}})
    found = [finding(path, 2, "GL103"), finding(path, 3), finding(path, 2)]
    assert verdicts(found, report) == ["refuted", "confirmed", "refuted"]


def test_a_file_that_never_ran_and_a_notebook_cell(tmp_path: Path) -> None:
    path = script(tmp_path)
    report = RuntimeReport()
    assert verdicts([finding(path, 3)], report) == ["not-reached"]
    assert verdicts([finding(path, 3, cell=2)], report) == [None]


def test_check_with_a_runtime_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.py"
    path.write_text(
        "import torch\nw = torch.randn(2, requires_grad=True)\nif w.sum() > 100:\n"
        "    print(w.numpy())\n"
    )
    report = RuntimeReport(lines={str(path.resolve()): {1, 2, 3}})
    report.write(tmp_path / "r.json")
    result = CliRunner().invoke(
        main, ["check", "--no-cache", "--format", "json", "--runtime", "r.json", "t.py"]
    )
    [found] = json.loads(result.stdout)["findings"]
    assert (found["code"], found["runtime"]) == ("GL101", "not-reached")
    text = CliRunner().invoke(main, ["check", "--no-cache", "--runtime", "r.json", "t.py"])
    assert "[runtime: not-reached]" in text.stdout
    sarif = CliRunner().invoke(
        main, ["check", "--no-cache", "--format", "sarif", "--runtime", "r.json", "t.py"]
    )
    [run] = json.loads(sarif.stdout)["runs"]
    assert run["results"][0]["properties"]["runtime"] == "not-reached"


def test_check_with_a_bad_runtime_report(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("[]")
    (tmp_path / "t.py").write_text("x = 1\n")
    result = CliRunner().invoke(
        main, ["check", "--runtime", str(tmp_path / "r.json"), str(tmp_path / "t.py")]
    )
    assert result.exit_code == 2
    assert "not a gradlint runtime report" in result.stderr


def test_a_finding_that_names_the_line_of_an_event_of_its_code_is_confirmed(
    tmp_path: Path,
) -> None:
    # Three findings tell one misuse (made at 4, used up at 5, the optimizer at 8 gets
    # none); the run raised at 8 only, which another finding claims.
    path = script(tmp_path)
    real = str(path.resolve())
    report = RuntimeReport(events=[Event("GL109", real, 8, "m")], lines={real: set(range(1, 9))})
    chain = [
        Finding(str(path), 5, 5, "GL109", "x", "uses up what the optimizer at line 8 gets", 5, 9),
        Finding(str(path), 6, 5, "GL109", "x", "uses up what the optimizer at line 7 gets", 6, 9),
        finding(path, 8, "GL109"),
    ]
    assert verdicts(chain, report) == ["confirmed", "refuted", "confirmed"]
