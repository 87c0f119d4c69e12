"""The language server: pygls wiring, and when to lint.

A document is linted when it opens, when it is saved, and when it changes. Diagnostics
for a change that comes after a quiet spell (no change for the debounce delay, and no
lint of it on its way) are published as soon as they are found; during a burst of typing
they are published once the editor has been quiet for the debounce delay, so that the
diagnostics do not flicker while the user types. The lint itself starts at once, while
the delay runs, so the diagnostics of a burst arrive as the typing pauses rather than a
lint's time later. A new change cancels the lint it makes stale (a lint not yet started
never runs; one already running on the worker thread finishes, and its result is
dropped). Linting runs on one worker thread, so the server keeps answering (hover, code
actions) meanwhile; each text document keeps its last parse, so that a lint parses again
only the top-level statements a change touched (`gradlint.reparse`). Diagnostics carry
the version of the text they were made from.

Nothing a document holds, and no bug of ours, stops the server: what goes wrong is sent
to the client's log (`window/logMessage`) and the server goes on.
"""

from __future__ import annotations

import asyncio
import gc
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from gradlint import __version__, registry
from gradlint.cancel import Cancelled, stopping_when
from gradlint.reparse import Reparser
from gradlint.server import actions, documents
from gradlint.server.convert import diagnostic, lines_of, whole_change
from gradlint.server.documents import Linting, Snapshot
from gradlint.server.hover import hover
from gradlint.server.linting import Linted, fix_cell, fix_document

DEFAULT_DEBOUNCE = 0.15  # seconds of quiet after a change before it is linted
PYPROJECT_GLOB = "**/pyproject.toml"


