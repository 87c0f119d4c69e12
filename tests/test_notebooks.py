"""Jupyter notebooks: code cells linted as one program, reported and fixed cell by cell."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libcst as cst
import pytest
from click.testing import CliRunner, Result
from fake_rules import FAKE_RULES, install
from helpers import write
from test_reports import assert_valid_sarif

from gradlint.cells import lint_notebook
from gradlint.cli import main
from gradlint.config import Config
from gradlint.finding import Finding
from gradlint.fixes import Replacement
from gradlint.magics import MARKER, python_of
from gradlint.rule import Report, Rule

EXAMPLE = Path(__file__).parent.parent / "examples" / "train_regression.ipynb"

SETUP = "import torch\nimport torch.nn as nn\n\nmodel = nn.Linear(4, 1)"
MISUSE = "preds = model(torch.randn(2, 4))\nvalues = preds.numpy()"
METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python", "version": "3.11.7"},
}


def code(source: str, outputs: list[Any] | None = None) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "outputs": outputs or [],
        "source": source.splitlines(keepends=True),
    }


def markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source.splitlines(keepends=True)}


def notebook(*cells: str | dict[str, Any], metadata: dict[str, Any] | None = None) -> str:
    """A notebook as Jupyter writes it: sorted keys, one-space indent, UTF-8, a newline."""
    content = {
        "cells": [code(cell) if isinstance(cell, str) else cell for cell in cells],
        "metadata": METADATA if metadata is None else metadata,
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(content, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def gradlint_(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def findings_of(text: str, path: str = "nb.ipynb") -> list[Finding]:
    return lint_notebook(text.encode(), path, Config())


def raw_line_of(raw: str, source_line: str) -> int:
    """The 1-based line of the raw JSON that holds ``source_line`` as a string."""
    written = json.dumps(source_line, ensure_ascii=False)
    (line,) = [n for n, text in enumerate(raw.splitlines(), 1) if written in text]
    return line


def run_cells(path: Path) -> dict[str, Any]:
    """Run a notebook's code cells in order, in one namespace, IPython syntax left out."""
    content = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            exec(python_of("".join(cell["source"])).text, namespace)
    return namespace


# -- locations in every format -------------------------------------------------------------


@pytest.fixture
def two_cells(project: Path) -> Path:
    return write(project / "nb.ipynb", notebook(SETUP, markdown("# Use it"), MISUSE))


def test_text_location_is_cell_line_column(two_cells: Path) -> None:
    result = gradlint_("check", "--no-cache", "nb.ipynb")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith("nb.ipynb:cell 2:2:10: GL101 [*] ")
    assert result.stdout.splitlines()[-2] == "Found 1 finding in 1 file."


def test_concise_location(two_cells: Path) -> None:
    result = gradlint_("check", "--no-cache", "--format", "concise", "nb.ipynb")
    assert result.stdout.startswith("nb.ipynb:cell 2:2:10: GL101 converts")


def test_json_has_cell_and_cell_relative_place(two_cells: Path) -> None:
    data = json.loads(gradlint_("check", "--no-cache", "--format", "json", "nb.ipynb").stdout)
    (finding,) = data["findings"]
    assert (finding["path"], finding["cell"]) == ("nb.ipynb", 2)
    assert (finding["line"], finding["column"], finding["end_line"]) == (2, 10, 2)
    assert finding["fix"]["edits"] == [
        {"line": 2, "column": 10, "end_line": 2, "end_column": 15, "text": "preds.detach()"}
    ]


def test_github_points_at_the_raw_line_and_names_the_cell(two_cells: Path) -> None:
    raw = two_cells.read_text()
    out = gradlint_("check", "--no-cache", "--format", "github", "nb.ipynb").stdout
    line = raw_line_of(raw, "values = preds.numpy()")
    assert out == (
        f"::error file=nb.ipynb,line={line},title=GL101 numpy-on-graph-tensor "
        "(cell 2%2C line 2%2C column 10)::converts a tensor that requires grad to numpy, "
        "which raises; `.detach()` it first\n"
    )


