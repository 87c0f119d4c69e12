"""The runtime report as a person reads it, after the program's own output."""

from __future__ import annotations

import os

from gradlint.runtime_check.report import RuntimeReport


def shown_path(path: str) -> str:
    """Relative to the current folder when under it, as `gradlint check` shows paths."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith(os.pardir) else relative


def runtime_text(report: RuntimeReport) -> str:
    lines = []
    for event in report.events:
        times = f" ({event.count} times)" if event.count > 1 else ""
        lines.append(f"{shown_path(event.path)}:{event.line}: {event.code} {event.message}{times}")
        if event.detail:
            lines.append(f"    {event.detail}")
    for fault in report.faults:
        lines.append(f"gradlint: the tracer failed (the program was not affected): {fault}")
    count = len(report.events)
    summary = (
        "no autograd misuse seen at run time"
        if not count
        else (f"{count} autograd misuse{'s' if count > 1 else ''} seen at run time")
    )
    lines.append(f"gradlint: {summary}")
    return "\n".join(lines) + "\n"
