"""An abstract interpreter over one module: it runs every function on abstract values and
records, at each node, what a value holds and which grad mode is in force.

Values follow PyTorch's rules: an op on a tensor that requires grad gives a non-leaf that
requires grad while grad mode is enabled; factories give leaves; `.detach()`, `.item()`,
comparisons and integer results give none. Loops run twice, the second pass seeing what the
first left behind, so that state carried across iterations (a hidden state, a running total)
is seen. Whatever is not known is UNKNOWN, and rules stay silent on it.

This module runs statements and expressions. Its parts, each building on the one before:
`interpreter_base` (what the interpreter has learnt so far), `graphs` (autograd: what ops
record, save and free), `torch_calls` (torch, builtins, tensor and module methods) and
`calls` (the module's own functions, methods and classes).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import libcst as cst

from gradlint.analysis import torch_api as api
from gradlint.analysis.calls import FunctionCalls
from gradlint.analysis.facts import (
    ENABLED,
    MAX_OBSERVED,
    AttributeSet,
    Facts,
    Inplace,
    UnregisteredTensor,
    WithItem,
)
from gradlint.analysis.interpreter_base import LoopRun
from gradlint.analysis.names import dotted
from gradlint.analysis.nodes import child_nodes
from gradlint.analysis.scopes import (
    SMALL_TYPES,
    body_statements,
    grad_mode_of,
)
from gradlint.analysis.state import State
from gradlint.analysis.syntax import (
    _cleared_list,
    _counter_of,
    _counts,
    _int_literal,
    _keeps_trainable,
    _literal_range,
    _names_grad,
    _plain_text,
    _self_name,
    _string_key,
    _target_keys,
    body_statements_of_module,
)
from gradlint.analysis.train_modes import forget_mode
from gradlint.analysis.value_ops import (
    _OPERATORS,
    MAX_LOOP_DEPTH,
    _compare_bounds,
    _is_field_of_record,
    _is_none,
    _known_index,
    _known_part,
    _truth,
    _with_field_writes,
)
from gradlint.analysis.values import (
    FLOAT,
    INT,
    NO,
    NONE,
    OTHER,
    UNKNOWN,
    UNKNOWN_VALUE,
    YES,
    Kind,
    Value,
    sequence,
)
from gradlint.cancel import checkpoint

# Exact types, not isinstance: these are leaf classes, and a failed isinstance on libcst's
# ABC node classes is slow (`_eval` sees every expression).
_NUMBER_NODES = frozenset({cst.Float, cst.Imaginary})
_STRING_NODES = frozenset({cst.SimpleString, cst.ConcatenatedString, cst.FormattedString})
_COLLECTION_NODES = frozenset({cst.List, cst.Tuple, cst.Set})
_COMPREHENSION_NODES = frozenset({cst.ListComp, cst.SetComp, cst.GeneratorExp})


def _is_own_attribute(key: str) -> bool:
    """`self.acts`: a container the instance keeps, which any method may fill."""
    return key.startswith("self.") and "." not in key[5:]


class Interpreter(FunctionCalls):
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
        # Callers first: a helper they call then runs with their arguments, which says
        # more than unknowns, and needs no run of its own.
        called = [f for f in self.scopes.functions if any(c for c, _ in f.call_sites)]
        roots = [f for f in self.scopes.functions if not any(c for c, _ in f.call_sites)]
        for function in [*roots, *called]:
            if function not in self._ran:
                self.run_function(function)
        if not self.facts.applies_gradients():
            # Backwards that only fill `.grad` (of inputs, for a saliency map): nothing
            # trains, in eval mode or not.
            self.facts.trained_in_eval.clear()
        # Made a parameter after all by another assignment, or registered by name.
        self.facts.unregistered_tensors = [
            found
            for found in self.facts.unregistered_tensors
            if (found.cls, found.attr) not in self._registered_attrs
            and found.cls not in self.dynamic_classes
        ]
        self.facts.unregistered_layers = [
            found
            for found in self.facts.unregistered_layers
            if (found.cls, found.attr) not in self._registered_attrs
            and found.cls not in self.dynamic_classes
            and not self._registered_elsewhere(found.cls, found.node)
        ]
        return self.facts

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
        checkpoint()  # a lint the language server no longer needs stops here
        self.facts.record_mode(statement, state.mode)
        self.facts.scope[statement] = self._function
        self._statement = statement
        if type(statement) in SMALL_TYPES:  # in a block on its header's line: `if x: y = 1`
            return self.exec_small(cast(cst.BaseSmallStatement, statement), state)
        if type(statement) is cst.SimpleStatementLine:
            for small in statement.body:
                state = self.exec_small(small, state)
            return state
        if type(statement) is cst.If:
            test = _truth(self.eval(statement.test, state))
            if test.truth is YES:  # `if True:`, or a flag whose value is known here
                return self.exec_block(body_statements(statement.body), state)
            if test.truth is NO:
                if statement.orelse is None:
                    return state
                if type(statement.orelse) is cst.If:
                    return self.exec_statement(statement.orelse, state)
                return self.exec_block(body_statements(statement.orelse.body), state)
            # Both branches run only under what the test says.
            self._conditions.append(statement.test)
            self._branches.append(id(statement.body))
            then = self.exec_block(body_statements(statement.body), state.copy())
            self._branches[-1] = id(statement.orelse)
            if statement.orelse is None:
                other = state
            elif type(statement.orelse) is cst.If:
                other = self.exec_statement(statement.orelse, state.copy())
            else:
                other = self.exec_block(body_statements(statement.orelse.body), state.copy())
            self._branches.pop()
            self._conditions.pop()
            return then.join(other)
        if type(statement) is cst.For:
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
        if type(statement) is cst.While:
            self.eval(statement.test, state)
            return self.exec_loop(statement, state, None, UNKNOWN_VALUE)
        if type(statement) is cst.With:
            return self.exec_with(statement, state)
        if isinstance(statement, (cst.Try, cst.TryStar)):
            returns = len(self._return_states)
            after_body = self.exec_block(body_statements(statement.body), state.copy())
            if statement.orelse is not None:
                after_body = self.exec_block(body_statements(statement.orelse.body), after_body)
            joined = after_body
            for handler in statement.handlers:
                start = state.join(after_body) if not after_body.dead else state.copy()
                joined = joined.join(self.exec_block(body_statements(handler.body), start))
            if statement.finalbody is not None:
                final = body_statements(statement.finalbody.body)
                # A `return` inside the `try` leaves only after the `finally` ran.
                for index in range(returns, len(self._return_states)):
                    left = self.exec_block(final, self._return_states[index])
                    left.dead = False
                    self._return_states[index] = left
                joined = self.exec_block(final, joined)
            return joined
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            # Calls of the name resolve to the function or class itself.
            state.env.pop(statement.name.value, None)
            nested = None
            if type(statement) is cst.FunctionDef and self._function is not None:
                nested = self.scopes.info_for(statement)
            if nested is not None:
                state.env[statement.name.value] = self.function_value(nested)
                self._closures[id(nested)] = state.env  # the names it reads from its maker
            return state
        if type(statement) is cst.Match:
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
        self._loop_runs.append(
            LoopRun(len(self._conditions), len(self._active), started=self.tick_clock())
        )
        for index in range(passes):
            self.next_pass()
            sites: set[int] = set()
            self._loop_sites.append(sites)
            if target is not None:
                self.assign(target, item, current, loop)
            if counter is not None:
                bounds = {"low": 0, "high": 0} if index == 0 else {"low": 1}
                current.env[counter] = INT.with_(**bounds)
            current = self.exec_block(body, current)
            run = self._loop_runs[-1]
            for skipped in run.continued:
                current = current.join(skipped)
            if index + 1 == passes:
                for broken in run.broken:
                    current = current.join(broken)
            self._loop_sites.pop()
            for outer in self._loop_sites:
                outer |= sites
            current.dead = False  # break/continue end a pass, not the function
            if index + 1 < passes:
                self._generation += 1
                self._loop_generations[self._generation] = loop
                current = current.age(sites, self._generation)
                self.age_retained(sites, self._generation)
                current.grads = {key: g.next_pass() for key, g in current.grads.items()}
        self._loops.pop()
        self._loop_runs.pop()
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
                    WithItem(item, qualname, called=type(item.item) is cst.Call)
                )
                if type(item.item) is cst.Call:
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
        if type(small) is cst.Expr:
            expr = small.value
            if type(expr) is cst.Call:
                found = grad_mode_of(expr, self.imports)
                if found is not None and found[0] == "torch.set_grad_enabled":
                    self.eval(expr, state)
                    if found[1] is not None:
                        state.mode = found[1]
                        state.grad_off_at = small if "E" not in found[1] else None
                    return state
                self.facts.statement_calls.append(self.call_of(expr))
            self.eval(expr, state)
        elif type(small) is cst.Assign:
            value = self.eval(small.value, state)
            if len(small.targets) == 1:
                self.note_sum_assigned(small, small.targets[0].target, value, state)
            for target in small.targets:
                self.assign(target.target, value, state, small, small.value)
        elif type(small) is cst.AnnAssign:
            if small.value is not None:
                value = self.eval(small.value, state)
                self.assign(small.target, value, state, small, small.value)
        elif type(small) is cst.AugAssign:
            self.exec_augassign(small, state)
        elif type(small) is cst.Return:
            value = self.eval(small.value, state) if small.value is not None else OTHER
            function = self._function
            if function is not None and function.name == "forward" and function.owner is not None:
                if function.owner.is_module:
                    # Training back-propagates what forward returns.
                    self.check_saved(value, small, state)
                    self.propagate(value, escapes=False)
            if self._frames and self._frames[-1].root:
                self.propagate(value)  # handed to callers this module does not show
            self._return_values.append(value)
            returned = copy.copy(state)  # only its tensor facts are read
            self._return_states.append(returned)
            state.dead = True
        elif isinstance(small, (cst.Raise, cst.Break, cst.Continue)):
            if type(small) is cst.Raise and small.exc is not None:
                self.eval(small.exc, state)
            if type(small) is cst.Continue and self._loop_runs:
                # What follows runs only on passes where these tests let it.
                self._loop_runs[-1].skipped.extend(self.guards())
                self._loop_runs[-1].continued.append(state.copy())
            elif type(small) is cst.Break and self._loop_runs:
                self._loop_runs[-1].broken.append(state.copy())
            state.dead = True
        elif type(small) is cst.Assert:
            self.eval(small.test, state)
        elif type(small) is cst.Del:
            if _names_grad(small.target):
                self.forget_grads(state)
            cleared = _cleared_list(small.target)
            if cleared is not None:
                # `del self.log_probs[:]` empties the list, which stays.
                self.set_list(cleared, Value(kind=Kind.SEQUENCE), state)
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
        if _names_grad(node.target):
            self.forget_grads(state)
        target = self.eval(node.target, state)
        value = self.eval(node.value, state)
        if target.kind is Kind.TENSOR:
            # `x += y` on a tensor changes it in place; `x[i] += y` changes x.
            changed: cst.BaseExpression = node.target
            if type(changed) is cst.Subscript and self.facts.value(changed.value).is_tensor:
                changed = changed.value
            self.facts.inplace.append(Inplace(node, changed))
            op = _OPERATORS.get(type(node.operator), "other")
            result = self.inplace_result(target, [value], op, node, state, saves_output=False)
            self.note_running_total(node, node.target, target, value, result, state)
            self.assign(node.target, result, state, node)
            return
        if target.kind is Kind.SEQUENCE and type(node.operator) is cst.AddAssign:
            if (
                target.items is not None
                and value.kind is Kind.SEQUENCE
                and value.items is not None
                and not self.in_loop()
            ):
                # `layers += [Block(), Block()]` in straight-line code: the order is known.
                joined = sequence([*target.items, *value.items], fixed=True)
                self.assign(node.target, joined, state, node)
                return
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
            and type(node.operator) is cst.AddAssign
            and result.is_tensor
            and value.requires_grad is YES
        ):
            result = result.with_(summed_at=node)
        if type(node.operator) is cst.AddAssign:
            self.note_running_total(node, node.target, target, value, result, state)
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
        if _names_grad(target):
            self.forget_grads(state)  # `p.grad = None`: cleared by hand
        if value.is_tensor and isinstance(statement, (cst.Assign, cst.AnnAssign)):
            value = value.with_(kept_at=frozenset({statement}))
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = [el for el in target.elements]
            starred = any(type(el) is cst.StarredElement for el in elements)
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
                if type(element) is cst.StarredElement:
                    part = (
                        Value(kind=Kind.SEQUENCE, item=value.item) if value.item else UNKNOWN_VALUE
                    )
                self.facts.record(element.value, part, state.mode)
                self.assign(element.value, part, state, statement)
            return
        if type(target) is cst.Name:
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
            if value.is_tensor and value.head is not None:
                self._bound_at[value.head[0]] = statement
            alias = (id(self._function), target.value)
            self._bound_by[alias] = statement
            if type(source) is cst.Name and value.is_tensor and value.node is not None:
                # `out = x`: the same tensor under a second name, not a copy.
                self._aliases[alias] = statement
            else:
                self._aliases.pop(alias, None)
            self.forget_children(target.value, state)
            if self._frames and target.value in self._frames[-1].params:
                self._frames[-1].rebound.add(target.value)
            return
        if type(target) is cst.Attribute:
            obj = self.eval(target.value, state)
            key = dotted(target)
            if source is not None and type(statement) is cst.Assign:
                self.facts.attribute_sets.append(AttributeSet(statement, target, source))
            if target.attr.value == "requires_grad":
                self.set_requires_grad(obj, target.value, value, state)
                return
            if target.attr.value == "grad":
                return
            self.propagate(value)  # kept on an object: its other methods may use it
            self.attach(obj, target.value, target.attr.value, value, statement, state)
            if key is not None and source is not None:
                self.note_module_attribute(key, value, source)
            if key is not None:
                if value.kind is Kind.MODULE and value.path is None:
                    value = value.with_(path=key)
                    self.forget_freezes(key, state)
                    if value.frozen is YES and value.has_params is not NO:
                        state.frozen[key] = YES  # `nn.Linear(...).requires_grad_(False)`
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
        if type(target) is cst.Subscript:
            obj = self.eval(target.value, state)
            self.eval_slices(target, state)
            key = dotted(target.value)
            if (
                obj.kind in (Kind.MAPPING, Kind.SEQUENCE)
                and key is not None
                and (key in state.env or _is_own_attribute(key))
            ):
                # `losses["total"] = loss`: the container may now hold that value.
                slot = target.slice[0].slice if len(target.slice) == 1 else None
                name = _string_key(slot.value) if type(slot) is cst.Index else None
                # Under a fixed key (`d["loss"] = loss`) the new value replaces the old.
                fixed = type(slot) is cst.Index and isinstance(
                    slot.value, (cst.SimpleString, cst.Integer)
                )
                if not fixed:
                    value = self.keep_in_container(value, statement, obj, key, state)
                item = value if obj.item is None else obj.item.join(value)
                fields = None
                if obj.fields is not None and name is not None:
                    fields = (*((k, v) for k, v in obj.fields if k != name), (name, value))
                    # Every key known: what it holds is what they hold, and the old value
                    # under this key is gone (`parts["mse"] = ...` on each pass keeps one
                    # pass's loss, not all of them).
                    item = sequence([v for _, v in fields]).item or value
                state.env[key] = obj.with_(item=item, items=None, fields=fields)
                self.update_class_attr(key, state.env[key])
                self.note_layers_added(key, value, statement)
            if obj.kind is Kind.MODULE and obj.path is not None and len(target.slice) == 1:
                # `model.classifier[6] = nn.Linear(...)`: Sequential, ModuleList and
                # ModuleDict register what is set under an index or key as a child.
                at = _known_index(target, obj.items)
                if at is not None and obj.items is not None:
                    child = f"{obj.path}.{at % len(obj.items)}"
                else:
                    child = f"{obj.path}.[]"
                self.child_set(child, value, statement, state)
            elif obj.kind is Kind.UNKNOWN:
                # `net.classifier[6] = layer` where what `net.classifier` is is not known
                # (a container of layers registers it; a plain list would not): whether
                # `net` is still wholly frozen is not known either.
                self.attach(obj, target.value, None, value, statement, state)
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
                if key is not None and (key in state.env or _is_own_attribute(key)):
                    state.env[key] = changed  # `x[i] = y` can make x require grad
                    self.update_class_attr(key, changed)  # (`self.buf[i] = y`: for later calls)
            return
        if type(target) is cst.StarredElement:
            self.assign(target.value, value, state, statement)

    def _registered_elsewhere(self, cls: str, expr: cst.BaseExpression) -> bool:
        """Whether a plain container holds only layers the module registers under names of
        their own: `[nn.ModuleList([self.encoder, self.rnn]), nn.ModuleList([self.decoder])]`,
        groups of its layers (fastai's `layer_groups`)."""
        if isinstance(expr, (cst.List, cst.Tuple)):
            return bool(expr.elements) and all(
                self._registered_elsewhere(cls, element.value) for element in expr.elements
            )
        if isinstance(expr, cst.Call):  # `nn.ModuleList([...])`, `nn.Sequential(a, b)`
            return bool(expr.args) and all(
                self._registered_elsewhere(cls, arg.value) for arg in expr.args
            )
        return (
            isinstance(expr, cst.Attribute)
            and isinstance(expr.value, cst.Name)
            and expr.value.value == "self"
            and (cls, expr.attr.value) in self._module_attrs
        )

    def note_module_attribute(self, key: str, value: Value, source: cst.BaseExpression) -> None:
        """`self.w = ...` in a module's method: a tensor meant to train that the module
        does not register, or layers kept in a plain list, when its constructor assigns
        them."""
        owner = self._function.owner if self._function is not None else None
        if owner is None or not owner.is_module or not key.startswith("self.") or "." in key[5:]:
            return
        attr = key[5:]
        building = self.building() is owner
        if building and value.kind in (Kind.SEQUENCE, Kind.MAPPING):
            self._plain_containers[(owner.name, attr)] = source
            self.note_layers_added(key, value, source)
            return
        trains = building and value.is_tensor and value.requires_grad is YES
        found: UnregisteredTensor | None = None
        if trains and value.leaf is NO and value.moved is not None:
            found = UnregisteredTensor(source, owner.name, attr, value.moved)
        elif trains and value.leaf is YES and value.grad_leaf is not None and not value.parameter:
            found = UnregisteredTensor(source, owner.name, attr)
        if found is None:
            self._registered_attrs.add((owner.name, attr))
            if building and value.kind is Kind.MODULE:
                self._module_attrs.add((owner.name, attr))
        elif found not in self.facts.unregistered_tensors:
            self.facts.unregistered_tensors.append(found)

    def field_holder(self, expr: cst.BaseExpression, state: State) -> tuple[str, str] | None:
        """`results["loss"]` of a dict with known keys in a variable: its name and the key."""
        if type(expr) is not cst.Subscript or len(expr.slice) != 1:
            return None
        index = expr.slice[0].slice
        name = dotted(expr.value)
        key = _string_key(index.value) if type(index) is cst.Index else None
        if name is None or key is None or name not in state.env:
            return None
        holder = state.env[name]
        if holder.kind is not Kind.MAPPING or holder.field(key) is None:
            return None
        return name, key

    def alias_of(self, changed: cst.BaseExpression) -> cst.CSTNode | None:
        """Where a tensor written into through a second name got that name (`out = x`
        then `out[...] = ...`): a copy there is the fix. (`out += y` has its own fix on
        its line, `out = out + y`.)"""
        if type(changed) is not cst.Name:
            return None
        return self._aliases.get((id(self._function), changed.value))

    def forget_freezes(self, path: str, state: State) -> None:
        forget_mode(path, state.training)
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
        if self._statement is not None and (
            obj.kind in (Kind.TENSOR, Kind.UNKNOWN)
            and obj.path is None
            and obj.born is None
            and obj.made_by is None
        ):
            # Some tensor's flag: it may be a parameter, frozen or made trainable.
            self.note_freeze(None, wanted, self._statement, state)
        if obj.kind is Kind.TENSOR and obj.leaf is YES:
            if obj.path is not None:
                every = obj.path.endswith(".*")
                owner = obj.path[:-2] if every else obj.path
                if self._statement is not None:
                    self.note_freeze(owner, wanted, self._statement, state)
                state.frozen[owner] = wanted.negate()
                if wanted is NO and self._statement is not None:
                    state.frozen_at[owner] = self._statement
                    self._freeze_sites.add(id(self._statement))
                self.note_freeze_loop(self._statement)
                self.unfreeze_parents(owner, wanted, state)
            key = dotted(obj_expr)
            if key is not None and (key in state.env or _is_field_of_record(key, state)):
                made = self._statement if wanted is YES and obj.path is None else None
                changed = obj.with_(requires_grad=wanted, grad_leaf=made)
                revived = obj.requires_grad is NO and obj.cut is not None and obj.path is None
                if wanted is YES and revived and self._statement is not None:
                    changed = self.revive(changed, self._statement)
                state.env[key] = changed
            if self._frames and key in self._frames[-1].params:
                self._frames[-1].flags[key] = wanted

    def note_freeze_loop(self, statement: cst.CSTNode | None) -> None:
        """`for p in m.parameters(): p.requires_grad = False`: the loop chose what to
        freeze, and is as much the line to change as the freeze itself."""
        if not self._loops or statement is None:
            return
        loop = self._loops[-1]
        if (
            type(loop) is cst.For
            and self.facts.value(loop.iter).kind is Kind.PARAMS
            and len(loop.body.body) == 1
            and loop.body.body[0] is statement
        ):
            self.facts.freeze_loops[statement] = loop

    # -- expressions --------------------------------------------------------------------------

    def eval(self, expr: cst.BaseExpression, state: State) -> Value:
        value = self._eval(expr, state)
        return self.facts.record(expr, value, state.mode)

    def _eval(self, expr: cst.BaseExpression, state: State) -> Value:
        if type(expr) is cst.Name:
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
        if type(expr) is cst.Attribute:
            return self.eval_attribute(expr, state)
        if type(expr) is cst.Call:
            return self.eval_call(expr, state)
        if type(expr) is cst.Ellipsis:
            return OTHER
        if type(expr) is cst.Integer:
            literal = _int_literal(expr)  # a literal's value decides `if idx == 0:` in a call
            return INT if literal is None else INT.with_(low=literal, high=literal)
        if type(expr) in _NUMBER_NODES:
            return FLOAT
        if type(expr) in _STRING_NODES:
            if type(expr) is cst.FormattedString:
                for part in expr.parts:
                    if type(part) is cst.FormattedStringExpression:
                        self.eval(part.expression, state)
            if type(expr) is cst.SimpleString:
                # Plain literals only: reading escapes compiles the string, for every one.
                text = _plain_text(expr.value)
                return OTHER.with_(text=text) if text is not None else OTHER
            return OTHER
        if type(expr) is cst.BinaryOperation:
            left = self.eval(expr.left, state)
            right = self.eval(expr.right, state)
            return self.binary(left, right, expr.operator, expr, state)
        if type(expr) is cst.UnaryOperation:
            operand = self.eval(expr.expression, state)
            if type(expr.operator) is cst.Not:
                return Value(kind=Kind.OTHER, truth=_truth(operand).truth.negate())
            if operand.kind is Kind.NUMBER:
                return operand
            if operand.kind is Kind.TENSOR and type(expr.operator) is cst.BitInvert:
                return self.no_grad_tensor(operand, expr)
            return self.op_result([operand], expr, state, "neg")
        if type(expr) is cst.BooleanOperation:
            left = self.eval(expr.left, state)
            right = self.eval(expr.right, state)
            return left.join(right)
        if type(expr) is cst.Comparison:
            left = self.eval(expr.left, state)
            operands = [self.eval(target.comparator, state) for target in expr.comparisons]
            if len(operands) == 1 and left.kind is Kind.NUMBER:
                truth = _compare_bounds(left, expr.comparisons[0])
                if truth is not UNKNOWN:
                    return Value(kind=Kind.OTHER, truth=truth)
            if len(operands) == 1 and left.text is not None and operands[0].text is not None:
                # `activation == "lrelu"` with the string known: a configuration choice.
                operator = expr.comparisons[0].operator
                if isinstance(operator, (cst.Equal, cst.NotEqual)):
                    same = YES if left.text == operands[0].text else NO
                    truth = same.negate() if type(operator) is cst.NotEqual else same
                    return Value(kind=Kind.OTHER, truth=truth)
            if len(operands) == 1 and isinstance(expr.comparisons[0].operator, (cst.Is, cst.IsNot)):
                truth = _is_none(left) if operands[0].layer == "none" else UNKNOWN
                if type(expr.comparisons[0].operator) is cst.IsNot:
                    truth = truth.negate()
                return Value(kind=Kind.OTHER, truth=truth)
            if (
                any(v.kind is Kind.TENSOR for v in operands)
                or self.facts.value(expr.left).is_tensor
            ):
                return self.no_grad_tensor(UNKNOWN_VALUE, expr)
            return OTHER
        if type(expr) is cst.IfExp:
            test = _truth(self.eval(expr.test, state))
            if test.truth is YES:
                return self.eval(expr.body, state)
            if test.truth is NO:
                return self.eval(expr.orelse, state)
            return self.eval(expr.body, state).join(self.eval(expr.orelse, state))
        if type(expr) in _COLLECTION_NODES:
            expr = cast(cst.List | cst.Tuple | cst.Set, expr)
            items = []
            for element in expr.elements:
                value = self.eval(element.value, state)
                if type(element) is cst.StarredElement:
                    value = value.item if value.item is not None else UNKNOWN_VALUE
                items.append(value)
            starred = any(type(e) is cst.StarredElement for e in expr.elements)
            return sequence(items, fixed=not starred)
        if type(expr) is cst.Dict:
            values = []
            fields: list[tuple[str, Value]] | None = []
            for entry in expr.elements:
                if type(entry) is cst.DictElement:
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
        if type(expr) in _COMPREHENSION_NODES:
            expr = cast(cst.ListComp | cst.SetComp | cst.GeneratorExp, expr)
            iterable = self.eval(expr.for_in.iter, state)
            inner = self.bind_comprehension(expr.for_in, state, iterable)
            self._comprehensions += 1  # its element runs many times, on the same values
            made: set[int] = set()  # the graph sites the element makes, run after run
            self._loop_sites.append(made)
            item = self.eval(expr.elt, inner)
            self._comprehensions -= 1
            _keep_effects(state, inner)
            for one in self.each_item(expr.for_in, iterable):
                # A short list of known elements: each element, not only their join. (What
                # the element made for the one before is another tensor than this one's.)
                if made:
                    self._generation += 1
                    state.age_in_place(made, self._generation)
                each = copy.copy(state)
                each.env = dict(state.env)
                self.assign(expr.for_in.target, one, each, expr.for_in)
                item = item.join(self.eval(expr.elt, each))
                _keep_effects(state, each)
            self._loop_sites.pop()
            for outer in self._loop_sites:
                outer |= made
            count = _literal_range(expr.for_in)
            if count is not None and type(expr) is cst.ListComp and item.kind is Kind.MODULE:
                # `[Critic() for _ in range(4)]`: four of them, so `*critics` fills four
                # parameters.
                return sequence([item] * count, fixed=True)
            if _keeps_trainable(expr.for_in, expr.elt) and item.requires_grad is NO:
                # Every candidate is frozen: the list is empty, made so by the freeze.
                frozen_at = (
                    self.frozen_where(item.path.removesuffix(".*"), state) if item.path else None
                )
                return Value(kind=Kind.SEQUENCE, items=(), cut=frozen_at)
            if _keeps_trainable(expr.for_in, expr.elt) and iterable.roots:
                return Value(
                    kind=Kind.SEQUENCE, item=item, roots=iterable.roots, trainable_only=True
                )
            return Value(kind=Kind.SEQUENCE, item=item)
        if type(expr) is cst.DictComp:
            inner = self.bind_comprehension(expr.for_in, state)
            self.eval(expr.key, inner)
            self.eval(expr.value, inner)
            return OTHER
        if type(expr) is cst.Subscript:
            obj = self.eval(expr.value, state)
            self.eval_slices(expr, state)
            if obj.kind is Kind.MAPPING and obj.fields is not None and len(expr.slice) == 1:
                index = expr.slice[0].slice
                key = _string_key(index.value) if type(index) is cst.Index else None
                found = obj.field(key) if key is not None else None
                if found is not None:
                    return found
            if obj.layer == "axes":
                return obj  # `axes[0, 1]` of a grid of subplots
            if obj.kind is Kind.SEQUENCE and obj.items is not None and len(expr.slice) == 1:
                known = _known_part(obj.items, expr.slice[0].slice)
                if known is not None:
                    return known  # `outputs[0]`, `results[:3]` of a tuple of known length
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
                at = _known_index(expr, obj.items)
                if at is not None and obj.items is not None and obj.path:
                    # `model[0]` of known layers: that layer, by its position.
                    layer = obj.items[at].with_(path=f"{obj.path}.{at % len(obj.items)}")
                    return self.with_frozen(layer, state)
                path = f"{obj.path}.[]" if obj.path else None
                if obj.item is not None and obj.item.kind is Kind.MODULE:
                    return self.with_frozen(obj.item.with_(path=path), state)
                if obj.item is not None and obj.item.kind is Kind.TENSOR:  # ParameterList
                    param = obj.item.with_(path=path, requires_grad=obj.frozen.negate())
                    return self.with_frozen(param, state)
                return obj.with_(path=path, item=None, layer=None)
            return UNKNOWN_VALUE
        if type(expr) is cst.NamedExpr:
            value = self.eval(expr.value, state)
            self.assign(expr.target, value, state, expr)
            return value
        if type(expr) is cst.Yield:
            if isinstance(expr.value, cst.BaseExpression):
                yielded = self.eval(expr.value, state)
                self.propagate(yielded)  # the consumer may be anywhere
                self._yield_values.append(yielded)
            elif type(expr.value) is cst.From:  # `yield from xs`
                iterable = self.eval(expr.value.item, state)
                self._yield_values.append(self.iterate(iterable, state, expr.value.item))
            return UNKNOWN_VALUE
        if type(expr) is cst.Await:
            self.eval(expr.expression, state)
            return UNKNOWN_VALUE
        if type(expr) is cst.Lambda:
            # Each evaluation closes over the names as they are then (`lambda t: amp * t`
            # made again with another `amp`): a key of its own, so calls handed one lambda
            # are not taken for calls handed another.
            lam = self._lambda_keys.get((id(expr), id(state.env)))
            if lam is None:
                lam = self._lambda_keys[(id(expr), id(state.env))] = -len(self._lambda_keys) - 1
            self._lambdas[lam] = (expr, state.env)
            return Value(kind=Kind.OTHER, layer="function", origin=lam)
        for child in child_nodes(expr):
            if isinstance(child, cst.BaseExpression):
                self.eval(child, state)
        return UNKNOWN_VALUE

    def eval_slices(self, expr: cst.Subscript, state: State) -> None:
        for element in expr.slice:
            index = element.slice
            if type(index) is cst.Index:
                self.eval(index.value, state)
            elif type(index) is cst.Slice:
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

    def eval_attribute(self, expr: cst.Attribute, state: State) -> Value:
        value = self.attribute_value(expr, state)
        function = self._function
        if (
            function is not None
            and function.owner is not None
            and function.name != "__init__"
            and state.mode == ENABLED
            and type(expr.value) is cst.Name
            and expr.value.value == _self_name(function)
            and value.is_tensor
            and value.leaf is YES
            and value.requires_grad is YES
        ):
            # `self.weight` read where autograd records: where a parameter may enter a graph.
            key = (function.owner.name, expr.attr.value)
            self.facts.param_reads.setdefault(key, set()).add(expr)
        return value

    def attribute_value(self, expr: cst.Attribute, state: State) -> Value:
        key = dotted(expr)
        self.facts.attributes_read.add(expr.attr.value)
        obj = self.eval(expr.value, state)
        if expr.attr.value == "grad" and obj.is_tensor:
            self.note_grad_read(expr, obj, state)
        elif expr.attr.value == "grad":
            self.facts.grad_read_unknown = True
        if expr.attr.value == "data" and obj.is_tensor and self.in_forward():
            self.facts.data_reads.add(expr.value)
        if key is not None and key in state.env:
            return self.with_frozen(state.env[key], state)
        if key is not None and self.is_global(key, state) and key in self.module_env:
            return self.module_env[key]  # `policy.saved_log_probs` filled by another function
        if obj.kind is Kind.UNKNOWN:
            ref = self.class_ref(expr)
            if ref is not None:
                return ref
        return self.attribute_of(obj, expr, state)

    def note_grad_read(self, expr: cst.Attribute, tensor: Value, state: State) -> None:
        if tensor.moved is not None and self.leaf_held(tensor.moved, state):
            # The leaf is still there under a name: its `.grad` is the one to read.
            tensor = tensor.with_(moved=None)
        runs = self.facts.grad_reads.setdefault(expr, [])
        if tensor not in runs and len(runs) < MAX_OBSERVED:
            runs.append(tensor)

    def class_ref(self, expr: cst.BaseExpression) -> Value | None:
        """`torch.optim.Adam` or `nn.Linear` used as a value (`opt_class=torch.optim.Adam`),
        to be called later."""
        qualname = self.imports.resolve(expr)
        if qualname is None:
            return None
        dtype = api.dtype_named(qualname)
        return Value(kind=Kind.OTHER, dtype=dtype) if dtype else self.ref_of(qualname)

    # -- calls -----------------------------------------------------------------------------

    # -- tensor results -------------------------------------------------------------------------

    # -- backward ---------------------------------------------------------------------------------


def _keep_effects(state: State, inner: State) -> None:
    """What a comprehension's element did to gradients and modes (`[fwd_bwd(b) for b in
    batches]` runs backwards): its own names stay inside it, its effects do not."""
    state.grads = inner.grads
    state.training = inner.training