class GradlintServer(LanguageServer):
    def __init__(self, debounce: float = DEFAULT_DEBOUNCE) -> None:
        super().__init__(
            "gradlint",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[
                    types.NotebookDocumentFilterWithNotebook(
                        notebook="*", cells=[types.NotebookCellLanguage(language="python")]
                    )
                ],
                save=True,
            ),
        )
        self.debounce = debounce
        self.lints: dict[str, Linting] = {}  # document key -> its last published lint
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gradlint-lint")
        self._logged: dict[str, tuple[str, ...]] = {}
        self._changed: dict[str, float] = {}  # document key -> when it last changed
        # Each text document's last parse, which the next lint re-parses only in part;
        # used on the worker thread alone.
        self.reparsers: dict[str, Reparser] = {}
        # Changes per document: a lint whose count is no longer the document's is stale
        # (read on the worker thread, which stops such a lint).
        self._edits: dict[str, int] = {}

    # -- logging ---------------------------------------------------------------------

    def log(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        try:
            self.window_log_message(types.LogMessageParams(type=kind, message=message))
        except Exception:  # pragma: no cover - the client went away
            pass

    def log_failure(self, doing: str, exc: BaseException) -> None:
        summary = "".join(traceback.format_exception(exc, limit=-4)).strip()
        self.log(f"gradlint: internal error while {doing}:\n{summary}", types.MessageType.Error)

    def _log_problems(self, key: str, problems: list[str]) -> None:
        """Each lint's problems (a syntax error while typing...), once until they change."""
        shown = tuple(problems)
        if self._logged.get(key) == shown:
            return
        self._logged[key] = shown
        for problem in problems:
            bad = "internal error" in problem or "configuration error" in problem
            self.log(
                f"gradlint: {problem}",
                types.MessageType.Error if bad else types.MessageType.Info,
            )

    # -- scheduling ------------------------------------------------------------------

    def schedule(self, key: str, delay: float) -> None:
        """Lint ``key`` now and publish the diagnostics no sooner than ``delay`` seconds
        from now, replacing a lint still on its way."""
        earlier = self.pending.pop(key, None)
        if earlier is not None and not earlier.done():
            earlier.cancel()
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._lint_later(key, loop.time() + delay))
        self.pending[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def changed(self, key: str) -> None:
        """A change: publish at once after a quiet spell, else when the typing pauses."""
        self._edits[key] = self._edits.get(key, 0) + 1
        now = asyncio.get_running_loop().time()
        last = self._changed.get(key)
        self._changed[key] = now
        quiet = last is None or now - last >= self.debounce
        busy = key in self.pending
        self.schedule(key, 0 if quiet and not busy else self.debounce)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self.pending.get(key) is task:
            del self.pending[key]

    async def _lint_later(self, key: str, due: float) -> None:
        try:
            await self.lint_now(key, due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: log it, keep serving
            self.log_failure(f"linting {key}", exc)

    async def lint_now(self, key: str, due: float | None = None) -> Linting | None:
        """Lint the document as it is now and publish the diagnostics (not before the
        loop time ``due``), unless it changed meanwhile (the change has scheduled its own
        lint)."""
        snapshot = documents.take(self.workspace, key)
        if snapshot is None:
            return None
        reparser = self.reparsers.setdefault(key, Reparser())
        edits = self._edits.get(key, 0)

        def stale() -> bool:
            return self._edits.get(key, 0) != edits

        loop = asyncio.get_running_loop()
        try:
            linted = await loop.run_in_executor(
                self.executor, _lint_quietly, snapshot, reparser, stale
            )
        except Cancelled:  # changed meanwhile (or closed): that change lints again
            return None
        if not self._still(key, snapshot):
            return None
        if due is not None and due > loop.time():
            await asyncio.sleep(due - loop.time())
            if not self._still(key, snapshot):  # pragma: no cover - the change cancels us
                return None
        self._log_problems(key, linted.problems)
        return self.publish(snapshot, linted)

    def _still(self, key: str, snapshot: Snapshot) -> bool:
        """Whether the document is still as it was in ``snapshot``."""
        current = documents.take(self.workspace, key)
        if current is None or current.version != snapshot.version:
            return False
        return current == snapshot  # a client that sends no versions: compare the text

    def publish(self, snapshot: Snapshot, linted: Linted) -> Linting:
        previous = self.lints.get(snapshot.key)
        linting = Linting(snapshot, linted.findings, linted.problems)
        codec = self.workspace.position_codec
        for uri in snapshot.uris():
            findings = linting.findings_in(uri)
            lines = lines_of(snapshot.text_of(uri))
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(
                    uri=uri,
                    diagnostics=[diagnostic(finding, lines, codec) for finding in findings],
                    version=None if snapshot.is_notebook else snapshot.version,
                )
            )
            linting.published.add(uri)
        if previous is not None:  # cells deleted since: clear what they showed
            for uri in previous.published - linting.published:
                self.clear(uri)
        self.lints[snapshot.key] = linting
        return linting

    def clear(self, uri: str) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def close(self, key: str) -> None:
        task = self.pending.pop(key, None)
        if task is not None:
            task.cancel()
        linting = self.lints.pop(key, None)
        self._logged.pop(key, None)
        self._changed.pop(key, None)
        self.reparsers.pop(key, None)
        self._edits[key] = self._edits.get(key, 0) + 1  # a lint on its way stops

        for uri in linting.published if linting is not None else {key}:
            self.clear(uri)

    async def current_lint(self, uri: str) -> tuple[Linting, str] | None:
        """The lint of the document holding ``uri`` (a file, or a notebook's cell) at its
        current version, linting it now if the last one is stale; and the document key."""
        notebook = documents.notebook_of(self.workspace, uri)
        key = notebook.uri if notebook is not None else uri
        current = documents.take(self.workspace, key)
        if current is None:
            return None
        linting = self.lints.get(key)
        if linting is None or linting.snapshot != current:
            linting = await self.lint_now(key)
        return (linting, key) if linting is not None else None

    def relint_all(self) -> None:
        for key in list(self.lints) + list(self.pending):
            self.schedule(key, 0)

    def stop(self) -> None:
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _lint_quietly(snapshot: Snapshot, reparser: Reparser, stale: Callable[[], bool]) -> Linted:
    """Lint with the collector paused, as `gradlint check` does per file: a lint makes
    hundreds of thousands of short-lived objects, and collections in the middle of it
    would scan them again and again. One thread lints, so the pause is ours alone to
    manage; the collector resumes afterwards for whatever is left. A lint that ``stale``
    says is no longer wanted stops early, raising `Cancelled`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with stopping_when(stale):
            return snapshot.lint(reparser)
    finally:
        if enabled:
            gc.enable()


def build(debounce: float = DEFAULT_DEBOUNCE) -> GradlintServer:
    server = GradlintServer(debounce)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: GradlintServer, params: types.InitializedParams) -> None:
        watched = ls.client_capabilities.workspace
        dynamic = (
            watched is not None
            and watched.did_change_watched_files is not None
            and watched.did_change_watched_files.dynamic_registration
        )
        if not dynamic:
            return
        try:
            await ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id="gradlint-pyproject",
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                watchers=[types.FileSystemWatcher(glob_pattern=PYPROJECT_GLOB)]
                            ),
                        )
                    ]
                )
            )
        except Exception as exc:  # the client refused: settings still apply at each lint
            ls.log(f"gradlint: cannot watch pyproject.toml files: {exc}")

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GradlintServer, params: types.DidOpenTextDocumentParams) -> None:
        if documents.notebook_of(ls.workspace, params.text_document.uri) is None:
            ls.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GradlintServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        notebook = documents.notebook_of(ls.workspace, uri)
        ls.changed(notebook.uri if notebook is not None else uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: GradlintServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        notebook = documents.notebook_of(ls.workspace, uri)
        ls.schedule(notebook.uri if notebook is not None else uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GradlintServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.close(params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def notebook_open(ls: GradlintServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri, 0)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def notebook_change(ls: GradlintServer, params: types.DidChangeNotebookDocumentParams) -> None:
        ls.changed(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def notebook_save(ls: GradlintServer, params: types.DidSaveNotebookDocumentParams) -> None:
        ls.schedule(params.notebook_document.uri, 0)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def notebook_close(ls: GradlintServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.close(params.notebook_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched_files(ls: GradlintServer, params: types.DidChangeWatchedFilesParams) -> None:
        if any(change.uri.endswith("pyproject.toml") for change in params.changes):
            ls.log("gradlint: a pyproject.toml changed; linting the open documents again")
            ls.relint_all()

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, actions.FIX_ALL],
            resolve_provider=False,
        ),
    )
    async def code_action(
        ls: GradlintServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        try:
            return await _code_actions(ls, params)
        except Exception as exc:
            ls.log_failure("making code actions", exc)
            return None

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: GradlintServer, params: types.HoverParams) -> types.Hover | None:
        try:
            uri = params.text_document.uri
            found = await ls.current_lint(uri)
            if found is None:
                return None
            linting, _ = found
            return hover(
                linting.snapshot.text_of(uri),
                linting.findings_in(uri),
                params.position,
                ls.workspace.position_codec,
            )
        except Exception as exc:
            ls.log_failure("making a hover", exc)
            return None

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: GradlintServer, params: None) -> None:
        ls.stop()

    return server


async def _code_actions(
    ls: GradlintServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    only = params.context.only
    found = await ls.current_lint(uri)
    if found is None:
        return None
    linting, _ = found
    snapshot = linting.snapshot
    text = snapshot.text_of(uri)
    findings = linting.findings_in(uri)
    codec = ls.workspace.position_codec
    result: list[types.CodeAction] = []
    if actions.wanted(types.CodeActionKind.QuickFix, only):
        magic = actions.magic_lines_of(text) if snapshot.is_notebook else frozenset()
        result += actions.quick_fixes(uri, text, findings, params.range, codec, magic)
    if actions.wanted(actions.FIX_ALL, only) and any(f.fixable for f in findings):
        loop = asyncio.get_running_loop()
        if snapshot.is_notebook:
            fixes = [f.fix for f in findings if f.fix is not None and f.fix.safe]
            fixed = await loop.run_in_executor(ls.executor, fix_cell, text, fixes)
        else:
            fixed = await loop.run_in_executor(
                ls.executor, fix_document, text, snapshot.path, snapshot.root
            )
        if fixed != text:
            action = actions.fix_all(uri, whole_change(text, fixed, codec))
            if action is not None:
                result.append(action)
    return result


def serve(debounce: float = DEFAULT_DEBOUNCE) -> None:
    """Run the server on standard input and output until the client says `exit`."""
    registry.all_rules()  # imported before the first document arrives
    gc.collect()
    gc.freeze()  # what is loaded now lives as long as the server: never scan it again
    server = build(debounce)
    try:
        server.start_io()
    finally:
        server.stop()
