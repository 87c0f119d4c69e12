"""Run a script or a module as `python script.py` / `python -m module` would, under the
tracer: the same `sys.argv`, `__main__`, `sys.path[0]` and exit code, and the program's own
exception printed as Python prints it."""

from __future__ import annotations

import os
import runpy
import sys
from types import TracebackType

from gradlint.runtime_check.report import RuntimeReport
from gradlint.runtime_check.tracer import Tracer, trace


def run_program(target: str, args: list[str], module: bool = False) -> RuntimeReport:
    """Run `target` (a script's path, or a module's name when `module`) with `args`; the
    report holds the program's exit code. Never raises for what the program does."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    # `python script.py` puts the script's folder first on the path; `python -m`, the
    # current folder. runpy sets argv[0] (the script as given, the module's file).
    sys.argv = [target, *args]
    sys.path[0] = os.getcwd() if module else os.path.dirname(os.path.abspath(target))
    try:
        with trace() as tracer:
            # What the program left (its globals, or its error with the frames) is kept
            # until the trace ends: the tracer's last look is at the models it trained.
            exit_code, left = _run(target, module, tracer)
        del left
    finally:
        sys.argv[:], sys.path[:] = saved_argv, saved_path
    return RuntimeReport(
        events=tracer.events.events(),
        lines=tracer.lines,
        faults=tracer.faults,
        exit_code=exit_code,
    )


def _run(target: str, module: bool, tracer: Tracer) -> tuple[int, object]:
    try:
        if module:
            left = runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            left = runpy.run_path(target, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code), exc
    except KeyboardInterrupt as exc:
        _print_exception(exc)
        return 130, exc  # as a shell reports a program that Ctrl-C stopped
    except BaseException as exc:  # the program's own error: Python's report, exit 1
        try:
            tracer.explain_uncaught(exc)
        except Exception:
            tracer.fault("explaining the program's error")
        _print_exception(exc)
        return 1, exc
    return 0, left


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # `sys.exit("message")`
    return 1


def _print_exception(exc: BaseException) -> None:
    """The traceback from the program's own first frame, as Python would show it."""
    tb = exc.__traceback__
    while tb is not None and _is_runner_frame(tb):
        tb = tb.tb_next
    tb = _without_tracer_frames(tb)
    # Python's hook prints the traceback the exception holds, whatever it is handed.
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)


def _without_tracer_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback less the tracer's own frames (its torch-function handler sits between
    the user's call and PyTorch's): the program's error, as it shows untraced."""
    frames = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_TRACER_FOLDER):
            frames.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for old in reversed(frames):
        rebuilt = TracebackType(rebuilt, old.tb_frame, old.tb_lasti, old.tb_lineno)
    return rebuilt


_TRACER_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_runner_frame(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    return filename in (__file__, runpy.__file__) or filename.startswith("<frozen runpy")
