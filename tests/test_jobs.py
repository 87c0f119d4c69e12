"""`--jobs N`: the same report as one process, whatever the scheduling, and a worker that
dies is one file's error."""

from __future__ import annotations

import gc
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_rules import FAKE_RULES, FakeFacts, install

from gradlint import parallel
from gradlint.cli import main
from gradlint.config import Config
from gradlint.discovery import SourceFile
from gradlint.finding import Finding, LintError
from gradlint.rule import Report, Rule

PARENT = os.getpid()


class FakeDie(Rule):
    """Kills the worker process that lints a module calling `die()`, as a crash in native
    code would (never the test process itself)."""

    code = "GL997"
    name = "fake-die"
    message = "never reported"

    def check(self, facts: FakeFacts) -> Iterator[Report]:  # type: ignore[override]
        if "die()" in facts.module.code and os.getpid() != PARENT:
            os._exit(70)
        return iter(())


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the process pools started."""
    started: list[int] = []
    real = parallel._pool

    def spy(workers: int) -> object:
        started.append(workers)
        return real(workers)

    monkeypatch.setattr(parallel, "_pool", spy)
    return started


def gradlint_(*args: str) -> Result:
    return CliRunner().invoke(main, ["check", "--no-cache", *args])


def twenty_files(project: Path) -> None:
    for index in range(19):
        lines = [f"v{index} = 1\n"] * (index % 5)
        lines.insert(index % 3, "a = y.numpy()\n" if index % 2 else "b = y.item()\n")
        if index % 4 == 0:
            lines.append("c = y.detach()\n")
        folder = project / ("pkg" if index % 3 else "other") / f"sub{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{index:02}.py").write_text("".join(lines))
    (project / "pkg" / "bad.py").write_text("def (:\n")


@pytest.mark.parametrize("output_format", ["json", "text", "sarif", "concise"])
def test_two_jobs_give_the_bytes_of_one(
    project: Path, pools: list[int], output_format: str
) -> None:
    twenty_files(project)
    one = gradlint_("--jobs", "1", "--format", output_format)
    assert pools == []
    two = gradlint_("--jobs", "2", "--format", output_format)
    assert pools == [2]
    assert one.exit_code == two.exit_code == 2
    assert two.stdout == one.stdout
    assert two.stderr == one.stderr
    assert "bad.py" in one.output


def test_more_jobs_than_chunks(project: Path, pools: list[int]) -> None:
    twenty_files(project)
    assert gradlint_("-j", "64").stdout == gradlint_("-j", "1").stdout
    assert pools and pools[0] <= 64


def test_jobs_with_the_cache(project: Path, pools: list[int]) -> None:
    twenty_files(project)
    cold = CliRunner().invoke(main, ["check", "-j", "2"])
    assert pools == [2]
    warm = CliRunner().invoke(main, ["check", "-j", "2"])
    assert pools == [2]  # every file was in the cache: no pool
    assert warm.stdout == cold.stdout == gradlint_("-j", "1").stdout


def test_no_pool_for_a_few_files(project: Path, pools: list[int]) -> None:
    for index in range(parallel.MIN_FILES - 1):
        (project / f"m{index}.py").write_text("a = y.numpy()\n")
    assert gradlint_("--jobs", "4").exit_code == 1
    assert pools == []


def test_jobs_must_be_positive(project: Path) -> None:
    result = gradlint_("--jobs", "0")
    assert result.exit_code == 2
    assert "--jobs" in result.stderr


def test_a_worker_that_dies_is_that_files_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, [*FAKE_RULES, FakeDie])
    twenty_files(project)
    killer = project / "pkg" / "killer.py"
    killer.write_text("die()\na = y.numpy()\n")
    result = gradlint_("--jobs", "2", "--format", "json")
    assert result.exit_code == 2
    got = json.loads(result.stdout)
    killer.unlink()
    expected = json.loads(gradlint_("--jobs", "1", "--format", "json").stdout)
    shown = os.path.join("pkg", "killer.py")
    assert {"path": shown, "message": parallel.CRASHED} in got["errors"]
    assert [error for error in got["errors"] if error["path"] != shown] == expected["errors"]
    assert got["findings"] == expected["findings"]
    assert got["summary"]["files"] == expected["summary"]["files"] + 1


# -- the pieces --------------------------------------------------------------------------


def test_chunks_cover_every_file_once() -> None:
    for count in (1, 7, 8, 33, 100, 4529):
        for jobs in (1, 2, 3, 16):
            chunks = parallel._chunks(count, jobs)
            assert [i for chunk in chunks for i in chunk] == list(range(count))
            assert max(len(chunk) for chunk in chunks) <= parallel.MAX_CHUNK


def test_lint_all_keeps_the_tasks_order(tmp_path: Path) -> None:
    tasks = []
    for index in range(20):
        path = tmp_path / f"f{index}.py"
        path.write_text("a = y.numpy()\n" * (index % 3) or "x = 1\n")
        tasks.append(parallel.Task(SourceFile(path.name, str(path)), Config()))
    tasks.append(parallel.Task(SourceFile("gone.py", str(tmp_path / "gone.py")), Config()))
    one = plain(parallel.lint_all(tasks, 1))
    assert plain(parallel.lint_all(tasks, 3)) == one
    assert [len(findings) for findings, _ in one[:3]] == [0, 1, 2]
    assert one[-1][1][0][1].startswith("cannot read")


def plain(outcomes: list[parallel.Outcome]) -> list[tuple[list[Finding], list[tuple[str, str]]]]:
    """Outcomes to compare: a LintError equals only itself, so compare what it says."""
    return [(findings, [(e.path, e.message) for e in errors]) for findings, errors in outcomes]


def test_lint_errors_survive_the_trip_between_processes() -> None:
    error = pickle.loads(pickle.dumps(LintError("a.py", "binary file")))
    assert (error.path, error.message, str(error)) == ("a.py", "binary file", "a.py: binary file")


def test_default_jobs_is_the_cpus() -> None:
    assert parallel.default_jobs() >= 1


def test_one_collection_per_file_and_the_collector_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = []
    for index in range(3):
        path = tmp_path / f"f{index}.py"
        path.write_text("class M:\n    def f(self):\n        return self.g()\n")
        tasks.append(parallel.Task(SourceFile(path.name, str(path)), Config()))
    collections: list[int] = []

    def collect(generation: int = 2) -> int:
        collections.append(generation)
        return 0

    monkeypatch.setattr(parallel.gc, "collect", collect)
    assert gc.isenabled()
    outcomes = parallel.lint_each(tasks)
    assert len(outcomes) == 3
    assert len(collections) == 1 + 3  # the start's, then one after each file
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_collector_comes_back_when_linting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(task: parallel.Task) -> parallel.Outcome:
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "lint_task", broken)
    task = parallel.Task(SourceFile("a.py", "a.py"), Config())
    with pytest.raises(KeyboardInterrupt):
        parallel.lint_each([task])
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_program_that_runs_its_own_collector_policy_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    gc.disable()
    try:
        parallel.lint_each([parallel.Task(SourceFile("a.py", str(path)), Config())])
        assert not gc.isenabled() and gc.get_freeze_count() == 0
    finally:
        gc.enable()
