"""`pytest --gradlint-trace[=REPORT]`: run a whole test session under the tracer, write the
runtime report (default `gradlint-runtime.json`) and list the misuses seen at the end.

Registered through the `pytest11` entry point; it imports torch only when asked to trace.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

DEFAULT_REPORT = "gradlint-runtime.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradlint")
    group.addoption(
        "--gradlint-trace",
        nargs="?",
        const=DEFAULT_REPORT,
        default=None,
        metavar="REPORT",
        help="run the session under gradlint's autograd tracer and write its runtime report "
        f"(default {DEFAULT_REPORT}; give it as --gradlint-trace=REPORT)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("gradlint_trace")
    if path:
        config.pluginmanager.register(_Trace(path), "gradlint-trace")


class _Trace:
    def __init__(self, path: str) -> None:
        self.path = path
        self.report: Any = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, None, None]:
        from gradlint.runtime_check.report import RuntimeReport
        from gradlint.runtime_check.tracer import trace

        with trace() as tracer:
            yield
        self.report = RuntimeReport(
            events=tracer.events.events(), lines=tracer.lines, faults=tracer.faults
        )
        try:
            self.report.write(self.path)
        except OSError as exc:
            self.report.faults.append(f"cannot write the runtime report to {self.path}: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        from gradlint.runtime_check.text import runtime_text

        terminalreporter.section("gradlint runtime trace")
        terminalreporter.write(runtime_text(self.report))
        terminalreporter.write_line(f"runtime report: {self.path}")
