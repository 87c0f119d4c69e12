"""An abstract interpreter over one module: it runs every function on abstract values and
records, at each node, what a value holds and which grad mode is in force.

Values follow PyTorch's rules: an op on a tensor that requires grad gives a non-leaf that
requires grad while grad mode is enabled; factories give leaves; `.detach()`, `.item()`,
comparisons and integer results give none. Loops run twice, the second pass seeing what the
first left behind, so that state carried across iterations (a hidden state, a running total)
is seen. Whatever is not known is UNKNOWN, and rules stay silent on it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import libcst as cst

from gradlint.analysis import torch_api as api
from gradlint.analysis.facts import (
    ANY_MODE,
    ENABLED,
    AttributeSet,
    Call,
    Facts,
    FreedGraph,
    Inplace,
    Mode,
    OptimizerMade,
    SavedChanged,
    WithItem,
)
from gradlint.analysis.names import dotted, resolve_dotted
from gradlint.analysis.nodes import child_nodes
from gradlint.analysis.scopes import (
    ClassInfo,
    FunctionInfo,
    ScopeCollector,
    body_statements,
    grad_mode_of,
)
from gradlint.analysis.values import (
    FLOAT,
    INT,
    NO,
    NONE,
    NUMBER,
    OTHER,
    UNKNOWN,
    UNKNOWN_VALUE,
    YES,
    Kind,
    Node,
    Tri,
    Value,
    sequence,
)

MAX_LOOP_DEPTH = 3
# A call's effects on its arguments: requires_grad flags set on tensor parameters, and
# (path, frozen, where) for module parameters frozen or unfrozen.
Effects = tuple[tuple[tuple[str, Tri], ...], tuple[tuple[str, Tri, "cst.CSTNode | None"], ...]]
MAX_CONTEXTS = 4  # distinct calls a function is run for; later ones are unknown
# Normalisation layers save their input even when frozen (backward to the input needs it).
_SAVING_NORMS = frozenset(
    {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm2d"}
)
# nn.Module methods; any other `model.x(...)` calls a submodule or a method of the class.
MODULE_METHODS = frozenset(
    "parameters named_parameters buffers named_buffers children named_children modules "
    "named_modules state_dict load_state_dict train eval requires_grad_ zero_grad to cuda cpu "
    "float double half bfloat16 apply forward register_buffer register_parameter "
    "register_forward_hook register_forward_pre_hook register_full_backward_hook add_module "
    "get_submodule get_parameter type extra_repr".split()
)
_BINARY_SAVING = (cst.Multiply, cst.Divide, cst.MatrixMultiply)
# Binary and augmented operators by what they compute.
_OPERATORS: dict[type[cst.CSTNode], str] = {}
for _name, _types in {
    "add": (cst.Add, cst.AddAssign),
    "sub": (cst.Subtract, cst.SubtractAssign),
    "mul": (cst.Multiply, cst.MultiplyAssign),
    "div": (cst.Divide, cst.DivideAssign),
    "matmul": (cst.MatrixMultiply, cst.MatrixMultiplyAssign),
    "pow": (cst.Power, cst.PowerAssign),
    "floordiv": (cst.FloorDivide, cst.FloorDivideAssign),
    "mod": (cst.Modulo, cst.ModuloAssign),
    "bits": (
        cst.BitAnd,
        cst.BitOr,
        cst.BitXor,
        cst.LeftShift,
        cst.RightShift,
        cst.BitAndAssign,
        cst.BitOrAssign,
        cst.BitXorAssign,
        cst.LeftShiftAssign,
        cst.RightShiftAssign,
    ),
}.items():
    _OPERATORS.update(dict.fromkeys(_types, _name))
_NO_GRAD_OPERATORS = frozenset({"floordiv", "mod", "bits"})  # results without a gradient
_INTEGER_OPERATORS = frozenset({"add", "sub", "mul", "floordiv", "mod"})  # int op int is int


@dataclass
class Frame:
    """What a running function did to the objects its caller handed it."""

    params: frozenset[str]  # its parameter names (and `self`)
    rebound: set[str] = field(default_factory=set)  # parameters assigned anew
    flags: dict[str, Tri] = field(default_factory=dict)  # `x.requires_grad = ...` on a param


@dataclass
class State:
    env: dict[str, Value] = field(default_factory=dict)
    mode: Mode = ANY_MODE
    # Graph nodes surely freed by a backward without retain_graph -> that backward.
    freed: dict[Node, cst.CSTNode] = field(default_factory=dict)
    # Version counter per tensor identity (the highest any path reached).
    versions: dict[Node, int] = field(default_factory=dict)
    # Tensor identity -> its in-place changes: (version after, what to blame).
    changed_at: dict[Node, tuple[tuple[int, cst.CSTNode, cst.CSTNode], ...]] = field(
        default_factory=dict
    )
    # Graph node -> the tensors it saved for backward, at their versions then.
    saves: dict[Node, frozenset[tuple[Node, int]]] = field(default_factory=dict)
    exhausted: frozenset[int] = frozenset()  # `.parameters()` generators already used up
    frozen: dict[str, Tri] = field(default_factory=dict)  # module path -> all params frozen
    frozen_at: dict[str, cst.CSTNode] = field(default_factory=dict)  # ... and where
    dead: bool = False  # after return/raise/break/continue
    grad_off_at: cst.CSTNode | None = None  # what turned grad mode off here

    def copy(self) -> State:
        return State(
            dict(self.env),
            self.mode,
            dict(self.freed),
            dict(self.versions),
            dict(self.changed_at),
            dict(self.saves),
            self.exhausted,
            dict(self.frozen),
            dict(self.frozen_at),
            self.dead,
            self.grad_off_at,
        )

    def join(self, other: State) -> State:
        if self.dead:
            return other.copy()
        if other.dead:
            return self.copy()
        env = dict(self.env)
        for key, value in other.env.items():
            env[key] = env[key].join(value) if key in env else value
        # A tensor changed in place on either path may be changed: an error on that path.
        versions = {node: max(v, other.versions.get(node, v)) for node, v in self.versions.items()}
        for node, v in other.versions.items():
            versions.setdefault(node, v)
        frozen = {
            key: self.frozen.get(key, UNKNOWN).join(other.frozen.get(key, UNKNOWN))
            for key in self.frozen.keys() | other.frozen.keys()
        }
        return State(
            env=env,
            mode=self.mode | other.mode,
            freed={k: v for k, v in self.freed.items() if k in other.freed},
            versions=versions,
            changed_at={**other.changed_at, **self.changed_at},
            # What an op saved on one path only (an op in a loop that may not run) was
            # saved where that op ran; where both paths saved, what both saved.
            saves={
                k: v if k not in other.saves else v & other.saves[k]
                for k, v in {**other.saves, **self.saves}.items()
            },
            exhausted=self.exhausted & other.exhausted,
            frozen=frozen,
            frozen_at={**self.frozen_at, **other.frozen_at},  # the later branch
            grad_off_at=self.grad_off_at if self.grad_off_at is other.grad_off_at else None,
        )

    def age(self, sites: set[int], generation: int) -> State:
        """Values made on this pass of a loop become values of an earlier pass (marked with
        a generation of their own, so that passes of different loops never meet)."""
        if not sites:
            return self

        def old(node: Node) -> Node:
            return (node[0], generation) if node[1] == 0 and node[0] in sites else node

        def age_value(value: Value) -> Value:
            if not value.graph and value.node is None and value.item is None:
                return value
            return value.with_(
                graph=frozenset(old(n) for n in value.graph),
                node=old(value.node) if value.node is not None else None,
                head=old(value.head) if value.head is not None else None,
                item=age_value(value.item) if value.item is not None else None,
            )

        aged = self.copy()
        aged.env = {key: age_value(value) for key, value in self.env.items()}
        aged.freed = {old(n): at for n, at in self.freed.items()}
        aged.versions = {old(n): v for n, v in self.versions.items()}
        aged.changed_at = {old(n): at for n, at in self.changed_at.items()}
        aged.saves = {
            old(n): frozenset((old(s), v) for s, v in saved) for n, saved in self.saves.items()
        }
        return aged

    def age_in_place(self, sites: set[int], generation: int) -> None:
        aged = self.age(sites, generation)
        self.env, self.freed, self.versions = aged.env, aged.freed, aged.versions
        self.changed_at, self.saves = aged.changed_at, aged.saves


class Interpreter:
    def __init__(self, module: cst.Module) -> None:
        self.facts = Facts(module)
        self.scopes = ScopeCollector(module, self.facts.imports)
        self.imports = self.facts.imports
        self.class_attrs: dict[str, dict[str, Value]] = {}
        # What each class's __init__ froze: all of it, or some of its attributes.
        self.class_frozen: dict[str, Tri] = {}
        self.class_frozen_attrs: dict[str, dict[str, Tri]] = {}
        self.class_frozen_at: dict[str, dict[str, cst.CSTNode]] = {}  # ... and where
        # Classes that register parameters or layers by name (register_parameter, setattr).
        self.dynamic_classes: set[str] = set()
        # Subclasses of nn.Sequential: the layers their __init__ hands to it.
        self.class_layers: dict[str, tuple[Value, ...]] = {}
        self._memo: dict[tuple[object, ...], tuple[Value, dict[str, Value], Effects]] = {}
        self._functions: dict[int, FunctionInfo] = {}  # functions used as values, by id
        # Lambdas used as values, by id: the lambda and the names it closes over.
        self._lambdas: dict[int, tuple[cst.Lambda, dict[str, Value]]] = {}
        # A nested function: the environment of the call that defined it (late binding).
        self._closures: dict[int, dict[str, Value]] = {}
        self._lambda_depth = 0
        self._call_inputs: dict[int, frozenset[Node]] = {}  # call -> its arguments' graphs
        self._runs: dict[FunctionInfo, int] = {}
        self._ran: set[FunctionInfo] = set()
        self._running: set[FunctionInfo] = set()
        self._loops: list[cst.CSTNode] = []
        self._statement: cst.CSTNode | None = None
        self._loop_sites: list[set[int]] = []
        self._function: FunctionInfo | None = None
        self._return_values: list[Value] = []
        self._return_states: list[State] = []
        self._yield_values: list[Value] = []
        self._site_nodes: dict[int, cst.CSTNode] = {}
        # Graph node -> the graph nodes made from it (as named when they were made).
        self._consumers: dict[Node, set[Node]] = {}
        self._generation = 0
        self._stale: Node | None = None  # the stale graph node the last entry was found from
        self._layer: int | None = None  # the layer of a Sequential being run
        self._module_calls: set[int] = set()  # calls that ran a model or a layer
        self._moving_sites: set[int] = set()  # sites of ops that only move values
        # (function, name) -> the `name = other` that last made name an alias of a tensor
        self._aliases: dict[tuple[int, str], cst.CSTNode] = {}
        self._site_order: dict[int, int] = {}  # sites in the order first met
        self._tick = 0  # a clock: each new graph node and each optimizer step
        self._site_tick: dict[int, int] = {}  # site -> when it last made a node
        self._step_ticks: dict[int, int] = {}  # optimizer.step() call -> when it ran
        self._weights: dict[int, str] = {}  # weights pseudo-tensor -> the module's path
        self._site_module: dict[int, str] = {}  # site -> the module whose call made it
        self._steps: list[tuple[int, frozenset[str]]] = []  # optimizer steps: when, whose
        self._backward_ticks: dict[int, int] = {}  # backward() call -> when it last ran
        self._active: list[FunctionInfo] = []  # the functions running, outermost first
        self._function_sites: dict[FunctionInfo, set[int]] = {}  # sites each one makes
        self._call_path: list[cst.Call | None] = []  # the calls that led to the running code
        self._made_during: dict[int, tuple[cst.Call | None, ...]] = {}  # site -> call path
        self._saving_sites: set[int] = set()  # ops that save tensors for backward
        self.module_env: dict[str, Value] = {}
        self._frames: list[Frame] = []
        # Module classes that keep layers with parameters in a plain list: where.
        self.unregistered: dict[str, cst.CSTNode] = {}
        self._freeze_sites: set[int] = set()  # statements and calls that froze parameters
        self._last_writes: dict[str, Value] = {}  # what the last call set on its `self`

    # -- driving ----------------------------------------------------------------------------

    def run(self) -> Facts:
        state = State(mode=ENABLED)
        self.module_env = state.env
        final = self.exec_block(body_statements_of_module(self.facts.module), state)
        self.module_env = final.env  # functions no call reaches see the globals at the end
        # Code that no call in this module reaches runs once with unknown arguments.
        for info in self.scopes.classes.values():
            init = info.methods.get("__init__")
            if init is not None and init not in self._ran:
                self.run_function(init)
        for function in self.scopes.functions:
            if function not in self._ran:
                self.run_function(function)
        return self.facts

    def run_function(
        self,
        info: FunctionInfo,
        args: list[Value] | None = None,
        kwargs: dict[str, Value] | None = None,
        caller: State | None = None,
        self_value: Value | None = None,
        call: cst.Call | None = None,
    ) -> Value:
        """Run a function's body on abstract values: for a call, with that call's arguments
        and grad mode (a few distinct calls per function); without a caller, with unknowns."""
        if caller is not None and self._function is None:
            # Called from the module's own code: its globals are as that code has them now.
            self.module_env = caller.env
        if caller is not None and self.is_wrapped(info):
            # Calls go through the wrapper its decorator made, which may change the
            # arguments (convert tensors to arrays) or what comes back.
            return self.call_wrapped(info, args or [], kwargs or {}, caller, self_value, call)
        if caller is None:
            mode, off_at = info.mode, info.mode_set_by
        elif info.fixed_mode is not None:
            mode, off_at = info.fixed_mode, info.mode_set_by
        else:
            mode, off_at = caller.mode, caller.grad_off_at
        args = args or []
        kwargs = kwargs or {}
        # The instance's attributes the caller knows (`model.hidden`) go in as `self.hidden`,
        # and what the method sets on `self` comes back out: object state flows with calls.
        owner = self_value.path if self_value is not None and caller is not None else None
        carried: dict[str, Value] = {}
        if owner is not None and caller is not None:
            prefix = owner + "."
            carried = {
                name[len(prefix) :]: value
                for name, value in caller.env.items()
                if name.startswith(prefix) and "." not in name[len(prefix) :]
            }
        # What the caller knows of its arguments' attributes (`state.positions` after
        # `state.positions.requires_grad_()`) holds inside the call too.
        handed: dict[str, Value] = {}
        if call is not None and caller is not None:
            for param, expr in _argument_expressions(info, call).items():
                base = dotted(expr)
                if base is None:
                    continue
                prefix = base + "."
                for name, value in caller.env.items():
                    if name.startswith(prefix) and "." not in name[len(prefix) :]:
                        handed[f"{param}.{name[len(prefix) :]}"] = value
        key = (
            id(info),
            mode,
            tuple(_shape(v) for v in args),
            tuple(sorted((k, _shape(v)) for k, v in kwargs.items())),
            _shape(self_value) if self_value is not None else None,
            tuple(sorted((k, _shape(v)) for k, v in carried.items())),
            tuple(sorted((k, _shape(v)) for k, v in handed.items())),
            id(self._closures.get(id(info))) if caller is not None else None,
        )
        made_before = self._function_sites.get(info)
        if caller is not None and made_before:
            # What an earlier call of this function made are other tensors than this call's.
            self._generation += 1
            caller.age_in_place(made_before, self._generation)
        if call is not None:
            passed = [*args, *kwargs.values()]
            self._call_inputs[id(call)] = frozenset().union(*(v.graph for v in passed))
        inputs = [*args, *kwargs.values(), *carried.values()]
        runs = self._runs.get(info, 0)
        replay = caller is not None and runs < MAX_CONTEXTS and self.scopes.changes_tensors(info)
        if key in self._memo and not replay:
            result, remembered, effects = self._memo[key]
            if owner is not None and caller is not None:
                for name, value in remembered.items():
                    caller.env[f"{owner}.{name}"] = self.renewed(value, info, inputs)
            if caller is not None and call is not None:
                self.apply_effects(effects, info, call, self_value, caller)
            self._last_writes = remembered
            return self.outer_path(self.renewed(result, info, inputs), info, call, self_value)
        if info in self._running:
            return UNKNOWN_VALUE  # recursion
        if runs >= MAX_CONTEXTS:
            return UNKNOWN_VALUE
        self._runs[info] = runs + 1
        self._ran.add(info)
        self._running.add(info)
        self._active.append(info)
        saved = (self._function, self._return_values, self._return_states, self._yield_values)
        self._call_path.append(call)
        # Callee code run inside a caller's loop makes new graph nodes on every pass too.
        self._function, self._return_values, self._return_states = info, [], []
        self._yield_values = []
        state = State(mode=mode, grad_off_at=off_at if "E" not in mode else None)
        if caller is not None:
            # Tensors live across calls: what the caller's graphs saved, which graphs a
            # backward freed, how often each tensor was changed in place.
            state.freed = dict(caller.freed)
            state.versions = dict(caller.versions)
            state.changed_at = dict(caller.changed_at)
            state.saves = dict(caller.saves)
            state.exhausted = caller.exhausted
        if info.mode_set_by is not None:
            self.facts.scope[info.mode_set_by] = info
        closure = self._closures.get(id(info)) if caller is not None else None
        if closure is not None:
            state.env.update(closure)
        self.bind_parameters(info, args, kwargs, self_value, state, call)
        self._frames.append(Frame(frozenset(_param_names(info))))
        state.env.update(handed)
        me = _self_name(info)
        if me is not None:
            if self_value is not None and self_value.fields is not None and self_value.cls:
                for name, value in self_value.fields:
                    state.env[f"{me}.{name}"] = value
            for name, value in carried.items():
                state.env[f"{me}.{name}"] = value
            if info.owner is not None and info.name != "__init__":
                # What __init__ froze, and where, holds in every other method.
                cls_name = self_value.cls if self_value is not None else None
                for attr, frozen in self.class_frozen_attrs.get(cls_name or "", {}).items():
                    state.frozen[f"{me}.{attr}"] = frozen
                for attr, at in self.class_frozen_at.get(cls_name or "", {}).items():
                    state.frozen_at[f"{me}.{attr}"] = at
        final = self.exec_block(body_statements(info.node.body), state)
        result = UNKNOWN_VALUE
        if self._return_values:
            result = sequence(self._return_values).item or UNKNOWN_VALUE  # their join
        if self._yield_values:  # a generator: what it yields, one at a time
            result = Value(kind=Kind.SEQUENCE, item=sequence(self._yield_values).item)
        if me is not None and info.name == "__init__" and info.owner is not None:
            self.remember_freezes(info.owner, me, final)
        writes: dict[str, Value] = {}
        if me is not None:
            prefix = me + "."
            for name, value in final.env.items():
                attr = name[len(prefix) :]
                if name.startswith(prefix) and "." not in attr and carried.get(attr) != value:
                    writes[attr] = value
        if owner is not None and caller is not None:
            for attr, value in writes.items():
                caller.env[f"{owner}.{attr}"] = value
        effects = self.effects_of(self._frames.pop(), final)
        if caller is not None and call is not None:
            self.apply_effects(effects, info, call, self_value, caller)
        self._memo[key] = (result, writes, effects)
        self._last_writes = writes
        if caller is not None:
            out = final
            for returned in self._return_states:
                out = returned.join(out)
            caller.freed, caller.versions = out.freed, out.versions
            caller.changed_at, caller.saves = out.changed_at, out.saves
            caller.exhausted = out.exhausted
        self._function, self._return_values, self._return_states, self._yield_values = saved
        self._call_path.pop()
        self._running.discard(info)
        self._active.pop()
        return self.outer_path(result, info, call, self_value)

    def call_wrapped(
        self,
        info: FunctionInfo,
        args: list[Value],
        kwargs: dict[str, Value],
        caller: State,
        self_value: Value | None,
        call: cst.Call | None,
    ) -> Value:
        """A call of a function under one decorator of this module that returns an inner
        function (`def wrap(fn): def inner(*args): ...; return inner`): the inner function
        runs on the call's arguments (the instance first, for a method)."""
        decorator = (
            self.scopes.module_functions.get(info.decorators[0])
            if len(info.decorators) == 1
            else None
        )
        wrapper = UNKNOWN_VALUE
        if decorator is not None and decorator is not info and call is not None:
            wrapper = self.run_function(decorator, [self.function_value(info)], {}, caller)
        if wrapper.layer != "function" or call is None:
            self.forget_modules([*args, *kwargs.values()], caller)
            return UNKNOWN_VALUE
        positional = args if self_value is None or info.owner is None else [self_value, *args]
        return self.invoke(wrapper, positional, kwargs, call, caller)

    def is_wrapped(self, info: FunctionInfo) -> bool:
        """Decorated by a function of this module, or made a context manager."""
        return any(
            name in self.scopes.module_functions
            or resolve_dotted(self.imports, name) == "contextlib.contextmanager"
            for name in info.decorators
        )

    def outer_path(
        self, result: Value, info: FunctionInfo, call: cst.Call | None, self_value: Value | None
    ) -> Value:
        """A module a function returns, named as its caller names it: the argument it was
        handed, or nothing (a module the function made). A method that returns `self`
        returns the instance with what it wrote (`Dataset(...).materialize()`)."""
        me = _self_name(info)
        if (
            self_value is not None
            and me is not None
            and result.path == me
            and result.cls is not None
            and result.cls == self_value.cls
        ):
            fields = dict(self_value.fields or ())
            fields.update(self._last_writes)
            return result.with_(path=self_value.path, fields=tuple(fields.items()))
        if result.kind is not Kind.MODULE or result.path is None:
            return result
        head, _, rest = result.path.partition(".")
        base: str | None = None
        if head == _self_name(info) and self_value is not None:
            base = self_value.path
        elif call is not None:
            expr = _argument_expressions(info, call).get(head)
            base = self.facts.value(expr).path if expr is not None else None
        path = None if base is None else (f"{base}.{rest}" if rest else base)
        return result.with_(path=path)

    def effects_of(self, frame: Frame, final: State) -> Effects:
        """What the call did to its arguments' objects: requires_grad set on a tensor it
        was handed, parameters of a module it was handed frozen or unfrozen."""
        frozen = tuple(
            (key, value, final.frozen_at.get(key))
            for key, value in final.frozen.items()
            if key.split(".")[0] in frame.params and key.split(".")[0] not in frame.rebound
        )
        flags = tuple(
            (name, wanted) for name, wanted in frame.flags.items() if name not in frame.rebound
        )
        return flags, frozen

    def apply_effects(
        self,
        effects: Effects,
        info: FunctionInfo,
        call: cst.Call,
        self_value: Value | None,
        caller: State,
    ) -> None:
        flags, frozen = effects
        if not flags and not frozen:
            return
        passed = _argument_expressions(info, call)
        for name, wanted in flags:
            expr = passed.get(name)
            key = dotted(expr) if expr is not None else None
            value = caller.env.get(key) if key is not None else None
            if key is not None and value is not None and value.is_tensor and value.leaf is YES:
                caller.env[key] = value.with_(requires_grad=wanted)
                if self._frames and key in self._frames[-1].params:
                    self._frames[-1].flags[key] = wanted  # passed on to our own caller
        me = _self_name(info)
        for key, is_frozen, at in frozen:
            head, _, rest = key.partition(".")
            if head == me and self_value is not None:
                base = self_value.path
            else:
                expr = passed.get(head)
                base = self.facts.value(expr).path if expr is not None else None
            if base is None:
                continue
            path = f"{base}.{rest}" if rest else base
            for child in [k for k in caller.frozen if k.startswith(path + ".")]:
                del caller.frozen[child]
            caller.frozen[path] = is_frozen
            if at is not None:
                caller.frozen_at[path] = at
            self.unfreeze_parents(path, is_frozen.negate(), caller)

    def remember_freezes(self, cls: ClassInfo, me: str, final: State) -> None:
        """What __init__ froze (`self.requires_grad_(False)`, a loop over its own
        parameters, `self.backbone` frozen) holds for every instance of the class."""
        frozen = self.frozen_of(me, final)
        if frozen is not None:
            self.class_frozen[cls.name] = frozen
        prefix = me + "."
        for key, value in final.frozen.items():
            attr = key[len(prefix) :]
            if key.startswith(prefix) and "." not in attr:
                self.class_frozen_attrs.setdefault(cls.name, {})[attr] = value
                if key in final.frozen_at:
                    self.class_frozen_at.setdefault(cls.name, {})[attr] = final.frozen_at[key]

    def renewed(self, value: Value, info: FunctionInfo, inputs: list[Value]) -> Value:
        """A remembered call's result, as this call makes it: what the function made is made
        anew (its earlier loop passes are other tensors than the first call's), and what
        came from the first call's arguments comes from this call's arguments instead."""
        generations: dict[int, int] = {}
        made_here = self._function_sites.get(info, set())
        from_inputs: frozenset[Node] = frozenset()
        for value_in in inputs:
            from_inputs |= value_in.graph
            for part in (value_in.item, *(value_in.items or ())):
                if part is not None:
                    from_inputs |= part.graph

        def own(node: Node | None) -> Node | None:
            return node_of(node) if node is not None and node[0] in made_here else None

        def node_of(node: Node) -> Node:
            if node[1] == 0:
                for sites in self._loop_sites:  # made anew by this call, in this loop pass
                    sites.add(node[0])
                return node
            if node[1] not in generations:
                self._generation += 1
                generations[node[1]] = self._generation
            return (node[0], generations[node[1]])

        def renew(value: Value) -> Value:
            if not value.graph and value.item is None and value.items is None:
                return value
            graph = frozenset(node_of(n) for n in value.graph if n[0] in made_here)
            if any(n[0] not in made_here for n in value.graph):
                graph |= from_inputs
            return value.with_(
                graph=graph,
                node=own(value.node),
                head=own(value.head),
                item=renew(value.item) if value.item is not None else None,
                items=tuple(renew(v) for v in value.items) if value.items is not None else None,
            )

        return renew(value)

    def bind_parameters(
        self,
        info: FunctionInfo,
        args: list[Value],
        kwargs: dict[str, Value],
        self_value: Value | None,
        state: State,
        call: cst.Call | None = None,
    ) -> None:
        params = info.node.params
        positional = [*params.posonly_params, *params.params]
        passed = list(args)
        if info.owner is not None and positional and not info.is_static:
            first = positional[0].name.value
            if info.is_classmethod:
                state.env[first] = Value(kind=Kind.OTHER, cls=info.owner.name, layer="class")
            else:
                state.env[first] = (self_value or self.instance_of(info.owner, first)).with_(
                    path=first  # inside the method, the instance is `self`
                )
            positional = positional[1:]
        spread = next((v for v in passed if v.spread), None)
        if spread is not None:
            passed = []  # positions unknown past a `*xs` of unknown length
        for param in [*positional, *params.kwonly_params]:
            name = param.name.value
            if param in positional and passed:
                value = passed.pop(0)
            elif name in kwargs:
                value = kwargs[name]
            elif param.default is not None and _is_literal(param.default):
                value = self.eval(param.default, State())
            else:
                value = UNKNOWN_VALUE
            if value.kind is Kind.UNKNOWN and name in info.used_as_module:
                # `model.train()` / `model.parameters()`: a model, and one that trains.
                value = Value(kind=Kind.MODULE, has_params=YES, frozen=NO)
            if value.kind in (Kind.MODULE, Kind.OPTIMIZER):
                value = value.with_(path=name)
            if value.is_tensor and call is not None and value.handed is None:
                value = value.with_(handed=call)
            state.env[name] = value
        star = params.star_arg
        if isinstance(star, cst.Param):
            if spread is not None:
                rest = Value(kind=Kind.SEQUENCE, item=spread.with_(spread=False))
            else:
                rest = sequence(passed, fixed=True)
            state.env[star.name.value] = rest
        if params.star_kwarg is not None:
            state.env[params.star_kwarg.name.value] = OTHER

    def layers_of(self, module: Value) -> tuple[Value, ...] | None:
        if module.layer == "Sequential" and module.items is not None:
            return module.items
        if module.cls is not None and module.cls in self.class_layers:
            cls = self.scopes.classes.get(module.cls)
            if cls is not None and self.find_method(cls, "forward") is None:
                return self.class_layers[module.cls]
        return None

    def instance_of(self, cls: ClassInfo, path: str | None) -> Value:
        if not cls.is_module:
            return Value(kind=Kind.OTHER, cls=cls.name, path=path)
        return Value(
            kind=Kind.MODULE,
            cls=cls.name,
            path=path,
            has_params=self.class_has_params(cls),
            frozen=self.class_frozen.get(cls.name, NO),
        )

    def class_has_params(self, cls: ClassInfo) -> Tri:
        if cls.name in self.dynamic_classes:
            return UNKNOWN  # registers parameters by name: not seen here
        attrs = self.class_attrs.get(cls.name, {})
        # A class that sets nothing on itself and has no __init__ adds no parameters.
        result = NO if attrs or "__init__" not in cls.methods else UNKNOWN
        for value in attrs.values():
            if value.kind is Kind.MODULE:
                result = result | value.has_params
            elif value.kind is Kind.TENSOR and value.layer == "buffer":
                continue
            elif value.kind is Kind.TENSOR:
                # An nn.Parameter attribute (a leaf that requires grad) is a parameter.
                result = result | (value.requires_grad if value.leaf is YES else UNKNOWN)
            elif value.kind is Kind.SEQUENCE and value.item is not None:
                # Layers in a plain list are not registered: they add no parameters.
                result = result | (NO if value.item.kind is Kind.MODULE else UNKNOWN)
            elif value.kind is Kind.UNKNOWN:
                result = result | UNKNOWN
        for base in cls.bases:
            local = self.scopes.classes.get(base)
            if local is not None and local is not cls:
                result = result | self.class_has_params(local)
            elif base and resolve_dotted(self.imports, base) not in (
                "torch.nn.Module",
                None,
            ):
                result = result | UNKNOWN
        return result

    # -- statements ---------------------------------------------------------------------------

    def exec_block(
        self, statements: Sequence[cst.BaseStatement | cst.BaseSmallStatement], state: State
    ) -> State:
        for statement in statements:
            if state.dead:
                break
            state = self.exec_statement(statement, state)
        return state

    def exec_statement(self, statement: cst.CSTNode, state: State) -> State:
        self.facts.record_mode(statement, state.mode)
        self.facts.scope[statement] = self._function
        self._statement = statement
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                state = self.exec_small(small, state)
            return state
        if isinstance(statement, cst.If):
            test = _truth(self.eval(statement.test, state))
            if test.truth is YES:  # `if True:`, or a flag whose value is known here
                return self.exec_block(body_statements(statement.body), state)
            if test.truth is NO:
                if statement.orelse is None:
                    return state
                if isinstance(statement.orelse, cst.If):
                    return self.exec_statement(statement.orelse, state)
                return self.exec_block(body_statements(statement.orelse.body), state)
            then = self.exec_block(body_statements(statement.body), state.copy())
            if statement.orelse is None:
                other = state
            elif isinstance(statement.orelse, cst.If):
                other = self.exec_statement(statement.orelse, state.copy())
            else:
                other = self.exec_block(body_statements(statement.orelse.body), state.copy())
            return then.join(other)
        if isinstance(statement, cst.For):
            iterable = self.eval(statement.iter, state)
            # A loop over a model's parameters, or over range(n), runs: its effect holds
            # after it (training code does not loop zero times).
            once = iterable.kind is Kind.PARAMS or _counts(statement.iter)
            return self.exec_loop(
                statement,
                state,
                statement.target,
                self.iterate(iterable, state, statement.iter),
                at_least_once=once,
                counter=_counter_of(statement),
            )
        if isinstance(statement, cst.While):
            self.eval(statement.test, state)
            return self.exec_loop(statement, state, None, UNKNOWN_VALUE)
        if isinstance(statement, cst.With):
            return self.exec_with(statement, state)
        if isinstance(statement, (cst.Try, cst.TryStar)):
            after_body = self.exec_block(body_statements(statement.body), state.copy())
            if statement.orelse is not None:
                after_body = self.exec_block(body_statements(statement.orelse.body), after_body)
            joined = after_body
            for handler in statement.handlers:
                start = state.join(after_body) if not after_body.dead else state.copy()
                joined = joined.join(self.exec_block(body_statements(handler.body), start))
            if statement.finalbody is not None:
                joined = self.exec_block(body_statements(statement.finalbody.body), joined)
            return joined
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            # Calls of the name resolve to the function or class itself.
            state.env.pop(statement.name.value, None)
            nested = None
            if isinstance(statement, cst.FunctionDef) and self._function is not None:
                nested = self.scopes.info_for(statement)
            if nested is not None:
                state.env[statement.name.value] = self.function_value(nested)
                self._closures[id(nested)] = state.env  # the names it reads from its maker
            return state
        if isinstance(statement, cst.Match):
            self.eval(statement.subject, state)
            result: State | None = None
            for case in statement.cases:
                branch = self.exec_block(body_statements(case.body), state.copy())
                result = branch if result is None else result.join(branch)
            return state.join(result) if result is not None else state
        return state

    def exec_loop(
        self,
        loop: cst.For | cst.While,
        state: State,
        target: cst.BaseExpression | None,
        item: Value,
        at_least_once: bool = False,
        counter: str | None = None,
    ) -> State:
        """Two passes: the first from the state before the loop, the second standing for
        every later one. A counter from 0 (`range(n)`, `enumerate(xs)`) is 0 on the first
        pass and at least 1 on the second, so `if i == 0:` takes one branch on each."""
        body = body_statements(loop.body)
        if len(self._loop_sites) >= MAX_LOOP_DEPTH:
            passes = 1
        else:
            passes = 2
        entry = state
        current = state.copy()
        self._loops.append(loop)
        for index in range(passes):
            sites: set[int] = set()
            self._loop_sites.append(sites)
            if target is not None:
                self.assign(target, item, current, loop)
            if counter is not None:
                bounds = {"low": 0, "high": 0} if index == 0 else {"low": 1}
                current.env[counter] = INT.with_(**bounds)
            current = self.exec_block(body, current)
            self._loop_sites.pop()
            for outer in self._loop_sites:
                outer |= sites
            current.dead = False  # break/continue end a pass, not the function
            if index + 1 < passes:
                self._generation += 1
                current = current.age(sites, self._generation)
        self._loops.pop()
        result = current if at_least_once else entry.join(current)
        for key, value in current.env.items():
            # `total = 0` (or `torch.tensor(0.)`) then `total += loss` in the loop: after
            # it, total is a tensor with a graph (training loops run).
            before = entry.env.get(key)
            if before is None or value.kind is not Kind.TENSOR:
                continue
            if before.kind is Kind.NUMBER or (
                before.is_tensor and before.requires_grad is NO and value.requires_grad is YES
            ):
                result.env[key] = value
        if loop.orelse is not None:
            result = self.exec_block(body_statements(loop.orelse.body), result)
        return result

    def exec_with(self, statement: cst.With, state: State) -> State:
        outer_mode = state.mode
        for item in statement.items:
            found = grad_mode_of(item.item, self.imports)
            if found is not None:
                qualname, mode = found
                self.facts.with_items.append(
                    WithItem(item, qualname, called=isinstance(item.item, cst.Call))
                )
                if isinstance(item.item, cst.Call):
                    self.eval_args(item.item, state)
                if mode is not None:
                    state.mode = mode
                    state.grad_off_at = statement if "E" not in mode else None
                continue
            value = self.eval(item.item, state)
            if value.grad_mode is not None:  # `ctx = torch.no_grad()`, then `with ctx:`
                state.mode = value.grad_mode
                state.grad_off_at = statement if "E" not in value.grad_mode else None
            if item.asname is not None:
                self.assign(item.asname.name, value, state, item)
        outer_off = state.grad_off_at
        state = self.exec_block(body_statements(statement.body), state)
        state.mode, state.grad_off_at = outer_mode, outer_off
        return state

    def exec_small(self, small: cst.BaseSmallStatement, state: State) -> State:
        self.facts.record_mode(small, state.mode)
        self.facts.scope[small] = self._function
        if isinstance(small, cst.Expr):
            expr = small.value
            if isinstance(expr, cst.Call):
                found = grad_mode_of(expr, self.imports)
                if found is not None and found[0] == "torch.set_grad_enabled":
                    self.eval(expr, state)
                    if found[1] is not None:
                        state.mode = found[1]
                        state.grad_off_at = small if "E" not in found[1] else None
                    return state
                self.facts.statement_calls.append(self.call_of(expr))
            self.eval(expr, state)
        elif isinstance(small, cst.Assign):
            value = self.eval(small.value, state)
            for target in small.targets:
                self.assign(target.target, value, state, small, small.value)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                value = self.eval(small.value, state)
                self.assign(small.target, value, state, small, small.value)
        elif isinstance(small, cst.AugAssign):
            self.exec_augassign(small, state)
        elif isinstance(small, cst.Return):
            value = self.eval(small.value, state) if small.value is not None else OTHER
            function = self._function
            if function is not None and function.name == "forward" and function.owner is not None:
                if function.owner.is_module:
                    # Training back-propagates what forward returns.
                    self.check_saved(value, small, state)
            self._return_values.append(value)
            returned = copy.copy(state)  # only its tensor facts are read
            self._return_states.append(returned)
            state.dead = True
        elif isinstance(small, (cst.Raise, cst.Break, cst.Continue)):
            if isinstance(small, cst.Raise) and small.exc is not None:
                self.eval(small.exc, state)
            state.dead = True
        elif isinstance(small, cst.Assert):
            self.eval(small.test, state)
        elif isinstance(small, cst.Del):
            for name in _target_keys(small.target):
                state.env.pop(name, None)
        elif isinstance(small, (cst.Import, cst.ImportFrom)):
            names = small.names if not isinstance(small.names, cst.ImportStar) else ()
            for alias in names:
                local = alias.asname.name if alias.asname is not None else alias.name
                key = dotted(local)  # type: ignore[arg-type]
                if key:
                    state.env.pop(key.split(".")[0], None)
        return state

    def exec_augassign(self, node: cst.AugAssign, state: State) -> None:
        target = self.eval(node.target, state)
        value = self.eval(node.value, state)
        if target.kind is Kind.TENSOR:
            # `x += y` on a tensor changes it in place; `x[i] += y` changes x.
            changed: cst.BaseExpression = node.target
            if isinstance(changed, cst.Subscript) and self.facts.value(changed.value).is_tensor:
                changed = changed.value
            self.facts.inplace.append(Inplace(node, changed))
            op = _OPERATORS.get(type(node.operator), "other")
            result = self.inplace_result(target, [value], op, node, state, saves_output=False)
            self.assign(node.target, result, state, node)
            return
        if target.kind is Kind.SEQUENCE and isinstance(node.operator, cst.AddAssign):
            merged = value.item if value.kind is Kind.SEQUENCE else None
            item = (
                target.item
                if merged is None
                else (merged if target.item is None else target.item.join(merged))
            )
            self.assign(node.target, Value(kind=Kind.SEQUENCE, item=item), state, node)
            return
        result = self.binary(target, value, node.operator, node, state)
        if (
            target.kind is Kind.NUMBER
            and isinstance(node.operator, cst.AddAssign)
            and result.is_tensor
            and value.requires_grad is YES
        ):
            result = result.with_(summed_at=node)
        self.assign(node.target, result, state, node)

    # -- assignment ---------------------------------------------------------------------------

    def assign(
        self,
        target: cst.BaseExpression,
        value: Value,
        state: State,
        statement: cst.CSTNode,
        source: cst.BaseExpression | None = None,
    ) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = [el for el in target.elements]
            starred = any(isinstance(el, cst.StarredElement) for el in elements)
            positional = value.items is not None and len(value.items) == len(elements)
            for index, element in enumerate(elements):
                if positional and not starred and value.items is not None:
                    part = value.items[index]
                elif value.kind is Kind.SEQUENCE and value.item is not None and not starred:
                    part = value.item
                elif value.kind is Kind.TENSOR and not starred:
                    # Unpacking a tensor, or a model's tuple of outputs, shares its graph.
                    part = value.with_(
                        node=None, leaf=NO if value.requires_grad is YES else value.leaf
                    )
                else:
                    part = UNKNOWN_VALUE
                if isinstance(element, cst.StarredElement):
                    part = (
                        Value(kind=Kind.SEQUENCE, item=value.item) if value.item else UNKNOWN_VALUE
                    )
                self.facts.record(element.value, part, state.mode)
                self.assign(element.value, part, state, statement)
            return
        if isinstance(target, cst.Name):
            if value.kind is Kind.UNKNOWN and target.value in self.scopes.models[self._function]:
                # `model = torch.load(path)`, then `model.parameters()`: a model that trains.
                value = Value(kind=Kind.MODULE, has_params=YES, frozen=NO)
            if value.path is None and (
                value.kind in (Kind.MODULE, Kind.OPTIMIZER)
                or (value.kind is Kind.OTHER and value.cls is not None and value.layer is None)
            ):
                value = value.with_(path=target.value)
                self.forget_freezes(target.value, state)  # a new module under an old name
            self.facts.record(target, value, state.mode)
            state.env[target.value] = value
            alias = (id(self._function), target.value)
            if isinstance(source, cst.Name) and value.is_tensor and value.node is not None:
                # `out = x`: the same tensor under a second name, not a copy.
                self._aliases[alias] = statement
            else:
                self._aliases.pop(alias, None)
            self.forget_children(target.value, state)
            if self._frames and target.value in self._frames[-1].params:
                self._frames[-1].rebound.add(target.value)
            return
        if isinstance(target, cst.Attribute):
            obj = self.eval(target.value, state)
            key = dotted(target)
            if source is not None and isinstance(statement, cst.Assign):
                self.facts.attribute_sets.append(AttributeSet(statement, target, source))
            if target.attr.value == "requires_grad":
                self.set_requires_grad(obj, target.value, value, state)
                return
            if target.attr.value == "grad":
                return
            if key is not None:
                if value.kind is Kind.MODULE and value.path is None:
                    value = value.with_(path=key)
                    self.forget_freezes(key, state)
                owner = self._function.owner if self._function is not None else None
                if (
                    owner is not None
                    and owner.is_module
                    and key.count(".") == 1
                    and value.kind is Kind.SEQUENCE
                    and value.item is not None
                    and value.item.kind is Kind.MODULE
                    and value.item.has_params is YES
                ):
                    self.unregistered[owner.name] = statement
                state.env[key] = value
                self.forget_children(key, state)
                self.facts.record(target, value, state.mode)
                self.update_class_attr(key, value)
            return
        if isinstance(target, cst.Subscript):
            obj = self.eval(target.value, state)
            self.eval_slices(target, state)
            key = dotted(target.value)
            if obj.kind in (Kind.MAPPING, Kind.SEQUENCE) and key is not None and key in state.env:
                # `losses["total"] = loss`: the container may now hold that value.
                item = value if obj.item is None else obj.item.join(value)
                fields = None
                slot = target.slice[0].slice if len(target.slice) == 1 else None
                name = _string_key(slot.value) if isinstance(slot, cst.Index) else None
                if obj.fields is not None and name is not None:
                    fields = (*((k, v) for k, v in obj.fields if k != name), (name, value))
                state.env[key] = obj.with_(item=item, items=None, fields=fields)
                self.update_class_attr(key, state.env[key])
            if obj.kind is Kind.TENSOR:
                self.facts.inplace.append(Inplace(statement, target.value))
                changed = self.inplace_result(
                    obj,
                    [value],
                    "copy",
                    statement,
                    state,
                    saves_output=False,
                    blame=self.alias_of(target.value),
                )
                if key is not None and key in state.env:
                    state.env[key] = changed  # `x[i] = y` can make x require grad
            return
        if isinstance(target, cst.StarredElement):
            self.assign(target.value, value, state, statement)

    def field_holder(self, expr: cst.BaseExpression, state: State) -> tuple[str, str] | None:
        """`results["loss"]` of a dict with known keys in a variable: its name and the key."""
        if not isinstance(expr, cst.Subscript) or len(expr.slice) != 1:
            return None
        index = expr.slice[0].slice
        name = dotted(expr.value)
        key = _string_key(index.value) if isinstance(index, cst.Index) else None
        if name is None or key is None or name not in state.env:
            return None
        holder = state.env[name]
        if holder.kind is not Kind.MAPPING or holder.field(key) is None:
            return None
        return name, key

    def set_field(self, name: str, key: str, value: Value, state: State) -> None:
        holder = state.env[name]
        assert holder.fields is not None
        fields = tuple((k, value if k == key else v) for k, v in holder.fields)
        item = value if holder.item is None else holder.item.join(value)
        state.env[name] = holder.with_(fields=fields, item=item)

    def alias_of(self, changed: cst.BaseExpression) -> cst.CSTNode | None:
        """Where a tensor written into through a second name got that name (`out = x`
        then `out[...] = ...`): a copy there is the fix. (`out += y` has its own fix on
        its line, `out = out + y`.)"""
        if not isinstance(changed, cst.Name):
            return None
        return self._aliases.get((id(self._function), changed.value))

    def update_class_attr(self, key: str, value: Value) -> None:
        """`self.x = ...` (or `self.x.append(...)`) in any method changes what `x` can hold."""
        if not key.startswith("self.") or key.count(".") != 1 or self._function is None:
            return
        owner = self._function.owner
        if owner is None:
            return
        attrs = self.class_attrs.setdefault(owner.name, {})
        name = key[5:]
        attrs[name] = attrs[name].join(value) if name in attrs else value

    def forget_freezes(self, path: str, state: State) -> None:
        prefix = path + "."
        for name in [k for k in state.frozen if k == path or k.startswith(prefix)]:
            del state.frozen[name]
            state.frozen_at.pop(name, None)

    def forget_children(self, key: str, state: State) -> None:
        prefix = key + "."
        for name in [name for name in state.env if name.startswith(prefix)]:
            del state.env[name]

    def set_requires_grad(
        self, obj: Value, obj_expr: cst.BaseExpression, flag: Value, state: State
    ) -> None:
        wanted = flag.truth
        if obj.kind is Kind.TENSOR and obj.leaf is YES:
            if obj.path is not None:
                every = obj.path.endswith(".*")
                owner = obj.path[:-2] if every else obj.path
                state.frozen[owner] = wanted.negate()
                if wanted is NO and self._statement is not None:
                    state.frozen_at[owner] = self._statement
                    self._freeze_sites.add(id(self._statement))
                    self.note_freeze_loop(self._statement)
                self.unfreeze_parents(owner, wanted, state)
            key = dotted(obj_expr)
            if key is not None and (key in state.env or _is_field_of_record(key, state)):
                state.env[key] = obj.with_(requires_grad=wanted)
            if self._frames and key in self._frames[-1].params:
                self._frames[-1].flags[key] = wanted

    def note_freeze_loop(self, statement: cst.CSTNode | None) -> None:
        """`for p in m.parameters(): p.requires_grad = False`: the loop chose what to
        freeze, and is as much the line to change as the freeze itself."""
        if not self._loops or statement is None:
            return
        loop = self._loops[-1]
        if (
            isinstance(loop, cst.For)
            and self.facts.value(loop.iter).kind is Kind.PARAMS
            and len(loop.body.body) == 1
            and loop.body.body[0] is statement
        ):
            self.facts.freeze_loops[statement] = loop

    def unfreeze_parents(self, path: str, wanted: Tri, state: State) -> None:
        # Making part of a frozen module trainable means it is no longer wholly frozen.
        if wanted is not YES:
            return
        parts = path.split(".")
        for end in range(1, len(parts)):
            parent = ".".join(parts[:end])
            if state.frozen.get(parent) is YES:
                state.frozen[parent] = NO

    # -- expressions --------------------------------------------------------------------------

    def eval(self, expr: cst.BaseExpression, state: State) -> Value:
        value = self._eval(expr, state)
        return self.facts.record(expr, value, state.mode)

    def _eval(self, expr: cst.BaseExpression, state: State) -> Value:
        if isinstance(expr, cst.Name):
            if expr.value in state.env:
                value = state.env[expr.value]
                if value.fields is not None and value.kind is Kind.OTHER:
                    value = _with_field_writes(value, expr.value, state)
                return self.with_frozen(value, state)
            if expr.value in self.module_env and self._function is not None:
                return self.module_env[expr.value]  # a global, as the module left it
            if expr.value in ("True", "False"):
                return Value(kind=Kind.OTHER, truth=YES if expr.value == "True" else NO)
            if expr.value == "None":
                return NONE
            cls = self.scopes.classes.get(expr.value)
            if cls is not None:
                return Value(kind=Kind.OTHER, cls=cls.name, layer="class")
            if expr.value in self.scopes.module_functions:
                return self.function_value(self.scopes.module_functions[expr.value])
            return self.class_ref(expr) or UNKNOWN_VALUE
        if isinstance(expr, cst.Attribute):
            return self.eval_attribute(expr, state)
        if isinstance(expr, cst.Call):
            return self.eval_call(expr, state)
        if isinstance(expr, cst.Ellipsis):
            return OTHER
        if isinstance(expr, cst.Integer):
            return INT
        if isinstance(expr, (cst.Float, cst.Imaginary)):
            return FLOAT
        if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            if isinstance(expr, cst.FormattedString):
                for part in expr.parts:
                    if isinstance(part, cst.FormattedStringExpression):
                        self.eval(part.expression, state)
            return OTHER
        if isinstance(expr, cst.BinaryOperation):
            left = self.eval(expr.left, state)
            right = self.eval(expr.right, state)
            return self.binary(left, right, expr.operator, expr, state)
        if isinstance(expr, cst.UnaryOperation):
            operand = self.eval(expr.expression, state)
            if isinstance(expr.operator, cst.Not):
                return Value(kind=Kind.OTHER, truth=_truth(operand).truth.negate())
            if operand.kind is Kind.NUMBER:
                return operand
            if operand.kind is Kind.TENSOR and isinstance(expr.operator, cst.BitInvert):
                return self.no_grad_tensor(operand, expr)
            return self.op_result([operand], expr, state, "neg")
        if isinstance(expr, cst.BooleanOperation):
            left = self.eval(expr.left, state)
            right = self.eval(expr.right, state)
            return left.join(right)
        if isinstance(expr, cst.Comparison):
            left = self.eval(expr.left, state)
            operands = [self.eval(target.comparator, state) for target in expr.comparisons]
            if len(operands) == 1 and left.kind is Kind.NUMBER:
                truth = _compare_bounds(left, expr.comparisons[0])
                if truth is not UNKNOWN:
                    return Value(kind=Kind.OTHER, truth=truth)
            if len(operands) == 1 and isinstance(expr.comparisons[0].operator, (cst.Is, cst.IsNot)):
                truth = _is_none(left) if operands[0].layer == "none" else UNKNOWN
                if isinstance(expr.comparisons[0].operator, cst.IsNot):
                    truth = truth.negate()
                return Value(kind=Kind.OTHER, truth=truth)
            if (
                any(v.kind is Kind.TENSOR for v in operands)
                or self.facts.value(expr.left).is_tensor
            ):
                return self.no_grad_tensor(UNKNOWN_VALUE, expr)
            return OTHER
        if isinstance(expr, cst.IfExp):
            test = _truth(self.eval(expr.test, state))
            if test.truth is YES:
                return self.eval(expr.body, state)
            if test.truth is NO:
                return self.eval(expr.orelse, state)
            return self.eval(expr.body, state).join(self.eval(expr.orelse, state))
        if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
            items = []
            for element in expr.elements:
                value = self.eval(element.value, state)
                if isinstance(element, cst.StarredElement):
                    value = value.item if value.item is not None else UNKNOWN_VALUE
                items.append(value)
            starred = any(isinstance(e, cst.StarredElement) for e in expr.elements)
            return sequence(items, fixed=not starred)
        if isinstance(expr, cst.Dict):
            values = []
            fields: list[tuple[str, Value]] | None = []
            for entry in expr.elements:
                if isinstance(entry, cst.DictElement):
                    self.eval(entry.key, state)
                    value = self.eval(entry.value, state)
                    values.append(value)
                    key = _string_key(entry.key)
                    if key is not None and fields is not None:
                        fields.append((key, value))
                    else:
                        fields = None
                else:
                    self.eval(entry.value, state)
                    values.append(UNKNOWN_VALUE)
                    fields = None
            return Value(
                kind=Kind.MAPPING,
                item=sequence(values).item,
                fields=tuple(fields) if fields is not None else None,
            )
        if isinstance(expr, (cst.ListComp, cst.SetComp, cst.GeneratorExp)):
            iterable = self.eval(expr.for_in.iter, state)
            inner = self.bind_comprehension(expr.for_in, state, iterable)
            item = self.eval(expr.elt, inner)
            for one in self.each_item(expr.for_in, iterable):
                # A short list of known elements: each element, not only their join.
                each = copy.copy(state)
                each.env = dict(state.env)
                self.assign(expr.for_in.target, one, each, expr.for_in)
                item = item.join(self.eval(expr.elt, each))
            if _keeps_trainable(expr.for_in, expr.elt) and item.requires_grad is NO:
                # Every candidate is frozen: the list is empty, made so by the freeze.
                frozen_at = (
                    self.frozen_where(item.path.removesuffix(".*"), state) if item.path else None
                )
                return Value(kind=Kind.SEQUENCE, items=(), cut=frozen_at)
            return Value(kind=Kind.SEQUENCE, item=item)
        if isinstance(expr, cst.DictComp):
            inner = self.bind_comprehension(expr.for_in, state)
            self.eval(expr.key, inner)
            self.eval(expr.value, inner)
            return OTHER
        if isinstance(expr, cst.Subscript):
            obj = self.eval(expr.value, state)
            self.eval_slices(expr, state)
            if obj.kind is Kind.MAPPING and obj.fields is not None and len(expr.slice) == 1:
                index = expr.slice[0].slice
                key = _string_key(index.value) if isinstance(index, cst.Index) else None
                found = obj.field(key) if key is not None else None
                if found is not None:
                    return found
            if obj.kind in (Kind.SEQUENCE, Kind.MAPPING):
                return obj.item if obj.item is not None else UNKNOWN_VALUE
            if obj.kind is Kind.TENSOR:
                basic = all(
                    isinstance(element.slice, cst.Slice)
                    or self.facts.value(element.slice.value).kind in (Kind.NUMBER, Kind.OTHER)
                    for element in expr.slice
                    if isinstance(element.slice, (cst.Slice, cst.Index))
                )
                # Basic indexing gives a view; indexing with lists or tensors copies.
                return self.op_result([obj], expr, state, "select" if basic else "index")
            if obj.kind is Kind.MODULE:  # nn.Sequential / ModuleList indexing
                path = f"{obj.path}.[]" if obj.path else None
                if obj.item is not None and obj.item.kind is Kind.MODULE:
                    return self.with_frozen(obj.item.with_(path=path), state)
                if obj.item is not None and obj.item.kind is Kind.TENSOR:  # ParameterList
                    param = obj.item.with_(path=path, requires_grad=obj.frozen.negate())
                    return self.with_frozen(param, state)
                return obj.with_(path=path, item=None, layer=None)
            return UNKNOWN_VALUE
        if isinstance(expr, cst.NamedExpr):
            value = self.eval(expr.value, state)
            self.assign(expr.target, value, state, expr)
            return value
        if isinstance(expr, cst.Yield):
            if isinstance(expr.value, cst.BaseExpression):
                self._yield_values.append(self.eval(expr.value, state))
            elif isinstance(expr.value, cst.From):  # `yield from xs`
                iterable = self.eval(expr.value.item, state)
                self._yield_values.append(self.iterate(iterable, state, expr.value.item))
            return UNKNOWN_VALUE
        if isinstance(expr, cst.Await):
            self.eval(expr.expression, state)
            return UNKNOWN_VALUE
        if isinstance(expr, cst.Lambda):
            self._lambdas[id(expr)] = (expr, state.env)
            return Value(kind=Kind.OTHER, layer="function", origin=id(expr))
        for child in child_nodes(expr):
            if isinstance(child, cst.BaseExpression):
                self.eval(child, state)
        return UNKNOWN_VALUE

    def eval_slices(self, expr: cst.Subscript, state: State) -> None:
        for element in expr.slice:
            index = element.slice
            if isinstance(index, cst.Index):
                self.eval(index.value, state)
            elif isinstance(index, cst.Slice):
                for part in (index.lower, index.upper, index.step):
                    if part is not None:
                        self.eval(part, state)

    def each_item(self, for_in: cst.CompFor, iterable: Value) -> tuple[Value, ...]:
        """The elements of a comprehension's short list of known elements, one by one."""
        if for_in.inner_for_in is not None or for_in.ifs:
            return ()
        if iterable.kind is not Kind.SEQUENCE or iterable.items is None:
            return ()
        items = iterable.items
        if not 1 < len(items) <= 6 or all(item == items[0] for item in items):
            return ()
        return items

    def bind_comprehension(
        self, for_in: cst.CompFor, state: State, iterable: Value | None = None
    ) -> State:
        """The comprehension's own scope; iterating uses up generators of the outer one."""
        if iterable is None:
            iterable = self.eval(for_in.iter, state)
        item = self.iterate(iterable, state, for_in.iter)
        # The comprehension's names are its own; what it does to tensors is not.
        inner = copy.copy(state)
        inner.env = dict(state.env)
        self.assign(for_in.target, item, inner, for_in)
        for condition in for_in.ifs:
            self.eval(condition.test, inner)
        if for_in.inner_for_in is not None:
            inner = self.bind_comprehension(for_in.inner_for_in, inner)
        return inner

    def iterate(self, iterable: Value, state: State, expr: cst.BaseExpression) -> Value:
        """The value of one element when iterating."""
        if iterable.kind is Kind.PARAMS:
            if iterable.origin is not None:
                state.exhausted = state.exhausted | {iterable.origin}
            return iterable.item if iterable.item is not None else UNKNOWN_VALUE
        if iterable.kind is Kind.SEQUENCE:
            return iterable.item if iterable.item is not None else UNKNOWN_VALUE
        if iterable.kind is Kind.TENSOR:
            return self.op_result([iterable], expr, state, "select")
        if iterable.kind is Kind.MODULE and iterable.item is not None:
            return iterable.item  # the layers of a Sequential or ModuleList
        if iterable.kind is Kind.MAPPING:
            return OTHER  # its keys
        return UNKNOWN_VALUE

    def with_frozen(self, value: Value, state: State) -> Value:
        """A module or parameter as frozen as the freezing statements so far left it."""
        if value.path is None or not state.frozen:
            return value
        frozen = self.frozen_of(value.path.removesuffix(".*"), state)
        if frozen is None:
            return value
        if value.kind is Kind.MODULE:
            frozen_at = self.frozen_where(value.path.removesuffix(".*"), state)
            cut = frozen_at if frozen is YES and frozen_at is not None else value.cut
            return value.with_(frozen=frozen, cut=cut)
        if value.kind is Kind.PARAMS:
            item = value.item
            if item is not None and item.kind is Kind.TENSOR:
                item = item.with_(requires_grad=frozen.negate())
            return value.with_(frozen=frozen, item=item)
        if value.kind is Kind.TENSOR and value.leaf is YES:
            return value.with_(requires_grad=frozen.negate())
        return value

    def frozen_where(self, path: str, state: State) -> cst.CSTNode | None:
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            at = state.frozen_at.get(".".join(parts[:end]))
            if at is not None:
                return at
        return None

    def frozen_site(self, module: Value, state: State) -> object:
        """Where a frozen module was frozen: as the code here froze it, or as it came in."""
        here = self.frozen_where(module.path, state) if module.path else None
        return here if here is not None else module.cut

    def frozen_of(self, path: str, state: State) -> Tri | None:
        """Whether every parameter under `path` is frozen; None where nothing was said."""
        result: Tri | None = None
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            key = ".".join(parts[:end])
            if key in state.frozen:
                result = state.frozen[key]
                break
        prefix = path + "."
        children = [v for k, v in state.frozen.items() if k.startswith(prefix)]
        if result is None:
            return UNKNOWN if children else None
        if any(child is not result for child in children):
            return UNKNOWN
        return result

    def eval_attribute(self, expr: cst.Attribute, state: State) -> Value:
        key = dotted(expr)
        self.facts.attributes_read.add(expr.attr.value)
        obj = self.eval(expr.value, state)
        if key is not None and key in state.env:
            return self.with_frozen(state.env[key], state)
        if obj.kind is Kind.UNKNOWN:
            ref = self.class_ref(expr)
            if ref is not None:
                return ref
        return self.attribute_of(obj, expr, state)

    def class_ref(self, expr: cst.BaseExpression) -> Value | None:
        """`torch.optim.Adam` or `nn.Linear` used as a value (`opt_class=torch.optim.Adam`),
        to be called later."""
        qualname = self.imports.resolve(expr)
        if qualname is None or not qualname.rpartition(".")[2][:1].isupper():
            return None
        if qualname.startswith("torch.optim.") and "lr_scheduler" not in qualname:
            # Any optimizer class builds an optimizer: one name, so that a loop over
            # several (`for opt_class in (Adam, SGD)`) still knows what it calls.
            return Value(kind=Kind.OTHER, layer="ref", path="torch.optim.Optimizer")
        if qualname.startswith(("torch.nn.", "torch.utils.data.")):
            return Value(kind=Kind.OTHER, layer="ref", path=qualname)
        return None

    def attribute_of(self, obj: Value, expr: cst.Attribute, state: State) -> Value:
        attr = expr.attr.value
        if obj.fields is not None and obj.kind in (Kind.OTHER, Kind.MODULE):
            found = obj.field(attr)
            if found is not None:
                return found
            if obj.cls is None:
                return UNKNOWN_VALUE
        if obj.cls is not None and obj.kind in (Kind.OTHER, Kind.MODULE):
            getter = self.method_of(obj, attr)
            if getter is not None and getter.is_property:
                return self.run_function(getter, [], {}, state, obj)
        if obj.kind is Kind.TENSOR:
            if attr in ("data",):
                return self.no_grad_tensor(obj, expr).with_(
                    leaf=YES, integer=obj.integer, node=obj.node
                )
            if attr in ("grad",):
                return Value(kind=Kind.TENSOR, requires_grad=NO, leaf=YES)
            if attr in ("T", "mT", "H", "mH", "real", "imag"):
                return self.op_result([obj], expr, state, attr)
            if attr in ("shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "ndim"):
                return OTHER
            return UNKNOWN_VALUE
        if obj.kind is Kind.OTHER and obj.cls is not None:
            # An attribute of an instance of a local class, as its methods set it.
            return _without_graph(self.attrs_of(obj.cls).get(attr, UNKNOWN_VALUE))
        if obj.kind is Kind.MODULE:
            if obj.cls is not None:
                attrs = self.attrs_of(obj.cls)
                if attr in attrs:
                    found = _without_graph(attrs[attr])
                    frozen_attr = self.class_frozen_attrs.get(obj.cls, {}).get(attr)
                    if frozen_attr is not None and found.kind is Kind.MODULE:
                        found = found.with_(frozen=frozen_attr)
                    if obj.frozen is YES:  # every parameter of the module is frozen
                        if found.kind is Kind.MODULE:
                            found = found.with_(frozen=YES)
                        elif found.kind is Kind.TENSOR and found.leaf is YES:
                            found = found.with_(requires_grad=NO)
                    path = f"{obj.path}.{attr}" if obj.path else None
                    return self.with_frozen(found.with_(path=path), state) if path else found
                return UNKNOWN_VALUE
            if attr in ("weight", "bias") and obj.has_params is YES:
                path = f"{obj.path}.{attr}" if obj.path else None
                param = Value(
                    kind=Kind.TENSOR,
                    requires_grad=obj.frozen.negate(),
                    leaf=YES,
                    inference=NO,
                    integer=NO,
                    path=path,
                    node=(id(expr), 0),
                )
                return self.with_frozen(param, state) if path else param
            return UNKNOWN_VALUE
        return UNKNOWN_VALUE

    # -- calls -----------------------------------------------------------------------------

    def call_of(self, node: cst.Call) -> Call:
        func = node.func
        qualname = self.imports.resolve(func)
        if qualname is not None:
            return Call(node, qualname, None, None)
        if isinstance(func, cst.Attribute):
            return Call(node, None, func.attr.value, func.value)
        return Call(node, None, None, None)

    def eval_args(self, node: cst.Call, state: State) -> list[Value]:
        values = []
        for arg in node.args:
            value = self.eval(arg.value, state)
            values.append(value)
            self.escape(arg.value, value, state)
        return values

    def escape(self, expr: cst.BaseExpression, value: Value, state: State) -> None:
        """A list handed to other code may be filled there: forget what its length was."""
        if value.kind is Kind.SEQUENCE and value.items is not None:
            key = dotted(expr)
            if key is not None and key in state.env:
                state.env[key] = value.with_(items=None)

    def eval_call(self, node: cst.Call, state: State) -> Value:
        call = self.call_of(node)
        self.facts.calls.append(call)
        self.facts.scope[node] = self._function
        self.facts.record_mode(node, state.mode)
        if call.qualname is not None:
            args = self.eval_args(node, state)
            return self.qualified_call(call.qualname, node, args, state)
        if call.method is not None and call.receiver is not None:
            func = node.func
            assert isinstance(func, cst.Attribute)
            receiver = self.eval(call.receiver, state)
            args = self.eval_args(node, state)
            if call.method in _REGISTERS and self._function and self._function.owner:
                self.dynamic_classes.add(self._function.owner.name)
            if _is_super(call.receiver):
                if call.method == "__init__":
                    self.super_init(node, args)
                return self.super_call(call.method, node, args, state)
            method = self.method_of(receiver, call.method)
            if method is not None:
                positional, keywords = _split_args(node, args)
                result = self.run_function(method, positional, keywords, state, receiver, node)
                if receiver.kind is Kind.OPTIMIZER and "step" in call.method:
                    self.step(receiver, node, state)  # SAM's first_step, second_step
                return result
            key = dotted(func)
            callee: Value | None = None
            if key is not None and key in state.env:
                callee = self.with_frozen(state.env[key], state)
            elif (receiver.kind is Kind.MODULE and call.method not in MODULE_METHODS) or (
                receiver.kind is Kind.OTHER and receiver.cls is not None
            ):
                callee = self.attribute_of(receiver, func, state)
            if callee is not None:
                self.facts.record(func, callee, state.mode)
                return self.call_value(callee, node, args, state)
            return self.method_call(receiver, call.method, node, args, state)
        callee = self.eval(node.func, state) if not isinstance(node.func, cst.Name) else None
        args = self.eval_args(node, state)
        if isinstance(node.func, cst.Name):
            name = node.func.value
            if name in state.env:
                callee = self.with_frozen(state.env[name], state)
            elif name in self.scopes.classes:
                return self.instantiate(self.scopes.classes[name], node, args, state)
            elif name in self.scopes.module_functions:
                positional, keywords = _split_args(node, args)
                function = self.scopes.module_functions[name]
                return self.run_function(function, positional, keywords, state, call=node)
            elif name in self.module_env and self._function is not None:
                callee = self.module_env[name]
            else:
                if name not in _BUILTINS:
                    self.forget_modules(args, state)
                return self.builtin_call(name, node, args, state)
        if callee is None:
            return UNKNOWN_VALUE
        return self.call_value(callee, node, args, state)

    def call_value(self, callee: Value, node: cst.Call, args: list[Value], state: State) -> Value:
        """A call of a value: a module, a function or class held in a variable, or an
        instance of a class of this module (its `__call__`)."""
        if callee.kind is Kind.MODULE:
            return self.module_call(callee, node, args, state)
        if callee.layer == "function":  # a loss function kept on the object
            return self.call_function_value(callee, node, args, state)
        if callee.layer in ("ref", "class"):
            return self.call_class_value(callee, node, args, state)
        if callee.layer == "record" and callee.fields is not None:
            names = [name for name, _ in callee.fields]
            positional, keywords = _split_args(node, args)
            given = dict(zip(names, positional, strict=False))
            given.update(keywords)
            fields = tuple((name, given.get(name, UNKNOWN_VALUE)) for name in names)
            return Value(kind=Kind.OTHER, fields=fields)
        if callee.cls is not None:
            method = self.method_of(callee, "__call__")
            if method is not None:
                positional, keywords = _split_args(node, args)
                return self.run_function(method, positional, keywords, state, callee, node)
        return UNKNOWN_VALUE

    def super_init(self, node: cst.Call, args: list[Value]) -> None:
        """`super().__init__(*layers)` in a subclass of nn.Sequential records its layers."""
        owner = self._function.owner if self._function is not None else None
        if owner is None or self._function is None or self._function.name != "__init__":
            return
        if any(resolve_dotted(self.imports, b) == "torch.nn.Sequential" for b in owner.bases):
            made = self.container("Sequential", node, args)
            if made.items is not None:
                self.class_layers[owner.name] = made.items

    def call_class_value(
        self, callee: Value, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        """A class held in a variable, called: a torch class, or a class of this module."""
        if callee.layer == "ref" and callee.path is not None:
            return self.qualified_call(callee.path, node, args, state)
        if callee.layer == "class" and callee.cls in self.scopes.classes:
            return self.instantiate(self.scopes.classes[callee.cls], node, args, state)
        return UNKNOWN_VALUE

    def super_call(self, method: str, node: cst.Call, args: list[Value], state: State) -> Value:
        """`super().method(...)`: the method a local base class defines, on this instance."""
        function = self._function
        owner = function.owner if function is not None else None
        if function is None or owner is None:
            return OTHER if method == "__init__" else UNKNOWN_VALUE
        if method == "__init__" and owner.is_optimizer and function.name == "__init__":
            local_base = any(
                b in self.scopes.classes and self.scopes.classes[b].is_optimizer
                for b in owner.bases
            )
            outer = self._call_path[-1] if self._call_path else None
            if not local_base and outer is not None:
                # torch's Optimizer takes the parameters here; the user's line is the
                # construction of the subclass.
                self.optimizer_made(outer, node, args, state)
                return OTHER
        for base in owner.bases:
            local = self.scopes.classes.get(base)
            if local is None or local is owner:
                continue
            found = self.find_method(local, method)
            if found is not None:
                me = _self_name(function)
                receiver = state.env.get(me) if me is not None else None
                positional, keywords = _split_args(node, args)
                return self.run_function(found, positional, keywords, state, receiver, node)
        return OTHER if method == "__init__" else UNKNOWN_VALUE

    def attrs_of(self, cls_name: str) -> dict[str, Value]:
        """The attributes the methods of a class, and of its local bases, set on `self`."""
        cls = self.scopes.classes.get(cls_name)
        if cls is None or not any(b in self.scopes.classes for b in cls.bases):
            return self.class_attrs.get(cls_name, {})
        merged: dict[str, Value] = {}
        seen: set[str] = set()
        todo = [cls_name]
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            for attr, value in self.class_attrs.get(name, {}).items():
                merged[attr] = merged[attr].join(value) if attr in merged else value
            cls = self.scopes.classes.get(name)
            if cls is not None:
                todo.extend(b for b in cls.bases if b in self.scopes.classes)
        return merged

    def function_value(self, info: FunctionInfo) -> Value:
        """A function as a value (passed as an argument, kept in a variable or attribute)."""
        self._functions[id(info)] = info
        return Value(kind=Kind.OTHER, layer="function", origin=id(info))

    def call_function_value(
        self, callee: Value, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        positional, keywords = _split_args(node, args)
        return self.invoke(callee, positional, keywords, node, state)

    def invoke(
        self,
        callee: Value,
        positional: list[Value],
        keywords: dict[str, Value],
        node: cst.Call,
        state: State,
    ) -> Value:
        """Call a function value (a local function or a lambda) with these arguments."""
        if callee.origin in self._lambdas:
            return self.call_lambda(callee.origin, positional, keywords, state)
        info = self._functions.get(callee.origin) if callee.origin is not None else None
        if info is None or info.owner is not None:
            return UNKNOWN_VALUE
        return self.run_function(info, positional, keywords, state, call=node)

    def call_lambda(
        self, key: int, positional: list[Value], keywords: dict[str, Value], state: State
    ) -> Value:
        """A lambda's body, on the call's arguments, with the names it closed over."""
        if self._lambda_depth >= MAX_LOOP_DEPTH:
            return UNKNOWN_VALUE
        lam, closure = self._lambdas[key]
        positional = list(positional)
        inner = state.copy()
        inner.env = dict(closure)
        params = lam.params
        for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
            name = param.name.value
            if positional and param not in params.kwonly_params:
                inner.env[name] = positional.pop(0)
            else:
                inner.env[name] = keywords.get(name, UNKNOWN_VALUE)
        self._lambda_depth += 1
        try:
            return self.eval(lam.body, inner)
        finally:
            self._lambda_depth -= 1

    def instantiate(self, cls: ClassInfo, node: cst.Call, args: list[Value], state: State) -> Value:
        init = self.find_method(cls, "__init__")
        if init is not None:
            positional, keywords = _split_args(node, args)
            self._last_writes = {}
            self.run_function(init, positional, keywords, state, self.instance_of(cls, None), node)
        instance = self.instance_of(cls, None)  # as __init__ made it
        if init is None and _is_record_class(cls, self.imports):
            fields = _record_fields(cls, node, args, self)
            if fields is not None:
                return instance.with_(fields=fields)
        if cls.is_optimizer:
            roots = args[0].roots if args else frozenset()
            return Value(kind=Kind.OPTIMIZER, cls=cls.name, origin=id(node), roots=roots)
        if init is not None:
            # What __init__ set, and no other method changes, is this instance's own.
            changed = self.scopes.assigned_elsewhere(cls)
            # Layers and a model's tensors keep going through the class's attributes, which
            # know what __init__ froze; a plain object (a Dataset) keeps its tensors, graph
            # and all.
            kept = (
                (Kind.MODULE, Kind.PARAMS)
                if instance.kind is Kind.OTHER
                else (Kind.MODULE, Kind.TENSOR, Kind.PARAMS)
            )
            fields = tuple(
                (attr, value)
                for attr, value in sorted(self._last_writes.items())
                if attr not in changed and value.kind not in kept
            )
            if fields:
                instance = instance.with_(fields=fields)
        return instance

    def find_method(self, cls: ClassInfo, name: str) -> FunctionInfo | None:
        """The method a local class defines or inherits from a local base."""
        seen: set[str] = set()
        todo = [cls]
        while todo:
            current = todo.pop(0)
            if current.name in seen:
                continue
            seen.add(current.name)
            if name in current.methods:
                return current.methods[name]
            todo.extend(self.scopes.classes[b] for b in current.bases if b in self.scopes.classes)
        return None

    def method_of(self, receiver: Value, method: str) -> FunctionInfo | None:
        """The local method `receiver.method` calls, for an instance of a local class."""
        if receiver.cls is None or receiver.cls not in self.scopes.classes:
            return None
        return self.find_method(self.scopes.classes[receiver.cls], method)

    def collated(self, item: Value, node: cst.Call, state: State) -> Value:
        """What a DataLoader makes of one dataset item: tensors stacked into a batch,
        tuples and dicts of them part by part."""
        if item.is_tensor:
            return self.op_result([item], node, state, "stack")
        if item.kind is Kind.SEQUENCE and item.items is not None:
            return sequence([self.collated(v, node, state) for v in item.items], fixed=True)
        if item.fields is not None:
            fields = tuple((k, self.collated(v, node, state)) for k, v in item.fields)
            return item.with_(fields=fields)
        return UNKNOWN_VALUE

    def builtin_call(self, name: str, node: cst.Call, args: list[Value], state: State) -> Value:
        if name in ("list", "tuple", "sorted", "reversed", "set"):
            if args:
                item = self.iterate(args[0], state, node.args[0].value)
                return Value(kind=Kind.SEQUENCE, item=item, roots=args[0].roots)
            return Value(kind=Kind.SEQUENCE)
        if name == "filter" and len(args) == 2:
            item = self.iterate(args[1], state, node.args[1].value)
            if _is_requires_grad_test(node.args[0].value) and item.requires_grad is NO:
                frozen_at = (
                    self.frozen_where(item.path.removesuffix(".*"), state) if item.path else None
                )
                return Value(kind=Kind.SEQUENCE, items=(), cut=frozen_at)
            if args[1].kind is Kind.PARAMS:  # filtering a generator gives a one-shot iterator
                return Value(kind=Kind.PARAMS, item=item, origin=id(node))
            return Value(kind=Kind.SEQUENCE, item=item)
        if name in ("len", "int", "float", "round", "abs", "bool", "str", "repr", "print"):
            if name == "abs" and args and args[0].kind is Kind.TENSOR:
                return self.op_result(args, node, state, "abs")
            if name in ("len", "int") or (name == "round" and len(args) == 1):
                return INT
            if name == "float":
                return FLOAT
            if name in ("round", "abs") and args and args[0].kind is Kind.NUMBER:
                return args[0]
            return NUMBER if name == "round" else OTHER
        if name in ("zip", "enumerate"):
            pairs = zip(args, node.args, strict=False)
            items = [self.iterate(arg, state, a.value) for arg, a in pairs]
            if name == "enumerate":
                items = [INT, *items[:1]]
            return Value(kind=Kind.SEQUENCE, item=sequence(items, fixed=True))
        if name == "range":
            return Value(kind=Kind.SEQUENCE, item=INT)
        if name == "dict" and all(arg.keyword is not None for arg in node.args):
            fields = self.keyword_fields(node, args)
            return Value(
                kind=Kind.MAPPING, item=sequence([v for _, v in fields]).item, fields=fields
            )
        if name in ("max", "min") and len(args) > 1 and all(a.kind is Kind.NUMBER for a in args):
            return sequence(args).item or NUMBER
        if name in ("sum", "max", "min") and args and args[0].kind is Kind.SEQUENCE:
            item = args[0].item or UNKNOWN_VALUE
            if item.kind is Kind.NUMBER:
                return item
            return self.op_result([item], node, state, "add")
        if name == "setattr" and self._function is not None and self._function.owner:
            self.dynamic_classes.add(self._function.owner.name)
        if name == "isinstance" and len(args) == 2:
            return Value(kind=Kind.OTHER, truth=self.is_instance(args[0], node.args[1].value))
        if name in ("isinstance", "hasattr", "callable", "getattr", "setattr", "id", "type"):
            return OTHER
        return UNKNOWN_VALUE

    def is_instance(self, value: Value, classes: cst.BaseExpression) -> Tri:
        """`isinstance(x, torch.Tensor)`, `(list, tuple)`, `nn.Module`, where x's kind is
        known."""
        if isinstance(classes, cst.Tuple):
            result = NO
            for element in classes.elements:
                result = result | self.is_instance(value, element.value)
            return result
        qualname = self.imports.resolve(classes)
        name = classes.value if isinstance(classes, cst.Name) else None
        legacy = (qualname or "").removeprefix("torch.")
        if legacy in api.LEGACY_CONSTRUCTORS and legacy != "Tensor" and value.is_tensor:
            # `isinstance(x, torch.LongTensor)`: the dtype decides (on the CPU).
            wanted = api.LEGACY_CONSTRUCTORS[legacy]
            if value.integer is UNKNOWN or wanted is NO:
                return UNKNOWN  # float, double and half all look alike here
            return YES if value.integer is YES else NO
        kind = {
            "torch.Tensor": Kind.TENSOR,
            "torch.nn.Module": Kind.MODULE,
            "torch.nn.modules.module.Module": Kind.MODULE,
        }.get(qualname or "")
        if kind is None and name is not None and name not in self.module_env:
            kind = {"list": Kind.SEQUENCE, "tuple": Kind.SEQUENCE, "dict": Kind.MAPPING}.get(name)
        known = (Kind.TENSOR, Kind.MODULE, Kind.SEQUENCE, Kind.MAPPING, Kind.NUMBER, Kind.ARRAY)
        if kind is None or value.kind not in known:
            return UNKNOWN
        if value.kind is kind is Kind.SEQUENCE:
            return UNKNOWN  # a list and a tuple look alike here
        return YES if value.kind is kind else NO

    def qualified_call(
        self, qualname: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        module, _, name = qualname.rpartition(".")
        kwargs = {arg.keyword.value: arg.value for arg in node.args if arg.keyword is not None}
        if qualname in api.GRAD_MODE_CLASSES:
            found = grad_mode_of(node, self.imports)
            return Value(kind=Kind.OTHER, grad_mode=found[1] if found else None)
        if qualname == "torch.is_floating_point" and args and args[0].is_tensor:
            return Value(kind=Kind.OTHER, truth=args[0].integer.negate())
        if name == "TensorDataset" and module.startswith("torch.utils.data"):
            # Each element, and each batch a DataLoader makes, is a tuple of new tensors.
            parts = [
                Value(
                    kind=Kind.TENSOR,
                    requires_grad=NO if v.requires_grad is NO else UNKNOWN,
                    leaf=YES if v.requires_grad is NO else UNKNOWN,
                    inference=v.inference,
                    integer=v.integer,
                )
                if v.is_tensor
                else UNKNOWN_VALUE
                for v in args
            ]
            return Value(kind=Kind.SEQUENCE, item=sequence(parts, fixed=True))
        if name == "DataLoader" and module.startswith("torch.utils.data"):
            dataset = args[0] if args else UNKNOWN_VALUE
            if dataset.kind is Kind.SEQUENCE and dataset.item is not None:
                return Value(kind=Kind.SEQUENCE, item=dataset.item)
            getitem = self.method_of(dataset, "__getitem__")
            if getitem is not None and dataset.kind is Kind.OTHER:
                # A Dataset of this module: each batch is its items stacked, which keeps
                # the graph of any tensor they were cut from.
                item = self.run_function(getitem, [INT], {}, state, dataset, node)
                return Value(kind=Kind.SEQUENCE, item=self.collated(item, node, state))
            return UNKNOWN_VALUE
        if qualname in api.NAMESPACES:
            return Value(kind=Kind.OTHER, fields=self.keyword_fields(node, args))
        if qualname == "collections.namedtuple" and len(node.args) >= 2:
            names = _field_names(node.args[1].value)
            if names is not None:
                # The class: calling it makes a record with these fields.
                return Value(
                    kind=Kind.OTHER, layer="record", fields=tuple((n, OTHER) for n in names)
                )
        if module.startswith("torch.distributions") and name[:1].isupper():
            # A distribution over tensors: log_prob, entropy, rsample carry their graph.
            return self.op_result(_tensor_args(args), node, state, "distribution").with_(
                layer="distribution"
            )
        if qualname in api.PARAMETER_CLASSES or qualname in api.VARIABLE_CLASSES:
            default = YES if qualname in api.PARAMETER_CLASSES else NO
            flag = kwargs.get("requires_grad")
            if flag is None and len(node.args) > 1 and node.args[1].keyword is None:
                flag = node.args[1].value
            wanted = default if flag is None else _bool_literal(flag)
            base = args[0] if args else UNKNOWN_VALUE
            return Value(
                kind=Kind.TENSOR,
                requires_grad=wanted,
                leaf=YES,
                inference=NO,
                integer=base.integer,
                node=self.new_node(node),
            )
        if module == "torch" and (name in api.FACTORIES or name in api.LEGACY_CONSTRUCTORS):
            return self.factory(name, node, args, kwargs, state)
        if qualname == "itertools.chain":
            roots: frozenset[str] = frozenset()
            for value in args:
                roots |= value.roots
            items = [self.iterate(v, state, a.value) for v, a in zip(args, node.args, strict=False)]
            return sequence(items).with_(roots=roots)
        if module.startswith("torch.nn.utils") and name in api.MODULE_WRAPPERS and args:
            return args[0]  # weight_norm(layer) hands back the layer
        if module.startswith("torch.optim") and name[:1].isupper() and "lr_scheduler" not in module:
            return self.make_optimizer(node, args, state)
        if module in ("torch.nn", "torch.nn.modules") and name[:1].isupper():
            return self.make_module(name, node, args, kwargs)
        if qualname.startswith(api.MODEL_ZOOS) and name[:1].islower():
            return Value(kind=Kind.MODULE, has_params=YES, frozen=NO)
        if qualname in ("torch.autograd.grad", "torch.autograd.backward"):
            if args:
                self.backward(args[0], node.args[0].value, node, state, kwargs)
            return Value(kind=Kind.SEQUENCE, item=UNKNOWN_VALUE)
        if module.startswith("numpy") or module == "numpy":
            return Value(kind=Kind.ARRAY, requires_grad=NO)
        if module.startswith("torch") and (
            module == "torch"
            or module.startswith("torch.nn.functional")
            or module == "torch.linalg"
            or module == "torch.special"
            or module == "torch.fft"
        ):
            if name in api.NO_GRAD_RESULTS:
                first = next(iter(_tensor_args(args)), UNKNOWN_VALUE)
                return self.no_grad_tensor(first, node)
            tensors = _tensor_args(args)
            if not tensors:
                return UNKNOWN_VALUE
            grad_args = [
                value
                for value, arg in zip(args, node.args, strict=False)
                if arg.keyword is None or arg.keyword.value not in api.NON_TENSOR_KEYWORDS
            ]
            if name in api.CLASS_INDEX_LOSSES:
                grad_args = _without_unknown_target(grad_args)
            inplace = kwargs.get("inplace")
            if inplace is not None and _bool_literal(inplace) is YES and args:
                self.facts.inplace.append(Inplace(node, node.args[0].value))
                return self.inplace_result(
                    args[0], args[1:], name, node, state, saves_output=name in api.SAVES_OUTPUT
                )
            return self.op_result(grad_args, node, state, name)
        if not module.startswith("torch"):
            self.forget_modules(args, state)
        return UNKNOWN_VALUE

    def keyword_fields(self, node: cst.Call, args: list[Value]) -> tuple[tuple[str, Value], ...]:
        return tuple(
            (arg.keyword.value, value)
            for arg, value in zip(node.args, args, strict=False)
            if arg.keyword is not None
        )

    def factory(
        self,
        name: str,
        node: cst.Call,
        args: list[Value],
        kwargs: dict[str, cst.BaseExpression],
        state: State,
    ) -> Value:
        flag = kwargs.get("requires_grad")
        wanted = NO if flag is None else _bool_literal(flag)
        integer = self.factory_integer(name, node, args, kwargs)
        inference = _inference_in(state.mode)
        return Value(
            kind=Kind.TENSOR,
            requires_grad=wanted,
            leaf=YES,
            inference=inference,
            integer=integer,
            node=self.new_node(node),
            born=node if wanted is NO else None,
            made_in=state.grad_off_at if inference is YES else None,
        )

    def factory_integer(
        self, name: str, node: cst.Call, args: list[Value], kwargs: dict[str, cst.BaseExpression]
    ) -> Tri:
        dtype = kwargs.get("dtype")
        if dtype is not None:
            dtype_name = (dotted(dtype) or "").rsplit(".", 1)[-1]
            if dtype_name in api.INTEGER_DTYPES:
                return YES
            if dtype_name in api.FLOAT_DTYPES:
                return NO
            return UNKNOWN
        if name in api.INTEGER_FACTORIES:
            return YES
        if name in api.LEGACY_CONSTRUCTORS:
            return api.LEGACY_CONSTRUCTORS[name]
        if name == "arange" or name == "tensor":
            positional = [a.value for a in node.args if a.keyword is None]
            if name == "arange" and positional:
                return (
                    YES
                    if all(isinstance(p, cst.Integer) for p in positional)
                    else (NO if any(isinstance(p, cst.Float) for p in positional) else UNKNOWN)
                )
            if name == "tensor" and positional:
                literal = _literal_integer(positional[0])
                return literal if literal is not UNKNOWN or not args else _number_dtype(args[0])
            return UNKNOWN
        if name.endswith("_like") and args:
            return args[0].integer
        return (
            NO
            if name
            in (
                "zeros",
                "ones",
                "empty",
                "full",
                "rand",
                "randn",
                "linspace",
                "logspace",
                "eye",
                "normal",
            )
            and "full" != name
            else UNKNOWN
        )

    def optimizer_made(
        self, outer: cst.Call, node: cst.Call, args: list[Value], state: State
    ) -> None:
        """An optimizer subclass hands torch the parameters at `node`, inside the class;
        report on the construction at `outer`."""
        self.record_optimizer(outer, args, state)

    def make_optimizer(self, node: cst.Call, args: list[Value], state: State) -> Value:
        self.record_optimizer(node, args, state)
        roots = args[0].roots if args else frozenset()
        return Value(kind=Kind.OPTIMIZER, origin=id(node), roots=roots)

    def record_optimizer(self, node: cst.Call, args: list[Value], state: State) -> None:
        """An optimizer built at `node` over `args[0]`: a generator it uses up, a module
        with no parameters (and the plain list that hid them)."""
        params = node.args[0].value if node.args and node.args[0].keyword is None else None
        given = args[0] if args else UNKNOWN_VALUE
        exhausted = False
        if given.kind is Kind.PARAMS and given.origin is not None:
            exhausted = given.origin in state.exhausted
            state.exhausted = state.exhausted | {given.origin}
        empty = given.kind is Kind.PARAMS and given.items == ()
        cause = misspelt = None
        if empty:
            module = state.env.get(given.path) if given.path is not None else None
            cls = module.cls if module is not None else given.layer
            if cls is not None:
                cause = self.unregistered.get(cls)
                misspelt = self.misspelt_init(cls)
        self.facts.optimizers.append(OptimizerMade(node, params, exhausted, empty, cause, misspelt))

    def misspelt_init(self, cls_name: str) -> cst.CSTNode | None:
        """A class without `__init__` whose method was meant to be it (`_init_`)."""
        cls = self.scopes.classes.get(cls_name)
        if cls is None or self.find_method(cls, "__init__") is not None:
            return None
        for name, method in cls.methods.items():
            if name != "__init__" and name.strip("_") in _INIT_MISSPELLINGS:
                return method.node
        return None

    def make_module(
        self, name: str, node: cst.Call, args: list[Value], kwargs: dict[str, cst.BaseExpression]
    ) -> Value:
        if name in ("Sequential", "ModuleList", "ModuleDict"):
            return self.container(name, node, args)
        if name == "Parameter":
            return UNKNOWN_VALUE
        if name in ("ParameterList", "ParameterDict"):
            param = Value(kind=Kind.TENSOR, requires_grad=YES, leaf=YES, inference=NO, integer=NO)
            has = NO if args and args[0].kind is Kind.SEQUENCE and args[0].items == () else YES
            return Value(kind=Kind.MODULE, has_params=has, frozen=NO, layer=name, item=param)
        has = NO if name in api.PARAMETERLESS_MODULES else YES
        if has is NO and _grad_of(args) is not NO:
            has = UNKNOWN  # a loss weighted by a tensor that may itself be trained
        flag = kwargs.get("inplace")
        inplace = (
            name in api.INPLACE_CAPABLE_MODULES and flag is not None and _bool_literal(flag) is YES
        )
        return Value(
            kind=Kind.MODULE, has_params=has, frozen=NO, layer=name, inplace=inplace, born=node
        )

    def container(self, name: str, node: cst.Call, args: list[Value]) -> Value:
        """nn.Sequential / ModuleList / ModuleDict: its layers, in order where known."""
        has_params: Tri = NO
        parts: list[Value] = []
        ordered = name == "Sequential"
        for arg, value in zip(node.args, args, strict=False):
            if arg.star == "*" and value.items is not None:
                parts.extend(value.items)
                continue
            if value.kind is Kind.SEQUENCE:
                ordered = ordered and value.items is not None
                parts.extend(value.items or ([value.item] if value.item else []))
            else:
                parts.append(value)
        for part in parts:
            has_params = has_params | (part.has_params if part.kind is Kind.MODULE else UNKNOWN)
        if not args and name == "ModuleList":
            has_params = UNKNOWN  # filled later with append()
        element = sequence(parts).item if parts and name != "ModuleDict" else None
        layers = tuple(parts) if ordered and all(p.kind is Kind.MODULE for p in parts) else None
        return Value(
            kind=Kind.MODULE,
            has_params=has_params,
            frozen=NO,
            layer=name,
            item=element,
            items=layers,
        )

    def method_call(
        self, receiver: Value, method: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        kwargs = {arg.keyword.value: arg.value for arg in node.args if arg.keyword is not None}
        if method == "backward":
            self.backward(receiver, node.func.value, node, state, kwargs)  # type: ignore[attr-defined]
            return OTHER
        if method == "step" and receiver.kind is Kind.OPTIMIZER:
            if args and args[0].layer == "function":  # LBFGS-style closure: step calls it
                self.invoke(args[0], [], {}, node, state)
            self.step(receiver, node, state)
            return OTHER
        if receiver.kind is Kind.MODULE:
            return self.module_method(receiver, method, node, args, state)
        if receiver.kind is Kind.PARAMS and method in ("__iter__",):
            return receiver
        if receiver.kind is Kind.MAPPING:
            item = receiver.item or UNKNOWN_VALUE
            if method == "values":
                return Value(kind=Kind.SEQUENCE, item=item)
            if method == "items":
                return Value(kind=Kind.SEQUENCE, item=_pair(item))
            if method in ("get", "pop", "setdefault"):
                return item
            if method == "keys":
                return Value(kind=Kind.SEQUENCE, item=OTHER)
            return UNKNOWN_VALUE
        if receiver.kind is Kind.SEQUENCE:
            key = dotted(node.func.value)  # type: ignore[attr-defined]
            holder = self.field_holder(node.func.value, state)  # type: ignore[attr-defined]
            if holder is not None or (
                key is not None and (key in state.env or key.startswith("self."))
            ):
                old = state.env.get(key, receiver) if key is not None else receiver
                kept: Value | None = old.item
                filled_by = old.filled_by
                # What the list gets: `append(x)` and `insert(i, x)` one element, `extend(xs)`
                # each of another sequence's.
                added: Value | None = None
                if method == "append" and len(args) == 1:
                    added = args[0]
                elif method == "insert" and len(args) == 2:
                    added = args[1]
                elif method == "extend" and len(args) == 1 and args[0].kind is Kind.SEQUENCE:
                    added = args[0].item
                    if added is None:
                        added = kept  # an empty sequence adds nothing
                elif method in ("append", "extend", "insert", "__setitem__"):
                    added = UNKNOWN_VALUE
                if added is not None:
                    kept = added if kept is None else kept.join(added)
                    if added.is_tensor and added.requires_grad is YES:
                        # A running total of losses kept as a tensor: the fix is there.
                        filled_by = added.summed_at or node
                updated = old.with_(item=kept, items=None, filled_by=filled_by)
                if holder is not None:
                    name, field_name = holder
                    self.set_field(name, field_name, updated, state)
                if key is not None:
                    state.env[key] = updated
                    self.update_class_attr(key, state.env[key])
            return OTHER if method in ("append", "extend", "insert") else UNKNOWN_VALUE
        if receiver.kind is not Kind.TENSOR:
            return UNKNOWN_VALUE
        if method == "is_floating_point":
            return Value(kind=Kind.OTHER, truth=receiver.integer.negate())
        if receiver.layer == "distribution":
            if method in ("sample", "sample_n", "enumerate_support"):
                return self.no_grad_tensor(receiver, node)
            return self.op_result([receiver, *args], node, state, method)
        if method == "detach":
            # detach() shares storage and version counter with the tensor.
            return self.no_grad_tensor(receiver, node).with_(
                leaf=YES, integer=receiver.integer, node=receiver.node
            )
        if method == "detach_":
            key = dotted(node.func.value)  # type: ignore[attr-defined]
            detached = self.no_grad_tensor(receiver, node).with_(leaf=YES, node=receiver.node)
            if key is not None:
                state.env[key] = detached
            return detached
        if method == "requires_grad_":
            flag = args[0] if args else Value(kind=Kind.OTHER, truth=YES)
            wanted = flag.truth
            if receiver.leaf is not YES:
                return receiver
            self.set_requires_grad(receiver, node.func.value, flag, state)  # type: ignore[attr-defined]
            return receiver.with_(requires_grad=wanted)
        if method in api.NON_TENSOR_METHODS:
            return (
                Value(kind=Kind.OTHER, requires_grad=NO)
                if method != "numpy"
                else Value(kind=Kind.ARRAY, requires_grad=NO)
            )
        if method in api.NO_GRAD_RESULTS:
            return self.no_grad_tensor(receiver, node)
        if method.endswith("_") and not method.startswith("_") and method not in api.NOT_INPLACE:
            self.facts.inplace.append(Inplace(node, node.func.value))  # type: ignore[attr-defined]
            base = method[:-1]
            return self.inplace_result(
                receiver, args, base, node, state, saves_output=base in api.SAVES_OUTPUT
            )
        if method in (
            "contiguous",
            "float",
            "to",
            "cpu",
            "type",
            "cuda",
            "double",
            "half",
            "bfloat16",
            "clone",
        ):
            integer = NO if method in ("float", "double", "half", "bfloat16") else receiver.integer
            result = self.op_result([receiver], node, state, method).with_(integer=integer)
            if (
                method in ("contiguous", "float", "to", "cpu", "type")
                and result.requires_grad is YES
            ):
                # May return the tensor itself (same device and dtype): a leaf stays a leaf.
                return result.with_(leaf=UNKNOWN if receiver.leaf is YES else NO)
            return result
        operands = [receiver, *args] if method in api.BINARY_METHODS else [receiver]
        return self.op_result(operands, node, state, method)

    def module_method(
        self, module: Value, method: str, node: cst.Call, args: list[Value], state: State
    ) -> Value:
        state.exhausted = state.exhausted - {id(node)}  # a fresh generator on each call
        if method in ("parameters", "named_parameters"):
            # Every parameter of the module; `.*` in the path marks "all of them".
            param = Value(
                kind=Kind.TENSOR,
                requires_grad=module.frozen.negate(),
                leaf=YES,
                inference=NO,
                integer=NO,
                path=(module.path + ".*") if module.path else None,
            )
            return Value(
                kind=Kind.PARAMS,
                item=param if method == "parameters" else _pair(param),
                items=() if module.has_params is NO else None,  # a module with none yet
                origin=id(node),
                path=module.path,
                layer=module.cls,  # the local class whose parameters these are
                frozen=module.frozen,
                roots=frozenset({module.path}) if module.path else frozenset(),
            )
        if method == "requires_grad_":
            flag = args[0] if args else Value(kind=Kind.OTHER, truth=YES)
            wanted = flag.truth
            if module.path is not None:
                for key in [k for k in state.frozen if k.startswith(module.path + ".")]:
                    del state.frozen[key]
                state.frozen[module.path] = wanted.negate()
                if wanted is NO:
                    state.frozen_at[module.path] = node
                    self._freeze_sites.add(id(node))
                self.unfreeze_parents(module.path, wanted, state)
            return module.with_(frozen=wanted.negate())
        if method in ("train", "eval", "to", "cuda", "cpu", "float", "double", "half", "apply"):
            return module
        if method == "register_buffer" and len(args) >= 2 and module.path is not None:
            name = _string_key(node.args[0].value)
            if name is not None:  # a tensor kept on the module, not a parameter
                key = f"{module.path}.{name}"
                state.env[key] = args[1].with_(layer="buffer")
                self.update_class_attr(key, state.env[key])
            return NONE
        if method == "forward":
            return self.module_call(module, node, args, state)
        if method not in MODULE_METHODS:
            # `dit.add_adapter(config)`: a method we do not know may add or unfreeze
            # parameters.
            self.forget_modules([module], state)
        return UNKNOWN_VALUE

    def forget_modules(self, values: list[Value], state: State) -> None:
        """Code we cannot see was handed these modules: what was frozen is unknown now."""
        for value in values:
            if value.kind is Kind.MODULE and value.path is not None and state.frozen:
                prefix = value.path + "."
                for key in [k for k in state.frozen if k == value.path or k.startswith(prefix)]:
                    state.frozen[key] = UNKNOWN

    def module_call(
        self,
        module: Value,
        node: cst.Call,
        args: list[Value],
        state: State,
        first: bool = True,
    ) -> Value:
        """`module(*args)` at `node`. Inside a Sequential only the `first` layer takes the
        call's own argument."""
        self._module_calls.add(id(node))
        if module.inplace and module.layer is not None and args:
            # nn.ReLU(inplace=True)(x) changes x in place.
            if first and node.args:
                self.facts.inplace.append(Inplace(node, node.args[0].value))
            blame = module.born if isinstance(module.born, cst.CSTNode) else None
            return self.inplace_result(
                args[0],
                [],
                module.layer,
                node,
                state,
                saves_output=module.layer in api.SAVES_OUTPUT,
                blame=blame,
            )
        layers = self.layers_of(module)
        if layers is not None and len(args) == 1:
            # A Sequential runs its layers in order: follow the tensor through each.
            value = args[0]
            outer = self._layer
            for index, layer in enumerate(layers):
                if module.frozen is YES:
                    layer = layer.with_(frozen=YES, cut=self.frozen_site(module, state))
                self._layer = hash((outer, index))
                value = self.module_call(layer, node, [value], state, first=index == 0)
            self._layer = outer
            if module.has_params is YES and module.frozen is NO:
                self.save_weights(module, value, state)
            return value
        forward = self.method_of(module, "forward")
        returned = UNKNOWN_VALUE
        if forward is not None:
            positional, keywords = _split_args(node, args)
            returned = self.run_function(forward, positional, keywords, state, module, node)
            # Cut by `.detach()`, `.data` or no_grad inside forward: no freeze changes that.
            cut_inside = (
                returned.is_tensor
                and returned.requires_grad is NO
                and isinstance(returned.cut, cst.CSTNode)
                and id(returned.cut) not in self._freeze_sites
            )
            if cut_inside or (
                module.frozen is not UNKNOWN
                and (
                    returned.kind in (Kind.SEQUENCE, Kind.ARRAY, Kind.OTHER)
                    or (returned.kind is Kind.TENSOR and returned.requires_grad is not UNKNOWN)
                )
            ):
                if returned.is_tensor and returned.requires_grad is NO and module.path:
                    frozen_at = self.frozen_site(module, state)
                    if module.frozen is YES and frozen_at is not None:
                        returned = returned.with_(cut=frozen_at)
                if module.has_params is YES and module.frozen is NO:
                    self.save_weights(module, returned, state)
                return returned
            if module.has_params is NO and returned.kind is Kind.UNKNOWN:
                # A forward that uses layers its constructor never made (a misspelt
                # `__init__`): what it returns is unknown, not the input passed through.
                module = module.with_(has_params=UNKNOWN)
        inputs = _tensor_args(args)
        trainable = module.has_params is YES and module.frozen is NO
        if trainable:
            grad, potential = YES, YES
        else:
            if module.layer in api.CLASS_INDEX_LOSSES:
                args = _without_unknown_target(args)
            grad = _grad_of(args) if args else UNKNOWN
            potential = _grad_of(args, potential=True) if args else UNKNOWN
            if module.has_params is not NO and module.frozen is not YES and grad is not YES:
                grad, potential = UNKNOWN, UNKNOWN if potential is not YES else YES
        requires, potential = self.recorded(grad, potential, state)
        value = self.tensor_result(inputs, node, state, requires, potential, saves=True)
        if requires is NO and module.frozen is YES:
            frozen_at = self.frozen_site(module, state)
            if frozen_at is not None and value.cut is None:
                value = value.with_(cut=frozen_at)
        if potential is YES:
            if module.layer in api.SAVES_OUTPUT and value.node is not None:
                state.saves[value.node] = frozenset({(value.node, 0)})
                state.versions[value.node] = 0
            self.save_inputs(inputs, value, state, when=trainable or module.layer in _SAVING_NORMS)
            if trainable:
                self.save_weights(module, value, state)
        return value

    def recorded(self, grad: Tri, potential: Tri, state: State) -> tuple[Tri, Tri]:
        """What autograd records for an op whose inputs require `grad`, in this grad mode:
        (requires_grad of the result, and the same had grad mode been enabled)."""
        if "E" not in state.mode:
            return NO, NO
        if state.mode == ENABLED:
            return grad, potential
        return (NO if grad is NO else UNKNOWN), potential

    # -- tensor results -------------------------------------------------------------------------

    def new_node(self, node: cst.CSTNode) -> Node:
        # Inside a Sequential, each layer's output is its own tensor, made at the call.
        site = id(node) if self._layer is None else hash((id(node), self._layer))
        self._site_nodes[site] = node
        self._site_order.setdefault(site, len(self._site_order))
        self._tick += 1
        self._site_tick[site] = self._tick
        self._made_during.setdefault(site, tuple(self._call_path))
        self._made_during.setdefault(id(node), tuple(self._call_path))
        for function in self._active:
            self._function_sites.setdefault(function, set()).add(site)
        for sites in self._loop_sites:
            sites.add(site)
        return (site, 0)

    def no_grad_tensor(self, source: Value, at: cst.CSTNode | None = None) -> Value:
        """A tensor cut from the graph (at `at`: a detach, an argmax, a comparison)."""
        cut = at if source.requires_grad is not NO or source.graph else source.cut
        if at is not None:
            self.facts.scope[at] = self._function
        return Value(
            kind=Kind.TENSOR,
            requires_grad=NO,
            leaf=YES,
            inference=source.inference,
            integer=UNKNOWN,
            cut=cut,
        )

    def tensor_result(
        self,
        inputs: list[Value],
        node: cst.CSTNode,
        state: State,
        requires: Tri,
        potential: Tri,
        saves: bool,
    ) -> Value:
        """A new tensor. Its graph is the one autograd builds when it records here: where
        the grad mode is unknown, the graph it builds when training."""
        graph: frozenset[Node] = frozenset()
        for value in inputs:
            graph |= value.graph
        identity = self.new_node(node)
        if potential is YES:
            graph = graph | {identity}
            if saves:
                self._saving_sites.add(identity[0])
            for value in inputs:
                if value.head is not None:
                    self._consumers.setdefault(value.head, set()).add(identity)
            if saves:
                state.saves.setdefault(identity, frozenset())
        # Outside inference mode, ops on inference tensors give normal tensors.
        inference = _inference_in(state.mode)
        cut: object = None
        born: object = None
        made_in: object = None
        if requires is NO:
            if "E" not in state.mode:
                cut = state.grad_off_at
            else:
                cut = next((v.cut for v in inputs if v.cut is not None), None)
                born = next((v.born for v in inputs if v.born is not None), None)
        if inference is YES:
            made_in = state.grad_off_at
        return Value(
            kind=Kind.TENSOR,
            requires_grad=requires,
            leaf=requires.negate() if requires is not UNKNOWN else UNKNOWN,
            inference=inference,
            node=identity,
            head=identity if potential is YES else None,
            made_by=node if requires is YES else None,
            graph=graph,
            cut=cut,
            born=born,
            made_in=made_in,
        )

    def op_result(self, args: list[Value], node: cst.CSTNode, state: State, op: str) -> Value:
        inputs = _tensor_args(args)
        if not inputs:
            return UNKNOWN_VALUE
        requires, potential = self.recorded(_grad_of(args), _grad_of(args, potential=True), state)
        # `x * 0.5` saves only the number: a second backward through it is fine.
        by_number = op in ("mul", "div") and any(a.kind is Kind.NUMBER for a in args)
        saves = op not in api.SAVES_NOTHING and not by_number
        value = self.tensor_result(inputs, node, state, requires, potential, saves=saves)
        if op in api.MOVE_OPS and value.head is not None:
            self._moving_sites.add(value.head[0])
        if potential is YES:
            if op in api.SAVES_OUTPUT and value.node is not None:
                state.saves[value.node] = frozenset({(value.node, 0)})
                state.versions[value.node] = 0
            elif op in api.SAVES_INPUTS:
                binary = op in ("mul", "div", "matmul", "mm", "bmm", "mv", "dot")
                for index, tensor in enumerate(inputs):
                    others = inputs[:index] + inputs[index + 1 :]
                    saved = (
                        _grad_of(others, potential=True) is YES
                        if binary
                        else _grad_of([tensor], potential=True) is YES
                    )
                    if saved:
                        self.save_inputs([tensor], value, state, when=True)
        integer = inputs[0].integer if len(inputs) == 1 and op in ("select", "neg") else UNKNOWN
        if integer is not UNKNOWN:
            value = value.with_(integer=integer)
        if op in api.VIEW_OPS and inputs[0].inference is YES:
            # A view of an inference tensor is one too, wherever it is taken.
            value = value.with_(inference=YES, made_in=inputs[0].made_in)
        if op in api.VIEW_OPS and inputs[0].node is not None:
            # A view shares its base's storage and version counter.
            base = inputs[0]
            value = value.with_(
                node=base.node,
                leaf_view=base.leaf_view or (base.leaf is YES and base.requires_grad is YES),
            )
        return value

    def binary(
        self, left: Value, right: Value, operator: cst.CSTNode, node: cst.CSTNode, state: State
    ) -> Value:
        if left.kind is Kind.TENSOR or right.kind is Kind.TENSOR:
            op = _OPERATORS.get(type(operator), "other")
            if op in _NO_GRAD_OPERATORS:
                return self.no_grad_tensor(left if left.is_tensor else right, node)
            result = self.op_result([left, right], node, state, op)
            summed = left.summed_at or right.summed_at
            if summed is not None and Kind.NUMBER in (left.kind, right.kind):
                result = result.with_(summed_at=summed)  # `total / len(loader)`
            return result
        if left.kind is Kind.NUMBER and right.kind is Kind.NUMBER:
            op = _OPERATORS.get(type(operator), "other")
            if op == "div" or NO in (left.integer, right.integer):
                return FLOAT
            both = left.integer if left.integer is right.integer else UNKNOWN
            return NUMBER.with_(integer=both) if op in _INTEGER_OPERATORS else NUMBER
        if left.kind is Kind.SEQUENCE and right.kind is Kind.SEQUENCE:
            joined = sequence([v for v in (left.item, right.item) if v is not None])
            return joined.with_(roots=left.roots | right.roots)
        return UNKNOWN_VALUE

    def save_inputs(self, inputs: Iterable[Value], result: Value, state: State, when: bool) -> None:
        if not when or result.node is None:
            return
        saved = set(state.saves.get(result.node, frozenset()))
        for tensor in inputs:
            if tensor.inference is YES and "I" not in state.mode:
                op = self._site_nodes.get(result.node[0])
                if op is not None:
                    self.facts.inference_saved.append((self.model_call_of(op), tensor.made_in))
            if tensor.node is not None:
                saved.add((tensor.node, state.versions.setdefault(tensor.node, 0)))
        state.saves[result.node] = frozenset(saved)

    def inplace_result(
        self,
        target: Value,
        args: list[Value],
        op: str,
        node: cst.CSTNode,
        state: State,
        saves_output: bool,
        blame: cst.CSTNode | None = None,
    ) -> Value:
        """`target` changed in place by `op` at `node` (`blame`: what to change to avoid it,
        such as the layer built with inplace=True)."""
        if (target.leaf is YES and target.requires_grad is YES) or target.leaf_view:
            return target  # raises under grad mode, and changes nothing of the graph under no_grad
        if target.node is not None:
            version = state.versions.get(target.node, 0)
            state.versions[target.node] = version + 1 if version >= 0 else -1
            changes = state.changed_at.get(target.node, ())
            state.changed_at[target.node] = (*changes, (version + 1, node, blame or node))
        operands = [target, *args]
        if "E" not in state.mode:
            requires, potential = target.requires_grad, _grad_of([target], potential=True)
        else:
            requires, potential = self.recorded(
                _grad_of(operands), _grad_of(operands, potential=True), state
            )
            if state.mode != ENABLED and requires is NO:
                requires = target.requires_grad
        graph = target.graph
        for value in _tensor_args(args):
            graph |= value.graph
        head = target.head
        if potential is YES and target.node is not None:
            step = self.new_node(node)
            graph = graph | {step}
            if target.head is not None:
                self._consumers.setdefault(target.head, set()).add(step)
            head = step
            if saves_output:
                state.saves[step] = frozenset({(target.node, state.versions[target.node])})
        # An in-place op that records a graph gives the tensor a grad_fn: no longer a leaf.
        leaf = NO if requires is YES else target.leaf
        return target.with_(requires_grad=requires, graph=graph, leaf=leaf, head=head)

    # -- backward ---------------------------------------------------------------------------------

    def backward(
        self,
        loss: Value,
        loss_expr: cst.BaseExpression,
        node: cst.Call,
        state: State,
        kwargs: dict[str, cst.BaseExpression],
    ) -> None:
        if loss.kind is not Kind.TENSOR and loss.kind is not Kind.UNKNOWN:
            return
        shared = [n for n in loss.graph if n in state.freed and self.saves_tensors(n)]
        self._tick += 1
        node = self.backward_site(node, loss_expr)
        self._backward_ticks[id(node)] = self._tick
        if shared:
            first = state.freed[shared[0]]
            since = self._backward_ticks.get(id(first), self._tick)
            stepped = any(since < tick < self._tick for tick, _ in self._steps)
            if first is not node and loss.head in state.freed:
                # The same loss back-propagated twice: the second call is the mistake.
                self.facts.freed_graphs.append(FreedGraph(node, None, first))
            elif first is not node and not stepped:
                # Two losses over one computation, with nothing trained in between: both
                # are meant to reach the same tensors, and the first backward should keep
                # the graph (or the losses be added and back-propagated once). A GAN steps
                # its discriminator between the two: its fake batch is detached instead.
                self.facts.freed_graphs.append(FreedGraph(node, None, first, together=True))
            else:
                entry = self.entry_into_freed_graph(shared, loss.graph, state, node)
                if entry is not None:
                    entry = self.frame_call(entry, self._stale)
                self.facts.freed_graphs.append(FreedGraph(node, entry, first))
        self.check_saved(loss, node, state)
        retain = kwargs.get("retain_graph") or kwargs.get("create_graph")
        if retain is None or _bool_literal(retain) is NO:
            for graph_node in loss.graph:
                state.freed[graph_node] = node
        key = dotted(loss_expr)
        if key is not None and key in state.env and loss.requires_grad is UNKNOWN:
            # backward() succeeded, so the loss is a tensor that required grad.
            state.env[key] = loss.with_(kind=Kind.TENSOR, requires_grad=YES, leaf=NO)

    def backward_site(self, node: cst.Call, loss_expr: cst.BaseExpression) -> cst.Call:
        """`loss.backward()` inside a wrapper that was handed the loss (`def backward(self,
        loss): loss.backward()`): the wrapper's call is the user's backward."""
        site = node
        expr: cst.BaseExpression | None = loss_expr
        for info, call in reversed(list(zip(self._active, self._call_path, strict=False))):
            if not isinstance(expr, cst.Name) or call is None:
                break
            if expr.value not in _param_names(info):
                break
            site = call
            expr = _argument_expressions(info, call).get(expr.value)
        return site

    def entry_into_freed_graph(
        self, shared: list[Node], graph: frozenset[Node], state: State, backward: cst.Call
    ) -> cst.CSTNode | None:
        """Where the shared, freed part of a graph was let into a graph that backward ran
        through: for a tensor carried over from an earlier pass of a loop (an RNN's hidden
        state), where this pass uses it; for values made before a loop whose every pass
        back-propagates them (advantages reused over epochs), where the shared part ends;
        otherwise (a GAN's fake batch), where the first of the two backwards took it in."""
        in_loop = self._loop_sites[-1] if self._loop_sites else set()
        if all(state.freed[node] is backward for node in shared) and (
            all(node[1] == 0 for node in shared) or any(n[0] not in in_loop for n in shared)
        ):
            common = {n for n in graph if n in state.freed}
            for node in common:
                consumers = self._consumers.get(node, set())
                if any(c in graph and c not in common for c in consumers):
                    return self._site_nodes.get(self.computed_by(node, common)[0])
        # Follow what was made from the stale part, through earlier passes, to this pass.
        seen: set[Node] = set()
        todo = [node for node in shared if node[1] != 0]
        self._stale = None
        while todo:
            node = todo.pop(0)
            self._stale = node
            # Edges made on the earlier pass were named before that pass aged.
            consumers = set(self._consumers.get(node, ()))
            consumers |= {
                (c[0], node[1]) for c in self._consumers.get((node[0], 0), ()) if c[1] == 0
            }
            for consumer in sorted(consumers, key=self._order):
                if consumer[1] == 0 and consumer in graph:
                    return self._site_nodes.get(consumer[0])
                if consumer[1] != 0 and consumer in state.freed and consumer not in seen:
                    seen.add(consumer)
                    todo.append(consumer)
        # Two losses over one tensor (a GAN's fake batch): the loss whose optimizer does
        # not own the module that made it should have detached it. If the optimizer that
        # stepped between the two backwards owns that module, the second loss is the one.
        first = self._backward_ticks.get(id(state.freed[shared[0]]), 0)
        for node in shared:
            maker = self._site_module.get(node[0])
            if maker is not None and any(
                tick > first and _owns(roots, maker) for tick, roots in self._steps
            ):
                entry = self.stale_entry(node, graph, first)
                if entry is not None:
                    return entry
                entry = self.second_loss_entry(graph, state)
                if entry is not None:
                    return entry
        for node in shared:
            sites = {consumer[0] for consumer in self._consumers.get(node, ())}
            for freed in state.freed:
                if freed[0] in sites and freed not in graph:
                    return self._site_nodes.get(freed[0])
        return None

    def computed_by(self, node: Node, within: set[Node]) -> Node:
        """The op that computed what `node` only moves (indexing, stacking into a batch,
        reshaping), back through such ops inside `within`."""
        seen = {node}
        while node[0] in self._moving_sites:
            makers = [n for n in within if node in self._consumers.get(n, ()) and n not in seen]
            if len(makers) != 1:
                break
            node = makers[0]
            seen.add(node)
        return node

    def second_loss_entry(self, graph: frozenset[Node], state: State) -> cst.CSTNode | None:
        """The first op of this (second) loss's own graph that takes in the part the first
        backward freed: where the second loss should have detached it."""
        common = {n for n in graph if n in state.freed}
        found: list[tuple[Node, Node]] = []
        for node in common:
            found.extend(
                (c, node) for c in self._consumers.get(node, ()) if c in graph and c not in common
            )
        if not found:
            return None
        consumer, self._stale = min(found, key=lambda pair: self._order(pair[0]))
        return self._site_nodes.get(consumer[0])

    def _order(self, node: Node) -> int:
        return self._site_order.get(node[0], 0)

    def model_call_of(self, node: cst.CSTNode) -> cst.CSTNode:
        """`node`, or, inside a model's forward, the call of the model that ran it."""
        for info, call in zip(self._active, self._call_path[-len(self._active) :], strict=False):
            owner = info.owner
            if info.name == "forward" and owner is not None and owner.is_module and call:
                return call
        return node

    def step(self, optimizer: Value, node: cst.Call, state: State) -> None:
        """optimizer.step() changes in place the weights of every module it owns."""
        self._tick += 1
        self._step_ticks[id(node)] = self._tick
        self._steps.append((self._tick, optimizer.roots))
        for key, path in self._weights.items():
            if _owns(optimizer.roots, path):
                weights = (key, 0)
                version = state.versions.get(weights, 0)
                state.versions[weights] = version + 1
                changes = state.changed_at.get(weights, ())
                state.changed_at[weights] = (*changes, (version + 1, node, node))

    def save_weights(self, module: Value, result: Value, state: State) -> None:
        """A trainable layer saves its weights for backward (to give its input a gradient)."""
        if module.path is None:
            return
        if result.kind is Kind.SEQUENCE and result.items is not None:
            for part in result.items:  # a model returning (logits, loss)
                if part.is_tensor:
                    self.save_weights(module, part, state)
            return
        if result.head is None:
            return
        key = hash(("weights", module.path))
        self._weights[key] = module.path
        self._site_module[result.head[0]] = module.path
        weights = (key, 0)
        saved = state.saves.get(result.head, frozenset())
        state.saves[result.head] = saved | {(weights, state.versions.setdefault(weights, 0))}

    def frame_call(self, node: cst.CSTNode, through: Node | None = None) -> cst.CSTNode:
        """A node made inside a call from the running code: that call; else the node. With
        `through`, only if that graph node came in through the call's arguments (a hidden
        state passed in, not one the method keeps on `self`)."""
        path = self._made_during.get(id(node), ())
        depth = len(self._call_path)
        if len(path) > depth and path[depth] is not None:
            call = path[depth]
            if through is not None and through not in self._call_inputs.get(id(call), ()):
                return node
            # Through helpers and plain objects down to the model that built the graph:
            # `Dataset(...).materialize()` whose text embedder runs a layer, there.
            for inner in [*path[depth:], node]:
                if isinstance(inner, cst.Call) and self._is_module_call(inner):
                    return inner
            return call  # type: ignore[return-value]
        return node

    def _is_module_call(self, call: cst.Call) -> bool:
        return id(call) in self._module_calls

    def stale_entry(self, holder: Node, graph: frozenset[Node], after: int) -> cst.CSTNode | None:
        """The first op made after tick `after` that takes in what `holder` made."""
        seen = {holder}
        todo = [holder]
        while todo:
            current = todo.pop(0)
            for consumer in sorted(self._consumers.get(current, ()), key=self._order):
                if consumer in seen or consumer not in graph:
                    continue
                seen.add(consumer)
                if self._site_tick.get(consumer[0], 0) > after:
                    return self._site_nodes.get(consumer[0])
                todo.append(consumer)
        return None

    def check_saved(self, value: Value, at: cst.CSTNode, state: State) -> None:
        """Back-propagating `value` at `at` needs the tensors its graph saved, unchanged."""
        graph = set(value.graph)
        for part in (value.item, *(value.items or ())):
            if part is not None:
                graph |= part.graph
        for graph_node in graph:
            for saved, version in state.saves.get(graph_node, frozenset()):
                current = state.versions.get(saved, 0)
                if 0 <= version != current >= 0 and saved in state.changed_at:
                    op = self._site_nodes.get(graph_node[0])
                    if op is None:
                        continue
                    for after, changed, blame in state.changed_at[saved]:
                        if after <= version:
                            continue
                        if saved[0] in self._weights and graph_node not in state.freed:
                            # Weights changed by optimizer.step(): point at where the graph
                            # built before the step is taken in after it.
                            tick = self._step_ticks.get(id(changed), 0)
                            entry = self.stale_entry(graph_node, frozenset(graph), tick)
                            if entry is not None:
                                entry = self.frame_call(entry)
                            self.facts.saved_changes.append(
                                SavedChanged(entry or op, op, at, changed, stepped=True)
                            )
                            continue
                        self.facts.saved_changes.append(SavedChanged(blame, op, at, changed))

    def saves_tensors(self, graph_node: Node) -> bool:
        return graph_node[0] in self._saving_sites


def _without_graph(value: Value) -> Value:
    """An attribute as any method may have left it: which graph it holds, and which tensor
    it is, depend on the order methods run in, which is not known."""
    if not value.graph and value.node is None and value.item is None:
        return value
    item = _without_graph(value.item) if value.item is not None else None
    items = tuple(_without_graph(v) for v in value.items) if value.items is not None else None
    return value.with_(graph=frozenset(), head=None, node=None, item=item, items=items)


def _truth(value: Value) -> Value:
    """A condition's value with what is known of its truth: None is false; a model, an
    optimizer, a function or an instance of a local class is true."""
    if value.truth is not UNKNOWN or value.nullable:
        return value
    if value.layer == "none":
        return value.with_(truth=NO)
    if value.kind is Kind.NUMBER and (value.low, value.high) == (0, 0):
        return value.with_(truth=NO)
    if value.kind is Kind.NUMBER and value.low is not None and value.low > 0:
        return value.with_(truth=YES)
    if value.kind in (Kind.MODULE, Kind.OPTIMIZER) or (
        value.kind is Kind.OTHER and (value.cls is not None or value.layer == "function")
    ):
        return value.with_(truth=YES)
    return value


def _is_none(value: Value) -> Tri:
    if value.layer == "none":
        return YES
    if (
        value.nullable
        or value.kind in (Kind.UNKNOWN,)
        or (
            value.kind is Kind.OTHER
            and value.layer is None
            and value.cls is None
            and value.fields is None
        )
    ):
        return UNKNOWN
    return NO


def _number_dtype(value: Value) -> Tri:
    """Whether torch.tensor() of this Python value makes an integer tensor."""
    while value.kind is Kind.SEQUENCE and value.item is not None:
        value = value.item
    return value.integer if value.kind is Kind.NUMBER else UNKNOWN


def _is_record_class(cls: ClassInfo, imports: object) -> bool:
    """A dataclass or NamedTuple: its constructor sets the annotated fields."""
    for decorator in cls.node.decorators:
        target = decorator.decorator
        if isinstance(target, cst.Call):
            target = target.func
        name = dotted(target) or ""
        if name.rsplit(".", 1)[-1] == "dataclass":
            return True
    return any(base.rsplit(".", 1)[-1] == "NamedTuple" for base in cls.bases)


def _record_fields(
    cls: ClassInfo, node: cst.Call, args: list[Value], interpreter: Interpreter
) -> tuple[tuple[str, Value], ...] | None:
    names: list[tuple[str, cst.BaseExpression | None]] = []
    for statement in cls.node.body.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                names.append((small.target.value, small.value))
    positional, keywords = _split_args(node, args)
    if any(v.spread for v in positional):
        return None
    fields: list[tuple[str, Value]] = []
    for name, default in names:
        if positional:
            fields.append((name, positional.pop(0)))
        elif name in keywords:
            fields.append((name, keywords[name]))
        elif default is not None and _is_literal(default):
            fields.append((name, interpreter.eval(default, State())))
    return tuple(fields)


def _string_key(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _param_names(info: FunctionInfo) -> list[str]:
    params = info.node.params
    return [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]


def _argument_expressions(info: FunctionInfo, call: cst.Call) -> dict[str, cst.BaseExpression]:
    """Which expression of the call each parameter of the function receives."""
    params = info.node.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    if info.owner is not None and not info.is_static and positional:
        positional = positional[1:]  # the instance, or the class
    passed: dict[str, cst.BaseExpression] = {}
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is not None:
            passed[arg.keyword.value] = arg.value
        elif positional:
            passed[positional.pop(0)] = arg.value
    return passed


def _without_unknown_target(args: list[Value]) -> list[Value]:
    """A classification loss's target is class indices from the data, with no graph,
    unless it is known to be otherwise."""
    if len(args) >= 2 and args[1].kind is Kind.UNKNOWN:
        return [args[0], *args[2:]]
    return args


# Builtins that never change a model's parameters.
_BUILTINS = frozenset(
    "print len list tuple dict set sorted reversed zip enumerate range sum max min abs int "
    "float str repr bool isinstance hasattr getattr type id iter next any all map filter "
    "round format vars dir".split()
)
# `__init__` as it gets mistyped; Python calls none of them.
_INIT_MISSPELLINGS = frozenset({"init", "inti", "intit", "innit", "initt", "iniit", "ini"})
_REGISTERS = frozenset({"register_parameter", "add_module", "register_module", "__setattr__"})


def _self_name(info: FunctionInfo) -> str | None:
    """The name a method calls its instance (`self`), or None for other functions."""
    if info.owner is None or info.is_static or info.is_classmethod:
        return None
    params = [*info.node.params.posonly_params, *info.node.params.params]
    return params[0].name.value if params else None


def _owns(roots: frozenset[str], path: str) -> bool:
    """Whether an optimizer over the parameters of `roots` steps the module at `path`."""
    return any(path == root or path.startswith(root + ".") for root in roots)


def _counts(expr: cst.BaseExpression) -> bool:
    """`range(n)` (not `range(0)`), `range(a, b)`, `enumerate(range(n))`."""
    if not isinstance(expr, cst.Call) or not isinstance(expr.func, cst.Name):
        return False
    if expr.func.value == "enumerate" and expr.args:
        return _counts(expr.args[0].value)
    if expr.func.value != "range" or not expr.args:
        return False
    return not (
        len(expr.args) == 1
        and isinstance(expr.args[0].value, cst.Integer)
        and expr.args[0].value.value == "0"
    )


def _is_super(expr: cst.BaseExpression) -> bool:
    return (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Name)
        and expr.func.value == "super"
    )


def _is_field_of_record(key: str, state: State) -> bool:
    name, _, attr = key.rpartition(".")
    holder = state.env.get(name)
    return holder is not None and holder.kind is Kind.OTHER and holder.field(attr) is not None


def _with_field_writes(value: Value, name: str, state: State) -> Value:
    """A record as the code since changed it: `state.positions = ...` or
    `state.positions.requires_grad_()` hold in `state` handed on."""
    assert value.fields is not None
    changed = [(k, state.env.get(f"{name}.{k}")) for k, _ in value.fields]
    if all(new is None for _, new in changed):
        return value
    fields = tuple(
        (k, new if new is not None else old)
        for (k, new), (_, old) in zip(changed, value.fields, strict=True)
    )
    return value.with_(fields=fields)


def _counter_of(loop: cst.For) -> str | None:
    """The name counting a loop's passes from 0: `for i in range(n)`, `for i, x in
    enumerate(xs)`."""
    it, target = loop.iter, loop.target
    if not isinstance(it, cst.Call) or not isinstance(it.func, cst.Name):
        return None
    if it.func.value == "range" and len(it.args) == 1 and isinstance(target, cst.Name):
        return target.value
    if (
        it.func.value == "enumerate"
        and len(it.args) == 1
        and isinstance(target, cst.Tuple)
        and target.elements
        and isinstance(target.elements[0].value, cst.Name)
    ):
        return target.elements[0].value.value
    return None


def _compare_bounds(left: Value, comparison: cst.ComparisonTarget) -> Tri:
    """`i == 0`, `i > 0`, ... for a number whose bounds are known, against an integer."""
    if not isinstance(comparison.comparator, cst.Integer):
        return UNKNOWN
    k = int(comparison.comparator.evaluated_value)
    low = left.low if left.low is not None else -(10**18)
    high = left.high if left.high is not None else 10**18
    if left.low is None and left.high is None:
        return UNKNOWN
    op = comparison.operator
    if isinstance(op, (cst.Equal, cst.NotEqual)):
        truth = YES if low == high == k else (NO if k < low or k > high else UNKNOWN)
        return truth.negate() if isinstance(op, cst.NotEqual) else truth
    if isinstance(op, cst.GreaterThan):
        return YES if low > k else (NO if high <= k else UNKNOWN)
    if isinstance(op, cst.GreaterThanEqual):
        return YES if low >= k else (NO if high < k else UNKNOWN)
    if isinstance(op, cst.LessThan):
        return YES if high < k else (NO if low >= k else UNKNOWN)
    if isinstance(op, cst.LessThanEqual):
        return YES if high <= k else (NO if low > k else UNKNOWN)
    return UNKNOWN


def _field_names(expr: cst.BaseExpression) -> list[str] | None:
    """A namedtuple's field names: `["a", "b"]`, `("a", "b")` or `"a b"` / `"a, b"`."""
    if isinstance(expr, cst.SimpleString):
        text = expr.evaluated_value
        return text.replace(",", " ").split() if isinstance(text, str) else None
    if isinstance(expr, (cst.List, cst.Tuple)):
        names = [
            e.value.evaluated_value if isinstance(e.value, cst.SimpleString) else None
            for e in expr.elements
        ]
        if all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    return None


def _is_literal(expr: cst.BaseExpression) -> bool:
    """A constant that needs no state to evaluate: numbers, strings, booleans, None, and
    tuples, lists, dicts and `dict(k=...)` of them (`act_cfg=dict(type="ReLU")`)."""
    if isinstance(expr, cst.Name):
        return expr.value in ("True", "False", "None")
    if isinstance(expr, cst.UnaryOperation):
        return _is_literal(expr.expression)
    if isinstance(expr, (cst.Tuple, cst.List)):
        return all(isinstance(e, cst.Element) and _is_literal(e.value) for e in expr.elements)
    if isinstance(expr, cst.Dict):
        return all(
            isinstance(e, cst.DictElement) and _is_literal(e.key) and _is_literal(e.value)
            for e in expr.elements
        )
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "dict":
        return all(arg.keyword is not None and _is_literal(arg.value) for arg in expr.args)
    return isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString))


def _inference_in(mode: Mode) -> Tri:
    """Whether tensors made in this grad mode are inference tensors."""
    return YES if mode == frozenset("I") else (NO if "I" not in mode else UNKNOWN)


def _split_args(node: cst.Call, args: list[Value]) -> tuple[list[Value], dict[str, Value]]:
    """A call's arguments as positional values and keyword values. `*xs` of a known tuple
    spreads its elements; of a list of unknown length, it is one value that stands for
    every element (marked by SPREAD)."""
    positional: list[Value] = []
    keywords: dict[str, Value] = {}
    for arg, value in zip(node.args, args, strict=False):
        if arg.star == "*":
            if value.items is not None:
                positional.extend(value.items)
            else:
                item = value.item if value.kind is Kind.SEQUENCE and value.item else UNKNOWN_VALUE
                positional.append(item.with_(spread=True))
        elif arg.star == "**":
            continue
        elif arg.keyword is not None:
            keywords[arg.keyword.value] = value
        else:
            positional.append(value)
    return positional, keywords


def _shape(value: Value) -> tuple[object, ...]:
    """What distinguishes two calls' arguments for the analysis (not the graph's identity)."""
    item = value.item
    return (
        value.kind,
        value.requires_grad,
        value.leaf,
        value.inference,
        value.integer,
        value.cls,
        value.has_params,
        value.frozen,
        value.layer,
        value.spread,
        None if item is None else (item.kind, item.requires_grad, item.cls),
        None if value.fields is None else tuple((k, v.kind, v.truth) for k, v in value.fields),
    )


def body_statements_of_module(module: cst.Module) -> Sequence[cst.BaseStatement]:
    return module.body


def _target_keys(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        keys: list[str] = []
        for element in target.elements:
            keys.extend(_target_keys(element.value))
        return keys
    key = dotted(target)
    return [key] if key else []


def _tensor_args(args: list[Value]) -> list[Value]:
    tensors: list[Value] = []
    for value in args:
        if value.kind is Kind.TENSOR:
            tensors.append(value)
        elif value.kind is Kind.SEQUENCE and value.item is not None and value.item.is_tensor:
            tensors.append(value.item)
    return tensors


def _grad_of(values: list[Value], potential: bool = False) -> Tri:
    """Whether any operand requires grad; an operand of unknown kind may be such a tensor.
    With `potential`, an operand whose graph is known counts as requiring grad: it does
    wherever grad mode is on."""
    result = NO
    for value in values:
        if value.kind is Kind.TENSOR:
            result = result | (YES if potential and value.graph else value.requires_grad)
        elif value.kind is Kind.SEQUENCE:
            if value.item is not None:
                item = value.item
                if item.kind is Kind.TENSOR:
                    result = result | (YES if potential and item.graph else item.requires_grad)
                elif item.kind in (Kind.UNKNOWN, Kind.SEQUENCE):
                    result = result | UNKNOWN
        elif value.kind is Kind.UNKNOWN:
            result = result | UNKNOWN
    return result


def _pair(item: Value) -> Value:
    """`(name, parameter)` as `named_parameters()` yields it."""
    return sequence([OTHER, item], fixed=True)


def _is_requires_grad_test(expr: cst.BaseExpression) -> bool:
    """`p.requires_grad`, or `lambda p: p.requires_grad`."""
    if isinstance(expr, cst.Lambda):
        expr = expr.body
    return isinstance(expr, cst.Attribute) and expr.attr.value == "requires_grad"


def _keeps_trainable(for_in: cst.CompFor, elt: cst.BaseExpression) -> bool:
    """Keeps only trainable elements: `[p for p in ps if p.requires_grad]`."""
    return (
        for_in.inner_for_in is None
        and isinstance(elt, cst.Name)
        and any(
            _is_requires_grad_test(cond.test)
            and isinstance(cond.test, cst.Attribute)
            and dotted(cond.test.value) == elt.value
            for cond in for_in.ifs
        )
    )


def _bool_literal(expr: cst.BaseExpression) -> Tri:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return YES if expr.value == "True" else NO
    return UNKNOWN


def _literal_integer(expr: cst.BaseExpression) -> Tri:
    """Whether a literal such as `[1, 2, 3]` makes an integer tensor."""
    if isinstance(expr, cst.Integer):
        return YES
    if isinstance(expr, cst.Float):
        return NO
    if isinstance(expr, (cst.List, cst.Tuple)) and expr.elements:
        kinds = {_literal_integer(element.value) for element in expr.elements}
        if kinds == {YES}:
            return YES
        if NO in kinds:
            return NO
    if isinstance(expr, cst.UnaryOperation):
        return _literal_integer(expr.expression)
    return UNKNOWN
