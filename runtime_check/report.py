"""The runtime report (DESIGN §6): the tracer's events and the lines that ran, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gradlint.runtime_check.events import Event

VERSION = 1


@dataclass
class RuntimeReport:
    events: list[Event] = field(default_factory=list)
    lines: dict[str, set[int]] = field(default_factory=dict)  # by real path
    faults: list[str] = field(default_factory=list)  # the tracer's own, if any
    exit_code: int | None = None  # of the traced program, when gradlint ran it

    def to_json(self) -> dict[str, object]:
        return {
            "version": VERSION,
            "events": [event.to_json() for event in self.events],
            "lines": {path: sorted(lines) for path, lines in sorted(self.lines.items())},
            "faults": self.faults,
            "exit_code": self.exit_code,
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


class ReportError(Exception):
    """A runtime report that cannot be read: the message says why."""


def read_report(path: str | Path) -> RuntimeReport:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the runtime report: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a runtime report (not JSON: {exc})") from None
    try:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"expected version {VERSION}")
        events = [
            Event(
                code=str(item["code"]),
                path=str(item["path"]),
                line=int(item["line"]),
                message=str(item["message"]),
                count=int(item.get("count", 1)),
                detail=str(item.get("detail", "")),
            )
            for item in data["events"]
        ]
        lines = {str(p): {int(n) for n in numbers} for p, numbers in data["lines"].items()}
        faults = [str(fault) for fault in data.get("faults", [])]
        exit_code = data.get("exit_code")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path}: not a gradlint runtime report ({exc})") from None
    return RuntimeReport(events, lines, faults, exit_code if isinstance(exit_code, int) else None)