def test_sarif_is_valid_and_points_at_the_raw_json_line(two_cells: Path) -> None:
    result = gradlint_("check", "--no-cache", "--format", "sarif", "nb.ipynb")
    log = json.loads(result.stdout)
    assert_valid_sarif(log)
    (found,) = log["runs"][0]["results"]
    location = found["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "nb.ipynb"
    assert location["region"] == {
        "startLine": raw_line_of(two_cells.read_text(), "values = preds.numpy()")
    }
    assert found["properties"] == {"cell": 2, "cellLine": 2, "cellColumn": 10}
    assert "fixes" not in found  # cell coordinates are no place in the JSON file


def test_sarif_line_of_a_cell_written_as_one_string(project: Path) -> None:
    content = json.loads(notebook(SETUP, MISUSE))
    content["cells"][1]["source"] = MISUSE
    raw = json.dumps(content, indent=1)
    write(project / "nb.ipynb", raw)
    log = json.loads(gradlint_("check", "--no-cache", "--format", "sarif", "nb.ipynb").stdout)
    (found,) = log["runs"][0]["results"]
    region = found["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": raw_line_of(raw, MISUSE)}


def test_findings_are_ordered_by_cell_then_line() -> None:
    cells = [SETUP] + [f"y{n} = model(torch.ones(4))\ny{n}.numpy()" for n in range(11)]
    found = findings_of(notebook(*cells))
    assert [(f.cell, f.line) for f in found] == [(n, 2) for n in range(2, 13)]


# -- one program, IPython syntax, cells on their own ---------------------------------------


def test_model_built_in_one_cell_and_misused_in_another_is_found() -> None:
    found = findings_of(notebook(SETUP, "print('training')", MISUSE))
    assert [(f.code, f.cell, f.line) for f in found] == [("GL101", 3, 2)]
    # Each cell alone shows nothing: the finding needs the cells together.
    assert findings_of(notebook(MISUSE)) == []


MAGICS = """\
%matplotlib inline
!pip install torch \\
    torchvision
files = !ls
listing = %sx ls
model?
??model
%time model(torch.ones(4))
for step in range(2):
    %time y = model(torch.ones(4))
    !echo step
    out = model(torch.ones(4))
text = '''
!not a shell escape, in a string
%nor a magic
'''
total = (1 +
  2)
/print hello
out.numpy()
"""


def test_magics_shell_escapes_and_help_keep_the_lines() -> None:
    (finding,) = findings_of(notebook(SETUP, MAGICS))
    assert (finding.code, finding.cell, finding.line) == ("GL101", 2, 20)


def test_magic_lines_become_placeholders_of_the_same_indentation() -> None:
    cell = python_of(MAGICS)
    lines = cell.text.splitlines()
    assert len(lines) == len(MAGICS.splitlines())
    assert lines[0] == f"pass  {MARKER}"
    assert lines[2] == f"    {MARKER}"  # the shell escape's continuation line
    assert lines[3] == f"files = None  {MARKER}"
    assert lines[4] == f"listing = None  {MARKER}"
    assert lines[9] == f"    pass  {MARKER}"  # `%time statement`: the magic's own line
    assert lines[10] == f"    pass  {MARKER}"
    assert lines[13:15] == ["!not a shell escape, in a string", "%nor a magic"]
    assert cell.magic_lines == frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 19})
    cst.parse_module(cell.text)


def test_cell_magics() -> None:
    bash = "%%bash\nfor f in *; do echo $f; done\n"
    timed = "%%time\nout = model(torch.ones(4))\nout.numpy()"
    found = findings_of(notebook(SETUP, bash, timed))
    assert [(f.cell, f.line) for f in found] == [(3, 3)]
    assert not python_of(bash).python
    assert python_of(bash).text == "\n\n"


