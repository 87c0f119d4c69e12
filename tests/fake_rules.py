"""Tiny fake rules for the front-end tests, independent of the real rules and analysis.

`install(monkeypatch)` makes the registry hold only these rules, and gives the engine a
minimal analysis, so CLI tests keep their meaning when real rules (GL101...) arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from gradlint.fixes import Replacement
from gradlint.rule import Report, Rule


class FakeFacts:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        self._positions = wrapper.resolve(PositionProvider)

    def parsed_from(self, source: str) -> None:
        pass

    def position(self, node: cst.CSTNode) -> tuple[int, int, int, int]:
        span = self._positions[node]
        return (span.start.line, span.start.column + 1, span.end.line, span.end.column + 1)


def calls_to(module: cst.Module, method: str) -> list[cst.Call]:
    found: list[cst.Call] = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value == method:
                found.append(node)

    module.visit(Visitor())
    return found


class FakeNumpy(Rule):
    """Finds every `.numpy()` call.

    A fake rule for tests.
    """

    code = "GL901"
    name = "fake-numpy-call"
    message = "`.numpy()` call"
    fixable = True

    def check(self, facts: FakeFacts) -> Iterator[Report]:  # type: ignore[override]
        for node in calls_to(facts.module, "numpy"):
            yield Report(node, fix=Replacement(node, "x.tolist()", "Use a list"))


class FakeItem(Rule):
    """Finds every `.item()` call."""

    code = "GL902"
    name = "fake-item-call"
    message = "`.item()` call"

    def check(self, facts: FakeFacts) -> Iterator[Report]:  # type: ignore[override]
        for node in calls_to(facts.module, "item"):
            yield Report(node)


class FakeDetach(Rule):
    """Finds every `.detach()` call (a GL3xx code, so a warning)."""

    code = "GL399"
    name = "fake-detach-call"
    message = "`.detach()` call"

    def check(self, facts: FakeFacts) -> Iterator[Report]:  # type: ignore[override]
        for node in calls_to(facts.module, "detach"):
            yield Report(node)


class FakeCrash(Rule):
    """Crashes on any module that calls `crash()`."""

    code = "GL998"
    name = "fake-crash"
    message = "never reported"

    def check(self, facts: FakeFacts) -> Iterator[Report]:  # type: ignore[override]
        if "crash()" in facts.module.code:
            raise RuntimeError("boom")
        return iter(())


FAKE_RULES: tuple[type[Rule], ...] = (FakeDetach, FakeNumpy, FakeItem)


def install(monkeypatch: pytest.MonkeyPatch, rules: Sequence[type[Rule]] = FAKE_RULES) -> None:
    import gradlint.engine
    import gradlint.registry

    ordered = tuple(sorted(rules, key=lambda rule: rule.code))
    monkeypatch.setattr(gradlint.registry, "all_rules", lambda: ordered)
    monkeypatch.setattr(gradlint.engine, "all_rules", lambda: ordered, raising=False)
    monkeypatch.setattr(gradlint.engine, "analyze", FakeFacts, raising=False)
