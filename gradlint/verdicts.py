"""Static findings judged by what the tracer saw when the code ran (DESIGN §6):
**confirmed** (the misuse happened), **refuted** (its line ran and it never happened),
**not-reached** (its line never ran). A finding whose misuse the tracer cannot see when it
happens, on a line that ran, stays unjudged (`None`)."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import cache

from gradlint.finding import Finding
from gradlint.runtime_check.report import RuntimeReport
from gradlint.runtime_check.sources import parsed

# Misuses the tracer sees whenever they happen: PyTorch raises on each.
CHECKED = frozenset({"GL101", "GL102", "GL103", "GL105", "GL106", "GL107", "GL108", "GL109"})

CONFIRMED, REFUTED, NOT_REACHED = "confirmed", "refuted", "not-reached"


def judge(findings: Iterable[Finding], report: RuntimeReport) -> list[Finding]:
    events: dict[tuple[str, str], set[int]] = {}
    for event in report.events:
        events.setdefault((_real(event.path), event.code), set()).add(event.line)
    lines = {_real(path): numbers for path, numbers in report.lines.items()}
    findings = list(findings)
    # Lines where a static finding of the same code stands: an event there is that finding's.
    claimed: dict[tuple[str, str], set[int]] = {}
    for finding in findings:
        claimed.setdefault((_real(finding.path), finding.code), set()).add(finding.line)
    judged = []
    for finding in findings:
        path = _real(finding.path)
        seen = events.get((path, finding.code), set())
        verdict: str | None
        if finding.line in seen or seen - claimed[(path, finding.code)]:
            # At its line; or elsewhere in the file where no finding of that code stands: the
            # same misuse, surfacing where PyTorch noticed it (a backward, for a graph cut).
            verdict = CONFIRMED
        elif finding.cell is not None:
            verdict = None  # a notebook's cells do not run as a file
        elif _statement_start(path, finding.line) not in lines.get(path, ()):
            verdict = NOT_REACHED
        elif finding.code in CHECKED:
            verdict = REFUTED
        else:
            verdict = None
        judged.append(replace(finding, runtime=verdict))
    return _chained(judged, events)


_LINE_NAMED = re.compile(r"\bline (\d+)")


def _chained(judged: list[Finding], events: dict[tuple[str, str], set[int]]) -> list[Finding]:
    """A finding that ran without an event of its own, but names the line of an event of
    its code (`uses up the generator that the optimizer at line 80 then gets empty`), is
    part of that misuse: confirmed with it."""
    return [
        replace(finding, runtime=CONFIRMED)
        if finding.runtime == REFUTED
        and any(
            int(line) in events.get((_real(finding.path), finding.code), ())
            for line in _LINE_NAMED.findall(finding.message)
        )
        else finding
        for finding in judged
    ]


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


@cache
def _starts(path: str) -> dict[int, int]:
    """Line -> the first line of the innermost statement holding it: the line a line
    tracer records when the statement runs."""
    tree = parsed(path)
    if tree is None:
        return {}
    starts: dict[int, int] = {}
    for node in ast.walk(tree):  # outer statements first: inner ones overwrite their lines
        if isinstance(node, ast.stmt):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                starts[line] = node.lineno
    return starts


def _statement_start(path: str, line: int) -> int:
    return _starts(path).get(line, line)
