"""Why an optimizer refused what it was given: no parameters at all (a module whose layers
sit in a plain list, a misspelt `__init__`, every parameter frozen and filtered out), or a
tensor computed from others; named at the user's lines, from the failed constructor's
traceback."""

from __future__ import annotations

import ast
import linecache
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any

import torch
from gradlint.runtime_check.frames import is_users, real_path
from gradlint.runtime_check.layers import (
    assignment,
    buffer_registered,
    holds_layers,
    module_internals,
)
from gradlint.runtime_check.modules import modules_of, parameters_of
from gradlint.runtime_check.sources import function_tree

Line = tuple[str, int]
MAX_VALUES = 2000  # the locals (a module's globals) looked through, per frame
# Names a hurried `__init__` gets: Python never calls them, so no layer is made.
_MISSPELT_INIT = frozenset({"_init_", "__init_", "_init__", "__int__", "__innit__", "__inti__"})


def user_frames(error: BaseException) -> list[tuple[FrameType, int]]:
    """The user's frames of an error's traceback, with their lines, innermost first."""
    found = []
    tb = error.__traceback__
    while tb is not None:
        if is_users(tb.tb_frame.f_code.co_filename):
            found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found[::-1]


def construction(frames: list[tuple[FrameType, int]]) -> Line | None:
    """The user's line that built the optimizer: the innermost frame outside the methods of
    the user's own optimizer class (whose `__init__` hands the parameters on)."""
    for frame, line in frames:
        if not isinstance(frame.f_locals.get("self"), torch.optim.Optimizer):
            return real_path(frame.f_code.co_filename), line
    return None


def used_up(frames: list[tuple[FrameType, int]], given: Any) -> list[Line]:
    """Where code of the user's on the way to the optimizer went through the one-pass
    iterator of parameters `given` before handing it on (`for p in params:` in an
    optimizer's own `__init__`, before `super().__init__(params)`)."""
    found: list[Line] = []
    for frame, line in frames:
        names = {name for name, value in frame.f_locals.items() if value is given}
        code = frame.f_code
        if not names or code.co_name == "<module>":
            continue
        path = real_path(code.co_filename)
        function = _function_at(path, code.co_firstlineno, code.co_name)
        if function is None:
            continue
        for node in ast.walk(function):
            iterated: ast.expr | None = None
            if isinstance(node, (ast.For, ast.comprehension)):
                iterated = node.iter
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in _CONSUMERS
                and node.args
            ):
                iterated = node.args[0]
            if isinstance(iterated, ast.Name) and iterated.id in names and iterated.lineno < line:
                found.append((path, iterated.lineno))
    return sorted(set(found))


def bound_at(frames: list[tuple[FrameType, int]], given: Any) -> list[Line]:
    """The assignments, on the way to the optimizer, that bind a name to the one-pass
    iterator of parameters `given` (`params = params`, `params = filter(...)`): where a
    `list(...)` keeps it for every pass."""
    found: list[Line] = []
    for frame, line in frames:
        names = {name for name, value in frame.f_locals.items() if value is given}
        code = frame.f_code
        function = _function_at(real_path(code.co_filename), code.co_firstlineno, code.co_name)
        if not names or function is None:
            continue
        assigned = [
            node.lineno
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and node.lineno < line
            and any(isinstance(t, ast.Name) and t.id in names for t in node.targets)
        ]
        if assigned:
            found.append((real_path(code.co_filename), max(assigned)))
    return found


def made_inline(frames: list[tuple[FrameType, int]], given: Any) -> Line | None:
    """The call that made the one-pass iterator `given` right in its arguments
    (`make_optimizer(model.parameters())`): the line of the frame just outside the
    outermost one holding it, where `list(...)` belongs."""
    holders = [i for i, (frame, _) in enumerate(frames) if _holds(frame, given)]
    if not holders or max(holders) + 1 >= len(frames):
        return None
    frame, line = frames[max(holders) + 1]
    path = real_path(frame.f_code.co_filename)
    text = linecache.getline(frame.f_code.co_filename, line)
    if not any(made in text for made in ("parameters(", "filter(", " for ")):
        return None
    return path, line


