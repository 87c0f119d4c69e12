"""Path patterns for `exclude`, `extend-exclude` and `per-file-ignores`.

The rules are gitignore-like, because that is what people already write:

- a pattern without ``/`` (``build``, ``*_pb2.py``) matches a file or folder *name*,
  wherever it is;
- a pattern with ``/`` (``src/gen``, ``tests/**/data``) matches a path relative to the
  folder of the pyproject.toml that declares it; a leading ``/`` or ``./`` changes nothing;
- ``*`` and ``?`` stay inside one path part, ``**`` spans any number of parts.
"""

from __future__ import annotations

import re
from functools import lru_cache


class Glob:
    """One compiled pattern."""

    __slots__ = ("anchored", "regex", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        cleaned = text.strip().replace("\\", "/")
        while cleaned.startswith("./"):
            cleaned = cleaned[2:]
        cleaned = cleaned.strip("/") if cleaned.startswith("/") else cleaned.rstrip("/")
        # A leading "/" anchors the pattern like any other "/" does.
        self.anchored = "/" in cleaned or text.strip().startswith("/")
        self.regex = re.compile(_translate(cleaned))

    def match_name(self, name: str) -> bool:
        return not self.anchored and self.regex.fullmatch(name) is not None

    def match_path(self, parts: tuple[str, ...] | None, *, ancestors: bool) -> bool:
        """Whether the path (parts relative to the pattern's root) matches.

        ``parts`` is None for a path outside the root: only name patterns can match it.
        With ``ancestors``, a match on any enclosing folder counts too (a file inside an
        excluded folder is excluded); discovery prunes folders as it walks, so it checks
        only the entry itself.
        """
        if not parts:
            return False
        if not self.anchored:
            names = parts if ancestors else parts[-1:]
            return any(self.regex.fullmatch(name) for name in names)
        if not ancestors:
            return self.regex.fullmatch("/".join(parts)) is not None
        return any(self.regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts) + 1))


@lru_cache(maxsize=1024)
def compile_glob(text: str) -> Glob:
    return Glob(text)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:  # an unclosed "[" is a literal, as in fnmatch
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)
