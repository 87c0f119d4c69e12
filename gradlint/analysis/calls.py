"""Calls of the module's own code: functions run on the call's abstract arguments (or
remembered), methods with their instance's attributes, classes instantiated, decorators' wrappers,
lambdas and closures, and what a call did to its arguments flowing back to the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import libcst as cst

from gradlint.analysis import torch_api as api
from gradlint.analysis.facts import (
    Call,
)
from gradlint.analysis.names import dotted, resolve_dotted
from gradlint.analysis.scopes import (
    ClassInfo,
    FunctionInfo,
    body_statements,
)
from gradlint.analysis.state import Effects, Frame, State, aged
from gradlint.analysis.syntax import (
    _argument_expressions,
    _bool_literal,
    _is_literal,
    _is_record_class,
    _is_super,
    _names_grad,
    _param_names,
    _self_name,
)
from gradlint.analysis.torch_calls import TorchCalls
from gradlint.analysis.train_modes import Left, TrainMode, mode_of, set_mode, set_on_or_above
from gradlint.analysis.value_ops import (
    _BUILTINS,
    _REGISTERS,
    MAX_CONTEXTS,
    MAX_LOOP_DEPTH,
    MODULE_METHODS,
    SPREAD_KEYWORDS,
    _parameter,
    _record_fields,
    _shape,
    _split_args,
    _without_graph,
)
from gradlint.analysis.values import (
    NO,
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


class FunctionCalls(TorchCalls):
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
        owner = self_value.path if self_value is not None and caller is not None else None
        made_before = self._function_sites.get(info)
        if caller is not None and made_before:
            # What an earlier call of this function made are other tensors than this call's
            # (aged before the instance's attributes are carried in: a value it sets anew is
            # then told apart from the one it set last time).
            self._generation += 1
            caller.age_in_place(made_before, self._generation)
            # (and so are the arguments, evaluated before: `x = layer(x)` twice hands the
            # second call what the first made, which it must not take for its own)
            args = [aged(v, made_before, self._generation) for v in args]
            kwargs = {k: aged(v, made_before, self._generation) for k, v in kwargs.items()}
        # The instance's attributes the caller knows (`model.hidden`) go in as `self.hidden`,
        # and what the method sets on `self` comes back out: object state flows with calls.
        # What the caller knows of its arguments' attributes (`state.positions` after
        # `state.positions.requires_grad_()`) holds inside the call too.
        carried: dict[str, Value] = {}
        handed: dict[str, Value] = {}
        if caller is not None:
            # prefix `base.` -> where its direct attributes go (one scan of the caller's names)
            wanted: dict[str, list[tuple[dict[str, Value], str]]] = {}
            if owner is not None:
                wanted.setdefault(owner + ".", []).append((carried, ""))
            if call is not None:
                for param, expr in _argument_expressions(info, call).items():
                    base = dotted(expr)
                    if base is not None:
                        wanted.setdefault(base + ".", []).append((handed, param + "."))
            if wanted:
                for name, value in caller.env.items():
                    targets = wanted.get(name[: name.rfind(".") + 1])
                    if targets is not None:
                        attr = name[name.rfind(".") + 1 :]
                        for into, prefix in targets:
                            into[prefix + attr] = value
        inherited = self.freezes_handed(info, call, caller, self_value)
        params_of = _params_handed(args, kwargs) if caller is not None else frozenset()
        modes_in = self.modes_handed(info, call, caller, self_value)
        key = (
            id(info),
            mode,
            tuple(sorted((k, frozen.name) for k, (frozen, _) in inherited.items())),
            tuple(sorted((k, mode.training.name, bool(mode.left)) for k, mode in modes_in.items())),
            tuple(_shape(v) for v in args),
            tuple(sorted((k, _shape(v)) for k, v in kwargs.items())),
            _shape(self_value) if self_value is not None else None,
            tuple(sorted((k, _shape(v)) for k, v in carried.items())),
            tuple(sorted((k, _shape(v)) for k, v in handed.items())),
            id(self._closures.get(id(info))) if caller is not None else None,
            tuple(sorted(params_of)),
        )
        if call is not None:
            passed = [*args, *kwargs.values()]
            self._call_inputs[id(call)] = frozenset().union(*(v.graph for v in passed))
        parts = _input_parts(args, kwargs, carried)
        runs = self._runs.get(info, 0)
        # Code that changes tensors or back-propagates acts on the caller's tensors each time
        # it runs: run it again rather than remembering its result.
        replay = (
            caller is not None
            and runs < MAX_CONTEXTS
            and (info.calls_backward or self.scopes.changes_tensors(info))
        )
        if (
            caller is not None
            and self.scopes.touches_grads(info)
            and (
                (key in self._memo and not replay) or info in self._running or runs >= MAX_CONTEXTS
            )
        ):
            self.forget_grads(caller)  # what it does to gradients is not run again here
        if key in self._memo and not replay:
            result, remembered, effects = self._memo[key]
            sources = self._memo_sources.get(key)
            if owner is not None and caller is not None:
                for name, value in remembered.items():
                    value = _renamed(value, _self_name(info), self_value)
                    caller.env[f"{owner}.{name}"] = self.renewed(value, info, parts, sources)
            if caller is not None and call is not None:
                self.apply_effects(effects, info, call, self_value, caller)
            for value in (result, *remembered.values()):
                self.optimizer_rebuilt(value)
            self._last_writes = remembered
            return self.outer_path(
                self.renewed(result, info, parts, sources), info, call, self_value
            )
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
            state.grads = dict(caller.grads)
            state.training = dict(modes_in)
        if info.mode_set_by is not None:
            self.facts.scope[info.mode_set_by] = info
        closure = self._closures.get(id(info)) if caller is not None else None
        if closure is not None:
            state.env.update(closure)
        self.bind_parameters(info, args, kwargs, self_value, state, call)
        self._frames.append(
            Frame(
                frozenset(_param_names(info)),
                loops=len(self._loops),
                root=caller is None,
                handed=params_of,
            )
        )
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
        for key_path, (frozen, frozen_at) in inherited.items():
            state.frozen[key_path] = frozen
            if frozen_at is not None:
                state.frozen_at[key_path] = frozen_at
        frozen_in = dict(state.frozen)
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
                caller.env[f"{owner}.{attr}"] = _renamed(value, me, self_value)
        effects = self.effects_of(self._frames.pop(), final, modes_in, frozen_in)
        if caller is not None and call is not None:
            self.apply_effects(effects, info, call, self_value, caller)
        self._memo[key] = (result, writes, effects)
        self._memo_sources[key] = self.sources_of([result, *writes.values()], info, parts)
        self._last_writes = writes
        if caller is not None:
            out = final
            for returned in self._return_states:
                out = returned.join(out)
            caller.freed, caller.versions = out.freed, out.versions
            caller.changed_at, caller.saves = out.changed_at, out.saves
            caller.exhausted = out.exhausted
            caller.grads = out.grads
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
        if result.roots:
            # Parameters of modules the function names its own way (`self.parameters()`
            # in `model.trainable_tensors()`): as the caller names them, or none known.
            renamed = [self.caller_path(root, info, call, self_value) for root in result.roots]
            known = None if None in renamed else frozenset(p for p in renamed if p is not None)
            result = result.with_(roots=known or frozenset())
        if result.kind is not Kind.MODULE or result.path is None:
            return result
        return result.with_(path=self.caller_path(result.path, info, call, self_value))

    def caller_path(
        self, path: str, info: FunctionInfo, call: cst.Call | None, self_value: Value | None
    ) -> str | None:
        """A module path inside a function (`self.encoder`, `model`), as its caller names it:
        under the instance or the argument it was handed; None for what the function made."""
        head, _, rest = path.partition(".")
        base: str | None = None
        if head == _self_name(info) and self_value is not None:
            base = self_value.path
        elif call is not None:
            expr = _argument_expressions(info, call).get(head)
            base = self.facts.value(expr).path if expr is not None else None
        return None if base is None else (f"{base}.{rest}" if rest else base)

    def freezes_handed(
        self,
        info: FunctionInfo,
        call: cst.Call | None,
        caller: State | None,
        self_value: Value | None,
    ) -> dict[str, tuple[Tri, cst.CSTNode | None]]:
        """What the caller froze of the modules it hands the call (`build_optimizer(model)`
        after `model.backbone.requires_grad_(False)`), renamed as the callee names them."""
        if call is None or caller is None or not caller.frozen:
            return {}
        names = self.callee_names(info, call, self_value)
        found: dict[str, tuple[Tri, cst.CSTNode | None]] = {}
        for name, path in names.items():
            for key, frozen in caller.frozen.items():
                if key == path or key.startswith(path + "."):
                    renamed = name + key[len(path) :]
                    found[renamed] = (frozen, caller.frozen_at.get(key))
        return found

    def callee_names(
        self, info: FunctionInfo, call: cst.Call, self_value: Value | None
    ) -> dict[str, str]:
        """The modules a call hands its callee: the callee's name for each -> the path
        the caller knows it by."""
        names: dict[str, str] = {}
        me = _self_name(info)
        if me is not None and self_value is not None and self_value.path is not None:
            names[me] = self_value.path
        for param, expr in _argument_expressions(info, call).items():
            value = self.facts.value(expr)
            if value.kind is Kind.MODULE and value.path is not None:
                names[param] = value.path
        return names

    def modes_handed(
        self,
        info: FunctionInfo,
        call: cst.Call | None,
        caller: State | None,
        self_value: Value | None,
    ) -> dict[str, TrainMode]:
        """The train/eval modes of the modules the caller hands the call, renamed as the
        callee names them, and of the module-level models the callee may use."""
        if call is None or caller is None or not caller.training:
            return {}
        params = set(_param_names(info))
        found = {
            key: mode
            for key, mode in caller.training.items()
            if self._global_head(key, caller) and key.split(".")[0] not in params
        }
        names = self.callee_names(info, call, self_value)
        for name, path in names.items():
            # (Only a mode set on it or above: one made up from the modules under it would
            # hand their eval modes to their siblings, which the callee looks up under it.)
            mode = set_on_or_above(path, caller.training)
            if mode is not None:
                found[name] = mode
            for key, mode in caller.training.items():
                if key.startswith(path + "."):
                    found[name + key[len(path) :]] = mode
        return found

    def _global_head(self, key: str, state: State) -> bool:
        """Whether a path starts at a module-level name, as the running code sees it."""
        head = key.split(".")[0]
        return head in self.module_env and (self._function is None or head not in state.env)

    def effects_of(
        self,
        frame: Frame,
        final: State,
        modes_in: dict[str, TrainMode] | None = None,
        frozen_in: dict[str, Tri] | None = None,
    ) -> Effects:
        """What the call did to its arguments' objects: requires_grad set on a tensor it
        was handed, parameters of a module it was handed frozen or unfrozen, a module it
        was handed (or a module-level one) set to train or eval mode. (What the callee
        started out knowing, as what `__init__` froze, is not its doing.)"""
        frozen_in = frozen_in or {}
        frozen = tuple(
            (key, value, final.frozen_at.get(key))
            for key, value in final.frozen.items()
            if frozen_in.get(key) is not value
        )
        # New layers set under a module it unfroze that way (the trainable ones are named
        # no more once set, but they are what made it trainable).
        frozen += tuple(
            (child, NO, None)
            for child in sorted(frame.remade)
            if child not in final.frozen
            and any(
                child.startswith(key + ".") and value is NO and frozen_in.get(key) is YES
                for key, value, _ in frozen
            )
        )
        frozen = tuple(
            (key, value, at)
            for key, value, at in frozen
            if (key.split(".")[0] in frame.params and key.split(".")[0] not in frame.rebound)
            or (
                key.split(".")[0] not in frame.params
                and any(key == path or key.startswith(path + ".") for path in frame.handed)
            )
        )
        flags = tuple(
            (name, wanted) for name, wanted in frame.flags.items() if name not in frame.rebound
        )
        modes_in = modes_in or {}
        modes = tuple(
            (key, mode)
            for key, mode in final.training.items()
            if modes_in.get(key) != mode
            and (
                (key.split(".")[0] in frame.params and key.split(".")[0] not in frame.rebound)
                or self._global_head(key, final)
            )
        )
        return flags, frozen, modes

    def apply_effects(
        self,
        effects: Effects,
        info: FunctionInfo,
        call: cst.Call,
        self_value: Value | None,
        caller: State,
    ) -> None:
        flags, frozen, modes = effects
        if not flags and not frozen and not modes:
            return
        passed = _argument_expressions(info, call)
        self.apply_modes(modes, info, call, self_value, caller)
        for name, wanted in flags:
            expr = passed.get(name)
            key = dotted(expr) if expr is not None else None
            value = caller.env.get(key) if key is not None else None
            if key is not None and value is not None and value.is_tensor and value.leaf is YES:
                caller.env[key] = value.with_(requires_grad=wanted)
                if self._frames and key in self._frames[-1].params:
                    self._frames[-1].flags[key] = wanted  # passed on to our own caller
        me = _self_name(info)
        params = set(_param_names(info))
        resolved: list[tuple[str, Tri, cst.CSTNode | None]] = []
        for key, is_frozen, at in frozen:
            head, _, rest = key.partition(".")
            if head == me and self_value is not None:
                base = self_value.path
            elif head != me and head not in params:
                base = head  # a module whose parameters the caller handed, in its own name
            else:
                expr = passed.get(head)
                base = self.facts.value(expr).path if expr is not None else None
            if base is not None:
                resolved.append((f"{base}.{rest}" if rest else base, is_frozen, at))
        for path, is_frozen, at in resolved:
            if self.frozen_of(path, caller) is not is_frozen:
                # Trainable only as far as parts of it set anew are (`self.head = Linear(...)`).
                remade = tuple(
                    part
                    for part, part_frozen, _ in resolved
                    if part.startswith(path + ".") and part_frozen is NO and is_frozen is NO
                )
                self.note_freeze(
                    path, is_frozen.negate(), call, caller, by_callee=True, remade=remade
                )
            for child in [k for k in caller.frozen if k.startswith(path + ".")]:
                del caller.frozen[child]
            caller.frozen[path] = is_frozen
            if at is not None:
                caller.frozen_at[path] = at
            self.unfreeze_parents(path, is_frozen.negate(), caller)

    def apply_modes(
        self,
        modes: tuple[tuple[str, TrainMode], ...],
        info: FunctionInfo,
        call: cst.Call,
        self_value: Value | None,
        caller: State,
    ) -> None:
        """The modes a call left its modules in, in the caller's names: set by the call,
        now, on the caller's pass of its loops."""
        passed = _argument_expressions(info, call)
        me = _self_name(info)
        params = set(_param_names(info))
        for key, mode in modes:
            head, _, rest = key.partition(".")
            if head == me and self_value is not None:
                base = self_value.path
            elif head in params:
                expr = passed.get(head)
                base = self.facts.value(expr).path if expr is not None else None
            else:
                base = head  # a module-level model
            if base is None:
                continue
            path = f"{base}.{rest}" if rest else base
            before = mode_of(path, caller.training)
            kept = {left.at: left for left in before.left} if before is not None else {}
            # Eval modes the caller left stay its own (as evaluated there); those the call
            # set are set by the call, now, on the caller's pass of its loops.
            passes = self.running_passes()
            left = frozenset(
                replace(kept[entry.at], evaluated=entry.evaluated)
                if entry.at in kept
                else Left(call, passes, entry.evaluated, path)
                for entry in mode.left
            )
            if before is not None and before.at is mode.at and before.training is mode.training:
                set_mode(path, replace(before, left=left), caller.training)
                continue
            at = call if mode.training is not UNKNOWN else None
            set_mode(path, TrainMode(mode.training, at, left), caller.training)

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

    def sources_of(
        self, made: list[Value], info: FunctionInfo, parts: list[tuple[object, frozenset[Node]]]
    ) -> frozenset[object] | None:
        """The parts of a call's inputs whose graphs went into what it returned or wrote:
        each one whose whole graph is in theirs (an op on a tensor holds all of that
        tensor's graph), then any other that holds what those leave out. A method that
        reads one argument does not take in the graphs of `self`'s other attributes."""
        made_here = self._function_sites.get(info, set())
        foreign: set[Node] = set()
        for value in made:
            foreign |= {n for n in _renewable_nodes(value) if n[0] not in made_here}
        if not foreign:
            return frozenset()
        whole = [(label, graph) for label, graph in parts if graph and graph <= foreign]
        # (A part inside another that went in whole, `self.generated` inside the argument
        # `disc(self.generated)`, came in through that one: on a later call, its own
        # value then is not what went in.)
        whole = [
            (label, graph)
            for label, graph in whole
            if not any(other is not label and graph < bigger for other, bigger in whole)
        ]
        sources = {label for label, _ in whole}
        left = foreign.difference(*(graph for _, graph in whole))
        if left:
            partly = {label for label, graph in parts if graph & left}
            if not partly:
                return None  # from somewhere else (a global): as before, from every input
            sources |= partly
        return frozenset(sources)

    def renewed(
        self,
        value: Value,
        info: FunctionInfo,
        parts: list[tuple[object, frozenset[Node]]],
        sources: frozenset[object] | None = None,
    ) -> Value:
        """A remembered call's result, as this call makes it: what the function made is made
        anew (its earlier loop passes are other tensors than the first call's), and what
        came from the first call's arguments comes from this call's arguments instead (from
        the same parts of them, `sources`; None: from any)."""
        generations: dict[int, int] = {}
        made_here = self._function_sites.get(info, set())
        from_inputs: frozenset[Node] = frozenset()
        for label, graph in parts:
            if sources is None or label in sources:
                from_inputs |= graph

        def node_of(node: Node) -> Node:
            if node[1] not in generations:
                self._generation += 1
                generations[node[1]] = self._generation
            # (Made anew by this call, so by each function running it, as `new_node` says.)
            for function in self._active:
                self._function_sites.setdefault(function, set()).add(node[0])
            return (node[0], generations[node[1]])

        renamed: dict[Node, Node] = {}
        result = _renew(value, made_here, from_inputs, renamed, node_of)
        # The edges from what went in to what came out, for the new names too.
        for producer in [*renamed, *from_inputs]:
            consumers = self._consumers.get(producer)
            if consumers:
                new = {renamed[c] for c in consumers if c in renamed}
                if new:
                    self._consumers.setdefault(renamed.get(producer, producer), set()).update(new)
        return result

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
            elif SPREAD_KEYWORDS in kwargs:
                value = UNKNOWN_VALUE  # perhaps in the mapping the call spread
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
        if type(star) is cst.Param:
            if spread is not None:
                rest = Value(kind=Kind.SEQUENCE, item=spread.with_(spread=False))
            else:
                rest = sequence(passed, fixed=True)
            state.env[star.name.value] = rest
        if params.star_kwarg is not None:
            state.env[params.star_kwarg.name.value] = OTHER

    def eval_call(self, node: cst.Call, state: State) -> Value:
        result = self.call_result(node, state)
        if result.kind is Kind.MODULE:
            handed = self.modules_handed(node)
            if handed:
                return result.with_(wraps=result.wraps | handed)
        return result

    def modules_handed(self, node: cst.Call) -> frozenset[str]:
        """The modules a call was handed (alone or in a list), and those they wrap."""
        found: set[str] = set()
        for arg in node.args:
            value = self.facts.value(arg.value)
            parts = [value, *(value.items or ()), *([value.item] if value.item else [])]
            for part in parts:
                if part.kind is Kind.MODULE:
                    found |= part.wraps
                    if part.path is not None:
                        found.add(part.path)
        return frozenset(found)

    def call_result(self, node: cst.Call, state: State) -> Value:
        call = self.call_of(node)
        self.facts.calls.append(call)
        self.facts.scope[node] = self._function
        self.facts.record_mode(node, state.mode)
        if call.qualname is not None:
            args = self.eval_args(node, state)
            result = self.qualified_call(call.qualname, node, args, state)
            finite = api.FINITE_CHECKS.get(call.qualname)
            if finite is not None:
                result = result.with_(truth=YES if finite else NO)
            return self.unfollowed(result, args)
        if call.method is not None and call.receiver is not None:
            func = node.func
            assert type(func) is cst.Attribute
            receiver = self.eval(call.receiver, state)
            args = self.eval_args(node, state)
            if call.method.endswith("_") and _names_grad(call.receiver):
                self.forget_grads(state)  # `p.grad.zero_()`: cleared by hand
            if call.method in _REGISTERS and self._function and self._function.owner:
                self.dynamic_classes.add(self._function.owner.name)
            if _is_super(call.receiver):
                if call.method == "__init__":
                    self.super_init(node, args)
                return self.super_call(call.method, node, args, state)
            method = self.method_of(receiver, call.method)
            if method is not None:
                positional, keywords = _split_args(node, args)
                stepping = receiver.kind is Kind.OPTIMIZER and "step" in call.method
                # (A step that runs backwards of its own, on the losses it is given, makes
                # the gradients it applies: what `.grad` held before it does not count.)
                if stepping and not method.calls_backward:
                    self.step_grads(receiver, node, state)  # (read before its body may clear)
                result = self.run_function(method, positional, keywords, state, receiver, node)
                if stepping:
                    self.step(receiver, node, state, grads=False)  # SAM's first_step
                elif receiver.kind is Kind.OPTIMIZER and call.method == "zero_grad":
                    self.clear_grads(receiver, node, state)
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
                return self.unfollowed(self.call_value(callee, node, args, state), args)
            result = self.method_call(receiver, call.method, node, args, state)
            return self.unfollowed(result, [receiver, *args])
        callee = self.eval(node.func, state) if type(node.func) is not cst.Name else None
        args = self.eval_args(node, state)
        if type(node.func) is cst.Name:
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
                return self.unfollowed(self.builtin_call(name, node, args, state), args)
        if callee is None:
            return self.unfollowed(UNKNOWN_VALUE, args)
        return self.unfollowed(self.call_value(callee, node, args, state), args)

    def unfollowed(self, result: Value, args: list[Value]) -> Value:
        """A call whose result the analysis does not know: code it does not see may keep or
        back-propagate the tensors handed to it (`accelerator.backward(loss)`)."""
        if result.kind is Kind.UNKNOWN:
            for arg in args:
                self.propagate(arg)
        return result

    def call_of(self, node: cst.Call) -> Call:
        func = node.func
        qualname = self.imports.resolve(func)
        if qualname is not None:
            return Call(node, qualname, None, None)
        if type(func) is cst.Attribute:
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

    def class_constant(self, cls_name: str, attr: str) -> Value | None:
        """A flag set in the body of a local class (or a local base), and never on an
        instance: `automatic_optimization = False`."""
        if attr in self.attrs_of(cls_name) or attr in self.scopes.assigned_outside():
            return None
        todo, seen = [cls_name], set()
        while todo:
            name = todo.pop(0)
            cls = self.scopes.classes.get(name)
            if cls is None or name in seen:
                continue
            seen.add(name)
            for statement in cls.node.body.body:
                for small in statement.body if type(statement) is cst.SimpleStatementLine else ():
                    if (
                        type(small) is cst.Assign
                        and len(small.targets) == 1
                        and dotted(small.targets[0].target) == attr
                        and _bool_literal(small.value) is not UNKNOWN
                    ):
                        return Value(kind=Kind.OTHER, truth=_bool_literal(small.value))
            todo.extend(cls.bases)
        return None

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
            made = self.new_optimizer(node, args[0].roots if args else frozenset(), state)
            return made.with_(cls=cls.name)
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

    def attribute_of(self, obj: Value, expr: cst.Attribute, state: State) -> Value:
        attr = expr.attr.value
        if obj.fields is not None and obj.kind in (Kind.OTHER, Kind.MODULE, Kind.SEQUENCE):
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
                # The same storage, with changes hidden from autograd's version counter.
                return self.no_grad_tensor(obj, expr).with_(
                    leaf=YES, integer=obj.integer, node=obj.node, layer="data"
                )
            if attr in ("grad",):
                return Value(kind=Kind.TENSOR, requires_grad=NO, leaf=YES)
            if attr in ("T", "mT", "H", "mH", "real", "imag"):
                return self.op_result([obj], expr, state, attr)
            if attr in api.TENSOR_INFO_ATTRIBUTES:
                return OTHER
            return UNKNOWN_VALUE
        if obj.kind is Kind.OTHER and obj.cls is not None:
            # An attribute of an instance of a local class, as its methods set it.
            found = self.attrs_of(obj.cls).get(attr)
            if found is None:
                found = self.class_constant(obj.cls, attr) or UNKNOWN_VALUE
            return _without_graph(found)
        if obj.kind is Kind.MODULE:
            if (
                attr == "training"
                and obj.path
                and (obj.cls is None or attr not in self.attrs_of(obj.cls))
            ):
                # The module's train/eval flag, as the last `.train()`/`.eval()` left it:
                # `was_training = model.training; model.eval(); ...; model.train(was_training)`
                # puts back the mode it had.
                mode = mode_of(obj.path, state.training)
                return Value(kind=Kind.OTHER, truth=mode.training if mode else UNKNOWN)
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
                return self.class_constant(obj.cls, attr) or UNKNOWN_VALUE
            if attr in ("weight", "bias") and obj.has_params is YES:
                path = f"{obj.path}.{attr}" if obj.path else None
                param = _parameter(obj.frozen, path, node=(self.site_key(id(expr)), 0))
                return self.with_frozen(param, state) if path else param
            return UNKNOWN_VALUE
        return UNKNOWN_VALUE


