"""The module's functions and classes, and the grad mode each function runs in.

A function's grad mode comes from its decorators, from the framework that calls it
(Lightning's eval hooks), or from every call site in the module; a function that is also
passed around as a value has callers we cannot see, and its mode is unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import libcst as cst

from gradlint.analysis.facts import ANY_MODE, DISABLED, ENABLED, INFERENCE, Mode
from gradlint.analysis.names import ImportTable, dotted, resolve_dotted
from gradlint.analysis.nodes import child_nodes, node_types, walk
from gradlint.analysis.torch_api import (
    GRAD_MODE_CLASSES,
    GRAD_NEUTRAL_PACKAGES,
    LIGHTNING_BASES,
    MODULE_BASES,
    NO_GRAD_HOOKS,
)

# Statements and clauses that hold blocks of statements.
_BLOCKS = (
    cst.BaseCompoundStatement,
    cst.Else,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.MatchCase,
)

_BLOCK_TYPES = node_types(*_BLOCKS)
# A block written on its header's line (`if done: break`) holds small statements bare.
SMALL_TYPES = node_types(cst.BaseSmallStatement)
_SUITE_TYPES = node_types(cst.BaseSuite)
_EXPRESSION_TYPES = node_types(cst.BaseExpression)
_CLAUSE_TYPES = frozenset(
    {cst.If, cst.Else, cst.ExceptHandler, cst.Finally, cst.ExceptStarHandler, cst.MatchCase}
)

# Methods only an nn.Module has (among the objects training code handles).
MODULE_EVIDENCE = frozenset(
    {"train", "eval", "parameters", "named_parameters", "modules", "children", "named_modules"}
)
# Only a model has these (a trainer object has `.train()` too).
STRONG_MODULE_EVIDENCE = frozenset(
    {"parameters", "named_parameters", "modules", "children", "named_modules"}
)


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    bases: list[str]  # qualified names of imported bases, or names of local classes
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    is_module: bool = False
    is_lightning: bool = False
    is_optimizer: bool = False  # derived from a torch.optim optimizer


@dataclass(eq=False)
class FunctionInfo:
    node: cst.FunctionDef
    name: str
    owner: ClassInfo | None
    parent: FunctionInfo | None
    fixed_mode: Mode | None = None  # from a decorator or a framework hook
    mode_set_by: cst.CSTNode | None = None  # the decorator that fixes it
    is_static: bool = False
    is_property: bool = False
    is_classmethod: bool = False
    decorators: list[str] = field(default_factory=list)  # dotted names, calls' callees
    calls_backward: bool = False
    # (caller, mode at the call site; None: the caller's own mode)
    call_sites: list[tuple[FunctionInfo | None, Mode | None]] = field(default_factory=list)
    escapes: bool = False  # referenced other than by a call: callers unknown
    used_as_module: set[str] = field(default_factory=set)  # names `x` with `x.train()` etc.
    mode: Mode = ANY_MODE
    # Seen in the body, nested functions and classes included (set by the one walk that
    # collects scopes, rather than each question walking the body again).
    grad_syntax: bool = False  # `.backward()`, `.step()`, `.zero_grad()`, `.grad`
    change_syntax: bool = False  # an augmented or subscript assignment, an in-place call...


def body_statements(body: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
    return body.body


def grad_mode_of(expr: cst.BaseExpression, imports: ImportTable) -> tuple[str, Mode | None] | None:
    """For a grad-mode expression (`torch.no_grad()`, `torch.set_grad_enabled(x)`, ...):
    its qualified name and the mode it sets (None where it is not called, or unknown)."""
    call = expr if type(expr) is cst.Call else None
    target = call.func if call is not None else expr
    qualname = imports.resolve(target)
    if qualname is None or qualname not in GRAD_MODE_CLASSES:
        return None
    if call is None:
        return qualname, None
    kind = GRAD_MODE_CLASSES[qualname]
    if kind == "disabled":
        return qualname, DISABLED
    if kind == "enabled":
        return qualname, ENABLED
    if kind == "inference":
        mode_arg = call.args[0].value if call.args else None
        if mode_arg is None or _is_constant(mode_arg, True):
            return qualname, INFERENCE
        if _is_constant(mode_arg, False):
            return qualname, None  # inference_mode(False) changes nothing
        return qualname, ANY_MODE
    # set_grad_enabled(flag)
    if len(call.args) != 1:
        return qualname, ANY_MODE
    flag = call.args[0].value
    if _is_constant(flag, True):
        return qualname, ENABLED
    if _is_constant(flag, False):
        return qualname, DISABLED
    return qualname, ANY_MODE


_MUTATORS = frozenset(
    "append extend insert update setdefault pop popitem clear add remove discard".split()
)


# Calls that fill, apply or clear the gradients that parameters hold.
_GRAD_METHODS = frozenset({"backward", "step", "zero_grad"})


def _changes_by_call(call: cst.Call) -> bool:
    """`x.add_(...)`, a gradient method, or filling a list kept on an object
    (`self.log_probs.append(...)`)."""
    func = call.func
    if type(func) is not cst.Attribute:
        return False
    name = func.attr.value
    if name in _GRAD_METHODS or (name.endswith("_") and not name.startswith("_")):
        return True
    return name in ("append", "extend", "insert") and type(func.value) is cst.Attribute


def _attribute_targets(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        found: set[str] = set()
        for element in target.elements:
            found |= _attribute_targets(element.value)
        return found
    if type(target) is cst.Attribute and not (
        type(target.value) is cst.Name and target.value.value == "self"
    ):
        return {target.attr.value}
    return set()


def _self_attributes_set(node: cst.FunctionDef) -> set[str]:
    """Names `x` of `self.x = ...`, `self.x += ...`, `self.x[i] = ...`, `self.x.append(...)`
    in a method."""
    params = node.params.params
    if not params:
        return set()
    me = params[0].name.value
    found_names: set[str] = set()
    for found in walk(node.body):
        if type(found) is cst.AssignTarget:
            _note_self_target(found.target, me, found_names)
        elif isinstance(found, (cst.AugAssign, cst.AnnAssign)):
            _note_self_target(found.target, me, found_names)
        elif (
            type(found) is cst.Call
            and type(found.func) is cst.Attribute
            and found.func.attr.value in _MUTATORS
        ):
            _note_self_target(found.func.value, me, found_names)
    return found_names


def _note_self_target(target: cst.BaseExpression, me: str, found: set[str]) -> None:
    while type(target) is cst.Subscript:
        target = target.value
    if isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            _note_self_target(element.value, me, found)
    elif (
        type(target) is cst.Attribute
        and type(target.value) is cst.Name
        and target.value.value == me
    ):
        found.add(target.attr.value)


def _is_constant(expr: cst.BaseExpression, value: bool) -> bool:
    return type(expr) is cst.Name and expr.value == ("True" if value else "False")


class ScopeCollector:
    """One walk over the module: imports, classes, functions and local call sites."""

    def __init__(self, module: cst.Module, imports: ImportTable) -> None:
        self.imports = imports
        self._module = module
        # Names whose `.parameters()` (or `.modules()`, ...) is read, per function (None:
        # module level): whatever made them, they hold models.
        self.models: defaultdict[FunctionInfo | None, set[str]] = defaultdict(set)
        self._outside_attributes: set[str] = set()  # see assigned_outside
        # `layer.forward = self.forward` somewhere (LoRA injected by patching forwards): a
        # frozen module's output may go through trainable layers all the same.
        self.forwards_patched = False
        self._set_on_self: dict[FunctionInfo, frozenset[str]] = {}
        self._grad_touchers: set[FunctionInfo] | None = None
        self.functions: list[FunctionInfo] = []
        self.classes: dict[str, ClassInfo] = {}
        self.module_functions: dict[str, FunctionInfo] = {}
        self._by_node: dict[cst.FunctionDef, FunctionInfo] = {}
        self._assigned: dict[str, frozenset[str]] = {}
        self._collect_imports(module.body)
        self._walk_block(module.body, None, None, None, {})
        self._resolve_classes()
        self._solve_modes()

    # -- collection -----------------------------------------------------------------

    def _collect_imports(self, statements: Sequence[cst.CSTNode]) -> None:
        # Decorators and bases resolve through imports anywhere in the file, even later ones.
        for statement in statements:
            if type(statement) is cst.SimpleStatementLine:
                for small in statement.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        self.imports.add(small)
            elif isinstance(statement, (cst.Import, cst.ImportFrom)):
                self.imports.add(statement)
            elif type(statement) in _BLOCK_TYPES:
                for child in child_nodes(statement):
                    if type(child) in _SUITE_TYPES:
                        self._collect_imports(cast(cst.BaseSuite, child).body)
                    elif type(child) in _BLOCK_TYPES:
                        self._collect_imports([child])

    def _walk_block(
        self,
        statements: Sequence[cst.CSTNode],
        owner: ClassInfo | None,
        function: FunctionInfo | None,
        mode: Mode | None,
        local_functions: dict[str, FunctionInfo],
    ) -> None:
        # Functions defined in this block are visible to calls anywhere in it.
        scope = dict(local_functions)
        for statement in statements:
            if type(statement) is cst.FunctionDef:
                info = self._declare_function(statement, owner, function)
                if owner is None:
                    scope[info.name] = info
        for statement in statements:
            mode = self._walk_statement(statement, owner, function, mode, scope)

    def _declare_function(
        self, node: cst.FunctionDef, owner: ClassInfo | None, parent: FunctionInfo | None
    ) -> FunctionInfo:
        info = FunctionInfo(node=node, name=node.name.value, owner=owner, parent=parent)
        for decorator in node.decorators:
            name = dotted(decorator.decorator)
            callee = (
                dotted(decorator.decorator.func) if type(decorator.decorator) is cst.Call else name
            )
            if callee is not None:
                info.decorators.append(callee)
            info.is_static = info.is_static or name == "staticmethod"
            info.is_classmethod = info.is_classmethod or name == "classmethod"
            info.is_property = info.is_property or name in (
                "property",
                "functools.cached_property",
                "cached_property",
            )
            found = grad_mode_of(decorator.decorator, self.imports)
            if found is None and self._may_set_grad_mode(callee) and info.fixed_mode is None:
                info.fixed_mode = ANY_MODE  # a wrapper we cannot see may turn autograd off
            if found is not None:
                qualname, decorator_mode = found
                if decorator_mode is None and type(decorator.decorator) is cst.Call:
                    continue
                if decorator_mode is None:  # `@torch.no_grad` without parentheses
                    kind = GRAD_MODE_CLASSES[qualname]
                    decorator_mode = {
                        "disabled": DISABLED,
                        "enabled": ENABLED,
                        "inference": INFERENCE,
                    }.get(kind)
                if decorator_mode is not None:
                    info.fixed_mode = decorator_mode
                    info.mode_set_by = decorator
        if owner is not None:
            owner.methods.setdefault(info.name, info)
        elif parent is None:
            self.module_functions.setdefault(info.name, info)
        self.functions.append(info)
        self._by_node[node] = info
        return info

    def _may_set_grad_mode(self, callee: str | None) -> bool:
        """A decorator imported from a package not known to leave the grad mode alone."""
        if callee is None or callee in self.module_functions:
            return False
        qualname = resolve_dotted(self.imports, callee)
        if qualname is None:
            return False  # a local object (`app.route`), or a builtin
        return qualname.split(".")[0] not in GRAD_NEUTRAL_PACKAGES

    def _walk_statement(
        self,
        statement: cst.CSTNode,
        owner: ClassInfo | None,
        function: FunctionInfo | None,
        mode: Mode | None,
        scope: dict[str, FunctionInfo],
    ) -> Mode | None:
        if type(statement) is cst.FunctionDef:
            info = self._info_for(statement, owner, function)
            self._walk_block(body_statements(statement.body), None, info, None, scope)
            for decorator in statement.decorators:
                self._walk_expression(decorator.decorator, function, mode, scope, owner)
            return mode
        if type(statement) is cst.ClassDef:
            bases = [dotted(arg.value) or "" for arg in statement.bases if arg.keyword is None]
            info_cls = ClassInfo(node=statement, name=statement.name.value, bases=bases)
            self.classes.setdefault(info_cls.name, info_cls)
            methods = body_statements(statement.body)
            for child in methods:
                if type(child) is cst.FunctionDef:
                    self._declare_function(child, info_cls, function)
            for child in methods:
                if type(child) is cst.FunctionDef:
                    method = self._info_for(child, info_cls, function)
                    self._walk_block(body_statements(child.body), None, method, None, scope)
                else:
                    self._walk_statement(child, None, function, mode, scope)
            return mode
        if type(statement) is cst.SimpleStatementLine or type(statement) in SMALL_TYPES:
            smalls = (
                statement.body
                if type(statement) is cst.SimpleStatementLine
                else [cast(cst.BaseSmallStatement, statement)]
            )
            for small in smalls:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    continue
                if type(small) is cst.Expr and type(small.value) is cst.Call:
                    found = grad_mode_of(small.value, self.imports)
                    if found is not None and found[0].endswith("set_grad_enabled"):
                        mode = found[1]
                self._walk_expression(small, function, mode, scope, owner)
            return mode
        if type(statement) is cst.With:
            inner = mode
            for item in statement.items:
                self._walk_expression(item.item, function, mode, scope, owner)
                found = grad_mode_of(item.item, self.imports)
                if found is not None and found[1] is not None:
                    inner = found[1]
            self._walk_suite(statement.body, owner, function, inner, scope)
            return mode
        # Other compound statements: walk their expressions and bodies in the same mode.
        for part in child_nodes(statement):
            kind = type(part)
            if kind in _SUITE_TYPES:
                self._walk_suite(cast(cst.BaseSuite, part), owner, function, mode, scope)
            elif kind in _CLAUSE_TYPES:
                self._walk_statement(part, owner, function, mode, scope)
            elif kind in _EXPRESSION_TYPES:
                self._walk_expression(part, function, mode, scope, owner)
        return mode

    def _walk_suite(
        self,
        suite: cst.BaseSuite,
        owner: ClassInfo | None,
        function: FunctionInfo | None,
        mode: Mode | None,
        scope: dict[str, FunctionInfo],
    ) -> None:
        statement: cst.CSTNode
        for statement in body_statements(suite):
            mode = self._walk_statement(statement, owner, function, mode, scope)

    def _walk_expression(
        self,
        node: cst.CSTNode,
        function: FunctionInfo | None,
        mode: Mode | None,
        scope: dict[str, FunctionInfo],
        owner: ClassInfo | None,
    ) -> None:
        grads = changes = False
        for found in _names_and_calls(node):
            kind = type(found)
            if kind is cst.AugAssign or kind is cst.AssignTarget:
                target = cast(cst.AssignTarget | cst.AugAssign, found).target
                changes = changes or kind is cst.AugAssign or type(target) is cst.Subscript
                if not _in_init(function):
                    self._outside_attributes |= _attribute_targets(target)
                if "forward" in _attribute_targets(target):
                    self.forwards_patched = True
                continue
            expr = cast(cst.BaseExpression, found)
            if kind is cst.Call:
                call = cast(cst.Call, found)
                func = call.func
                if type(func) is cst.Attribute:
                    method = cast(cst.Attribute, func).attr.value
                    grads = grads or method in _GRAD_METHODS or method == "grad"
                    changes = changes or _changes_by_call(call)
                    base = cast(cst.Attribute, func).value
                    if method in STRONG_MODULE_EVIDENCE and type(base) is cst.Name:
                        self.models[function].add(cast(cst.Name, base).value)
                    if function is not None:
                        if method == "backward" and mode not in (DISABLED, INFERENCE):
                            function.calls_backward = True
                        elif method in MODULE_EVIDENCE and type(base) is cst.Name:
                            function.used_as_module.add(cast(cst.Name, base).value)
                callee = self._callee(func, function, scope)
                if callee is not None:
                    callee.call_sites.append((function, mode))
                continue
            if kind is cst.Attribute and cast(cst.Attribute, found).attr.value == "grad":
                grads = True
                if not _is_self_attribute(cast(cst.Attribute, found)):
                    continue
            callee = self._callee(expr, function, scope)
            if callee is not None:
                callee.escapes = True
        if grads or changes:
            _mark(function, grads, changes)

    def _callee(
        self,
        func: cst.BaseExpression,
        function: FunctionInfo | None,
        scope: dict[str, FunctionInfo],
    ) -> FunctionInfo | None:
        if type(func) is cst.Name:
            return scope.get(func.value)
        if (
            type(func) is cst.Attribute
            and type(func.value) is cst.Name
            and func.value.value in ("self", "cls")
        ):
            cls = _owner_class(function)
            if cls is not None:
                return cls.methods.get(func.attr.value)
        return None

    def _self_attributes(self, method: FunctionInfo) -> frozenset[str]:
        found = self._set_on_self.get(method)
        if found is None:
            found = self._set_on_self[method] = frozenset(_self_attributes_set(method.node))
        return found

    def assigned_elsewhere(self, cls: ClassInfo) -> frozenset[str]:
        """Attributes `self.x` that a method other than `__init__` (of the class or a local
        base) assigns or changes; the rest keep what `__init__` gave them."""
        cached = self._assigned.get(cls.name)
        if cached is not None:
            return cached
        names: set[str] = set()
        seen: set[str] = set()
        todo = [cls]
        while todo:
            current = todo.pop()
            if current.name in seen:
                continue
            seen.add(current.name)
            for method in current.methods.values():
                if method.name != "__init__":
                    names |= self._self_attributes(method)
            todo.extend(self.classes[b] for b in current.bases if b in self.classes)
        for other in self.classes.values():
            # A subclass's methods run on instances of the base too.
            if cls.name in other.bases and other is not cls:
                for method in other.methods.values():
                    names |= self._self_attributes(method)
        result = frozenset(names) | self.assigned_outside()
        self._assigned[cls.name] = result
        return result

    def touches_grads(self, info: FunctionInfo) -> bool:
        """Whether a function, or one it calls, back-propagates, steps, clears gradients or
        writes `.grad`."""
        if self._grad_touchers is None:
            found = {f for f in self.functions if f.grad_syntax}
            todo = list(found)
            while todo:
                for caller, _ in todo.pop().call_sites:
                    if caller is not None and caller not in found:
                        found.add(caller)
                        todo.append(caller)
            self._grad_touchers = found
        return info in self._grad_touchers

    def changes_tensors(self, info: FunctionInfo) -> bool:
        """Whether a function back-propagates, steps, changes something in place or fills
        a list kept on an object: a call of it must run again, not be remembered, for its
        caller to see what it did."""
        return info.change_syntax

    def assigned_outside(self) -> frozenset[str]:
        """Attribute names assigned on any object outside an `__init__` (`state.hidden =
        ...`): which instance that is, is not known here."""
        return frozenset(self._outside_attributes)

    def info_for(self, node: cst.FunctionDef) -> FunctionInfo | None:
        """The function a `def` statement defines."""
        return self._by_node.get(node)

    def _info_for(
        self, node: cst.FunctionDef, owner: ClassInfo | None, parent: FunctionInfo | None
    ) -> FunctionInfo:
        # A def inside an if/with/try is met only when the walk reaches it.
        info = self._by_node.get(node)
        return info if info is not None else self._declare_function(node, owner, parent)

    # -- classes and modes ----------------------------------------------------------------

    def _resolve_classes(self) -> None:
        changed = True
        while changed:  # a local class derived from a local nn.Module subclass is one too
            changed = False
            for info in self.classes.values():
                if info.is_module:
                    continue
                for base in info.bases:
                    qualname = resolve_dotted(self.imports, base) if base else None
                    local = self.classes.get(base)
                    if (qualname in MODULE_BASES) or (local is not None and local.is_module):
                        info.is_module = True
                        info.is_lightning = qualname in LIGHTNING_BASES or bool(
                            local and local.is_lightning
                        )
                        changed = True
        changed = True
        while changed:
            changed = False
            for info in self.classes.values():
                if info.is_optimizer or info.is_module:
                    continue
                for base in info.bases:
                    qualname = resolve_dotted(self.imports, base) if base else None
                    local = self.classes.get(base)
                    if (qualname or "").startswith("torch.optim.") or (
                        local is not None and local.is_optimizer
                    ):
                        info.is_optimizer = True
                        changed = True
        for info in self.classes.values():
            if info.is_lightning:
                for name, method in info.methods.items():
                    if name in NO_GRAD_HOOKS and method.fixed_mode is None:
                        method.fixed_mode = DISABLED
                    if name == "training_step" and method.fixed_mode is None:
                        method.fixed_mode = ENABLED

    def _solve_modes(self) -> None:
        for info in self.functions:
            info.mode = info.fixed_mode if info.fixed_mode is not None else frozenset()
        changed = True
        rounds = 0
        while changed and rounds < 20:
            changed, rounds = False, rounds + 1
            for info in self.functions:
                if info.fixed_mode is not None:
                    continue
                mode = self._mode_from_callers(info)
                if mode != info.mode:
                    info.mode, changed = mode, True

    def _mode_from_callers(self, info: FunctionInfo) -> Mode:
        if info.escapes or not info.call_sites:
            if info.calls_backward:
                return ENABLED  # backward() needs a graph: this code runs with grad enabled
            if not info.escapes and info.owner is None and info.parent is None:
                # A module-level function nobody here calls runs in PyTorch's default mode.
                return ENABLED
            return ANY_MODE
        mode: Mode = frozenset()
        for caller, site_mode in info.call_sites:
            if site_mode is not None:
                mode |= site_mode
            elif caller is None:
                mode |= ENABLED  # module level runs with grad enabled
            else:
                mode |= caller.mode
        return mode


def _owner_class(function: FunctionInfo | None) -> ClassInfo | None:
    while function is not None:
        if function.owner is not None:
            return function.owner
        function = function.parent
    return None


def _is_self_attribute(node: cst.Attribute) -> bool:
    value = node.value
    return type(value) is cst.Name and cast(cst.Name, value).value in ("self", "cls")


def _in_init(function: FunctionInfo | None) -> bool:
    while function is not None:
        if function.name == "__init__":
            return True
        function = function.parent
    return False


def _mark(function: FunctionInfo | None, grads: bool, changes: bool) -> None:
    """What a body holds, its enclosing functions' bodies hold too."""
    while function is not None:
        function.grad_syntax = function.grad_syntax or grads
        function.change_syntax = function.change_syntax or changes
        function = function.parent


def _names_and_calls(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Calls, and names or `self.x` attributes used as values, not looking into lambdas' or
    nested functions' bodies (those are walked as functions of their own); and the nodes
    that change or read gradients or attributes: augmented assignments, assignment targets,
    `.grad` attributes."""
    # `type(x) is` rather than isinstance: libcst's node classes are ABCs, on which a
    # failed isinstance costs a call into the abc machinery, and this loop sees every node.
    stack: list[cst.CSTNode] = [node]
    while stack:
        current = stack.pop()
        kind = type(current)
        if kind is cst.Call:
            yield current
            call = cast(cst.Call, current)
            func = call.func
            if type(func) is cst.Attribute:
                stack.append(cast(cst.Attribute, func).value)
            elif type(func) is not cst.Name:
                stack.append(func)
            stack.extend(arg.value for arg in call.args)
            continue
        if kind is cst.Name:
            yield current
            continue
        if kind is cst.Attribute:
            attribute = cast(cst.Attribute, current)
            if _is_self_attribute(attribute):
                yield current
                continue
            if attribute.attr.value == "grad":
                yield current
            stack.append(attribute.value)
            continue
        if kind is cst.AugAssign or kind is cst.AssignTarget:
            yield current
        stack.extend(child_nodes(current))
