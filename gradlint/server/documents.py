"""What the server lints: a text document, or a notebook's code cells, read from the
workspace as one snapshot (taken on the event loop, linted on a worker thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from lsprotocol import types
from pygls import uris
from pygls.workspace import Workspace

from gradlint.finding import Finding
from gradlint.reparse import Reparser
from gradlint.server.linting import Linted, lint_cells_of, lint_document

PYTHON = "python"


def fs_path(uri: str) -> str | None:
    """The file a document is, or None for an unsaved buffer (`untitled:`)."""
    if uris.uri_scheme(uri) not in ("file", None, ""):
        return None
    return uris.to_fs_path(uri)


@dataclass(frozen=True)
class Cell:
    uri: str
    text: str


@dataclass(frozen=True)
class Snapshot:
    """A document's text at one version: ``cells`` for a notebook (its Python code cells,
    in order; findings' cell numbers count them from 1), else ``text``."""

    key: str  # the document's URI (a notebook's own URI, not a cell's)
    version: int | None
    path: str | None
    root: str | None
    text: str = ""
    cells: tuple[Cell, ...] | None = None
    language: str | None = PYTHON

    @property
    def is_python(self) -> bool:
        """Whether to lint it: a notebook's Python cells, a document the editor calls
        Python, or a `.py` file whatever the editor calls it (never a notebook's JSON
        opened as text: its positions would not be the cells')."""
        if self.cells is not None:
            return True
        path = (self.path or "").lower()
        if self.language in (None, "", PYTHON):
            return not path.endswith(".ipynb")
        return path.endswith((".py", ".pyi"))

    @property
    def is_notebook(self) -> bool:
        return self.cells is not None

    def lint(self, reparser: Reparser | None = None) -> Linted:
        """Lint the snapshot; a text document's ``reparser`` (its own, kept from lint to
        lint) parses only what changed since the last."""
        if not self.is_python:
            return Linted()
        if self.cells is None:
            return lint_document(self.text, self.path, self.root, reparser)
        return lint_cells_of([cell.text for cell in self.cells], self.path, self.root)

    def uris(self) -> list[str]:
        """The URIs diagnostics are published for."""
        return [cell.uri for cell in self.cells] if self.cells is not None else [self.key]

    def text_of(self, uri: str) -> str:
        if self.cells is None:
            return self.text
        for cell in self.cells:
            if cell.uri == uri:
                return cell.text
        return ""

    def cell_number(self, uri: str) -> int | None:
        if self.cells is None:
            return None
        for number, cell in enumerate(self.cells, start=1):
            if cell.uri == uri:
                return number
        return None


@dataclass
class Linting:
    """The last lint of a document that the server published, and the lint on its way."""

    snapshot: Snapshot
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    published: set[str] = field(default_factory=set)  # URIs with diagnostics shown

    def findings_in(self, uri: str) -> list[Finding]:
        number = self.snapshot.cell_number(uri)
        if not self.snapshot.is_notebook:
            return self.findings
        return [finding for finding in self.findings if finding.cell == number]


def root_of(workspace: Workspace) -> str | None:
    root: str | None = workspace.root_path
    return root


def take_text(workspace: Workspace, uri: str) -> Snapshot:
    document = workspace.get_text_document(uri)
    return Snapshot(
        key=uri,
        version=document.version,
        path=fs_path(uri),
        root=root_of(workspace),
        text=document.source,
        language=document.language_id,
    )


def take_notebook(workspace: Workspace, notebook: types.NotebookDocument) -> Snapshot:
    cells: list[Cell] = []
    for cell in notebook.cells:
        if cell.kind != types.NotebookCellKind.Code:
            continue
        document = workspace.get_text_document(cell.document)
        if document.language_id not in (None, PYTHON):
            continue
        cells.append(Cell(cell.document, document.source))
    return Snapshot(
        key=notebook.uri,
        version=notebook.version,
        path=fs_path(notebook.uri),
        root=root_of(workspace),
        cells=tuple(cells),
    )


def notebook_of(workspace: Workspace, uri: str) -> types.NotebookDocument | None:
    """The notebook that a cell belongs to (None: not a cell)."""
    return workspace.get_notebook_document(cell_uri=uri)


def take(workspace: Workspace, key: str) -> Snapshot | None:
    """The current snapshot of the document ``key`` (a text document or a notebook), or
    None when it is no longer open."""
    notebook = workspace.get_notebook_document(notebook_uri=key)
    if notebook is not None:
        return take_notebook(workspace, notebook)
    if unquote(key) in workspace.text_documents:
        return take_text(workspace, key)
    return None