def _holds(frame: FrameType, given: Any) -> bool:
    values = list(frame.f_locals.values())[:MAX_VALUES]
    return any(value is given for value in values)


_CONSUMERS = frozenset({"list", "tuple", "set", "sorted", "any", "all", "sum", "next", "len"})


def empty_causes(frames: list[tuple[FrameType, int]]) -> list[tuple[Line, str]]:
    """Why the modules at hand have no parameters: layers kept in a plain list or dict
    (not `nn.ModuleList`/`nn.ModuleDict`), which `parameters()` never visits, weights kept
    as plain tensors, an `__init__` misspelt, so that none was made, or layers made inside
    a method, anew at each call, and kept nowhere."""
    found: dict[Line, str] = {}
    for module in _modules_without_parameters(frames):
        causes = _unregistered(module) + _plain_tensors(module) + _misspelt_init(module)
        causes += _buffers(module) + _kept_in_locals(module)
        for line, detail in causes + _built_in_methods(module):
            found.setdefault(line, detail)
    return list(found.items())


def trainable_at_hand(frames: list[tuple[FrameType, int]]) -> bool:
    """Whether a module in the user's frames has a parameter that requires grad (so that
    freezes are not why an optimizer got none)."""
    for frame, _ in frames:
        for value in list(frame.f_locals.values())[:MAX_VALUES]:
            if isinstance(value, torch.nn.Module) and any(
                p.requires_grad for p in parameters_of(value)
            ):
                return True
    return False


def _modules_without_parameters(frames: list[tuple[FrameType, int]]) -> Iterator[torch.nn.Module]:
    seen: set[int] = set()
    for frame, _ in frames:
        for value in list(frame.f_locals.values())[:MAX_VALUES]:
            if isinstance(value, torch.nn.Module) and id(value) not in seen:
                seen.add(id(value))
                if next(parameters_of(value), None) is None:
                    yield value


def _unregistered(module: torch.nn.Module) -> list[tuple[Line, str]]:
    """The attributes of a module that hold layers or parameters in a plain container,
    at the line of the class that assigns them."""
    names = [
        name
        for name, value in vars(module).items()
        if name not in module_internals() and holds_layers(value)
    ]
    found = []
    for name in names:
        line = assignment(type(module), name)
        if line is not None:
            kind = "nn.ModuleDict" if isinstance(getattr(module, name), dict) else "nn.ModuleList"
            detail = (
                f"`self.{name}` keeps its layers in a plain container, which `parameters()` "
                f"does not look into: the optimizer got none of them; use {kind}"
            )
            found.append((line, detail))
    return found


def _plain_tensors(module: torch.nn.Module) -> list[tuple[Line, str]]:
    """The attributes of a module that hold weights as plain tensors, not `nn.Parameter`s
    (a module keeps those as ordinary attributes), at the lines that assign them."""
    found = []
    for name, value in vars(module).items():
        if (
            isinstance(value, torch.Tensor)
            and not isinstance(value, torch.nn.Parameter)
            and value.is_floating_point()
            and not name.startswith("_")
        ):
            line = assignment(type(module), name)
            if line is not None:
                detail = (
                    f"`self.{name}` is a plain tensor, not an `nn.Parameter`, so "
                    "`parameters()` does not list it and the optimizer got none: wrap it in "
                    "`nn.Parameter`"
                )
                found.append((line, detail))
    return found


def _buffers(module: torch.nn.Module) -> list[tuple[Line, str]]:
    """A module with no parameters: its floating-point buffers, which `parameters()` does not
    list (a weight to train registered as a buffer), at the lines that register them."""
    found: list[tuple[Line, str]] = []
    for owner in modules_of(module):  # (the converted weights may sit on a submodule)
        for name, value in owner._buffers.items():
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                continue
            line = buffer_registered(type(owner), name)
            if line is not None and all(line != known for known, _ in found):
                detail = (
                    f"`{name}` is registered as a buffer, which `parameters()` does not "
                    "list, and the module has no parameter: if the optimizer should train "
                    "it, make it an `nn.Parameter`"
                )
                found.append((line, detail))
    return found


