"""In-place changes, remembered so that PyTorch's "modified by an inplace operation" error
can name the line that changed the tensor, not only the backward that found out."""

from __future__ import annotations

import ast
import itertools
import re
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.frames import user_frame
from gradlint.runtime_check.graphs import Site, next_sequence, user_stack
from gradlint.runtime_check.sources import function_around, parameter_defaults, parsed

# Methods that end in `_` but change no tensor's data.
_NOT_CHANGES = frozenset(
    {"requires_grad_", "retain_grad", "share_memory_", "record_stream", "register_hook", "detach_"}
)
_AUGMENTED = frozenset(
    f"__i{op}__"
    for op in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split()
)
_VERSIONS = re.compile(r"is at version (\d+); expected version (\d+)")
_SHAPE = re.compile(r"\[torch\.\w+ \[([\d, ]*)\]\]")
_MADE_BY = re.compile(r"which is output \d+ of (\w+)")


@dataclass
class Change:
    version: int  # the tensor's version right after the change
    where: tuple[str, int]  # the user's line that made it
    shape: tuple[int, ...]
    order: int
    layer: tuple[str, int] | None  # where the `inplace=True` layer that made it was registered
    made_by: str = ""  # the graph node that made the tensor before the change, if any
    # The autograd sequence number after the change: graph nodes numbered from it on were
    # made after it.
    sequence: int | None = None
    step: bool = False  # made by an optimizer's step
    stack: Site = ()  # the user's frames that made it, innermost first