def test_noqa_in_a_cell() -> None:
    assert findings_of(notebook(SETUP, MISUSE + "  # noqa: GL101")) == []


def test_other_languages_are_skipped_silently(project: Path) -> None:
    julia = {"kernelspec": {"language": "julia", "name": "julia-1.10"}}
    write(project / "jl.ipynb", notebook("x = [1, 2] .+ 1", metadata=julia))
    r_info = {"language_info": {"name": "R"}, "kernelspec": {"language": "python"}}
    write(project / "r.ipynb", notebook("x <- c(1, 2)", metadata=r_info))
    result = gradlint_("check", "--no-cache")
    assert (result.exit_code, result.output) == (0, "All checked! 2 files, no findings.\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a notebook: invalid JSON at line 1, column 2: Expecting property name"),
        ("[1, 2]", "not a Jupyter notebook: no `cells` list"),
        ('{"nbformat": 3, "worksheets": []}', "nbformat 3 notebooks are not supported"),
        (notebook("x = (1,"), "cell 1: syntax error at line 1"),
        # Jupyter runs each cell alone: an `else` cannot continue the cell before.
        (notebook("if True:\n    x = 1", "else:\n    x = 2"), "cell 2: syntax error at line 1"),
        (notebook("y = 1", "    x = 1"), "cell 2: syntax error at line 1"),
        (b"\xff\xfe{}", "not UTF-8 text"),
    ],
)
def test_a_broken_notebook_is_one_error_line(
    project: Path, text: str | bytes, message: str
) -> None:
    write(project / "bad.ipynb", text)
    write(project / "ok.py", "import torch\nx = torch.ones(2, requires_grad=True)\nx.numpy()\n")
    result = gradlint_("check", "--no-cache")
    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"bad.ipynb: {message}"), errors
    assert "Traceback" not in result.output
    assert "ok.py:3:1: GL101" in result.stdout  # the other files are still linted


# -- --fix writes the notebook back --------------------------------------------------------


@pytest.fixture
def example(project: Path) -> Path:
    return Path(shutil.copy(EXAMPLE, project / "train.ipynb"))


def code_cells(content: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in content["cells"] if cell["cell_type"] == "code"]


def test_example_notebook_findings() -> None:
    found = lint_notebook(EXAMPLE.read_bytes(), "nb.ipynb", Config())
    assert [(f.cell, f.line, f.code, f.fixable) for f in found] == [
        (4, 8, "GL302", True),
        (5, 2, "GL101", True),
    ]


def test_fix_round_trip_changes_only_the_fixed_cells_source(example: Path) -> None:
    before_raw = example.read_text(encoding="utf-8")
    before = json.loads(before_raw)
    result = gradlint_("check", "--no-cache", "--fix", "train.ipynb")
    assert result.exit_code == 0, result.output
    assert "Made 2 fixes." in result.stderr
    after_raw = example.read_text(encoding="utf-8")
    after = json.loads(after_raw)
    # Everything but the two fixed cells' source is as it was: outputs, metadata, ids,
    # execution counts, the markdown cells, the other code cells.
    assert after["metadata"] == before["metadata"]
    assert {k: v for k, v in after.items() if k != "cells"} == {
        k: v for k, v in before.items() if k != "cells"
    }
    changed = []
    for index, (old, new) in enumerate(zip(before["cells"], after["cells"], strict=True)):
        assert {k: v for k, v in old.items() if k != "source"} == {
            k: v for k, v in new.items() if k != "source"
        }
        if old["source"] != new["source"]:
            changed.append(index)
    cells = code_cells(after)
    assert changed == [before["cells"].index(code_cells(before)[i]) for i in (3, 4)]
    assert cells[3]["source"][-1] == "    history.append(loss.detach())"
    assert cells[3]["source"][0] == "%%time\n"
    assert cells[4]["source"] == ["predictions = model(x[:5])\n", "predictions.detach().numpy()"]
    # Byte for byte: only the two changed source lines differ, layout and escapes kept.
    old_lines, new_lines = before_raw.splitlines(True), after_raw.splitlines(True)
    assert len(old_lines) == len(new_lines)
    differ = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert differ == [
        ('    "    history.append(loss)"\n', '    "    history.append(loss.detach())"\n'),
        ('    "predictions.numpy()"\n', '    "predictions.detach().numpy()"\n'),
    ]
    # A second --fix changes nothing.
    again = gradlint_("check", "--no-cache", "--fix", "train.ipynb")
    assert again.exit_code == 0 and "Made" not in again.stderr
    assert example.read_text(encoding="utf-8") == after_raw


