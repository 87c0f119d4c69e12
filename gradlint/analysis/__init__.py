"""The shared analysis facts that rules query (DESIGN §3)."""

from gradlint.analysis.facts import Facts, analyze

__all__ = ["Facts", "analyze"]
