"""Freezes that did nothing: `param.require_grad = False` (a misspelt flag, GL209) and
`module.requires_grad = False` (a flag modules do not have, GL215) set plain attributes,
and the parameters train on. Seen after the run on the modules it built, and placed at the
assignments that ran, found in the user's files."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache

import torch
from gradlint.runtime_check.modules import parameters_of
from gradlint.runtime_check.sources import parsed

Line = tuple[str, int]
FLAG = "requires_grad"


def misspelt_flags(modules: Iterable[torch.nn.Module]) -> set[str]:
    """The names, like `requires_grad` but not it, set on parameters that still train."""
    found: set[str] = set()
    for module in modules:
        for param in module.parameters(recurse=False):
            if param.requires_grad:
                found.update(name for name in vars(param) if _like_the_flag(name))
    return found


def flagged_modules(modules: Iterable[torch.nn.Module]) -> bool:
    """Whether a module was given a `requires_grad` attribute while its parameters train."""
    return any(
        isinstance(vars(module).get(FLAG), bool)
        and any(param.requires_grad for param in parameters_of(module))
        for module in modules
    )


def _like_the_flag(name: str) -> bool:
    squeezed = name.lower().replace("_", "")
    return name != FLAG and squeezed.startswith("req") and "grad" in squeezed


def assignments(lines: dict[str, set[int]], names: set[str]) -> list[Line]:
    """The statements that ran and assign one of `names` as an attribute (`x.name = ...`)."""
    found = []
    for path, ran in lines.items():
        for line, attr in _attribute_assignments(path):
            if attr in names and line in ran:
                found.append((path, line))
    return sorted(found)


@cache
def _attribute_assignments(path: str) -> tuple[tuple[int, str], ...]:
    tree = parsed(path)
    if tree is None:
        return ()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Attribute) and "grad" in target.attr:
                found.append((node.lineno, target.attr))
    return tuple(found)
