"""`gradlint server`: the language server (LSP over standard input and output), for
editors. It needs pygls (`pip install "torch-gradlint[server]"`); the linter does not.

Modules: `linting` (the engine on a document's text, no LSP), `documents` (snapshots of
text documents and notebooks), `convert` (findings as diagnostics and edits), `actions`
(quick fixes, noqa, fix all), `hover` (rule docs), `app` (pygls wiring and scheduling).
"""
