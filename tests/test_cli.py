"""The `gradlint` command: exit codes, formats, selection, and every kind of bad input."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_rules import FakeCrash, FakeNumpy, install
from helpers import write

import gradlint
from gradlint.cli import main
from gradlint.finding import Finding
from gradlint.reports.text import format_finding

BUGGY = "import torch\n\ny = torch.ones(2)\na = y.numpy()\nb = y.sum().item()\n"


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


def gradlint_(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- exit codes and text format --------------------------------------------------------


def test_version() -> None:
    result = gradlint_("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gradlint {gradlint.__version__}" == "gradlint 0.1.0"


def test_clean_exit_0(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    result = gradlint_("check")
    assert result.exit_code == 0, result.output
    assert result.stdout == "All checked! 1 file, no findings.\n"
    assert result.stderr == ""


def test_findings_exit_1_text_lines(project: Path) -> None:
    write(project / "train.py", BUGGY)
    result = gradlint_("check", "train.py")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "train.py:4:5: GL901 [*] `.numpy()` call",
        "train.py:5:5: GL902 `.item()` call",
        "Found 2 findings in 1 file.",
        "[*] 1 fixable with `gradlint check --fix`.",
    ]


def test_default_path_is_current_folder(project: Path) -> None:
    write(project / "pkg" / "train.py", BUGGY)
    result = gradlint_("check")
    assert result.exit_code == 1
    assert os.path.join("pkg", "train.py") + ":4:5: GL901" in result.stdout


def test_summary_counts_files_with_findings(project: Path) -> None:
    write(project / "a.py", BUGGY)
    write(project / "b.py", BUGGY)
    write(project / "c.py", "x = 1\n")
    result = gradlint_("check")
    assert result.stdout.splitlines()[-2] == "Found 4 findings in 2 files."


def test_exit_zero(project: Path) -> None:
    write(project / "train.py", BUGGY)
    result = gradlint_("check", "--exit-zero")
    assert result.exit_code == 0
    assert "GL901" in result.stdout


def test_exit_zero_keeps_exit_2_for_file_errors(project: Path) -> None:
    write(project / "bad.py", "def (:\n")
    assert gradlint_("check", "--exit-zero").exit_code == 2


def test_warning_severity_in_json(project: Path) -> None:
    write(project / "w.py", "y = x.detach()\n")
    data = json.loads(gradlint_("check", "--format", "json").stdout)
    assert [(f["code"], f["severity"]) for f in data["findings"]] == [("GL399", "warning")]


def test_statistics(project: Path) -> None:
    write(project / "a.py", BUGGY + "c = y.numpy()\n")
    result = gradlint_("check", "--statistics")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "2  GL901  [*] fake-numpy-call",
        "1  GL902  fake-item-call",
        "Found 3 findings in 1 file.",
        "[*] 2 fixable with `gradlint check --fix`.",
    ]


def test_no_colour_when_not_a_terminal(project: Path) -> None:
    write(project / "train.py", BUGGY)
    assert "\x1b[" not in gradlint_("check").stdout
    assert "\x1b[" not in gradlint_("check", "--no-color").stdout


def test_colour_formatting() -> None:
    finding = Finding("a.py", 1, 2, "GL901", "fake-numpy-call", "msg", 1, 9, fixable=True)
    assert format_finding(finding) == "a.py:1:2: GL901 [*] msg"
    coloured = format_finding(finding, color=True)
    assert "\x1b[" in coloured
    assert "GL901" in coloured and coloured.endswith(" msg")


def test_notebook_cell_in_text() -> None:
    finding = Finding("nb.ipynb", 4, 5, "GL901", "fake-numpy-call", "msg", 4, 9, cell=3)
    assert format_finding(finding) == "nb.ipynb:cell 3:4:5: GL901 msg"


def test_no_python_files(project: Path) -> None:
    (project / "empty").mkdir()
    result = gradlint_("check", "empty")
    assert result.exit_code == 0
    assert result.stdout == "No Python files found.\n"


# -- JSON format -----------------------------------------------------------------------


def test_json_format_exact(project: Path) -> None:
    write(project / "train.py", BUGGY)
    write(project / "bad.py", b"\x00\x01")
    result = gradlint_("check", "--format", "json", "train.py", "bad.py")
    assert result.exit_code == 2
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert list(data) == ["version", "findings", "errors", "summary"]
    assert data["version"] == 1
    assert data["findings"][0] == {
        "code": "GL901",
        "name": "fake-numpy-call",
        "severity": "error",
        "path": "train.py",
        "line": 4,
        "column": 5,
        "end_line": 4,
        "end_column": 14,
        "message": "`.numpy()` call",
        "fixable": True,
        "runtime": None,
        "fix": {
            "title": "Use a list",
            "safe": True,
            "edits": [
                {"line": 4, "column": 5, "end_line": 4, "end_column": 14, "text": "x.tolist()"}
            ],
        },
    }
    assert data["errors"] == [{"path": "bad.py", "message": "binary file"}]
    assert data["summary"] == {"files": 2, "findings": 2, "errors": 1}


def test_json_clean(project: Path) -> None:
    write(project / "ok.py", "")
    result = gradlint_("check", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "version": 1,
        "findings": [],
        "errors": [],
        "summary": {"files": 1, "findings": 0, "errors": 0},
    }


# -- selection -------------------------------------------------------------------------


def codes(result: Result) -> list[str]:
    return [line.split()[1] for line in result.stdout.splitlines() if ": GL" in line]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["GL901", "GL902", "GL399"]),
        (["--select", "GL901"], ["GL901"]),
        (["--select", "fake-item-call"], ["GL902"]),
        (["--select", "GL9"], ["GL901", "GL902"]),
        (["--select", "GL901,GL399"], ["GL901", "GL399"]),
        (["--select", "GL901", "--select", "GL399"], ["GL901", "GL399"]),
        (["--select", "ALL", "--ignore", "GL9"], ["GL399"]),
        (["--ignore", "GL901,fake-detach-call"], ["GL902"]),
        (["--select", "GL901", "--extend-select", "GL902"], ["GL901", "GL902"]),
        (["--select", "GL9", "--ignore", "GL902"], ["GL901"]),
        # The more specific selector wins, as in ruff.
        (["--select", "GL902", "--ignore", "GL9"], ["GL902"]),
        (["--select", "gl901"], ["GL901"]),
    ],
)
def test_selection(project: Path, args: list[str], expected: list[str]) -> None:
    write(project / "t.py", "a = y.numpy()\nb = y.item()\nc = y.detach()\n")
    result = gradlint_("check", *args)
    assert sorted(codes(result)) == sorted(expected)
    assert result.exit_code == (1 if expected else 0)


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
def test_unknown_rule_is_usage_error(project: Path, option: str) -> None:
    write(project / "t.py", "x = 1\n")
    result = gradlint_("check", option, "GL999")
    assert result.exit_code == 2
    assert result.stderr == "gradlint: error: unknown rule code or name 'GL999'\n"
    assert result.stdout == ""
    no_traceback(result)


def test_unknown_rule_name_is_usage_error(project: Path) -> None:
    result = gradlint_("check", "--select", "no-such-rule")
    assert result.exit_code == 2
    assert "unknown rule code or name 'no-such-rule'" in result.stderr


def test_unknown_option_is_usage_error() -> None:
    result = gradlint_("check", "--frobnicate")
    assert result.exit_code == 2
    no_traceback(result)


def test_bad_format_is_usage_error() -> None:
    assert gradlint_("check", "--format", "xml").exit_code == 2


# -- rules and rule --------------------------------------------------------------------


def test_rules_table() -> None:
    result = gradlint_("rules")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["code", "name", "summary"]
    assert lines[1].split()[:2] == ["GL399", "fake-detach-call"]
    assert "GL901  fake-numpy-call   Finds every `.numpy()` call." in result.stdout


def test_rules_json() -> None:
    result = gradlint_("rules", "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data[1] == {
        "code": "GL901",
        "name": "fake-numpy-call",
        "severity": "error",
        "summary": "Finds every `.numpy()` call.",
        "message": "`.numpy()` call",
    }
    assert data[0]["severity"] == "warning"


@pytest.mark.parametrize("selector", ["GL901", "gl901", "fake-numpy-call"])
def test_rule_doc(selector: str) -> None:
    result = gradlint_("rule", selector)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[:3] == ["GL901: fake-numpy-call", "severity: error", "fixable: yes"]
    assert FakeNumpy.doc() in result.stdout


def test_rule_unknown() -> None:
    result = gradlint_("rule", "GL999")
    assert result.exit_code == 2
    assert result.stderr == "gradlint: error: unknown rule code or name 'GL999'\n"


# -- bad input -------------------------------------------------------------------------


def check_one_bad(project: Path, name: str, content: str | bytes, message: str) -> Result:
    """A bad file is an error on stderr and exit 2, and the good file is still linted."""
    write(project / "good.py", BUGGY)
    write(project / name, content)
    result = gradlint_("check")
    assert result.exit_code == 2, result.output
    assert f"{name}: {message}" in result.stderr
    assert "good.py:4:5: GL901" in result.stdout
    assert result.stdout.splitlines()[-2] == "Found 2 findings in 1 file (1 error)."
    no_traceback(result)
    return result


def test_syntax_error(project: Path) -> None:
    check_one_bad(project, "bad.py", "x = 1\ndef (:\n", "syntax error at line 2")


def test_binary_file(project: Path) -> None:
    check_one_bad(project, "bin.py", b"\x7fELF\x00\x00\x01", "binary file")


def test_not_utf8(project: Path) -> None:
    check_one_bad(project, "latin.py", b"x = '\xe9t\xe9'\n", "not UTF-8 text")


def test_unknown_coding_comment(project: Path) -> None:
    check_one_bad(project, "odd.py", b"# coding: klingon\nx = 1\n", "unknown encoding: klingon")


def test_coding_comment_is_honoured(project: Path) -> None:
    write(project / "latin.py", b"# -*- coding: latin-1 -*-\nx = '\xe9'\ny = x.numpy()\n")
    result = gradlint_("check")
    assert result.exit_code == 1, result.output
    assert "latin.py:3:5: GL901" in result.stdout


def test_utf8_bom(project: Path) -> None:
    write(project / "bom.py", "\ufeffy = x.numpy()\n".encode())
    result = gradlint_("check")
    assert result.exit_code == 1, result.output
    assert "bom.py:1:5: GL901" in result.stdout


@pytest.mark.parametrize("content", ["", "\n", "\ufeff", "# just a comment"])
def test_empty_file_is_clean(project: Path, content: str) -> None:
    write(project / "pkg" / "__init__.py", content.encode())
    result = gradlint_("check")
    assert result.exit_code == 0, result.output
    assert result.stdout == "All checked! 1 file, no findings.\n"


def test_crlf_line_endings(project: Path) -> None:
    write(project / "win.py", b"x = 1\r\ny = x.numpy()\r\n")
    result = gradlint_("check")
    assert "win.py:2:5: GL901" in result.stdout


def test_missing_path(project: Path) -> None:
    write(project / "good.py", BUGGY)
    result = gradlint_("check", "good.py", "missing.py")
    assert result.exit_code == 2
    assert result.stderr == "missing.py: no such file or directory\n"
    assert "good.py:4:5: GL901" in result.stdout
    no_traceback(result)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_unreadable_file_chmod(project: Path) -> None:
    secret = write(project / "secret.py", "x = 1\n")
    secret.chmod(0)
    try:
        check_one_bad(project, "secret.py", "x = 1\n", "cannot read: Permission denied")
    finally:
        secret.chmod(0o644)


def test_unreadable_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs everywhere, root included: fake the refusal the OS would give.
    real_open = open

    def refusing_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith("secret.py"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", refusing_open)
    check_one_bad(project, "secret.py", "x = 1\n", "cannot read: Permission denied")


def test_rule_crash_is_a_file_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, [FakeNumpy, FakeCrash])
    write(project / "a.py", "crash()\ny = x.numpy()\n")
    write(project / "b.py", "y = x.numpy()\n")
    result = gradlint_("check")
    assert result.exit_code == 2
    assert "a.py: internal error in rule GL998: RuntimeError: boom" in result.stderr
    # The crashing rule's file still gets the other rules' findings.
    assert "a.py:2:5: GL901" in result.stdout
    assert "b.py:1:5: GL901" in result.stdout


def test_internal_error_is_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke")

    monkeypatch.setattr("gradlint.run.run", broken)
    result = gradlint_("check")
    assert result.exit_code == 2
    assert result.stderr == "gradlint: internal error: RuntimeError('something broke')\n"


def test_bad_pyproject_is_usage_error(project: Path) -> None:
    write(project / "pyproject.toml", "[tool.gradlint\n")
    write(project / "a.py", "x = 1\n")
    result = gradlint_("check")
    assert result.exit_code == 2
    assert result.stderr.startswith("gradlint: error: ")
    assert str(project / "pyproject.toml") in result.stderr
    assert "not valid TOML" in result.stderr
    no_traceback(result)


def test_explicit_non_python_file_is_linted(project: Path) -> None:
    write(project / "script", "y = x.numpy()\n")
    write(project / "notes.txt", "y = x.numpy()\n")
    assert gradlint_("check").stdout == "No Python files found.\n"
    result = gradlint_("check", "script")
    assert result.exit_code == 1
    assert "script:1:5: GL901" in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_an_error_not_a_hang(project: Path) -> None:
    os.mkfifo(project / "pipe.py")
    result = gradlint_("check", "pipe.py")
    assert result.exit_code == 2
    assert "pipe.py: not a regular file or directory" in result.stderr


# -- fixes -------------------------------------------------------------------------------


def test_fix_writes_the_file_and_reports_what_is_left(project: Path) -> None:
    path = write(project / "train.py", BUGGY)
    result = gradlint_("check", "--fix", "train.py")
    assert result.exit_code == 1  # the `.item()` finding has no fix
    assert path.read_text() == BUGGY.replace("y.numpy()", "x.tolist()")
    assert "GL901" not in result.stdout and "GL902" in result.stdout
    assert result.stderr == "Made 1 fix.\n"
    again = gradlint_("check", "--fix", "train.py")
    assert path.read_text() == BUGGY.replace("y.numpy()", "x.tolist()")
    assert again.stderr == ""


def test_fix_keeps_line_endings_and_encoding(project: Path) -> None:
    source = "# -*- coding: latin-1 -*-\r\nname = 'caf\xe9'\r\na = y.numpy()\r\n"
    path = write(project / "old.py", source.encode("latin-1"))
    result = gradlint_("check", "--fix", "old.py")
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == source.replace("y.numpy()", "x.tolist()").encode("latin-1")


def test_diff_shows_the_fix_and_writes_nothing(project: Path) -> None:
    path = write(project / "train.py", BUGGY)
    result = gradlint_("check", "--diff", "train.py")
    assert result.exit_code == 1
    assert path.read_text() == BUGGY
    assert result.stdout.splitlines()[:2] == ["--- a/train.py", "+++ b/train.py"]
    assert "-a = y.numpy()" in result.stdout and "+a = x.tolist()" in result.stdout
    assert result.stderr == "Would make 1 fix.\n"
    clean = write(project / "clean.py", "b = 1\n")
    assert gradlint_("check", "--diff", str(clean)).exit_code == 0


def test_fix_goes_on_past_a_bad_file(project: Path) -> None:
    write(project / "bad.py", "def broken(:\n")
    path = write(project / "train.py", BUGGY)
    result = gradlint_("check", "--fix", ".")
    no_traceback(result)
    assert result.exit_code == 2
    assert "bad.py: syntax error" in result.stderr
    assert "x.tolist()" in path.read_text()


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_fix_into_a_read_only_folder_leaves_the_file_whole(project: Path) -> None:
    folder = project / "locked"
    path = write(folder / "train.py", BUGGY)
    folder.chmod(0o555)
    try:
        result = gradlint_("check", "--fix", str(path))
    finally:
        folder.chmod(0o755)
    no_traceback(result)
    assert result.exit_code == 2
    assert "cannot write the fixes" in result.stderr
    assert path.read_text() == BUGGY
    assert list(folder.iterdir()) == [path]


def test_add_noqa_silences_every_finding_and_changes_nothing_else(project: Path) -> None:
    path = write(project / "train.py", BUGGY)
    result = gradlint_("check", "--add-noqa", "train.py")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Added 2 noqa comments.\n"
    assert path.read_text() == BUGGY.replace("y.numpy()", "y.numpy()  # noqa: GL901").replace(
        ".item()", ".item()  # noqa: GL902"
    )
    assert gradlint_("check", "train.py").exit_code == 0
    assert gradlint_("check", "--add-noqa", "--fix", "train.py").exit_code == 2


# -- standard input ----------------------------------------------------------------------


def from_stdin(data: str | bytes, *args: str) -> Result:
    return CliRunner().invoke(main, ["check", *args], input=data)


def test_stdin_as_a_named_file(project: Path) -> None:
    result = from_stdin(BUGGY, "-", "--stdin-filename", "pkg/train.py")
    assert result.exit_code == 1, result.output
    shown = os.path.join("pkg", "train.py")
    assert result.stdout.splitlines()[:2] == [
        f"{shown}:4:5: GL901 [*] `.numpy()` call",
        f"{shown}:5:5: GL902 `.item()` call",
    ]
    assert not (project / "pkg").exists()
    assert not (project / ".gradlint_cache").exists()


def test_stdin_without_a_name(project: Path) -> None:
    result = from_stdin(BUGGY, "-", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert {finding["path"] for finding in data["findings"]} == {"<stdin>"}
    assert data["summary"] == {"files": 1, "findings": 2, "errors": 0}


def test_stdin_filename_alone_reads_stdin(project: Path) -> None:
    result = from_stdin(BUGGY, "--stdin-filename", "t.py")
    assert "t.py:4:5: GL901" in result.stdout


def test_stdin_takes_the_named_files_configuration(project: Path) -> None:
    write(project / "pyproject.toml", '[tool.gradlint.per-file-ignores]\n"tests/**" = ["GL901"]\n')
    inside = from_stdin(BUGGY, "-", "--stdin-filename", "tests/test_x.py")
    assert codes(inside) == ["GL902"]
    outside = from_stdin(BUGGY, "-", "--stdin-filename", "src/x.py")
    assert codes(outside) == ["GL901", "GL902"]


def test_stdin_errors(project: Path) -> None:
    result = from_stdin(b"\x00\x01", "-", "--stdin-filename", "bin.py")
    assert result.exit_code == 2
    assert result.stderr == "bin.py: binary file\n"
    result = from_stdin("def (:\n", "-")
    assert result.exit_code == 2
    assert result.stderr.startswith("<stdin>: syntax error at line 1")


def test_stdin_fix_prints_the_fixed_source(project: Path) -> None:
    on_disk = write(project / "train.py", "untouched\n")
    result = from_stdin(BUGGY, "--fix", "-", "--stdin-filename", "train.py")
    assert result.exit_code == 1  # the `.item()` finding is left
    assert result.stdout == BUGGY.replace("y.numpy()", "x.tolist()")
    assert "train.py:5:5: GL902" in result.stderr
    assert "Made 1 fix." in result.stderr
    assert on_disk.read_text() == "untouched\n"


def test_stdin_fix_keeps_encoding_and_line_endings(project: Path) -> None:
    source = "# -*- coding: latin-1 -*-\r\nname = 'caf\xe9'\r\na = y.numpy()\r\n"
    result = from_stdin(source.encode("latin-1"), "--fix", "-")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == source.replace("y.numpy()", "x.tolist()").encode("latin-1")


@pytest.mark.parametrize("data", [b"x = 1\n", b"\x00binary", b"def (:\n"])
def test_stdin_fix_gives_back_what_it_cannot_fix(project: Path, data: bytes) -> None:
    # An editor replaces its buffer with the output: it must never come back empty.
    result = from_stdin(data, "--fix", "-")
    assert result.stdout_bytes == data


def test_stdin_diff(project: Path) -> None:
    result = from_stdin(BUGGY, "--diff", "-", "--stdin-filename", "train.py")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == ["--- a/train.py", "+++ b/train.py"]
    assert "+a = x.tolist()" in result.stdout
    assert result.stderr == "Would make 1 fix.\n"


@pytest.mark.parametrize(
    "args",
    [
        ["-", "other.py"],
        ["--stdin-filename", "a.py", "other.py"],
        ["--add-noqa", "-"],
    ],
)
def test_stdin_usage_errors(project: Path, args: list[str]) -> None:
    write(project / "other.py", "x = 1\n")
    result = from_stdin(BUGGY, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("gradlint: error: ")
    assert result.stdout == ""


# -- --force-exclude (pre-commit, editors) ---------------------------------------------


def test_force_exclude_applies_excludes_to_named_files(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.gradlint]\nextend-exclude = ["gen"]\n')
    for name in ("build/a.py", "src/gen/b.py", "src/gen.py", "src/c.py"):
        write(project / name, BUGGY)
    named = ("build/a.py", "src/gen/b.py", "src/gen.py", "src/c.py")
    plain = gradlint_("check", "--no-cache", "--format", "concise", *named)
    assert plain.exit_code == 1
    assert {line.split(":")[0] for line in plain.stdout.splitlines()} == {
        os.path.normpath(name) for name in named
    }
    forced = gradlint_("check", "--no-cache", "--force-exclude", "--format", "concise", *named)
    assert forced.exit_code == 1, forced.output
    assert {line.split(":")[0] for line in forced.stdout.splitlines()} == {
        os.path.normpath("src/c.py"),
        os.path.normpath("src/gen.py"),
    }


def test_force_exclude_with_every_file_excluded_is_quiet(project: Path) -> None:
    write(project / "build" / "a.py", BUGGY)
    result = gradlint_("check", "--force-exclude", "build/a.py")
    assert result.exit_code == 0, result.output
    assert result.output == ""


def test_force_exclude_without_paths_lints_nothing(project: Path) -> None:
    """pre-commit may run a hook with no file names; that is not a wish to lint `.`."""
    write(project / "train.py", BUGGY)
    result = gradlint_("check", "--force-exclude")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert gradlint_("check").exit_code == 1


def test_force_exclude_outside_the_project_root_only_checks_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project that lives in a folder named like an exclude (`~/build/proj`) is linted."""
    project = tmp_path / "build" / "proj"
    write(project / "pyproject.toml", "[tool.gradlint]\n")
    write(project / "train.py", BUGGY)
    monkeypatch.chdir(project)
    result = gradlint_("check", "--no-cache", "--force-exclude", "train.py")
    assert result.exit_code == 1, result.output


def test_force_exclude_on_stdin(project: Path) -> None:
    write(project / "build" / "a.py", BUGGY)
    excluded = CliRunner().invoke(
        main,
        ["check", "--force-exclude", "--fix", "-", "--stdin-filename", "build/a.py"],
        input=BUGGY,
    )
    assert excluded.exit_code == 0, excluded.output
    assert excluded.stdout == BUGGY
    linted = CliRunner().invoke(
        main, ["check", "--force-exclude", "-", "--stdin-filename", "a.py"], input=BUGGY
    )
    assert linted.exit_code == 1, linted.output
