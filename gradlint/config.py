"""Effective configuration: which rules run on which files (stub; see config loading)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    """The rules selected for a run. ``select`` holds codes (already expanded)."""

    select: frozenset[str] | None = None  # None: every rule
    ignore: frozenset[str] = frozenset()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = field(default=())

    def is_enabled(self, code: str, path: str) -> bool:
        if self.select is not None and code not in self.select:
            return False
        if code in self.ignore:
            return False
        return True
