"""A model run only for inference whose parameters still require grad (a checkpoint loaded
as it was saved while training, a detector built and put in eval mode): where the user's
code binds it, the place for `.requires_grad_(False)`."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.cuts import made_at, own_nodes
from gradlint.runtime_check.modules import parameters_of
from gradlint.runtime_check.sources import parsed

Line = tuple[str, int]
MAX_NODES = 4096  # graph nodes looked through for the parameters a tensor was made from


def inference_models(
    tensor: torch.Tensor, models: Iterable[torch.nn.Module], optimized: set[int]
) -> list[torch.nn.Module]:
    """The models in eval mode that made `tensor` from their parameters, all of which
    require grad, though no optimizer holds them and no backward reached them: used only
    for inference, and recording a graph all the same."""
    node = tensor.grad_fn
    if node is None:
        return []
    leaves = _leaf_ids(node)
    found = []
    for model in models:
        if model.training:
            continue
        params = list(parameters_of(model))
        if (
            params
            and all(p.requires_grad and p.grad is None for p in params)
            and not any(id(p) in optimized for p in params)
            and any(id(p) in leaves for p in params)
        ):
            found.append(model)
    return found


def _leaf_ids(node: Any) -> set[int]:
    found: set[int] = set()
    queue, seen = deque([node]), {id(node)}
    while queue and len(seen) < MAX_NODES:
        current = queue.popleft()
        variable = getattr(current, "variable", None)
        if variable is not None:
            found.add(id(variable))
        for child, _ in current.next_functions:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                queue.append(child)
    return found


def bound_at(model: torch.nn.Module, frame: FrameType | None) -> list[Line]:
    """The line of the user's code, from `frame` outwards, that binds a name to `model`;
    and when it took the model from a helper of the file's (`model = attempt_load(w)`),
    the line of the helper that bound what it returns."""
    found = made_at(model, frame, attributes=False)
    if found is None:
        return []
    inner = _returned_binding(*found)
    return [found] if inner is None else [found, (found[0], inner)]


def _last_assignment(scope: ast.AST, name: str, before: int) -> ast.Assign | None:
    best: ast.Assign | None = None
    for node in own_nodes(scope):
        if (
            isinstance(node, ast.Assign)
            and node.lineno <= before
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and (best is None or node.lineno > best.lineno)
        ):
            best = node
    return best


def _returned_binding(path: str, line: int) -> int | None:
    """For `name = helper(...)` at a line, where `helper` is a function of the same file
    that returns a name: the line that binds that name in it."""
    tree = parsed(path)
    value = (
        next(
            (n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and n.lineno == line),
            None,
        )
        if tree is not None
        else None
    )
    if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Name):
        return None
    helpers = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == value.func.id
    ]
    if len(helpers) != 1:
        return None
    returns = [
        node.value.id
        for node in own_nodes(helpers[0])
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Name)
    ]
    if len(set(returns)) != 1:
        return None
    end = helpers[0].end_lineno or helpers[0].lineno
    assigned = _last_assignment(helpers[0], returns[0], end)
    return assigned.lineno if assigned is not None else None
