"""A small LSP client for tests and benchmarks: `gradlint server` started as a subprocess
(`python -m gradlint server`), driven over stdio by pygls's own client, with waits for
the diagnostics the server publishes (with timeouts: no fixed sleeps)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

TIMEOUT = 20.0  # seconds to wait for anything the server should send


class Published:
    """One textDocument/publishDiagnostics, with when it arrived."""

    def __init__(self, params: types.PublishDiagnosticsParams) -> None:
        self.params = params
        self.at = time.perf_counter()

    @property
    def diagnostics(self) -> list[types.Diagnostic]:
        return list(self.params.diagnostics)


class Client:
    def __init__(self, root: Path, *server_args: str) -> None:
        self.root = root
        self.server_args = server_args
        self.client = LanguageClient("gradlint-tests", "1")
        self.published: dict[str, list[Published]] = {}
        self.logs: list[str] = []
        self.registrations: list[types.Registration] = []
        self._arrived = asyncio.Event()
        self.versions: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.setdefault(params.uri, []).append(Published(params))
            self._arrived.set()

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            self.logs.append(params.message)
            self._arrived.set()

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(params: types.ShowMessageParams) -> None:
            self.logs.append(params.message)

        @self.client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def on_register(params: types.RegistrationParams) -> None:
            self.registrations.extend(params.registrations)
            self._arrived.set()

    async def start(self) -> types.InitializeResult:
        env = dict(os.environ)
        env.pop("PYTHONSTARTUP", None)
        await self.client.start_io(
            sys.executable, "-m", "gradlint", "server", *self.server_args,
            cwd=str(self.root), env=env,
        )  # fmt: skip
        capabilities = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(
                did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                    dynamic_registration=True
                )
            ),
            text_document=types.TextDocumentClientCapabilities(
                code_action=types.CodeActionClientCapabilities(
                    code_action_literal_support=types.ClientCodeActionLiteralOptions(
                        code_action_kind=types.ClientCodeActionKindOptions(
                            value_set=[types.CodeActionKind.QuickFix, "source.fixAll"]
                        )
                    )
                ),
                hover=types.HoverClientCapabilities(
                    content_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText]
                ),
                publish_diagnostics=types.PublishDiagnosticsClientCapabilities(
                    version_support=True
                ),
            ),
            notebook_document=types.NotebookDocumentClientCapabilities(
                synchronization=types.NotebookDocumentSyncClientCapabilities()
            ),
        )
        result = await asyncio.wait_for(
            self.client.initialize_async(
                types.InitializeParams(
                    capabilities=capabilities,
                    process_id=os.getpid(),
                    root_uri=self.root.as_uri(),
                    workspace_folders=[
                        types.WorkspaceFolder(uri=self.root.as_uri(), name=self.root.name)
                    ],
                )
            ),
            TIMEOUT,
        )
        self.client.initialized(types.InitializedParams())
        return result

    async def stop(self) -> int | None:
        """shutdown, then exit; the server's exit code."""
        await asyncio.wait_for(self.client.shutdown_async(None), TIMEOUT)
        self.client.exit(None)
        server = self.client._server
        code: int | None = None
        if server is not None:
            code = await asyncio.wait_for(server.wait(), TIMEOUT)
        await asyncio.wait_for(self.client.stop(), TIMEOUT)
        return code

    async def kill(self) -> None:
        server = self.client._server
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()
        try:
            await asyncio.wait_for(self.client.stop(), TIMEOUT)
        except Exception:
            pass

    # -- documents -------------------------------------------------------------------

    def open(self, path: Path, text: str, language: str = "python") -> str:
        uri = path.as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> int:
        """Replace the whole text; the new version."""
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        return self.versions[uri]

    def edit(self, uri: str, edits: list[types.TextEdit]) -> int:
        """Apply edits as incremental changes (in the order a client sends them: from the
        end of the document, so that earlier positions stay right); the new version."""
        self.versions[uri] += 1
        ordered = sorted(
            edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
        )
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=e.range, text=e.new_text)
                    for e in ordered
                ],
            )
        )
        return self.versions[uri]

    def save(self, uri: str) -> None:
        self.client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    # -- waiting ---------------------------------------------------------------------

    async def wait_for(self, check: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Wait until ``check()`` returns something true (re-checked as messages come)."""
        deadline = time.perf_counter() + timeout
        while True:
            value = check()
            if value:
                return value
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"timed out; logs: {self.logs[-5:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def diagnostics(
        self, uri: str, version: int | None = None, after: int = 0, timeout: float = TIMEOUT
    ) -> Published:
        """The first diagnostics for ``uri`` published after the ``after``-th one (and for
        ``version``, when given)."""

        def found() -> Published | None:
            for published in self.published.get(uri, [])[after:]:
                if version is None or published.params.version == version:
                    return published
            return None

        result: Published = await self.wait_for(found, timeout)
        return result

    def count(self, uri: str) -> int:
        return len(self.published.get(uri, []))
