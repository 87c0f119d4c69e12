"""`gradlint check -`: lint standard input as if it were a file (for editors)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gradlint.config import Config, ConfigResolver, Selection
from gradlint.discovery import SourceFile
from gradlint.files import decode_source
from gradlint.finding import LintError
from gradlint.notebook import encoding_of, is_notebook
from gradlint.parallel import Task, lint_task
from gradlint.run import Fixing, RunResult, fix_notebook_data, fix_text

STDIN_NAME = "<stdin>"


@dataclass
class StdinRun:
    result: RunResult
    # With --fix: the text to print, in the input's encoding; the input itself when
    # nothing was fixed or it could not be read, so that an editor replacing its buffer
    # with it never loses the code.
    output: bytes | None = None


def run_stdin(
    data: bytes,
    filename: str | None,
    selection: Selection | None = None,
    *,
    fixing: Fixing | None = None,
    resolver: ConfigResolver | None = None,
) -> StdinRun:
    """Lint ``data`` as the file ``filename`` (its configuration, its path in reports),
    or as `<stdin>` configured from the current folder. Never reads or writes the cache:
    an editor sends a new text on every keystroke."""
    resolver = resolver or ConfigResolver(selection)
    if filename:
        display = os.path.normpath(filename)
        config = resolver.for_file(filename)
        file = SourceFile(display=display, path=os.path.abspath(filename))
    else:
        config = resolver.for_folder(resolver.cwd)
        file = SourceFile(display=STDIN_NAME, path=STDIN_NAME)
    run = StdinRun(RunResult(files=1))
    if fixing is None:
        findings, errors = lint_task(Task(file, config, data))
        run.result.findings.extend(findings)
        run.result.errors.extend(errors)
    else:
        _fix(data, file.display, config, fixing, run)
    run.result.findings.sort()
    run.result.errors.sort(key=lambda error: (error.path, error.message))
    return run


def _fix(data: bytes, display: str, config: Config, fixing: Fixing, run: StdinRun) -> None:
    if fixing.write:
        run.output = data
    if is_notebook(display):
        # A notebook's bytes are UTF-8 JSON, whatever a coding comment in a cell says.
        encoding = encoding_of(data)

        def write_notebook(text: str) -> None:
            run.output = text.encode(encoding)

        fix_notebook_data(data, display, config, fixing, run.result, write_notebook)
        return
    try:
        source, encoding = decode_source(data, display)
    except LintError as exc:
        run.result.errors.append(exc)
        return

    def write(text: str) -> None:
        run.output = text.encode(encoding)

    fix_text(source, display, config, fixing, run.result, write)