def _misspelt_init(module: torch.nn.Module) -> list[tuple[Line, str]]:
    found = []
    for klass in type(module).__mro__:
        if klass.__module__.startswith("torch."):
            break
        for name in _MISSPELT_INIT & set(vars(klass)):
            function = vars(klass)[name]
            code = getattr(function, "__code__", None)
            if code is not None and is_users(code.co_filename):
                detail = (
                    f"`{name}` is not `__init__`: Python never calls it, so the layers it "
                    "makes do not exist and the optimizer got no parameters"
                )
                found.append(((real_path(code.co_filename), code.co_firstlineno), detail))
    return found


def _kept_in_locals(module: torch.nn.Module) -> list[tuple[Line, str]]:
    """The layers a class of the user's builds in `__init__` into a local name that nothing
    reads after (`self_encoder = nn.Sequential(...)`, a typo of `self.encoder`): lost when
    `__init__` returns, with their parameters."""
    found: list[tuple[Line, str]] = []
    for klass in type(module).__mro__:
        if klass.__module__.startswith("torch."):
            break
        function = vars(klass).get("__init__")
        code = getattr(function, "__code__", None)
        if function is None or code is None or not is_users(code.co_filename):
            continue
        path = real_path(code.co_filename)
        for line, name in _layers_in_locals(path, code, function.__globals__):
            detail = (
                f"builds layers into the local name `{name}`, which `__init__` never reads: "
                "they are lost when it returns, and the optimizer got none of their "
                f"parameters; keep them on the module (`self.{name.removeprefix('self_')} = "
                "...`)"
            )
            found.append(((path, line), detail))
    return found


def _layers_in_locals(path: str, code: CodeType, names: dict[str, object]) -> list[tuple[int, str]]:
    function = _function_at(path, code.co_firstlineno, code.co_name)
    if function is None:
        return []
    read = {
        node.id
        for node in ast.walk(function)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    return [
        (node.lineno, target.id)
        for node in ast.walk(function)
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(target := node.targets[0], ast.Name)
        and target.id not in read
        and isinstance(node.value, ast.Call)
        and _is_layer(node.value.func, names)
    ]


def _function_at(path: str, first: int, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    scope = function_tree(path, first, name)
    return scope if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _built_in_methods(module: torch.nn.Module) -> list[tuple[Line, str]]:
    """The layers a class of the user's makes inside its methods other than `__init__`
    without keeping them on `self` (`nn.Linear(8, 32)(x)` in `forward`): each call makes
    new ones, which no optimizer built before it can hold."""
    found: list[tuple[Line, str]] = []
    for klass in type(module).__mro__:
        if klass.__module__.startswith("torch."):
            break
        for name, function in vars(klass).items():
            code = getattr(function, "__code__", None)
            if name == "__init__" or code is None or not is_users(code.co_filename):
                continue
            path = real_path(code.co_filename)
            for line in _layer_calls(path, code, function.__globals__):
                detail = (
                    f"makes a new layer at each call of `{name}`, kept nowhere: its weights "
                    "are not the module's parameters, and no optimizer holds them; make it "
                    "in `__init__` as `self.<name> = ...`"
                )
                found.append(((path, line), detail))
    return found[:4]


def _layer_calls(path: str, code: CodeType, names: dict[str, object]) -> list[int]:
    """The lines in the function of `code` that call a layer class (a subclass of
    `nn.Module`, as the function's globals name it) other than to assign `self.<name>`."""
    function = _function_at(path, code.co_firstlineno, code.co_name)
    if function is None:
        return []
    kept = {
        id(node.value)
        for node in ast.walk(function)
        if isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Attribute) for target in node.targets)
    }
    return [
        node.lineno
        for node in ast.walk(function)
        if isinstance(node, ast.Call) and id(node) not in kept and _is_layer(node.func, names)
    ]


def _is_layer(expr: ast.expr, names: dict[str, object]) -> bool:
    """Whether a callee (`nn.Linear`, `torch.nn.Conv2d`, `Linear`) names a module class."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return False
    value = names.get(expr.id)
    for part in reversed(parts):
        value = getattr(value, part, None)
    return isinstance(value, type) and issubclass(value, torch.nn.Module)
