"""Layers a module holds where `parameters()` does not look: in a plain list or dict (not
`nn.ModuleList`/`nn.ModuleDict`), or inside an object of a class that is not a module. Their
weights get gradients yet no optimizer has them, so they never train (GL206). Also how the
tracer finds, in the user's source, the line that assigns an attribute or defines a class."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

import torch
from gradlint.runtime_check.frames import is_users, real_path
from gradlint.runtime_check.modules import modules_of, parameters_of
from gradlint.runtime_check.sources import parsed

Line = tuple[str, int]
MAX_ITEMS = 100  # items of a container looked at
MAX_MODULES = 10_000  # modules of a model looked through

IN_A_CONTAINER = (
    "keeps layers in a plain container, which `parameters()` does not look into: no "
    "optimizer gets their weights, which never train"
)
NOT_A_MODULE = (
    "holds weights but is not an `nn.Module`: the module that keeps it does not register "
    "them, and no optimizer trains them"
)
COMPUTED_FROM_PARAMETER = (
    "keeps a tensor computed from a parameter (`nn.Parameter(...).to(...)`), not the "
    "parameter: the module does not register it, and no optimizer trains what it came from"
)
MAX_NODES = 8  # graph nodes walked back from a tensor kept on a module, to its leaves


def attributes_holding(
    modules: Iterable[Any], holds: Callable[[Any], bool]
) -> Iterator[tuple[Line, str]]:
    """The plain attributes of the modules (and of all their submodules) of the user's whose
    value `holds` says yes to (a cache kept on a module): the line of its class that sets
    each, and the attribute's name."""
    for holder, name in holders(modules, holds):
        where = assignment(type(holder), name, updated=True)
        if where is not None:
            yield where, name


def holders(modules: Iterable[Any], holds: Callable[[Any], bool]) -> Iterator[tuple[Any, str]]:
    """The objects among the modules, their submodules and the other objects given (of the
    user's classes) whose plain attribute `holds` says yes to, and that attribute's name."""
    seen: set[int] = set()
    for model in modules:
        # A module and its submodules; an object of another class of the user's alone
        inside = modules_of(model) if isinstance(model, torch.nn.Module) else (model,)
        for module in inside:
            if id(module) in seen or len(seen) > MAX_MODULES:
                continue
            seen.add(id(module))
            internals = module_internals()
            for name, value in list(getattr(module, "__dict__", {}).items()):
                if name not in internals and holds(value):
                    yield module, name


def users_object(value: Any) -> bool:
    """Whether a value is an instance of a class the user's code defines (not a module)."""
    kind = type(value)
    if kind.__module__ == "builtins" or isinstance(value, (type, torch.Tensor)):
        return False
    path = file_of(kind)
    return path is not None and is_users(path)


def attribute_uses(cls: type, name: str, most: int = 3) -> list[Line]:
    """The lines of a class of the user's, outside `__init__`, that read `self.<name>`
    (`self.maps.append(out)`, `self.maps[:n]`): where a container kept on it is filled and
    taken from."""
    defined = class_def(cls)
    if defined is None:
        return []
    path, node = defined
    found: set[int] = set()
    for method in node.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if method.name == "__init__":
            continue
        for inner in ast.walk(method):
            if (
                isinstance(inner, ast.Attribute)
                and inner.attr == name
                and isinstance(inner.ctx, ast.Load)
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "self"
            ):
                found.add(inner.lineno)
    return [(path, line) for line in sorted(found)[:most]]


def never_trained(models: list[torch.nn.Module], idle: set[int]) -> list[tuple[Line, str, str]]:
    """Where the modules run hold layers out of `parameters()`'s sight whose parameters (by
    id, in `idle`) got gradients that nothing used: (line, message, detail)."""
    found: dict[Line, tuple[str, str]] = {}
    seen: set[int] = set()
    for model in models:
        for module in list(modules_of(model))[:MAX_MODULES]:
            if id(module) in seen:
                continue
            seen.add(id(module))
            for name, value in vars(module).items():
                if name in module_internals():
                    continue
                if holds_layers(value):
                    if any(id(p) in idle for p in _parameters_in(value)):
                        line = assignment(type(module), name)
                        if line is not None:
                            kind = "nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList"
                            found.setdefault(line, (IN_A_CONTAINER, f"`self.{name}`: use {kind}"))
                elif _holds_weights(value):
                    if any(id(p) in idle for p in _parameters_in(vars(value))):
                        klass = type(value)
                        line = class_line(klass)
                        if line is not None:
                            detail = f"`{klass.__name__}`: subclass `nn.Module`"
                            found.setdefault(line, (NOT_A_MODULE, detail))
    return [(line, message, detail) for line, (message, detail) in found.items()]


def holds_layers(value: Any) -> bool:
    """A plain list, tuple or dict with a module or a parameter in it."""
    if not isinstance(value, (list, tuple, dict)):
        return False
    items = value.values() if isinstance(value, dict) else value
    return any(
        isinstance(item, (torch.nn.Module, torch.nn.Parameter)) for item in list(items)[:MAX_ITEMS]
    )


