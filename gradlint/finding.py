"""What a lint run produces: findings, and errors that stop one file."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

from gradlint.fixes import Fix


def severity_of(code: str) -> str:
    """GL1xx raise, GL2xx train wrong: errors; GL3xx waste: warnings."""
    return "warning" if code.startswith("GL3") else "error"


@functools.total_ordering
@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    code: str
    name: str
    message: str
    end_line: int
    end_column: int
    fixable: bool = False  # carries a safe fix
    runtime: str | None = None
    cell: int | None = None  # in a notebook: the code cell (1-based); line, column in it
    fix: Fix | None = field(default=None, compare=False)
    # In a notebook: the line of the .ipynb file itself (its JSON) that holds the finding's
    # source line, for tools that show the raw file (SARIF viewers, GitHub's annotations).
    file_line: int | None = field(default=None, compare=False)

    def _order(self) -> tuple[Any, ...]:
        # A notebook's lines count within each cell: the cell comes before the line.
        return (
            self.path,
            self.cell or 0,
            self.line,
            self.column,
            self.code,
            self.name,
            self.message,
            self.end_line,
            self.end_column,
            self.fixable,
            self.runtime or "",
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return self._order() < other._order()

    @property
    def severity(self) -> str:
        return severity_of(self.code)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["fix"]
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
        ordered["fix"] = self.fix.to_json() if self.fix is not None else None
        return ordered


class LintError(Exception):
    """A file that cannot be linted (unreadable, not UTF-8, not Python...)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type[LintError], tuple[str, str]]:
        # Pickled on its way back from a worker process; the default would call
        # __init__ with the one formatted argument.
        return (LintError, (self.path, self.message))