def test_fixed_notebook_no_longer_raises_under_torch(example: Path) -> None:
    pytest.importorskip("torch")
    original = example.with_name("original.ipynb")
    shutil.copy(example, original)
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        run_cells(original)
    assert gradlint_("check", "--no-cache", "--fix", "train.ipynb").exit_code == 0
    namespace = run_cells(example)
    assert all(not loss.requires_grad for loss in namespace["history"])


def test_diff_shows_the_cells_python(example: Path) -> None:
    before = example.read_bytes()
    result = gradlint_("check", "--no-cache", "--diff", "train.ipynb")
    assert result.exit_code == 1
    assert example.read_bytes() == before
    assert result.stdout.splitlines()[:2] == [
        "--- a/train.ipynb:cell 4",
        "+++ b/train.ipynb:cell 4",
    ]
    assert "-    history.append(loss)\n+    history.append(loss.detach())\n" in result.stdout
    assert "+++ b/train.ipynb:cell 5\n" in result.stdout
    assert '"source"' not in result.stdout


def test_fix_keeps_another_tool_s_layout(project: Path) -> None:
    """Two-space indent, keys unsorted, non-ASCII escaped, a one-string source, no final
    newline: all kept."""
    content = {
        "nbformat": 4,
        "nbformat_minor": 2,
        "metadata": {"title": "Résumé"},
        "cells": [
            code(SETUP, [{"output_type": "stream", "name": "stdout", "text": "é\n"}]),
            dict(code(""), source="# é\n" + MISUSE),
        ],
    }
    raw = json.dumps(content, indent=2, ensure_ascii=True)
    path = write(project / "nb.ipynb", raw)
    assert gradlint_("check", "--no-cache", "--fix", "nb.ipynb").exit_code == 0
    fixed = path.read_text(encoding="utf-8")
    content["cells"][1]["source"] = "# \u00e9\n" + MISUSE.replace(
        "preds.numpy", "preds.detach().numpy"
    )
    assert fixed == json.dumps(content, indent=2, ensure_ascii=True)


def test_fix_keeps_a_cell_without_a_final_newline_and_magics(project: Path) -> None:
    cell = "%time out = model(torch.ones(4))\nout = model(torch.ones(4))\n!ls\nout.numpy()"
    path = write(project / "nb.ipynb", notebook(SETUP, cell))
    assert gradlint_("check", "--no-cache", "--fix", "nb.ipynb").exit_code == 0
    source = code_cells(json.loads(path.read_text()))[1]["source"]
    assert source == [
        "%time out = model(torch.ones(4))\n",
        "out = model(torch.ones(4))\n",
        "!ls\n",
        "out.detach().numpy()",
    ]


class SpanFix(Rule):
    """Finds `span()`; its fix replaces the call's line and the next one."""

    code = "GL997"
    name = "fake-span"
    message = "`span()` call"
    fixable = True

    def check(self, facts: Any) -> Iterator[Report]:
        class Calls(cst.CSTVisitor):
            found: list[cst.Call] = []

            def visit_Call(self, node: cst.Call) -> None:
                if isinstance(node.func, cst.Name) and node.func.value == "span":
                    self.found.append(node)

        visitor = Calls()
        visitor.found = []
        facts.module.visit(visitor)
        for node in visitor.found:
            line = facts.position(node)[0]
            yield Report(node, fix=Replacement(node, "done()\n", "Join", lines=(line, line + 1)))


