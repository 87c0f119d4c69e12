"""The result cache: a hit gives what linting gives, and anything that could change the
result misses; a cache that cannot be read or written never fails a run."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_rules import FakeCrash, FakeNumpy, install
from helpers import write

import gradlint
import gradlint.engine
from gradlint.cache import CACHE_DIR, MAX_AGE_DAYS, Cache
from gradlint.cli import main

BUGGY = "import torch\n\ny = torch.ones(2)\na = y.numpy()\nb = y.sum().item()\n"


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


@pytest.fixture
def lints(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the engine lints, in order: a cache hit adds none."""
    seen: list[str] = []
    real = gradlint.engine.lint

    def counting(source: str, path: str = "<string>", *args: object, **kwargs: object) -> object:
        seen.append(path)
        return real(source, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gradlint.engine, "lint", counting)
    return seen


def gradlint_(*args: str) -> Result:
    # One process: the counting fixture sees every lint.
    return CliRunner().invoke(main, ["check", "--jobs", "1", *args])


def entries(root: Path) -> list[Path]:
    return sorted((root / CACHE_DIR / "entries").glob("*/*.json"))


def a_small_project(project: Path) -> None:
    write(project / "train.py", BUGGY)
    write(project / "pkg" / "model.py", "y = x.detach()\nz = x.numpy()\n")
    write(project / "bad.py", "def (:\n")
    write(project / "ok.py", "x = 1\n")


def test_a_hit_gives_the_same_json_without_linting(project: Path, lints: list[str]) -> None:
    a_small_project(project)
    cold = gradlint_("--format", "json")
    assert cold.exit_code == 2, cold.output
    assert sorted(lints) == sorted(["train.py", os.path.join("pkg", "model.py"), "bad.py", "ok.py"])
    assert len(entries(project)) == 4
    lints.clear()
    warm = gradlint_("--format", "json")
    assert lints == []
    assert (warm.exit_code, warm.stdout, warm.stderr) == (cold.exit_code, cold.stdout, cold.stderr)
    data = json.loads(warm.stdout)
    fixes = [finding["fix"] for finding in data["findings"] if finding["fix"]]
    assert fixes[0]["edits"][0]["text"] == "x.tolist()"
    assert data["errors"][0]["message"].startswith("syntax error at line 1")


def test_a_hit_gives_the_same_text_report(project: Path) -> None:
    a_small_project(project)
    cold = gradlint_("--statistics")
    assert gradlint_("--statistics").stdout == cold.stdout
    assert gradlint_().stdout == gradlint_("--no-cache").stdout


def test_a_changed_file_misses(project: Path, lints: list[str]) -> None:
    path = write(project / "train.py", BUGGY)
    gradlint_()
    write(path, BUGGY + "c = y.numpy()\n")
    lints.clear()
    result = gradlint_()
    assert lints == ["train.py"]
    assert "train.py:6:5: GL901" in result.stdout


def test_files_with_the_same_bytes_share_an_entry_and_keep_their_paths(project: Path) -> None:
    write(project / "a.py", BUGGY)
    write(project / "b.py", BUGGY)
    cold = gradlint_()
    assert len(entries(project)) == 1
    warm = gradlint_()
    assert warm.stdout == cold.stdout
    assert "a.py:4:5: GL901" in warm.stdout and "b.py:4:5: GL901" in warm.stdout


def test_a_changed_selection_misses(project: Path, lints: list[str]) -> None:
    write(project / "train.py", BUGGY)
    gradlint_()
    lints.clear()
    result = gradlint_("--select", "GL902")
    assert lints == ["train.py"]
    assert "GL901" not in result.stdout and "GL902" in result.stdout
    assert len(entries(project)) == 2
    lints.clear()
    assert gradlint_("--select", "GL902").stdout == result.stdout
    assert lints == []


def test_a_changed_per_file_ignore_misses(project: Path, lints: list[str]) -> None:
    write(project / "train.py", BUGGY)
    gradlint_()
    write(project / "pyproject.toml", '[tool.gradlint.per-file-ignores]\n"train.py" = ["GL901"]\n')
    lints.clear()
    result = gradlint_()
    assert lints == ["train.py"]
    assert "GL901" not in result.stdout


def test_another_gradlint_version_misses(
    project: Path, lints: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "train.py", BUGGY)
    gradlint_()
    monkeypatch.setattr(gradlint, "__version__", "99.0.0")
    lints.clear()
    gradlint_()
    assert lints == ["train.py"]


