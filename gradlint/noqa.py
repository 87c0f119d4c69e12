"""`# noqa` comments: bare, or naming codes, code prefixes or rule names."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Mapping

from gradlint.fixes import source_lines

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[\w\-]+(?:[\s,]+[\w\-]+)*))?", re.IGNORECASE)

ALL = frozenset({"*"})


def noqa_by_line(source: str) -> dict[int, frozenset[str]]:
    """Line number (1-based) -> what its noqa comment names; ``{"*"}`` for a bare noqa."""
    found: dict[int, frozenset[str]] = {}
    if "noqa" not in source.lower():
        return found
    for number, line in enumerate(source_lines(source), start=1):
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


def comment_lines(source: str) -> set[int]:
    """The lines whose end a comment can follow: not inside a multi-line string."""
    found: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT):
                found.add(token.start[0])
    except (tokenize.TokenError, SyntaxError):
        pass  # the lines seen so far are still right
    return found


def add_noqa(source: str, codes: Mapping[int, Iterable[str]]) -> tuple[str, int, list[int]]:
    """The source with `# noqa: CODE` on each line that `codes` names (merged into a noqa
    comment already there), how many lines changed, and the lines that cannot take a
    comment (they end inside a string)."""
    lines = source_lines(source)
    open_lines = comment_lines(source)
    changed, skipped = 0, []
    for number, wanted in sorted(codes.items()):
        if number > len(lines) or number not in open_lines:
            skipped.append(number)
            continue
        line = lines[number - 1]
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        new_codes = sorted(set(wanted))
        hash_at = body.find("#")
        match = _NOQA.search(body, hash_at) if hash_at >= 0 else None
        if match is not None:
            old = match.group("codes")
            if not old:
                continue  # a bare noqa already silences everything
            known = [part for part in re.split(r"[\s,]+", old) if part]
            lowered = {part.lower() for part in known}
            merged = known + [code for code in new_codes if code.lower() not in lowered]
            body = body[: match.start()] + f"# noqa: {', '.join(merged)}" + body[match.end() :]
        else:
            body = f"{body.rstrip()}  # noqa: {', '.join(new_codes)}"
        lines[number - 1] = body + ending
        changed += 1
    return "".join(lines), changed, skipped
