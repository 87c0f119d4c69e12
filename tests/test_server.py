"""`gradlint server`, driven over stdio by a real LSP client (pygls's), as an editor does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from helpers import write

pytest.importorskip("pygls")

from lsp_client import Client  # noqa: E402
from lsprotocol import types  # noqa: E402

from gradlint.fixes import Edit, splice  # noqa: E402

# Line 4 holds an emoji (two UTF-16 code units, one character) before the finding, so the
# ranges show that columns are converted to the client's encoding.
BUGGY = """\
import torch

weights = torch.ones(3, requires_grad=True)
print("\N{GRINNING FACE}", weights.numpy())

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(3):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
"""

CLEAN = "import torch\n\nweights = torch.ones(3, requires_grad=True)\nprint(weights.sum())\n"


def run(root: Path, scenario: Callable[[Client], Awaitable[None]], *args: str) -> Client:
    """Start the server in ``root``, run the scenario, then shut it down and check it
    exits cleanly (code 0)."""

    async def main() -> Client:
        client = Client(root, *args)
        try:
            await client.start()
            await scenario(client)
            assert await client.stop() == 0
        except BaseException:
            await client.kill()
            raise
        return client

    return asyncio.run(main())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path / "pyproject.toml", "[tool.gradlint]\n")
    return tmp_path


def by_code(published: list[types.Diagnostic]) -> dict[str, types.Diagnostic]:
    return {str(diagnostic.code): diagnostic for diagnostic in published}


def rng(line: int, start: int, end_line: int, end: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=start),
        end=types.Position(line=end_line, character=end),
    )


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """What the client's buffer becomes (ASCII edits on lines without wide characters)."""
    return splice(
        text,
        [
            Edit(
                e.range.start.line + 1,
                e.range.start.character + 1,
                e.range.end.line + 1,
                e.range.end.character + 1,
                e.new_text,
            )
            for e in edits
        ],
    )


async def code_actions(
    client: Client, uri: str, where: types.Range, only: list[str] | None = None
) -> list[types.CodeAction]:
    result = await asyncio.wait_for(
        client.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=where,
                context=types.CodeActionContext(diagnostics=[], only=only),
            )
        ),
        20,
    )
    return [action for action in result or [] if isinstance(action, types.CodeAction)]


def test_diagnostics_on_open(root: Path) -> None:
    async def scenario(client: Client) -> None:
        uri = client.open(root / "train.py", BUGGY)
        published = await client.diagnostics(uri, version=1)
        found = by_code(published.diagnostics)
        assert set(found) == {"GL101", "GL201"}

        numpy = found["GL101"]
        # `weights.numpy()` starts after `print("😀", `: 10 characters, 11 UTF-16 units.
        assert numpy.range == rng(3, 12, 3, 27)
        assert numpy.severity == types.DiagnosticSeverity.Error
        assert numpy.source == "gradlint"
        assert "numpy-on-graph-tensor" in numpy.message
        assert numpy.code_description is not None
        assert numpy.code_description.href.endswith("docs/rules.md#gl101")

        steps = found["GL201"]
        assert steps.range == rng(9, 4, 9, 19)  # `loss.backward()`
        assert steps.severity == types.DiagnosticSeverity.Warning

    run(root, scenario)


def test_quick_fix_makes_the_diagnostic_go_away(root: Path) -> None:
    async def scenario(client: Client) -> None:
        text = CLEAN.replace("weights.sum()", "weights.numpy()")
        uri = client.open(root / "train.py", text)
        published = await client.diagnostics(uri, version=1)
        (numpy,) = published.diagnostics
        found = await code_actions(client, uri, numpy.range)
        fixes = [a for a in found if a.kind == types.CodeActionKind.QuickFix and a.is_preferred]
        assert [a.title for a in fixes] == ["Detach before converting (GL101)"]
        assert fixes[0].edit is not None and fixes[0].edit.changes is not None
        edits = list(fixes[0].edit.changes[uri])
        fixed = apply(text, edits)
        assert "weights.detach().numpy()" in fixed

        version = client.edit(uri, edits)
        after = await client.diagnostics(uri, version=version)
        assert after.diagnostics == []

    run(root, scenario)


def test_noqa_and_fix_all_actions(root: Path) -> None:
    async def scenario(client: Client) -> None:
        text = CLEAN.replace("weights.sum()", "weights.numpy()")
        uri = client.open(root / "train.py", text)
        (numpy,) = (await client.diagnostics(uri, version=1)).diagnostics

        found = await code_actions(client, uri, numpy.range)
        (noqa,) = [a for a in found if "noqa" in a.title]
        assert noqa.edit is not None and noqa.edit.changes is not None
        suppressed = apply(text, list(noqa.edit.changes[uri]))
        assert "print(weights.numpy())  # noqa: GL101\n" in suppressed

        only_fix_all = await code_actions(client, uri, rng(0, 0, 0, 0), ["source.fixAll"])
        (fix_all,) = only_fix_all
        assert fix_all.kind == "source.fixAll.gradlint"
        assert fix_all.edit is not None and fix_all.edit.changes is not None
        assert apply(text, list(fix_all.edit.changes[uri])) == text.replace(
            "weights.numpy()", "weights.detach().numpy()"
        )
        # Asked only for quick fixes: no fix-all.
        quick = await code_actions(client, uri, numpy.range, ["quickfix"])
        assert {a.kind for a in quick} == {types.CodeActionKind.QuickFix}

        version = client.edit(uri, list(noqa.edit.changes[uri]))
        assert (await client.diagnostics(uri, version=version)).diagnostics == []

    run(root, scenario)


