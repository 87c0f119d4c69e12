"""Which files a run lints: folders walked, excludes, explicit paths, missing paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gradlint.config import DEFAULT_EXCLUDE, ConfigResolver
from gradlint.discovery import discover, is_source


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def shown(*paths: str) -> tuple[list[str], list[tuple[str, str]]]:
    found = discover(paths, ConfigResolver())
    return (
        [file.display for file in found.files],
        [(error.path, error.message) for error in found.errors],
    )


def test_recursive_sorted_python_only(project: Path) -> None:
    for name in ["b.py", "a.py", "pkg/z.py", "pkg/sub/y.py", "pkg/data.txt", "notes.md", "x.pyi"]:
        touch(project / name)
    files, errors = shown(".")
    assert files == ["a.py", "b.py", "pkg/sub/y.py", "pkg/z.py"]
    assert errors == []


def test_display_paths_keep_the_given_prefix(project: Path) -> None:
    touch(project / "pkg" / "a.py")
    assert shown("pkg")[0] == ["pkg/a.py"]
    assert shown("./pkg/")[0] == ["pkg/a.py"]
    assert shown(str(project / "pkg"))[0] == [str(project / "pkg" / "a.py")]


def test_absolute_paths_carry_the_absolute_path(project: Path) -> None:
    touch(project / "a.py")
    found = discover(["."], ConfigResolver())
    assert [file.path for file in found.files] == [str(project / "a.py")]


@pytest.mark.parametrize("folder", [name.replace("*", "pkg") for name in DEFAULT_EXCLUDE])
def test_default_excludes(project: Path, folder: str) -> None:
    touch(project / folder / "a.py")
    touch(project / "src" / folder / "b.py")
    touch(project / "keep.py")
    assert shown(".")[0] == ["keep.py"]


def test_default_excludes_skip_tool_and_environment_folders(project: Path) -> None:
    for folder in [".git", ".venv", "venv", "build", "dist", "__pycache__", "pkg.egg-info"]:
        touch(project / folder / "hidden.py")
    touch(project / "lib" / "site-packages" / "dep.py")
    touch(project / "keep.py")
    assert shown(".")[0] == ["keep.py"]


def test_similar_names_are_not_excluded(project: Path) -> None:
    for name in ["builds/a.py", "environment/b.py", "mydist/c.py", "venv_tools.py"]:
        touch(project / name)
    assert shown(".")[0] == ["builds/a.py", "environment/b.py", "mydist/c.py", "venv_tools.py"]


def test_config_excludes(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.gradlint]\nextend-exclude = ["gen", "src/legacy", "*_pb2.py"]\n'
    )
    for name in [
        "gen/a.py",
        "src/gen/b.py",
        "src/legacy/c.py",
        "legacy/d.py",
        "api_pb2.py",
        "e.py",
    ]:
        touch(project / name)
    assert shown(".")[0] == ["e.py", "legacy/d.py"]


def test_explicit_paths_beat_excludes(project: Path) -> None:
    touch(project / "build" / "a.py")
    touch(project / ".venv" / "b.py")
    assert shown("build", ".venv/b.py")[0] == [".venv/b.py", "build/a.py"]


def test_explicit_file_of_any_suffix(project: Path) -> None:
    touch(project / "script")
    touch(project / "notes.txt")
    assert shown(".")[0] == []
    assert shown("script", "notes.txt")[0] == ["notes.txt", "script"]


def test_missing_path_is_an_error(project: Path) -> None:
    touch(project / "a.py")
    files, errors = shown("a.py", "nope.py", "nope/")
    assert files == ["a.py"]
    assert errors == [
        ("nope", "no such file or directory"),
        ("nope.py", "no such file or directory"),
    ]


def test_duplicates_are_linted_once(project: Path) -> None:
    touch(project / "pkg" / "a.py")
    assert shown("pkg", "pkg/a.py", ".", "./pkg/a.py")[0] == ["pkg/a.py"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks(project: Path) -> None:
    touch(project / "pkg" / "a.py")
    os.symlink(project / "pkg", project / "pkg" / "loop")  # a folder loop: not followed
    os.symlink(project / "missing.py", project / "pkg" / "broken.py")  # skipped
    os.symlink(project / "pkg" / "a.py", project / "link.py")  # a file link: linted
    files, errors = shown(".")
    assert files == ["link.py", "pkg/a.py"]
    assert errors == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder(project: Path) -> None:
    locked = project / "locked"
    touch(locked / "a.py")
    touch(project / "b.py")
    locked.chmod(0)
    try:
        files, errors = shown(".")
    finally:
        locked.chmod(0o755)
    assert files == ["b.py"]
    assert errors == [("locked", "cannot read directory: Permission denied")]


def test_is_source() -> None:
    assert is_source("a.py")
    assert not is_source("a.pyc")
    assert is_source("a.ipynb")


def test_path_with_nul_byte_is_an_error(project: Path) -> None:
    files, errors = shown("a\0b.py")
    assert files == []
    assert errors == [("'a\\x00b.py'", "not a valid path")]
