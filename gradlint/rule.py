"""The base class of every rule: a thin query over the analysis facts."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import libcst as cst

from gradlint.finding import severity_of
from gradlint.fixes import Replacement

if TYPE_CHECKING:
    from gradlint.analysis.facts import Facts


@dataclass(frozen=True)
class Report:
    """One finding as a rule sees it: the node to point at, and an optional sharper message."""

    node: cst.CSTNode
    message: str | None = None
    fix: Replacement | None = None


class Rule:
    """A rule: a code, a kebab-case name, a one-line message, docs and examples.

    Examples are whole runnable programs. In an INVALID example, each line that the rule
    must flag ends with a comment starting ``# error``; VALID examples must stay silent.
    ``raises`` holds substrings of the errors that PyTorch raises when an INVALID example
    runs (rules of GL1xx, whose misuse raises); tests run the examples under torch.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    message: ClassVar[str]
    raises: ClassVar[tuple[str, ...]] = ()
    fixable: ClassVar[bool] = False  # whether some of its findings carry a safe fix
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[str]] = []
    # INVALID example (its index) -> what `gradlint check --fix` changes in it: pairs of
    # (lines before, lines after).
    FIXED: ClassVar[dict[int, list[tuple[str, str]]]] = {}

    @property
    def severity(self) -> str:
        return severity_of(self.code)

    @classmethod
    def fixed_example(cls, index: int) -> str:
        """The INVALID example `index` as `--fix` leaves it."""
        source = cls.INVALID[index]
        for before, after in cls.FIXED[index]:
            assert source.count(before) == 1, f"{cls.code}: {before!r} is not one place"
            source = source.replace(before, after)
        return source

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """The first paragraph of the docs: what the rule finds, in one sentence."""
        if not cls.__doc__:
            return cls.message
        return " ".join(cls.doc().split("\n\n", 1)[0].split())

    def check(self, facts: Facts) -> Iterator[Report]:
        raise NotImplementedError
