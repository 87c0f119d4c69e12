"""`[tool.gradlint]` in pyproject.toml, and how it combines with the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_rules import install

import gradlint.config
from gradlint.cli import main
from gradlint.config import (
    DEFAULT_EXCLUDE,
    Config,
    ConfigError,
    ConfigResolver,
    Selection,
    resolve_selection,
)
from gradlint.globs import compile_glob

SOURCE = "a = y.numpy()\nb = y.item()\nc = y.detach()\n"


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def configure(project: Path, body: str) -> Path:
    path = project / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\n\n[tool.gradlint]\n" + body)
    return path


def write(path: Path, text: str = SOURCE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["check", "--format", "json", *args])


def found(result: Result) -> list[tuple[str, str]]:
    """(path, code) of each finding."""
    data = json.loads(result.stdout)
    return sorted((f["path"], f["code"]) for f in data["findings"])


def codes(result: Result) -> list[str]:
    return sorted({code for _, code in found(result)})


# -- Config and selection, directly -----------------------------------------------------


def test_default_config_enables_everything() -> None:
    config = Config()
    assert config.is_enabled("GL901", "a.py")
    assert config.is_enabled("GL101", "a.py")


def test_config_select_and_ignore_fields() -> None:
    config = Config(select=frozenset({"GL901", "GL902"}), ignore=frozenset({"GL902"}))
    assert config.is_enabled("GL901", "a.py")
    assert not config.is_enabled("GL902", "a.py")
    assert not config.is_enabled("GL399", "a.py")


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ([], {"GL399", "GL901", "GL902"}),
        ([Selection(select=("GL9",))], {"GL901", "GL902"}),
        ([Selection(ignore=("GL9",))], {"GL399"}),
        ([Selection(select=("GL9",), ignore=("GL902",))], {"GL901"}),
        ([Selection(select=("GL902",), ignore=("GL9",))], {"GL902"}),
        ([Selection(select=("fake-item-call",), ignore=("GL902",))], set()),
        ([Selection(select=("ALL",), ignore=("GL3",))], {"GL901", "GL902"}),
        # The command line's select replaces the config's select *and* ignore...
        (
            [Selection(select=("GL399",), ignore=("GL901",)), Selection(select=("GL901",))],
            {"GL901"},
        ),
        # ... while its ignore and extend-select adjust the config's selection.
        ([Selection(select=("GL9",)), Selection(ignore=("GL901",))], {"GL902"}),
        ([Selection(select=("GL901",)), Selection(extend_select=("GL399",))], {"GL399", "GL901"}),
        (
            [Selection(ignore=("GL901",)), Selection(extend_select=("GL901",))],
            {"GL399", "GL901", "GL902"},
        ),
        ([Selection(select=())], set()),
    ],
)
def test_resolve_selection(layers: list[Selection], expected: set[str]) -> None:
    assert resolve_selection(layers) == expected


# -- pyproject keys ---------------------------------------------------------------------


def test_select_key(project: Path) -> None:
    configure(project, 'select = ["GL901", "fake-detach-call"]\n')
    write(project / "a.py")
    assert codes(check()) == ["GL399", "GL901"]


def test_ignore_key(project: Path) -> None:
    configure(project, 'ignore = ["GL9"]\n')
    write(project / "a.py")
    assert codes(check()) == ["GL399"]


def test_extend_select_key(project: Path) -> None:
    configure(project, 'select = ["GL901"]\nextend-select = ["GL902"]\n')
    write(project / "a.py")
    assert codes(check()) == ["GL901", "GL902"]


def test_cli_select_replaces_config_select(project: Path) -> None:
    configure(project, 'select = ["GL901"]\nignore = ["GL902"]\n')
    write(project / "a.py")
    assert codes(check("--select", "GL902")) == ["GL902"]


def test_cli_ignore_adds_to_config_ignore(project: Path) -> None:
    configure(project, 'ignore = ["GL901"]\n')
    write(project / "a.py")
    assert codes(check("--ignore", "GL902")) == ["GL399"]


def test_cli_extend_select_adds_to_config_select(project: Path) -> None:
    configure(project, 'select = ["GL901"]\n')
    write(project / "a.py")
    assert codes(check("--extend-select", "GL399")) == ["GL399", "GL901"]


def test_per_file_ignores(project: Path) -> None:
    configure(
        project,
        "[tool.gradlint.per-file-ignores]\n"
        '"tests/**" = ["GL9"]\n'
        '"scripts/debug_*.py" = ["fake-detach-call"]\n'
        '"setup.py" = ["GL901"]\n',
    )
    for name in [
        "tests/sub/t.py",
        "scripts/debug_x.py",
        "scripts/run.py",
        "setup.py",
        "pkg/setup.py",
    ]:
        write(project / name)
    result = check()
    assert found(result) == sorted(
        [
            ("pkg/setup.py", "GL399"),
            ("pkg/setup.py", "GL902"),
            ("scripts/debug_x.py", "GL901"),
            ("scripts/debug_x.py", "GL902"),
            ("scripts/run.py", "GL399"),
            ("scripts/run.py", "GL901"),
            ("scripts/run.py", "GL902"),
            ("setup.py", "GL399"),
            ("setup.py", "GL902"),
            ("tests/sub/t.py", "GL399"),
        ]
    )


def test_per_file_ignores_apply_with_cli_select(project: Path) -> None:
    configure(project, '[tool.gradlint.per-file-ignores]\n"a.py" = ["GL901"]\n')
    write(project / "a.py")
    assert codes(check("--select", "GL901")) == []


def test_per_file_ignores_relative_to_the_pyproject(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(project, '[tool.gradlint.per-file-ignores]\n"src/a.py" = ["GL9", "GL3"]\n')
    write(project / "src" / "a.py")
    write(project / "other" / "src" / "a.py")
    # Run from a subfolder: "src/a.py" still means <project>/src/a.py, not ./src/a.py.
    monkeypatch.chdir(project / "other")
    paths = {path for path, _ in found(check(".."))}
    assert paths == {"../other/src/a.py"}


def test_exclude_replaces_defaults(project: Path) -> None:
    configure(project, 'exclude = ["generated"]\n')
    write(project / "generated" / "a.py")
    write(project / "build" / "a.py")
    write(project / "ok.py")
    assert {path for path, _ in found(check())} == {"build/a.py", "ok.py"}


def test_extend_exclude_adds_to_defaults(project: Path) -> None:
    configure(project, 'extend-exclude = ["generated", "src/legacy/*.py"]\n')
    write(project / "generated" / "a.py")
    write(project / "build" / "a.py")
    write(project / "src" / "legacy" / "old.py")
    write(project / "src" / "new.py")
    assert {path for path, _ in found(check())} == {"src/new.py"}


def test_every_key_together(project: Path) -> None:
    configure(
        project,
        'select = ["ALL"]\nextend-select = ["GL901"]\nignore = ["GL399"]\n'
        'exclude = [".git"]\nextend-exclude = ["skip"]\n'
        '[tool.gradlint.per-file-ignores]\n"b.py" = ["GL902"]\n',
    )
    write(project / "a.py")
    write(project / "b.py")
    write(project / "skip" / "c.py")
    assert found(check()) == [("a.py", "GL901"), ("a.py", "GL902"), ("b.py", "GL901")]


# -- errors -----------------------------------------------------------------------------


def config_error(project: Path) -> str:
    write(project / "a.py")
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.stderr.startswith("gradlint: error: ")
    return result.stderr


def test_unknown_key(project: Path) -> None:
    path = configure(project, 'selekt = ["GL901"]\n')
    message = config_error(project)
    assert str(path) in message
    assert "unknown key 'selekt'" in message
    assert "did you mean 'select'" in message


def test_underscore_key_suggests_kebab_case(project: Path) -> None:
    configure(project, 'extend_select = ["GL901"]\n')
    assert "did you mean 'extend-select'" in config_error(project)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('select = ["GL999"]\n', "select"),
        ('ignore = ["GL1234"]\n', "ignore"),
        ('extend-select = ["not-a-rule"]\n', "extend-select"),
        ('[tool.gradlint.per-file-ignores]\n"a.py" = ["GL999"]\n', "per-file-ignores 'a.py'"),
    ],
)
def test_unknown_code(project: Path, body: str, where: str) -> None:
    path = configure(project, body)
    message = config_error(project)
    assert str(path) in message
    assert where in message
    assert "unknown rule code or name" in message


@pytest.mark.parametrize(
    "body",
    [
        'select = "GL901"\n',
        "ignore = [1, 2]\n",
        'exclude = "build"\n',
        'per-file-ignores = ["a.py"]\n',
        '[tool.gradlint.per-file-ignores]\n"a.py" = "GL901"\n',
    ],
)
def test_wrong_types(project: Path, body: str) -> None:
    path = configure(project, body)
    message = config_error(project)
    assert str(path) in message
    assert "must be" in message


def test_gradlint_not_a_table(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool]\ngradlint = 3\n")
    assert "[tool.gradlint] must be a table" in config_error(project)


@pytest.mark.parametrize("text", ["[tool.gradlint\nselect = [", "x = = 1\n", b"\xff\xfe[tool]\n"])
def test_bad_toml(project: Path, text: str | bytes) -> None:
    path = project / "pyproject.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    message = config_error(project)
    assert f"{path}: not valid TOML" in message


def test_bad_toml_in_a_subproject_is_found_too(project: Path) -> None:
    configure(project, "")
    (project / "sub").mkdir()
    (project / "sub" / "pyproject.toml").write_text("oops = \n")
    write(project / "sub" / "a.py")
    assert "sub" in config_error(project)


# -- which pyproject.toml ---------------------------------------------------------------


def test_nearest_pyproject_wins(project: Path) -> None:
    configure(project, 'select = ["GL901"]\n')
    write(project / "a.py")
    sub = project / "sub"
    write(sub / "b.py")
    configure(sub, 'select = ["GL902"]\n')
    assert found(check()) == [("a.py", "GL901"), ("sub/b.py", "GL902")]


def test_pyproject_without_gradlint_table_is_skipped(project: Path) -> None:
    configure(project, 'select = ["GL901"]\n')
    sub = project / "sub"
    write(sub / "b.py")
    (sub / "pyproject.toml").write_text("[project]\nname = 'sub'\n")
    assert found(check()) == [("sub/b.py", "GL901")]


def test_no_pyproject_means_defaults(tmp_path: Path) -> None:
    resolver = ConfigResolver(cwd=str(tmp_path))
    config = resolver.for_folder(tmp_path)
    if config.source is None:  # unless some folder above tmp_path configures gradlint
        assert config.select is None
        assert config.exclude == DEFAULT_EXCLUDE


def test_each_pyproject_is_read_once(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(project, 'select = ["GL901"]\n')
    for index in range(5):
        write(project / f"pkg{index}" / "deep" / "a.py")
    calls: list[Path] = []
    real = gradlint.config.read_pyproject

    def counting(path: Path) -> object:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(gradlint.config, "read_pyproject", counting)
    result = check()
    assert len(found(result)) == 5
    assert calls.count(project / "pyproject.toml") == 1


def test_cli_selection_checked_before_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown rule code or name 'GL999'"):
        ConfigResolver(Selection(select=("GL999",)), cwd=str(tmp_path))


# -- glob patterns ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("build", "build", True),
        ("build", "src/build/x.py", True),
        ("build", "src/builds/x.py", False),
        ("*.egg-info", "pkg.egg-info/PKG-INFO", True),
        ("*_pb2.py", "api/foo_pb2.py", True),
        ("src/gen", "src/gen/a.py", True),
        ("src/gen", "lib/src/gen/a.py", False),
        ("/gen", "gen/a.py", True),
        ("/gen", "src/gen/a.py", False),
        ("./src/gen/", "src/gen/a.py", True),
        ("tests/*", "tests/a.py", True),
        ("tests/*", "tests/sub/a.py", True),  # through the folder tests/sub
        ("tests/**", "tests/sub/a.py", True),
        ("**/data/*.py", "a/b/data/x.py", True),
        ("**/data/*.py", "data/x.py", True),
        ("src/*.py", "src/sub/x.py", False),
        ("src/[ab].py", "src/a.py", True),
        ("src/[!ab].py", "src/a.py", False),
        ("src/?.py", "src/c.py", True),
        ("a[b", "a[b", True),
    ],
)
def test_glob(pattern: str, path: str, matches: bool) -> None:
    assert compile_glob(pattern).match_path(tuple(path.split("/")), ancestors=True) is matches
