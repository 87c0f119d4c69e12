"""Tensors as nodes of autograd graphs: what each op records and saves, what an
in-place change or an optimizer step does to saved tensors, and what a backward frees and
needs. The interpreter's part that PyTorch's autograd engine plays.
"""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from gradlint.analysis import torch_api as api
from gradlint.analysis.facts import (
    ENABLED,
    ClipMisplaced,
    FreedGraph,
    GrowingGraph,
    KeptGraph,
    SavedChanged,
    StepMisfire,
    Trained,
    TrainedInEval,
)
from gradlint.analysis.gradients import UNKNOWN_GRADS, Grads, holds_part, owned_by
from gradlint.analysis.interpreter_base import InterpreterBase
from gradlint.analysis.names import dotted
from gradlint.analysis.state import State
from gradlint.analysis.syntax import (
    _argument_expressions,
    _bool_literal,
    _param_names,
)
from gradlint.analysis.value_ops import (
    _INTEGER_OPERATORS,
    _NO_GRAD_OPERATORS,
    _OPERATORS,
    _grad_of,
    _inference_in,
    _owns,
    _tensor_args,
)
from gradlint.analysis.values import (
    FLOAT,
    NO,
    NUMBER,
    UNKNOWN,
    UNKNOWN_VALUE,
    YES,
    Kind,
    Node,
    Tri,
    Value,
    sequence,
)