@pytest.mark.parametrize(
    "cells",
    [["span()", "x = 1"], ["span()\n%time x = 1"]],
    ids=["into-the-next-cell", "onto-a-magic"],
)
def test_a_fix_reaching_another_cell_or_a_magic_is_left_out(
    project: Path, monkeypatch: pytest.MonkeyPatch, cells: list[str]
) -> None:
    install(monkeypatch, [*FAKE_RULES, SpanFix])
    path = write(project / "nb.ipynb", notebook(*cells))
    before = path.read_bytes()
    result = gradlint_("check", "--no-cache", "--fix", "nb.ipynb")
    assert path.read_bytes() == before
    assert "nb.ipynb: Join: fix left out, it reaches into another cell or a line of IPython" in (
        result.stderr
    )
    # Reported without [*]: it cannot be made.
    assert result.stdout.startswith("nb.ipynb:cell 1:1:1: GL997 `span()` call\n")
    # The same fix inside one cell is made.
    write(project / "ok.ipynb", notebook("span()\nx = 1"))
    assert gradlint_("check", "--no-cache", "--fix", "ok.ipynb").exit_code == 0
    assert code_cells(json.loads((project / "ok.ipynb").read_text()))[0]["source"] == ["done()"]


def test_add_noqa_writes_comments_into_the_cells(example: Path) -> None:
    before = json.loads(example.read_text(encoding="utf-8"))
    result = gradlint_("check", "--no-cache", "--add-noqa", "train.ipynb")
    assert "Added 2 noqa comments." in result.stderr
    after = json.loads(example.read_text(encoding="utf-8"))
    assert code_cells(after)[4]["source"][-1] == "predictions.numpy()  # noqa: GL101"
    assert [c["outputs"] for c in after["cells"] if "outputs" in c] == [
        c["outputs"] for c in before["cells"] if "outputs" in c
    ]
    assert gradlint_("check", "--no-cache", "train.ipynb").exit_code == 0


# -- standard input, parallel runs and the cache -------------------------------------------


def test_stdin_notebook(two_cells: Path) -> None:
    data = two_cells.read_bytes()
    result = gradlint_("check", "-", "--stdin-filename", "nb.ipynb", stdin=data)
    assert result.stdout.startswith("nb.ipynb:cell 2:2:10: GL101")
    fixed = gradlint_("check", "--fix", "-", "--stdin-filename", "nb.ipynb", stdin=data)
    content = json.loads(fixed.stdout)
    assert code_cells(content)[1]["source"][-1] == "values = preds.detach().numpy()"
    assert two_cells.read_bytes() == data  # the file itself is never written


def test_jobs_and_cache_give_the_same_report(project: Path) -> None:
    for n in range(6):
        write(project / f"nb{n}.ipynb", notebook(SETUP, markdown("text"), MISUSE))
        write(project / f"s{n}.py", SETUP + "\n" + MISUSE + "\n")
    write(project / "empty.py", "")
    write(project / "empty.ipynb", "")  # the same bytes as empty.py: never one cache entry
    outputs = [
        gradlint_("check", "--no-cache", "-j", "1").output,
        gradlint_("check", "--no-cache", "-j", "2").output,
        gradlint_("check", "-j", "2").output,  # fills the cache
        gradlint_("check", "-j", "2").output,  # served from it
        gradlint_("check", "-j", "1").output,
    ]
    assert all(output == outputs[0] for output in outputs), outputs
    assert "nb5.ipynb:cell 2:2:10: GL101" in outputs[0]
    assert "empty.ipynb: not a notebook: invalid JSON" in outputs[0]


def test_empty_code_cells_are_fine() -> None:
    # Jupyter saves an empty cell as `"source": []`; real notebooks end with one.
    found = findings_of(notebook(SETUP, "", MISUSE, ""))
    assert [(f.code, f.cell, f.line) for f in found] == [("GL101", 3, 2)]
