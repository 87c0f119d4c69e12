"""`trace()`: watch a program's autograd through PyTorch's public hooks while it runs."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from gradlint.runtime_check.errors import classify
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame
from torch.overrides import TorchFunctionMode


class Tracer:
    """What one traced run saw: events, the lines that ran, and faults of the tracer itself."""

    def __init__(self, lines: bool = True) -> None:
        self.events = EventLog()
        self.faults: list[str] = []
        self.lines: dict[str, set[int]] = {}
        self._lines = _LineCollector() if lines else None

    def explain(self, error: BaseException) -> None:
        """Note a PyTorch autograd error at the user's line that raised it. (Each error
        passes through one watched call: PyTorch turns the mode off while a call runs.)"""
        found = classify(str(error))
        if found is None:
            return
        code, why = found
        where = user_frame(skip=2)
        if where is not None:
            self.events.add(code, where, why, detail=str(error).splitlines()[0])

    def fault(self, where: str) -> None:
        """A bug of the tracer: kept for the report, never raised into the user's program."""
        self.faults.append(f"{where}: {traceback.format_exc(limit=-3).strip()}")

    def start(self) -> None:
        if self._lines is not None:
            self._lines.start()

    def stop(self) -> None:
        if self._lines is not None:
            self.lines = self._lines.stop()


class _Watch(TorchFunctionMode):
    """Sees every torch function and tensor method the program calls (PyTorch leaves the
    mode off while it runs one, so calls inside torch are not seen twice)."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        try:
            return func(*args, **(kwargs or {}))
        except RuntimeError as error:
            try:
                self.tracer.explain(error)
            except Exception:
                self.tracer.fault("explaining an error")
            raise


class _LineCollector:
    """The lines that ran in the user's files, by coverage.py's tracer."""

    def __init__(self) -> None:
        import coverage

        omit = [
            os.path.join(os.path.dirname(path), "*")
            for path in (torch.__file__, os.path.dirname(os.path.abspath(__file__)))
        ]
        import gradlint

        omit.append(os.path.join(os.path.dirname(gradlint.__file__), "*"))
        self._coverage = coverage.Coverage(data_file=None, config_file=False, omit=omit)

    def start(self) -> None:
        self._coverage.start()

    def stop(self) -> dict[str, set[int]]:
        self._coverage.stop()
        data = self._coverage.get_data()
        return {path: set(data.lines(path) or ()) for path in data.measured_files()}


@contextmanager
def trace(lines: bool = True) -> Iterator[Tracer]:
    """Watch the body's autograd; every hook is removed on the way out, even on an error.

    >>> with trace() as tracer:
    ...     train()
    >>> tracer.events.events()
    """
    tracer = Tracer(lines=lines)
    tracer.start()
    try:
        with _Watch(tracer):
            yield tracer
    finally:
        tracer.stop()
