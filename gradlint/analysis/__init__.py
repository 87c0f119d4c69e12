"""The shared analysis facts that rules query (DESIGN §3)."""

import libcst as cst

from gradlint.analysis.facts import Facts
from gradlint.analysis.interpreter import Interpreter

__all__ = ["Facts", "analyze"]


def analyze(module: cst.Module) -> Facts:
    """Every fact about one module, from one pass of the abstract interpreter."""
    return Interpreter(module).run()