def changes_in_place(func: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
    name = getattr(func, "__name__", "")
    if name.endswith("_") and not name.startswith("__"):
        return name not in _NOT_CHANGES
    return name in _AUGMENTED or name == "__setitem__" or kwargs.get("inplace") is True


class InplaceLog:
    """The latest in-place changes. (Not tied to the tensors: the one an error names is often
    alive only inside the autograd graph, which holds no Python object of it.)"""

    def __init__(self, layer_sites: dict[int, tuple[str, int]], keep: int = 1024) -> None:
        self._changes: deque[Change] = deque(maxlen=keep)
        self._order = itertools.count()
        self._layer_sites = layer_sites  # id(module) -> where it was registered

    def note(self, args: tuple[Any, ...], layer: bool = False) -> None:
        """After an in-place call: remember its first argument (or each tensor of a list,
        for the `_foreach_` ops optimizers use) as changed here; with `layer` (a call with
        `inplace=True`, as layers built so make), also the layer it ran in."""
        if not args:
            return
        first = args[0]
        targets = first if isinstance(first, (list, tuple)) else [first]
        where: tuple[str, int] | None = None
        for tensor in targets:
            if not isinstance(tensor, torch.Tensor) or tensor.is_inference():
                continue  # (an inference tensor has no version: autograd never saves one)
            if where is None:
                where = user_frame()
                if where is None:
                    return
                stack = user_stack()
            self._changes.append(
                Change(
                    tensor._version,
                    where,
                    tuple(tensor.shape),
                    next(self._order),
                    self._inplace_layer() if layer else None,
                    _made_before(tensor),
                    next_sequence(),
                    stack=stack,
                )
            )

    def stepped(self, params: list[Any]) -> None:
        """After an optimizer step: its parameters changed in place, at the user's `step()`
        line (the step's own ops are not watched one by one)."""
        where = user_frame() if params else None
        if where is None:
            return
        sequence = next_sequence()  # (the step's own ops make no graph node)
        for param in params:
            self._changes.append(
                Change(
                    param._version,
                    where,
                    tuple(param.shape),
                    next(self._order),
                    None,
                    sequence=sequence,
                    step=True,
                )
            )

    def _inplace_layer(self) -> tuple[str, int] | None:
        """Where the `inplace=True` layer whose forward is running was registered, if one is."""
        frame: FrameType | None = sys._getframe(1)
        for _ in range(16):  # the layer's forward is a few frames out, inside torch.nn
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if isinstance(owner, torch.nn.Module) and getattr(owner, "inplace", False) is True:
                site = self._layer_sites.get(id(owner))
                return _made_inplace(site, type(owner).__name__) if site is not None else None
            frame = frame.f_back
        return None

    def culprits(self, message: str) -> list[Change]:
        """The changes that took a saved tensor from the version it was saved at to the one
        PyTorch's error names: the last, and the first where others came between (a
        residual `x += y` before an in-place ReLU). Each is the latest change to that
        version, preferring a tensor of the shape the error names, made by the op it names."""
        versions = _VERSIONS.search(message)
        if versions is None:
            return []
        now, saved = int(versions.group(1)), int(versions.group(2))
        shape_match = _SHAPE.search(message)
        shape = (
            _squeezed(tuple(int(n) for n in shape_match.group(1).split(",") if n.strip()))
            if shape_match
            else None
        )
        made_by = _MADE_BY.search(message)
        # (A view changed in place is named `AsStrided` after the change, not by its maker.)
        maker = made_by.group(1) if made_by is not None and made_by.group(1) != "AsStrided" else ""
        last = self._latest(now, shape, maker, before=None)
        if last is None:
            return []
        first = (
            self._latest(saved + 1, shape, maker, before=last.order) if now > saved + 1 else None
        )
        return [last] if first is None else [first, last]

    def _latest(
        self, version: int, shape: tuple[int, ...] | None, maker: str, before: int | None
    ) -> Change | None:
        candidates = [
            change
            for change in self._changes
            if change.version == version and (before is None or change.order < before)
        ]
        # Shapes without their 1s: `unsqueeze_` changes a tensor's shape with its version,
        # and the error names the shape the tensor was saved with.
        same_shape = [change for change in candidates if _squeezed(change.shape) == shape]
        if maker:
            named = [change for change in same_shape if change.made_by.startswith(maker)]
            same_shape = named or same_shape
        if not same_shape and shape is not None:
            # A transposed view of it was saved: `linear` saves its weight as `weight.t()`.
            dims = sorted(shape)
            same_shape = [c for c in candidates if sorted(_squeezed(c.shape)) == dims]
        chosen = same_shape or candidates
        return max(chosen, key=lambda change: change.order) if chosen else None


def _made_before(tensor: torch.Tensor) -> str:
    """The name of the node that made a tensor before an in-place op just changed it: the
    op's own node took its place, with the earlier one as its first input."""
    try:
        node = tensor.grad_fn
    except RuntimeError:
        # (A view made under no_grad whose base was changed in place with autograd on:
        # PyTorch forbids reading its graph.)
        return ""
    if node is None or not node.next_functions:
        return ""
    earlier = node.next_functions[0][0]
    return type(earlier).__name__ if earlier is not None else ""


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(size for size in shape if size != 1)


def _made_inplace(site: tuple[str, int], layer: str) -> tuple[str, int]:
    """Where a layer registered at `site` was made in-place: the `Layer(..., inplace=True)`
    call in the registering function (it may be a list built lines before, handed to
    `nn.Sequential`), or else a `module.inplace = True` in the file; else the site."""
    path, line = site
    tree = parsed(path)
    if tree is None:
        return site
    # (The innermost function holding the registration, or the module.)
    scope: ast.AST = function_around(tree, line) or tree
    calls = [
        node.lineno
        for node in ast.walk(scope)
        if isinstance(node, ast.Call)
        and _last_name(node.func) == layer
        and any(
            k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
    ]
    if len(calls) == 1:
        return path, calls[0]
    if not calls:
        # Made by a helper elsewhere in the file (`def block(..., inplace=True): return
        # [nn.ReLU(inplace=inplace), ...]`): its call, or the default it kept.
        helper = _made_by_helper(tree, layer)
        if helper is not None:
            return path, helper
        sets = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and node.value.value is True
            and any(isinstance(t, ast.Attribute) and t.attr == "inplace" for t in node.targets)
        ]
        if len(sets) == 1:
            return path, sets[0]
    return site


def _made_by_helper(tree: ast.Module, layer: str) -> int | None:
    """The one line of a file that makes `layer` in-place from outside the function that
    registers it: a `Layer(..., inplace=True)` call, or, where the call passes a helper's
    parameter on (`inplace=inplace`), the parameter's `True` default or the helper's one
    call that passes `inplace=True`."""
    found: set[int] = set()
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        defaults = {a.arg: d for a, d in parameter_defaults(function.args)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Call) or _last_name(node.func) != layer:
                continue
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg != "inplace":
                    continue
                if isinstance(value, ast.Constant) and value.value is True:
                    found.add(node.lineno)
                elif isinstance(value, ast.Name) and value.id in defaults:
                    passed = _passed_true(tree, function.name, value.id)
                    default = defaults[value.id]
                    if passed:
                        found.update(passed)
                    elif isinstance(default, ast.Constant) and default.value is True:
                        found.add(default.lineno)
    return found.pop() if len(found) == 1 else None


def _passed_true(tree: ast.Module, function: str, parameter: str) -> set[int]:
    """The lines of the calls of `function` that pass `parameter=True`."""
    return {
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _last_name(node.func) == function
        and any(
            k.arg == parameter and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
    }


def _last_name(expr: ast.expr) -> str:
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return expr.id if isinstance(expr, ast.Name) else ""
