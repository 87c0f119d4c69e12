"""Every rule, found by code, code prefix or name."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from functools import cache

from gradlint.rule import Rule


class UnknownRuleError(ValueError):
    """A selector that names no rule."""


@cache
def all_rules() -> tuple[type[Rule], ...]:
    """The rule classes, ordered by code."""
    import gradlint.rules as package

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Rule)
                and value is not Rule
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return tuple(sorted(found, key=lambda rule: rule.code))


def find_rule(selector: str) -> type[Rule]:
    """The one rule with this code or name (case-insensitive)."""
    key = selector.strip().lower()
    for rule in all_rules():
        if rule.code.lower() == key or rule.name == key:
            return rule
    raise UnknownRuleError(f"unknown rule {selector!r}")


def expand(selector: str) -> set[str]:
    """The codes a selector names: a code, a code prefix such as ``GL1``, ``ALL``, or a name."""
    key = selector.strip()
    if key.upper() == "ALL":
        return {rule.code for rule in all_rules()}
    if key.upper().startswith("GL"):
        codes = {rule.code for rule in all_rules() if rule.code.startswith(key.upper())}
    else:
        codes = {rule.code for rule in all_rules() if rule.name == key.lower()}
    if not codes:
        raise UnknownRuleError(f"unknown rule code or name {selector!r}")
    return codes


def expand_all(selectors: Iterable[str]) -> set[str]:
    codes: set[str] = set()
    for selector in selectors:
        codes |= expand(selector)
    return codes
