"""What a lint run produces: findings, and errors that stop one file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def severity_of(code: str) -> str:
    """GL1xx raise, GL2xx train wrong: errors; GL3xx waste: warnings."""
    return "warning" if code.startswith("GL3") else "error"


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    code: str
    name: str
    message: str
    end_line: int
    end_column: int
    fixable: bool = False
    runtime: str | None = None
    cell: int | None = None

    @property
    def severity(self) -> str:
        return severity_of(self.code)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        ordered: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "fixable": self.fixable,
            "runtime": self.runtime,
        }
        if data["cell"] is not None:
            ordered["cell"] = self.cell
        return ordered


class LintError(Exception):
    """A file that cannot be linted (unreadable, not UTF-8, not Python...)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