def test_changes_update_the_diagnostics(root: Path) -> None:
    async def scenario(client: Client) -> None:
        uri = client.open(root / "train.py", CLEAN)
        assert (await client.diagnostics(uri, version=1)).diagnostics == []

        version = client.change(uri, BUGGY)
        published = await client.diagnostics(uri, version=version)
        assert set(by_code(published.diagnostics)) == {"GL101", "GL201"}

        # A burst of typing: the lints it makes stale are dropped, the last one is shown.
        before = client.count(uri)
        texts = [BUGGY.replace("range(3)", f"range({n})") for n in range(4, 9)]
        for text in texts:
            version = client.change(uri, text)
        last = await client.diagnostics(uri, version=version, after=before)
        assert set(by_code(last.diagnostics)) == {"GL101", "GL201"}
        assert client.count(uri) - before < len(texts)

        version = client.change(uri, CLEAN)
        assert (await client.diagnostics(uri, version=version)).diagnostics == []

        # Saving lints too (at once, without the debounce).
        before = client.count(uri)
        client.save(uri)
        assert (await client.diagnostics(uri, after=before)).diagnostics == []

    run(root, scenario)


def test_a_change_after_a_quiet_spell_is_linted_at_once(root: Path) -> None:
    """The debounce holds back only changes in quick succession (a long delay here, so
    that the two cases cannot be confused on a slow machine)."""

    async def scenario(client: Client) -> None:
        uri = client.open(root / "train.py", CLEAN)
        await client.diagnostics(uri, version=1)
        await asyncio.sleep(1.0)  # quiet for longer than the debounce delay

        sent = time.perf_counter()
        version = client.change(uri, BUGGY)
        published = await client.diagnostics(uri, version=version)
        assert published.at - sent < 1.0

        client.change(uri, CLEAN)
        sent = time.perf_counter()
        version = client.change(uri, BUGGY)
        published = await client.diagnostics(uri, version=version)
        assert published.at - sent >= 0.9  # waited for the typing to pause

    run(root, scenario, "--debounce", "1000")


def test_hover_shows_the_rule_docs(root: Path) -> None:
    async def scenario(client: Client) -> None:
        uri = client.open(root / "train.py", BUGGY)
        await client.diagnostics(uri, version=1)
        hover = await asyncio.wait_for(
            client.client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=3, character=20),
                )
            ),
            20,
        )
        assert hover is not None
        assert isinstance(hover.contents, types.MarkupContent)
        assert hover.contents.kind == types.MarkupKind.Markdown
        assert "**GL101** `numpy-on-graph-tensor`" in hover.contents.value
        assert "**Why is this bad?**" in hover.contents.value
        assert hover.range == rng(3, 12, 3, 27)

        nothing = await asyncio.wait_for(
            client.client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=0, character=2),
                )
            ),
            20,
        )
        assert nothing is None

    run(root, scenario)


def test_settings_come_from_pyproject_and_reload(root: Path) -> None:
    async def scenario(client: Client) -> None:
        await client.wait_for(lambda: client.registrations)
        (registration,) = client.registrations
        assert registration.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES

        write(root / "generated" / "copy.py", BUGGY)
        excluded = client.open(root / "generated" / "copy.py", BUGGY)
        uri = client.open(root / "train.py", BUGGY)
        assert set(by_code((await client.diagnostics(uri, version=1)).diagnostics)) == {
            "GL101",
            "GL201",
        }
        assert (await client.diagnostics(excluded, version=1)).diagnostics == []

        (root / "pyproject.toml").write_text('[tool.gradlint]\nignore = ["GL101"]\n')
        before = client.count(uri)
        client.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(
                        uri=(root / "pyproject.toml").as_uri(),
                        type=types.FileChangeType.Changed,
                    )
                ]
            )
        )
        after = await client.diagnostics(uri, after=before)
        assert set(by_code(after.diagnostics)) == {"GL201"}

    write(root / "pyproject.toml", '[tool.gradlint]\nextend-exclude = ["generated"]\n')
    run(root, scenario)