def _renamed(value: Value, me: str | None, self_value: Value | None) -> Value:
    """A layer or tensor a method set on `self`, named as the caller names the object
    (`self.head` set by `tagger.grow_labels()` is `tagger.head`)."""
    if (
        me is None
        or self_value is None
        or self_value.path is None
        or value.path is None
        or value.kind not in (Kind.MODULE, Kind.TENSOR)
        or not (value.path == me or value.path.startswith(me + "."))
    ):
        return value
    return value.with_(path=self_value.path + value.path[len(me) :])


def _params_handed(args: list[Value], kwargs: dict[str, Value]) -> frozenset[str]:
    """The modules (as the caller names them) all of whose parameters a call is handed:
    `m.parameters()`, or a list of them."""
    found: set[str] = set()
    for value in (*args, *kwargs.values()):
        item = value.item
        if (
            value.kind in (Kind.PARAMS, Kind.SEQUENCE)
            and item is not None
            and item.is_tensor
            and item.path is not None
            and item.path.endswith(".*")
        ):
            found.add(item.path[:-2])
    return frozenset(found)


def _input_parts(
    args: list[Value], kwargs: dict[str, Value], carried: dict[str, Value]
) -> list[tuple[object, frozenset[Node]]]:
    """The graphs a call takes in, each named by where it is (the same names on each
    call that a remembered result serves): each argument, its items, `self`'s attributes."""
    named: list[tuple[object, Value]] = [
        *enumerate(args),
        *((("keyword", k), v) for k, v in kwargs.items()),
        *((("self", k), v) for k, v in carried.items()),
    ]
    parts: list[tuple[object, frozenset[Node]]] = []
    for label, value in named:
        parts.append((label, value.graph))
        if value.item is not None:
            parts.append(((label, "item"), value.item.graph))
        for index, part in enumerate(value.items or ()):
            parts.append(((label, index), part.graph))
    return parts