def test_other_rules_miss(project: Path, lints: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write(project / "train.py", BUGGY)
    gradlint_()
    install(monkeypatch, [FakeNumpy])
    lints.clear()
    result = gradlint_()
    assert lints == ["train.py"]
    assert "GL902" not in result.stdout


def test_an_internal_error_is_not_remembered(
    project: Path, lints: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, [FakeNumpy, FakeCrash])
    write(project / "a.py", "crash()\n")
    assert gradlint_().exit_code == 2
    lints.clear()
    result = gradlint_()
    assert lints == ["a.py"]
    assert "a.py: internal error in rule GL998" in result.stderr


@pytest.mark.parametrize(
    "garbage",
    [b"", b"{not json", b"[]", b'{"key": "other", "findings": [], "errors": []}', b"\xff\xfe"],
)
def test_a_corrupt_entry_is_ignored_and_overwritten(
    project: Path, lints: list[str], garbage: bytes
) -> None:
    write(project / "train.py", BUGGY)
    cold = gradlint_("--format", "json")
    [entry] = entries(project)
    good = entry.read_bytes()
    entry.write_bytes(garbage)
    lints.clear()
    again = gradlint_("--format", "json")
    assert lints == ["train.py"]
    assert again.stdout == cold.stdout
    assert entry.read_bytes() == good


def test_an_entry_with_wrong_types_is_ignored(project: Path, lints: list[str]) -> None:
    write(project / "train.py", BUGGY)
    cold = gradlint_("--format", "json")
    [entry] = entries(project)
    data = json.loads(entry.read_text())
    data["findings"][0]["at"][0] = "4"
    entry.write_text(json.dumps(data))
    lints.clear()
    assert gradlint_("--format", "json").stdout == cold.stdout
    assert lints == ["train.py"]


def test_a_cache_folder_that_cannot_be_made_is_no_error(project: Path) -> None:
    write(project / CACHE_DIR, "a file where the folder would go\n")
    write(project / "train.py", BUGGY)
    expected = gradlint_("--no-cache")
    result = gradlint_()
    assert (result.exit_code, result.stdout, result.stderr) == (
        expected.exit_code,
        expected.stdout,
        expected.stderr,
    )


def test_entries_that_cannot_be_written_are_no_error(
    project: Path, monkeypatch: pytest.MonkeyPatch, lints: list[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    write(project / "train.py", BUGGY)
    write(project / "more.py", "z = x.numpy()\n")
    monkeypatch.setattr("gradlint.cache.write_atomic", refuse)
    result = gradlint_()
    assert result.exit_code == 1
    assert result.stderr == ""
    assert entries(project) == []


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes whatever the mode"
)
def test_a_read_only_cache_is_still_read(project: Path, lints: list[str]) -> None:
    write(project / "train.py", BUGGY)
    cold = gradlint_()
    write(project / "new.py", "z = x.numpy()\n")
    folder = project / CACHE_DIR
    modes = [(path, path.stat().st_mode) for path in [folder, *folder.rglob("*")]]
    for path, _ in modes:
        if path.is_dir():
            path.chmod(0o555)
    try:
        lints.clear()
        result = gradlint_()
    finally:
        for path, mode in modes:
            path.chmod(mode)
    assert lints == ["new.py"]
    assert result.stdout.startswith(cold.stdout.splitlines()[0])


def test_no_cache_writes_nothing(project: Path) -> None:
    write(project / "train.py", BUGGY)
    assert gradlint_("--no-cache").exit_code == 1
    assert not (project / CACHE_DIR).exists()


def test_fix_works_on_the_current_text(project: Path) -> None:
    path = write(project / "train.py", BUGGY)
    gradlint_()
    result = gradlint_("--fix")
    assert "x.tolist()" in path.read_text()
    assert "GL901" not in result.stdout
    assert "GL901" not in gradlint_().stdout


def test_the_folder_tells_git_and_backups_to_skip_it(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    gradlint_()
    folder = project / CACHE_DIR
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    tag = (folder / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")


def test_the_cache_is_at_the_configured_project_root(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "src" / "pkg" / "train.py", BUGGY)
    monkeypatch.chdir(project / "src")
    gradlint_()
    assert len(entries(project)) == 1
    assert not (project / "src" / CACHE_DIR).exists()


def test_without_configuration_the_cache_is_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.other]\n")  # not gradlint's: does not count
    write(tmp_path / "work" / "train.py", BUGGY)
    monkeypatch.chdir(tmp_path / "work")
    result = gradlint_()
    from gradlint.config import ConfigResolver

    if ConfigResolver().for_folder(tmp_path).source is not None:
        pytest.skip("a folder above the temporary folder configures gradlint")
    assert result.exit_code == 1
    assert len(entries(tmp_path / "work")) == 1


# -- pruning -----------------------------------------------------------------------------


def aged(path: Path, days: float) -> None:
    moment = time.time() - days * 24 * 60 * 60
    os.utime(path, (moment, moment))


def run_with_cache(project: Path, *names: str) -> None:
    for name in names:
        write(project / name, f"{name[0]} = x.numpy()\n")
    gradlint_()


def test_old_entries_are_swept_and_used_ones_kept(project: Path) -> None:
    run_with_cache(project, "old.py")
    [old_entry] = entries(project)
    run_with_cache(project, "used.py")
    [used_entry] = set(entries(project)) - {old_entry}
    for entry in (old_entry, used_entry):
        aged(entry, MAX_AGE_DAYS + 1)
    aged(project / CACHE_DIR / ".last-prune", 2)
    (project / "old.py").unlink()
    gradlint_()  # uses used.py's entry, which refreshes it, then sweeps
    assert entries(project) == [used_entry]


def test_a_sweep_runs_at_most_once_a_day(project: Path) -> None:
    run_with_cache(project, "a.py")
    [entry] = entries(project)
    aged(entry, MAX_AGE_DAYS + 1)
    cache = Cache()
    cache.load(str(project), "0" * 40, "x.py")  # opens the folder
    cache.prune()  # the first run swept a moment ago
    assert entries(project) == [entry]
    aged(project / CACHE_DIR / ".last-prune", 2)
    cache.prune()
    assert entries(project) == []