def kept_computed(
    models: list[torch.nn.Module], orphan: Callable[[torch.nn.Parameter], bool]
) -> list[tuple[Line, str, str]]:
    """Where the modules run keep, as a plain attribute, a tensor computed from a parameter
    that `orphan` says nothing can train (`nn.Parameter(t).to(dtype)`, kept in the
    parameter's place): (line, message, detail)."""
    found: dict[Line, tuple[str, str]] = {}
    for module, name in holders(models, lambda value: _computed_from(value, orphan)):
        line = assignment(type(module), name)
        if line is not None:
            detail = f"`self.{name}`: keep the `nn.Parameter` itself"
            found.setdefault(line, (COMPUTED_FROM_PARAMETER, detail))
    # (Or as a buffer: a helper that registers a tensor, cast for the module, in place of
    # the parameter it was given.)
    seen: set[int] = set()
    for model in models:
        for module in modules_of(model):
            if id(module) in seen or len(seen) > MAX_MODULES:
                continue
            seen.add(id(module))
            for name, value in list(module._buffers.items()):
                if value is not None and _computed_from(value, orphan):
                    line = buffer_registered(type(module), name)
                    if line is not None:
                        detail = f"buffer `{name}`: register the `nn.Parameter` itself"
                        found.setdefault(line, (COMPUTED_FROM_PARAMETER, detail))
    return [(line, message, detail) for line, (message, detail) in found.items()]


def _computed_from(value: Any, orphan: Callable[[torch.nn.Parameter], bool]) -> bool:
    """A tensor that is not a leaf, a few ops from a parameter `orphan` says yes to."""
    if not isinstance(value, torch.Tensor) or value.grad_fn is None:
        return False
    todo, seen = [value.grad_fn], 0
    while todo and seen < MAX_NODES:
        node = todo.pop()
        seen += 1
        leaf = getattr(node, "variable", None)
        if isinstance(leaf, torch.nn.Parameter) and orphan(leaf):
            return True
        todo.extend(n for n, _ in node.next_functions if n is not None)
    return False


def _holds_weights(value: Any) -> bool:
    """An object of a user's class, not a module, with a layer or a parameter among its
    attributes."""
    if isinstance(value, (torch.nn.Module, torch.Tensor, type)) or not hasattr(value, "__dict__"):
        return False
    return file_of(type(value)) is not None and holds_layers(vars(value))


def _parameters_in(value: Any) -> list[torch.Tensor]:
    items = value.values() if isinstance(value, dict) else value
    found: list[torch.Tensor] = []
    for item in list(items)[:MAX_ITEMS]:
        if isinstance(item, torch.nn.Module):
            found.extend(parameters_of(item))
        elif isinstance(item, torch.nn.Parameter):
            found.append(item)
    return found


@cache
def module_internals() -> frozenset[str]:
    """The attributes every module has (`_parameters`, `_modules`, ...), which hold its
    registered parts."""
    return frozenset(vars(torch.nn.Module()))


def assignment(cls: type, name: str, updated: bool = False) -> Line | None:
    """The line of a class (or a base) of the user's that assigns `self.<name>`; with
    `updated`, one outside `__init__` where there is one (state updated as it runs)."""
    for klass in cls.__mro__:
        defined = class_def(klass)
        if defined is None:
            continue
        path, node = defined
        found = _assignments(node, name)
        later = [line for line, in_init, _ in found if not in_init]
        kept = [line for line, in_init, reset in found if not in_init and not reset]
        if found:
            return path, ((kept or later)[0] if updated and later else found[0][0])
    return None


def buffer_registered(cls: type, name: str) -> Line | None:
    """The line of a class (or a base) of the user's that calls
    `self.register_buffer("<name>", ...)`, or a helper of its own that registers
    (`self.register_buffer_or_parameter("<name>", ...)`)."""
    computed: list[Line] = []
    for klass in cls.__mro__:
        defined = class_def(klass)
        if defined is None:
            continue
        path, node = defined
        for call in ast.walk(node):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr.startswith("register")
                and call.args
            ):
                continue
            if isinstance(call.args[0], ast.Constant):
                if call.args[0].value == name:
                    return path, call.lineno
            elif "buffer" in call.func.attr:
                computed.append((path, call.lineno))
    # Registered under a name made at run time (`register_buffer(key.replace("/", "_"), t)`):
    # the one call that can have done it.
    return computed[0] if len(computed) == 1 else None


def _assignments(klass: ast.ClassDef, name: str) -> list[tuple[int, bool, bool]]:
    """The lines that assign `self.<name>` in a class, each with whether `__init__` does,
    and whether it assigns a constant (`self.cache = None`: a reset, not what is kept)."""
    found = []
    for method in klass.body:
        if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(method):
            targets: list[ast.expr] = []
            if isinstance(inner, ast.Assign):
                targets = list(inner.targets)
            elif isinstance(inner, ast.AnnAssign):
                targets = [inner.target]
            while targets:  # (`out, self.state = ...` assigns it too)
                target = targets.pop()
                if isinstance(target, (ast.Tuple, ast.List)):
                    targets.extend(target.elts)
                elif (
                    isinstance(target, ast.Attribute)
                    and target.attr == name
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    value = getattr(inner, "value", None)
                    found.append(
                        (target.lineno, method.name == "__init__", isinstance(value, ast.Constant))
                    )
    return sorted(found)


def class_line(klass: type) -> Line | None:
    """The line of the user's `class` statement of `klass`."""
    defined = class_def(klass)
    return (defined[0], defined[1].lineno) if defined is not None else None


def class_def(klass: type) -> tuple[str, ast.ClassDef] | None:
    """The user's file that defines a class, and the `class` statement there (the first of
    that name)."""
    path = file_of(klass)
    tree = parsed(path) if path else None
    if tree is None or not path:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == klass.__name__:
            return real_path(path), node
    return None


def file_of(klass: type) -> str | None:
    """The user's file a class is defined in, from its functions' code (its module may be
    gone from `sys.modules`: a script's `__main__` after it ran)."""
    for value in vars(klass).values():
        code = getattr(value, "__code__", None)
        if code is not None:
            return code.co_filename if is_users(code.co_filename) else None
    module = sys.modules.get(klass.__module__)
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) and is_users(path) else None
