"""`# noqa` comments: bare, or naming codes, code prefixes or rule names."""

from __future__ import annotations

import re

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[\w\-]+(?:[\s,]+[\w\-]+)*))?", re.IGNORECASE)

ALL = frozenset({"*"})


def noqa_by_line(source: str) -> dict[int, frozenset[str]]:
    """Line number (1-based) -> what its noqa comment names; ``{"*"}`` for a bare noqa."""
    found: dict[int, frozenset[str]] = {}
    if "noqa" not in source.lower():
        return found
    for number, line in enumerate(source.splitlines(), start=1):
        hash_at = line.find("#")
        if hash_at < 0:
            continue
        match = _NOQA.search(line, hash_at)
        if not match:
            continue
        codes = match.group("codes")
        if not codes:
            found[number] = ALL
        else:
            found[number] = frozenset(part.lower() for part in re.split(r"[\s,]+", codes) if part)
    return found


def is_suppressed(names: frozenset[str] | None, code: str, name: str) -> bool:
    if names is None:
        return False
    if names is ALL or "*" in names:
        return True
    code = code.lower()
    return name in names or any(code.startswith(entry) for entry in names if entry.startswith("gl"))