def _renewable_nodes(value: Value) -> frozenset[Node]:
    """The graph nodes `_renew` renames or replaces: of the value, its items, theirs."""
    nodes = value.graph
    for part in (value.item, *(value.items or ()), *(v for _, v in value.fields or ())):
        if part is not None:
            nodes |= _renewable_nodes(part)
    return nodes


def _renew(
    value: Value,
    made_here: set[int],
    from_inputs: frozenset[Node],
    renamed: dict[Node, Node],
    node_of: Callable[[Node], Node],
) -> Value:
    """`FunctionCalls.renewed` of one value (a module function: a recursive closure would
    be a reference cycle, which only the garbage collector frees, with all it holds)."""
    if not value.graph and value.item is None and value.items is None and value.fields is None:
        return value
    own_nodes = [n for n in value.graph if n[0] in made_here]
    for n in own_nodes:
        renamed[n] = node_of(n)
    graph = frozenset(renamed[n] for n in own_nodes)
    if any(n[0] not in made_here for n in value.graph):
        graph |= from_inputs

    def own(node: Node | None) -> Node | None:
        return node_of(node) if node is not None and node[0] in made_here else None

    return value.with_(
        graph=graph,
        node=own(value.node),
        head=own(value.head),
        item=(
            _renew(value.item, made_here, from_inputs, renamed, node_of)
            if value.item is not None
            else None
        ),
        items=(
            tuple(_renew(v, made_here, from_inputs, renamed, node_of) for v in value.items)
            if value.items is not None
            else None
        ),
        # (a dict's named entries, `{"loss": loss, "log": logs}`: made anew too)
        fields=(
            tuple(
                (name, _renew(v, made_here, from_inputs, renamed, node_of))
                for name, v in value.fields
            )
            if value.fields is not None
            else None
        ),
    )