class GraphTracking(InterpreterBase):
    def recorded(self, grad: Tri, potential: Tri, state: State) -> tuple[Tri, Tri]:
        """What autograd records for an op whose inputs require `grad`, in this grad mode:
        (requires_grad of the result, and the same had grad mode been enabled)."""
        if "E" not in state.mode:
            return NO, NO
        if state.mode == ENABLED:
            return grad, potential
        return (NO if grad is NO else UNKNOWN), potential

    def new_node(self, node: cst.CSTNode, site: int | None = None) -> Node:
        if site is None:
            # Inside a Sequential, each layer's output is its own tensor, made at the call.
            site = (
                self.site_key(id(node))
                if self._layer is None
                else self.site_key(id(node), self._layer)
            )
        self._site_nodes[site] = node
        self._site_order.setdefault(site, len(self._site_order))
        self._site_tick[site] = self.tick_clock()
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
            if source.requires_grad is YES and source.leaf is NO:
                # A computation's graph surely ended here (a weight's `.data` copied to make
                # a new leaf is no graph cut).
                self._sure_cuts.add(id(at))
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
        the grad mode is unknown, the graph it builds when training. Made where autograd
        surely records nothing (no_grad, inference_mode), it has no graph at all: no
        `grad_fn`, nothing that links it to its inputs' graphs."""
        graph: frozenset[Node] = frozenset()
        if "E" in state.mode:
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
        if op == "index" and value.head is not None:
            self._index_sites.add(value.head[0])
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
        # Reshaping, indexing and copying keep the dtype; so does negation.
        keeps_dtype = op in api.SAME_DTYPE_OPS
        integer = inputs[0].integer if len(inputs) == 1 and keeps_dtype else UNKNOWN
        if len(inputs) == 1 and op in api.INTEGER_CASTS:
            integer = YES
        if integer is not UNKNOWN:
            value = value.with_(integer=integer)
        value = self.with_gradient_origin(value, inputs, op)
        value = self.with_target_origin(value, args, op)
        if op in api.VIEW_OPS and inputs[0].inference is YES:
            # A view of an inference tensor is one too, wherever it is taken.
            value = value.with_(inference=YES, made_in=inputs[0].made_in)
        moved = self.copied_leaf(args, value, node)
        if op in api.VIEW_OPS and inputs[0].node is not None:
            # A view shares its base's storage and version counter.
            base = inputs[0]
            value = value.with_(
                node=base.node,
                leaf_view=base.leaf_view or (base.leaf is YES and base.requires_grad is YES),
            )
        return value.with_(moved=moved) if moved is not None else value

    def copied_leaf(self, args: list[Value], result: Value, node: cst.CSTNode) -> object:
        """Where `result`, a non-leaf, was copied from a leaf the code made require grad:
        an op on that tensor alone (and numbers) copies, casts, scales or reshapes it."""
        if result.requires_grad is not YES or result.leaf is not NO:
            return None
        tensors = [a for a in args if a.kind is Kind.TENSOR]
        if len(tensors) != 1 or any(a.kind not in (Kind.TENSOR, Kind.NUMBER) for a in args):
            return None
        source = tensors[0]
        if source.moved is not None:
            return source.moved  # `.double().cuda()`: the first copy lost the leaf
        if source.grad_leaf is None or source.leaf is NO or source.requires_grad is not YES:
            return None
        if source.node is not None:
            self._moved_from[id(node)] = source.node[0]
        return node

    def leaf_held(self, moved: object, state: State) -> bool:
        """Whether a name (or a list or dict under a name) still holds the leaf that the op
        `moved` copied: then its `.grad` is there to read."""
        site = self._moved_from.get(id(moved))
        if site is None:
            return True
        for env in (state.env, self.module_env):
            for value in env.values():
                parts = [value, value.item, *(value.items or ())]
                parts.extend(v for _, v in value.fields or ())
                for part in parts:
                    if (
                        part is not None
                        and part.is_tensor
                        and part.leaf is not NO
                        and part.node is not None
                        and part.node[0] == site
                    ):
                        return True
        return False

    def with_gradient_origin(self, value: Value, inputs: list[Value], op: str) -> Value:
        """Carry where a gradient without a graph came from: through ops that keep it
        without a graph, and, once its size is taken (a gradient penalty), into everything
        made from that."""
        grad_of = next((v.grad_of for v in inputs if v.grad_of is not None), None)
        penalized = next((v.penalized for v in inputs if v.penalized is not None), None)
        if grad_of is not None and penalized is None and op in api.MAGNITUDE_OPS:
            penalized = grad_of
        if grad_of is not None and value.requires_grad is NO:
            value = value.with_(grad_of=grad_of)
        if penalized is not None:
            value = value.with_(penalized=penalized)
        revived = next((v.revived for v in inputs if v.revived is not None), None)
        if revived is not None:
            value = value.with_(revived=revived)
        dropped = next((v.dropped for v in inputs if v.dropped is not None), None)
        if dropped is not None and op in api.SUMMING_OPS:
            value = value.with_(dropped=dropped)
        return self.with_policy_weight(value, inputs, op)

    def with_target_origin(self, value: Value, args: list[Value], op: str) -> Value:
        """Carry a bootstrapped target (data plus a network's output with its graph) and a
        loss made from a leaky one through ops that keep a graph."""
        if value.requires_grad is not YES:
            return value
        inputs = _tensor_args(args)
        bootstrap = next((v.bootstrap for v in inputs if v.bootstrap is not None), None)
        if op == "add" and len(args) == 2 and not self.in_forward():
            # The data: a reward, a number, or what a replay buffer returned.
            data = [v for v in args if v.requires_grad is not YES and not v.graph]
            output = [v for v in args if v.requires_grad is YES and self.made_by_model(v)]
            if data and output:
                bootstrap = value.made_by or value.head
        leaky = next((v.leaky_target for v in inputs if v.leaky_target is not None), None)
        if bootstrap is not None:
            value = value.with_(bootstrap=bootstrap)
        return value.with_(leaky_target=leaky) if leaky is not None else value

    def models_of(self, value: Value) -> frozenset[str]:
        """The models whose calls, by the code that uses them, made part of the tensor's
        graph (not the layers inside them, whose names are their own class's)."""
        found = (self._model_calls.get(node[0]) for node in value.graph)
        return frozenset(path for path in found if path is not None)

    def with_policy_weight(self, value: Value, inputs: list[Value], op: str) -> Value:
        """Carry log-probabilities through ops; a log-probability times a weight that has
        a graph of its own (a critic's value in an advantage) makes a term whose backward
        also trains what made the weight."""
        log_prob = next((v.log_prob_of for v in inputs if v.log_prob_of is not None), None)
        weighted = next((v.weighted for v in inputs if v.weighted is not None), None)
        if log_prob is not None and op == "mul" and weighted is None:
            weight = next(
                (
                    v
                    for v in inputs
                    if v.log_prob_of is None and v.requires_grad is YES and self.made_by_model(v)
                ),
                None,
            )
            if weight is not None:
                weighted = next(iter(weight.kept_at), None) or weight.made_by or weight.head
        if log_prob is not None:
            value = value.with_(log_prob_of=log_prob)
        if weighted is not None:
            value = value.with_(weighted=weighted)
        return value

    def criterion_result(self, value: Value, inputs: list[Value]) -> Value:
        """A loss function's result: with no graph because its prediction was cut from one
        (`bce(D(fake).detach(), ones)`), a term that trains nothing."""
        for target in inputs[1:2]:
            # `mse(q, (reward + gamma * target_net(s2)).detach())`: a target recorded in vain.
            for call in target.wasted:
                if type(call) is cst.Call:
                    self.facts.detached_targets[call] = None
        if value.requires_grad is YES and len(inputs) >= 2:
            # `mse(q_net(s), reward + gamma * q_net(s2))`, either way round: the target
            # trains the network too.
            for target, predicted in ((inputs[1], inputs[0]), (inputs[0], inputs[1])):
                if target.bootstrap is None or predicted.bootstrap is not None:
                    continue
                made = self.models_of(predicted)
                if any(holds_part(made, path) for path in self.models_of(target)):
                    return value.with_(leaky_target=target.bootstrap)
        if value.requires_grad is not NO:
            return value
        cut = next((v.cut for v in inputs if id(v.cut) in self._sure_cuts), None)
        return value.with_(dropped=cut) if cut is not None else value

    def made_by_model(self, value: Value) -> bool:
        """Whether a module's call made part of the tensor's graph (a critic's value), not
        only raw tensors (an entropy coefficient `log_alpha.exp()`)."""
        return any(node[0] in self._site_module_value for node in value.graph)

    def revive(self, value: Value, at: cst.CSTNode) -> Value:
        """A value cut from its graph, made to require grad again at `at`: a leaf with no
        path back to any parameter."""
        if id(value.cut) not in self._sure_cuts:
            return value.with_(requires_grad=YES, leaf=YES)
        self.facts.revivals[at] = value.cut
        return value.with_(requires_grad=YES, leaf=YES, revived=at)

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
            cut = left.cut if left.cut is not None else right.cut
            if op == "div" or NO in (left.integer, right.integer):
                return FLOAT.with_(cut=cut) if cut is not None else FLOAT
            both = left.integer if left.integer is right.integer else UNKNOWN
            number = NUMBER.with_(integer=both) if op in _INTEGER_OPERATORS else NUMBER
            return number.with_(cut=cut) if cut is not None else number
        if {left.kind, right.kind} <= {Kind.ARRAY, Kind.NUMBER}:
            # numpy arithmetic: still values taken out of a graph, if they were.
            cut = left.cut if left.cut is not None else right.cut
            return Value(kind=Kind.ARRAY, requires_grad=NO, cut=cut)
        if left.kind is Kind.SEQUENCE and right.kind is Kind.SEQUENCE:
            joined = sequence([v for v in (left.item, right.item) if v is not None])
            return joined.with_(roots=left.roots | right.roots)
        return UNKNOWN_VALUE

    def note_running_total(
        self,
        node: cst.CSTNode,
        name: cst.BaseExpression,
        before: Value,
        added: Value,
        result: Value,
        state: State,
    ) -> None:
        """A local total that adds a graph tensor on each pass of a loop and still holds
        what this same addition made on an earlier pass keeps every pass's graph."""
        if (
            type(name) is cst.Name
            and name.value in state.env
            and self.in_loop()
            and not self.in_forward()
            and added.is_tensor
            and added.requires_grad is YES
            and result.head is not None
            and self.from_earlier_pass(before.graph, result.head[0])
            and self.saved_in_loop(added.graph)
        ):
            freed = self.freed_before(before.graph, state)
            self.facts.kept_graphs.setdefault(node, KeptGraph(node, result.head[0], freed))

    def note_sum_assigned(
        self, node: cst.Assign, name: cst.BaseExpression, value: Value, state: State
    ) -> None:
        """`total = total + loss`: a running total, as with `+=`."""
        expr = node.value
        if type(expr) is not cst.BinaryOperation or type(expr.operator) is not cst.Add:
            return
        if type(name) is not cst.Name or name.value not in state.env:
            return
        sides = [expr.left, expr.right]
        others = [
            side for side in sides if not (type(side) is cst.Name and side.value == name.value)
        ]
        if len(others) != 1:
            return
        added = self.facts.value(others[0])
        self.note_running_total(node, name, state.env[name.value], added, value, state)

    def in_forward(self) -> bool:
        """Whether the running code is part of a module's forward pass: what it keeps there
        is kept by the graph of the forward's output anyway, for that output's backward."""
        return any(
            info.name == "forward" and info.owner is not None and info.owner.is_module
            for info in self._active
        )

    def saved_in_loop(self, graph: frozenset[Node]) -> bool:
        """Whether `graph` holds an op run in the loops of the running function that saved
        tensors for backward (a forward's activations): what each pass adds to a total or a
        list then holds a graph of its own. Selecting from a tensor made before the loops
        (`for pred in batch: kept.append(pred[pred[:, 4] > t])`) saves at most the index:
        every pass shares the one graph that was there anyway."""
        own = self._frames[-1].loops if self._frames else 0
        if own >= len(self._loop_runs):
            return False
        started = self._loop_runs[own].started
        return any(
            node[0] in self._saving_sites
            and node[0] not in self._index_sites
            and self._site_tick.get(node[0], 0) > started
            for node in graph
        )

    def freed_before(self, graph: frozenset[Node], state: State) -> bool:
        """Whether a backward already freed part of what an earlier pass left in `graph`:
        nothing can back-propagate that again, wherever it goes."""
        return any(
            node[1] != 0 and node in state.freed and self.saves_tensors(node) for node in graph
        )

    def keep_in_container(
        self, value: Value, node: cst.CSTNode, holder: Value, key: str | None, state: State
    ) -> Value:
        """`value` put into a container (by `node`: an append, an item assignment): in the
        container it carries a mark of `node`, so that a backward through what is taken out
        of the container is seen as one through what `node` kept. A container held by a
        local name that still holds what `node` put there on an earlier pass of a loop keeps
        every pass's graph."""
        if not _holds_graph_tensor(value):
            return value
        # A container on an object, a global, or one the caller handed in: other code
        # (another method, the caller) sees what goes into it.
        local = (
            key is not None
            and "." not in key
            and key in state.env
            and not (self._frames and key in self._frames[-1].params)
        )
        if not local:
            self.propagate(value)  # kept on an object or a global: other code may use it
            return value
        site = self.site_key(id(node))
        if (
            self.in_loop()
            and not self.in_forward()
            and holder.item is not None
            and self.from_earlier_pass(_all_nodes(holder.item), site)
            and self.saved_in_loop(_all_nodes(value))
        ):
            freed = self.freed_before(_all_nodes(holder.item), state)
            self.facts.kept_graphs.setdefault(node, KeptGraph(node, site, freed))
        return _marked(value, self.new_node(node))

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
        if target.layer == "data" and target.node is not None:
            self.hide_change(target.node, node, state)
            return target
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

    def backward(
        self,
        loss: Value,
        loss_expr: cst.BaseExpression,
        node: cst.Call,
        state: State,
        kwargs: dict[str, cst.BaseExpression],
    ) -> None:
        self.propagate(loss, escapes=False)
        if loss.kind is not Kind.TENSOR and loss.kind is not Kind.UNKNOWN:
            return
        self.note_growing_graph(loss, node, kwargs)
        self.note_retained(loss, node, kwargs)
        path = tuple(call for call in self._call_path if call is not None)
        self.facts.backward_paths.setdefault(node, set()).add(path)
        self.facts.backward_conditions.setdefault(node, set()).update(self._conditions)
        shared = self.in_order(n for n in loss.graph if n in state.freed and self.saves_tensors(n))
        self.trained()
        if not self.returns_grads(node):  # (`autograd.grad` hands gradients back, in `.grad` none)
            self.note_trained(loss, node)
        now = self.tick_clock()
        accumulates = not self.returns_grads(node)
        node = self.backward_site(node, loss_expr)
        self._backward_ticks[id(node)] = now
        if shared:
            first = state.freed[shared[0]]
            since = self._backward_ticks.get(id(first), now)
            stepped = any(since < tick < now for tick, _ in self._steps)
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
        if loss.penalized is not None:
            self.facts.penalties_without_graph.append((loss.penalized, node))
        if isinstance(loss.revived, cst.CSTNode):
            self.facts.revived_backwards.append((loss.revived, node))
        if isinstance(loss.dropped, cst.CSTNode) and loss.requires_grad is YES:
            self.facts.dead_terms.append((loss.dropped, node))
        if isinstance(loss.weighted, cst.CSTNode):
            self.facts.policy_weights.append((loss.weighted, node))
        if isinstance(loss.leaky_target, cst.CSTNode):
            self.facts.leaky_targets.append((loss.leaky_target, node))
        if accumulates:
            state.grads = {key: grads.backward(node) for key, grads in state.grads.items()}
            self.reach_grads(loss, node, state)
            self.note_trained_in_eval(loss, node)
        retain = kwargs.get("retain_graph") or kwargs.get("create_graph")
        if retain is None or _bool_literal(retain) is NO:
            for graph_node in loss.graph:
                state.freed[graph_node] = node
        key = dotted(loss_expr)
        if key is not None and key in state.env and loss.requires_grad is UNKNOWN:
            # backward() succeeded, so the loss is a tensor that required grad.
            state.env[key] = loss.with_(kind=Kind.TENSOR, requires_grad=YES, leaf=NO)

    def note_trained_in_eval(self, loss: Value, backward: cst.CSTNode) -> None:
        """A backward through a model run in eval mode that an earlier pass of a running
        loop left it in: training resumed in eval mode."""
        for graph_node in loss.graph:
            left = self._eval_left.get(graph_node[0])
            if left is not None:
                report, left_by, forward, path = left
                found = TrainedInEval(report, left_by, forward, backward, path)
                self.facts.trained_in_eval.setdefault(report, found)

    def returns_grads(self, node: cst.Call) -> bool:
        """`torch.autograd.grad(...)` hands the gradients back instead of adding them to
        `.grad`."""
        return self.imports.resolve(node.func) == "torch.autograd.grad"

    def note_retained(
        self, loss: Value, node: cst.Call, kwargs: dict[str, cst.BaseExpression]
    ) -> None:
        """A backward in a loop that keeps its graph (`retain_graph=True`): kept for a later
        backward through it. Which retained graphs this backward goes through."""
        for earlier, kept in self.facts.retained_graphs.items():
            if kept & loss.graph:  # an earlier backward's, or this one's on an earlier pass
                self.facts.retained_used.add(earlier)
        retain = kwargs.get("retain_graph")
        if retain is None or _bool_literal(retain) is not YES or "create_graph" in kwargs:
            return
        if self._comprehensions:
            return  # `[grad(out[k], x, retain_graph=True) for k in ...]`: each reuses it
        if self._loops and loss.graph:
            kept = self.facts.retained_graphs.get(node, frozenset())
            self.facts.retained_graphs[node] = kept | loss.graph

    def age_retained(self, sites: set[int], generation: int) -> None:
        """A loop's next pass: the graphs retained on this one are an earlier pass's."""
        for backward, kept in self.facts.retained_graphs.items():
            self.facts.retained_graphs[backward] = frozenset(
                (n[0], generation) if n[1] == 0 and n[0] in sites else n for n in kept
            )

    def note_growing_graph(
        self, loss: Value, node: cst.Call, kwargs: dict[str, cst.BaseExpression]
    ) -> None:
        """A backward in a loop that keeps its graph while that graph reaches back into
        earlier passes: each pass adds to one graph that is never let go. Unrolled
        differentiation (`create_graph=True`) grows its graph on purpose."""
        retain = kwargs.get("retain_graph")
        if retain is None or _bool_literal(retain) is not YES or "create_graph" in kwargs:
            return
        if self.from_earlier_pass(loss.graph):
            keyword = next(
                (arg for arg in node.args if arg.keyword and arg.keyword.value == "retain_graph"),
                None,
            )
            at = keyword if keyword is not None else node
            self.facts.growing_graphs.setdefault(at, GrowingGraph(at, node))

    def note_trained(self, loss: Value, backward: cst.Call) -> None:
        """The trainable modules whose outputs the loss was computed from: their
        parameters get gradients from this backward."""
        for graph_node in loss.graph:
            module = self._site_module_value.get(graph_node[0])
            call = self._site_module_call.get(graph_node[0])
            if module is None or module.path is None or call is None:
                continue
            known = module.layer is not None or module.cls is not None
            family = frozenset({module.path}) | module.wraps
            looped = bool(self._loops)
            self.facts.trained.append(Trained(backward, call, module.path, family, known, looped))

    def backward_site(self, node: cst.Call, loss_expr: cst.BaseExpression) -> cst.Call:
        """`loss.backward()` inside a wrapper that was handed the loss (`def backward(self,
        loss): loss.backward()`): the wrapper's call is the user's backward."""
        site = node
        expr: cst.BaseExpression | None = loss_expr
        for info, call in reversed(list(zip(self._active, self._call_path, strict=False))):
            if type(expr) is not cst.Name or call is None:
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
            for node in self.in_order(common):
                consumers = self._consumers.get(node, set())
                if any(c in graph and c not in common for c in consumers):
                    made = self.computed_by(node, common)
                    # The statement that last named it (`feats, _ = encoder(x)`): where it
                    # was made for this use, even when the op ran for other calls too.
                    return self._bound_at.get(made[0]) or self._site_nodes.get(made[0])
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
            module = self._site_module_value.get(node[0])
            maker = module.path if module is not None else None
            if maker is not None and any(
                tick > first and _owns(roots, maker) for tick, roots in self._steps
            ):
                entry = self.stale_entry(node, graph, first)
                if entry is not None:
                    return entry
                entry = self.second_loss_entry(graph, state)
                if entry is not None:
                    return entry
        # An op that took the shared part in for the first loss only: its site is in no
        # part of this graph (a node of the same site made on an earlier pass of a loop is
        # the same op, not another use).
        in_graph = {node[0] for node in graph}
        for node in shared:
            sites = {consumer[0] for consumer in self._consumers.get(node, ())}
            for freed in state.freed:
                if freed[0] in sites and freed[0] not in in_graph:
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
        consumer, self._stale = min(
            found, key=lambda pair: (self._order(pair[0]), self._age_order(pair[0]), pair[1])
        )
        return self._site_nodes.get(consumer[0])

    def _order(self, node: Node) -> int:
        return self._site_order.get(node[0], 0)

    @staticmethod
    def _age_order(node: Node) -> tuple[bool, int]:
        """This pass's nodes first, then the latest pass's."""
        return (node[1] != 0, -node[1])

    def in_order(self, nodes: Iterable[Node]) -> list[Node]:
        """Graph nodes, this pass's first, each pass's in the order their sites were
        first met: where the first node found decides what is reported, the same one on
        every run."""
        return sorted(nodes, key=lambda node: (self._age_order(node), self._order(node)))

    def model_call_of(self, node: cst.CSTNode) -> cst.CSTNode:
        """`node`, or, inside a model's forward, the call of the model that ran it."""
        for info, call in zip(self._active, self._call_path[-len(self._active) :], strict=False):
            owner = info.owner
            if info.name == "forward" and owner is not None and owner.is_module and call:
                return call
        return node

    def step(self, optimizer: Value, node: cst.Call, state: State, grads: bool = True) -> None:
        """optimizer.step() changes in place the weights of every module it owns (and, with
        `grads`, applies what `.grad` holds)."""
        if grads:
            self.step_grads(optimizer, node, state)
        self.optimizer_stepped(optimizer, node)
        tick = self.tick_clock()
        self._step_ticks[id(node)] = tick
        self._made_during[id(node)] = tuple(self._call_path)
        self._steps.append((tick, optimizer.roots))
        for key, path in self._weights.items():
            if _owns(optimizer.roots, path):
                weights = (key, 0)
                version = state.versions.get(weights, 0)
                state.versions[weights] = version + 1
                changes = state.changed_at.get(weights, ())
                state.changed_at[weights] = (*changes, (version + 1, node, node))

    # -- the training-loop model: what .grad holds (gradients.py) ------------------------

    def new_optimizer(self, node: cst.Call, roots: frozenset[str], state: State) -> Value:
        self._optimizer_roots[id(node)] = (roots, self.aliased(roots, state))
        state.grads[id(node)] = Grads()
        return Value(kind=Kind.OPTIMIZER, origin=id(node), roots=roots)

    def step_grads(self, optimizer: Value, node: cst.CSTNode, state: State) -> None:
        if optimizer.origin is None:  # one of several: which is not known
            self.forget_grads(state)
            return
        grads = state.grads.get(optimizer.origin)
        if grads is None:
            return
        self.facts.step_guards.setdefault(optimizer.origin, set()).add(self.counted_guard())
        if grads.piles_up(node):
            self.facts.piled_steps.append(StepMisfire(node, grads.piled_by, grads.cleared_at))
        elif grads.emptied:
            recent = grads.wiped_recent is YES
            self.facts.empty_steps.append(StepMisfire(node, None, grads.cleared_at, recent))
        state.grads[optimizer.origin] = grads.step(node)
        # The backwards before this step were this optimizer's (a discriminator's loss that
        # also reaches the generator): not gradients another optimizer is to sum, nor to
        # apply.
        for key, other in state.grads.items():
            if key != optimizer.origin:
                state.grads[key] = other.other_stepped()

    def reach_grads(self, loss: Value, node: cst.CSTNode, state: State) -> None:
        """The optimizers whose parameters this backward surely fills: those holding a
        module whose call made part of the loss's graph."""
        paths = set()
        for graph_node in loss.graph:
            module = self._site_module_value.get(graph_node[0])
            if module is not None and module.path is not None:
                paths.add(module.path)
        # A backward on some passes only is for a step like it: not one to accumulate for.
        loops = self.unguarded_loops()
        for key, grads in state.grads.items():
            names = self._optimizer_roots.get(key, ())
            if any(holds_part(roots, path) for roots in names for path in paths):
                state.grads[key] = grads.reached(node, loops)

    def aliased(self, roots: frozenset[str], state: State) -> frozenset[str]:
        """The modules of `roots` as named through the attributes that hold them here
        (`self.model = model`, then `model.parameters()`): the names the class's other
        methods reach them by."""
        names = set()
        for root in roots:
            found = root
            for key, value in state.env.items():
                held = value.path
                if "." not in key or value.kind is not Kind.MODULE or held is None or key == held:
                    continue
                if root == held or root.startswith(held + "."):
                    found = key + root[len(held) :]
                    break
            names.add(found)
        return frozenset(names)

    def optimizer_owned(self, optimizer: int, path: str) -> Tri:
        """Whether the module at `path` holds every parameter of the optimizer, by any of
        the optimizer's names for its modules."""
        found = [owned_by(roots, path) for roots in self._optimizer_roots.get(optimizer, ())]
        if YES in found:
            return YES
        return NO if found and all(f is NO for f in found) else UNKNOWN

    def restarts(self, optimizer: int) -> bool:
        """Whether the innermost running loop sets afresh, on each pass, a name that counts
        the optimizer's accumulated backwards: a clear there starts a new accumulation
        (`zero_grad(); count = 0` per epoch), it drops none."""
        counters = frozenset().union(*self.facts.step_guards.get(optimizer, ()))
        return bool(counters) and bool(counters & self.names_reset(self._loops[-1]))

    def clear_grads(self, holder: Value, node: cst.CSTNode, state: State) -> None:
        """`optimizer.zero_grad()`, or `module.zero_grad()`: clears the optimizers whose
        parameters that module holds; of the others, those it may share some with are
        unknown now."""
        each = {v.origin for v in holder.items or ()} if holder.kind is Kind.OPTIMIZER else set()
        for key, grads in state.grads.items():
            if holder.kind is Kind.OPTIMIZER and holder.origin is not None:
                owned = YES if key == holder.origin else NO
            elif each:  # one optimizer of a sequence gone through, each in turn
                owned = YES if key in each else NO
            elif holder.path is not None:
                owned = self.optimizer_owned(key, holder.path)
            else:
                owned = UNKNOWN
            if owned is YES:
                if self._loops and grads.pending_in(self._loops[-1]) and not self.restarts(key):
                    # On some path, gradients no step applied: accumulation, if its steps
                    # are all conditional (rules decide).
                    self.facts.pending_clears.setdefault(node, set()).add(key)
                    if self.guards():
                        self.facts.guarded_clears.add(node)
                state.grads[key] = grads.clear(node)
            elif owned is UNKNOWN:
                state.grads[key] = UNKNOWN_GRADS

    def clip_grads(self, params: Value, node: cst.CSTNode, state: State) -> None:
        """`clip_grad_norm_(params, ...)`: it changes `.grad` for the next step to apply.
        Reported where it is so for every optimizer known to hold those parameters (or, if
        none is known to, for every one that may)."""
        paths = params.roots if params.kind is Kind.PARAMS else frozenset()
        holds: dict[Tri, list[Grads]] = {YES: [], UNKNOWN: []}
        for key, grads in state.grads.items():
            owned = [self.optimizer_owned(key, path) for path in paths] or [UNKNOWN]
            if YES in owned:
                holds[YES].append(grads)
            elif UNKNOWN in owned:
                holds[UNKNOWN].append(grads)
        found = holds[YES] or holds[UNKNOWN]
        if not found:
            return
        if all(g.held is YES and g.unstepped is NO and g.applied is YES for g in found):
            self.facts.misplaced_clips.append(ClipMisplaced(node, after_step=True))
        elif all(g.held is NO and g.cleared_at is not None for g in found):
            self.facts.misplaced_clips.append(ClipMisplaced(node, after_step=False))

    def forget_grads(self, state: State, optimizers: Iterable[Value] | None = None) -> None:
        """Code we cannot follow may clear, fill or apply gradients: of these optimizers,
        or of every one."""
        keys = (
            list(state.grads)
            if optimizers is None
            else [v.origin for v in optimizers if v.kind is Kind.OPTIMIZER]
        )
        for key in keys:
            if key in state.grads:
                state.grads[key] = UNKNOWN_GRADS

    def save_weights(
        self, module: Value, result: Value, state: State, call: cst.CSTNode | None = None
    ) -> None:
        """A trainable layer, called at `call`, saves its weights for backward (to give its
        input a gradient)."""
        if module.path is None:
            return
        if result.kind is Kind.SEQUENCE and result.items is not None:
            for part in result.items:  # a model returning (logits, loss)
                if part.is_tensor:
                    self.save_weights(module, part, state, call)
            return
        if result.head is None:
            return
        key = self.site_key("weights", module.path)
        self._weights[key] = module.path
        self._site_module_value[result.head[0]] = module
        if call is not None:
            self._site_module_call[result.head[0]] = call
        weights = (key, 0)
        saved = state.saves.get(result.head, frozenset())
        state.saves[result.head] = saved | {(weights, state.versions.setdefault(weights, 0))}

    def frame_call(self, node: cst.CSTNode, through: Node | None = None) -> cst.CSTNode:
        """A node made inside a call from the running code: that call, or the model call
        below it that built the graph; else the node. Made inside a call beside the running
        code (a sibling method), only a model call counts. With `through`, only if that graph
        node came in through the call's arguments (a hidden state passed in, not one the
        method keeps on `self`)."""
        call, below, from_running = self.call_toward(node)
        if call is None:
            return node
        if through is not None and through not in self._call_inputs.get(id(call), ()):
            return node
        # Through helpers and plain objects down to the model that built the graph:
        # `Dataset(...).materialize()` whose text embedder runs a layer, there.
        for inner in [*below, node]:
            if type(inner) is cst.Call and self._is_module_call(inner):
                return inner
        return call if from_running else node

    def _is_module_call(self, call: cst.Call) -> bool:
        return id(call) in self._module_calls

    def call_toward(
        self, node: cst.CSTNode
    ) -> tuple[cst.Call | None, tuple[cst.Call | None, ...], bool]:
        """The call, in the function that both the running code and the code that made
        `node` run under, that led to `node`; the calls from there down; and whether that
        function is the running code itself."""
        path = self._made_during.get(id(node), ())
        running = tuple(self._call_path)
        shared = 0
        while shared < min(len(path), len(running)) and path[shared] is running[shared]:
            shared += 1
        below = path[shared:]
        return (below[0] if below else None), below, shared == len(running)

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

    def hide_change(self, tensor: Node, node: cst.CSTNode, state: State) -> None:
        """A change through `.data`: autograd's version counter does not see it, so the ops
        that saved the tensor will back-propagate with its new value, silently."""
        for graph_node, saved in state.saves.items():
            if any(identity == tensor for identity, _ in saved):
                state.hidden[graph_node] = node

    def check_saved(self, value: Value, at: cst.CSTNode, state: State) -> None:
        """Back-propagating `value` at `at` needs the tensors its graph saved, unchanged."""
        graph = set(value.graph)
        for part in (value.item, *(value.items or ())):
            if part is not None:
                graph |= part.graph
        for graph_node in graph:
            if graph_node in state.freed and self.saves_tensors(graph_node):
                continue  # its buffers are gone: backward raises for that first (GL107)
            hidden = state.hidden.get(graph_node)
            op = self._site_nodes.get(graph_node[0])
            if hidden is not None and op is not None:
                self.facts.hidden_changes.append(SavedChanged(hidden, op, at, hidden))
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
                            entry = self.stale_entry(graph_node, frozenset(graph), tick) or op
                            # The step too, made inside a helper beside the backward
                            # (`self._update_critics(...)`), at the helper's call.
                            step = self.call_toward(changed)[0] or changed
                            self.facts.saved_changes.append(
                                SavedChanged(self.frame_call(entry), op, at, step, stepped=True)
                            )
                            continue
                        self.facts.saved_changes.append(SavedChanged(blame, op, at, changed))

    def saves_tensors(self, graph_node: Node) -> bool:
        return graph_node[0] in self._saving_sites


def _parts(value: Value) -> list[Value]:
    """The values a container holds: its elements, or its named fields."""
    parts = [*(value.items or ()), *(v for _, v in value.fields or ())]
    if value.item is not None:
        parts.append(value.item)
    return parts


def _holds_graph_tensor(value: Value) -> bool:
    """A tensor that requires grad and has a graph, or a container of one (`{"loss": loss}`)."""
    if value.is_tensor:
        return value.requires_grad is YES and bool(value.graph)
    return any(_holds_graph_tensor(part) for part in _parts(value))


def _all_nodes(value: Value) -> frozenset[Node]:
    nodes = value.graph
    for part in _parts(value):
        nodes |= _all_nodes(part)
    return nodes


def _marked(value: Value, mark: Node) -> Value:
    """`value` with `mark` in the graph of each tensor it is or holds that has a graph."""
    if value.is_tensor:
        return value.with_(graph=value.graph | {mark}) if value.graph else value
    return value.with_(
        item=_marked(value.item, mark) if value.item is not None else None,
        items=tuple(_marked(v, mark) for v in value.items) if value.items is not None else None,
        fields=tuple((k, _marked(v, mark)) for k, v in value.fields)
        if value.fields is not None
        else None,
    )
