"""Where a tensor lost its graph: an op under `no_grad`, or one that gives no gradient
(`argmax`, `detach`, a comparison) on a tensor that required grad; and what was computed
from it since. So that "does not require grad and does not have a grad_fn" names the cut,
not only the backward that found out."""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import torch
from gradlint.runtime_check.frames import real_path, user_frame
from gradlint.runtime_check.graphs import user_stack
from torch.utils.weak import WeakIdKeyDictionary

_GRAD_MODE_CALLS = ("no_grad", "inference_mode", "set_grad_enabled")


class CutLog:
    def __init__(self) -> None:
        # By identity: a plain WeakKeyDictionary compares tensors with `==`, elementwise.
        self._cut_at: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def note(self, args: tuple[Any, ...], result: Any) -> None:
        """After a call whose result needs no grad: was it cut here, or made from a cut?"""
        if not isinstance(result, torch.Tensor) or result.requires_grad or not args:
            return
        inherited = None
        for value in _tensors(args):
            if value.requires_grad:
                where = _no_grad_block() if not torch.is_grad_enabled() else None
                where = where or user_frame()
                if where is not None:
                    self._cut_at[result] = where
                return
            if inherited is None:
                inherited = self._cut_at.get(value)
        if inherited is not None:
            self._cut_at[result] = inherited

    def inference_origin(self, args: tuple[Any, ...]) -> tuple[str, int] | None:
        """Where an inference tensor among a failed call's arguments was made, if known."""
        for value in _tensors(args):
            if value.is_inference():
                where = self._cut_at.get(value)
                if where is not None:
                    return where
        return None

    def cut_of(self, tensor: Any) -> tuple[str, int] | None:
        if isinstance(tensor, torch.Tensor):
            return self._cut_at.get(tensor)
        return None


def _tensors(args: tuple[Any, ...]) -> list[torch.Tensor]:
    found = []
    for value in args:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, torch.Tensor))
    return found


def _no_grad_block() -> tuple[str, int] | None:
    """The `with torch.no_grad():` that the user's code is running in, looking out from the
    innermost user frame (a model's forward, called from inside the block)."""
    for code, line in user_stack():
        path = real_path(code.co_filename)
        start = _grad_mode_block(path, line)
        if start is not None:
            return path, start
    return None


def _grad_mode_block(path: str, line: int) -> int | None:
    """The line of the innermost `with torch.no_grad():` (or `inference_mode`,
    `set_grad_enabled`) around `line` in the user's file, if there is one."""
    best = None
    for start, end in _grad_mode_blocks(path):
        if start <= line <= end and (best is None or start > best):
            best = start
    return best


@cache
def _grad_mode_blocks(path: str) -> tuple[tuple[int, int], ...]:
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read())
    except (OSError, SyntaxError, ValueError):
        return ()
    blocks = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            if any(_names_grad_mode(item.context_expr) for item in node.items):
                blocks.append((node.lineno, node.end_lineno or node.lineno))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # `@torch.no_grad()` over a function: its body, from the decorator's line
            for decorator in node.decorator_list:
                if _names_grad_mode(decorator):
                    blocks.append((decorator.lineno, node.end_lineno or node.lineno))
    return tuple(blocks)


def _names_grad_mode(expr: ast.expr) -> bool:
    target = expr.func if isinstance(expr, ast.Call) else expr
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name in _GRAD_MODE_CALLS