def test_bad_files_and_bad_config_never_stop_the_server(root: Path) -> None:
    async def scenario(client: Client) -> None:
        uri = client.open(root / "broken.py", "def f(:\n    pass\n")
        assert (await client.diagnostics(uri, version=1)).diagnostics == []
        await client.wait_for(lambda: any("syntax error" in log for log in client.logs))

        version = client.change(uri, BUGGY)
        assert len((await client.diagnostics(uri, version=version)).diagnostics) == 2

        # Binary junk, an empty file, a file of another language: no crash.
        junk = client.open(root / "junk.py", "\x00\x01\ufffe" * 50)
        assert (await client.diagnostics(junk, version=1)).diagnostics == []
        empty = client.open(root / "empty.py", "")
        assert (await client.diagnostics(empty, version=1)).diagnostics == []

        # An unsaved buffer, and text that is not Python.
        untitled = "untitled:Untitled-1"
        client.versions[untitled] = 1
        client.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=untitled, language_id="python", version=1, text=BUGGY
                )
            )
        )
        assert len((await client.diagnostics(untitled, version=1)).diagnostics) == 2
        readme = client.open(root / "README.md", BUGGY, language="markdown")
        assert (await client.diagnostics(readme, version=1)).diagnostics == []

        (root / "pyproject.toml").write_text("[tool.gradlint]\nslect = ['GL1']\n")
        before = client.count(uri)
        client.save(uri)
        assert (await client.diagnostics(uri, after=before)).diagnostics == []
        await client.wait_for(lambda: any("configuration error" in log for log in client.logs))

        (root / "pyproject.toml").write_text("[tool.gradlint]\n")
        before = client.count(uri)
        client.save(uri)
        assert len((await client.diagnostics(uri, after=before)).diagnostics) == 2

    run(root, scenario)


def _cell(notebook: str, index: int) -> str:
    return f"vscode-notebook-cell:{notebook}#cell{index}"


def test_notebook_cells_are_one_program(root: Path) -> None:
    async def scenario(client: Client) -> None:
        notebook = (root / "train.ipynb").as_uri()
        sources = [
            ("code", "import torch\n\nweights = torch.ones(3, requires_grad=True)\n"),
            ("markdown", "# Plots\n"),
            ("code", "%matplotlib inline\nvalues = weights.numpy()\n"),
        ]
        cells = [
            types.NotebookCell(
                kind=types.NotebookCellKind.Code
                if kind == "code"
                else types.NotebookCellKind.Markup,
                document=_cell(notebook, index),
            )
            for index, (kind, _) in enumerate(sources)
        ]
        client.client.notebook_document_did_open(
            types.DidOpenNotebookDocumentParams(
                notebook_document=types.NotebookDocument(
                    uri=notebook, notebook_type="jupyter-notebook", version=1, cells=cells
                ),
                cell_text_documents=[
                    types.TextDocumentItem(
                        uri=_cell(notebook, index),
                        language_id="python" if kind == "code" else "markdown",
                        version=1,
                        text=text,
                    )
                    for index, (kind, text) in enumerate(sources)
                ],
            )
        )
        first = await client.diagnostics(_cell(notebook, 0))
        assert first.diagnostics == []
        third = await client.diagnostics(_cell(notebook, 2))
        (numpy,) = third.diagnostics
        assert numpy.code == "GL101"
        assert numpy.range == rng(1, 9, 1, 24)
        assert client.count(_cell(notebook, 1)) == 0  # markdown: not linted

        found = await code_actions(client, _cell(notebook, 2), numpy.range)
        (fix,) = [a for a in found if a.is_preferred]
        assert fix.edit is not None and fix.edit.changes is not None
        edits = list(fix.edit.changes[_cell(notebook, 2)])
        assert apply(sources[2][1], edits) == (
            "%matplotlib inline\nvalues = weights.detach().numpy()\n"
        )

        # Change the third cell: the fix applied, the diagnostics go away.
        before = client.count(_cell(notebook, 2))
        client.client.notebook_document_did_change(
            types.DidChangeNotebookDocumentParams(
                notebook_document=types.VersionedNotebookDocumentIdentifier(
                    uri=notebook, version=2
                ),
                change=types.NotebookDocumentChangeEvent(
                    cells=types.NotebookDocumentCellChanges(
                        text_content=[
                            types.NotebookDocumentCellContentChanges(
                                document=types.VersionedTextDocumentIdentifier(
                                    uri=_cell(notebook, 2), version=2
                                ),
                                changes=[
                                    types.TextDocumentContentChangePartial(
                                        range=e.range, text=e.new_text
                                    )
                                    for e in edits
                                ],
                            )
                        ]
                    )
                ),
            )
        )
        after = await client.diagnostics(_cell(notebook, 2), after=before)
        assert after.diagnostics == []

    run(root, scenario)


def test_without_pygls_one_clear_line() -> None:
    code = (
        "import sys; sys.modules['pygls'] = None\nfrom gradlint.cli import main\nmain(['server'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        'gradlint: error: the language server needs pygls: pip install "torch-gradlint[server]"'
    ]


def test_a_bug_in_the_engine_is_reported_not_raised(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gradlint.server import linting

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(linting.engine, "lint", broken)
    monkeypatch.setattr(linting, "lint_cells", broken)
    monkeypatch.setattr(linting.engine, "fix_source", broken)
    path = str(root / "train.py")
    for result in (
        linting.lint_document(BUGGY, path, str(root)),
        linting.lint_cells_of([BUGGY], str(root / "nb.ipynb"), str(root)),
    ):
        assert result.findings == []
        (problem,) = result.problems
        assert "internal error" in problem and "a bug of ours" in problem
    assert linting.fix_document(BUGGY, path, str(root)) == BUGGY
