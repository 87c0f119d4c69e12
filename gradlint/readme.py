"""Regenerate the rule table in README.md from the registry: ``python -m gradlint.readme``.

``--check`` only reports whether the table is current (exit 1 when it is not), for CI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gradlint import registry

START = "<!-- rules:start -->"
END = "<!-- rules:end -->"

# The README lives at the repository root, next to the gradlint/ package folder.
DEFAULT_README = Path(__file__).resolve().parent.parent / "README.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip()


def rules_table() -> str:
    lines = ["| Code | Name | Summary |", "|------|------|---------|"]
    for rule in registry.all_rules():
        lines.append(f"| {rule.code} | {rule.name} | {_cell(rule.summary())} |")
    return "\n".join(lines)


def current_table(text: str) -> str:
    """The table between the markers, as written."""
    start, end = _markers(text)
    return text[start + len(START) : end].strip("\n")


def with_table(text: str) -> str:
    """The README text with the table between the markers regenerated."""
    start, end = _markers(text)
    return text[: start + len(START)] + "\n" + rules_table() + "\n" + text[end:]


def _markers(text: str) -> tuple[int, int]:
    start = text.find(START)
    end = text.find(END, start + 1)
    if start < 0 or end < 0:
        raise ValueError(f"README has no {START} ... {END} section")
    return start, end


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlint.readme", description=__doc__)
    parser.add_argument("--readme", type=Path, default=DEFAULT_README)
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        updated = with_table(text)
    except (OSError, ValueError) as exc:
        print(f"gradlint.readme: {exc}", file=sys.stderr)
        return 2
    if updated == text:
        return 0
    if args.check:
        print(
            f"{args.readme}: the rule table is stale; run python -m gradlint.readme",
            file=sys.stderr,
        )
        return 1
    args.readme.write_text(updated, encoding="utf-8")
    print(f"updated the rule table in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
