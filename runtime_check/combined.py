"""A backward of a sum of losses, each meant for its own network (`(actor_loss +
critic_loss).backward()`, then each network's optimizer steps): a term that also reaches the
parameters of a network whose own loss is another term leaks into it, and that network's
optimizer applies the sum (GL204).

A term reaches a network legitimately through another network it feeds (a VAE's
reconstruction reaches the encoder through the decoder, a critic head's loss reaches the
shared trunk through the head). It leaks where it takes that network's output in beside its
own network's (an advantage made from the critic's values, an actor's loss through a Q
network that its own loss also trains)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import real_path
from gradlint.runtime_check.graphs import children, site_of
from gradlint.runtime_check.modules import parameters_of

LEAKED_TERM = (
    "this loss term takes in another network's output with its graph, and the backward of "
    "the sum gives that network's parameters its gradients too, which that network's "
    "optimizer applies with those of its own loss; `.detach()` what it takes from that network"
)
MAX_KEPT = 16  # combined backwards kept for judging at the end
PER_LINE = 2  # ... of one line
MAX_NODES = 100_000  # nodes of a graph walked to judge it
LEAST_PARAMS = 2  # a network's parameters a term must reach: a weight and a bias at least
# Nodes through which a sum's terms are found: the sum, and a term scaled by a constant.
_SUMS = frozenset({"AddBackward0", "SubBackward0"})
_SCALES = frozenset({"MulBackward0", "DivBackward0", "NegBackward0"})


@dataclass
class _Combined:
    where: tuple[str, int]  # the backward's line
    root: Any  # the sum's node, kept (its graph freed) until the end


class CombinedWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._kept: list[_Combined] = []
        self._loss_params: set[int] = set()  # ids of the weights of modules that make a loss

    def backward(self, loss: Any, where: tuple[str, int] | None, retained: bool) -> None:
        """After a backward of `loss` that freed its graph: keep the graph's nodes (not its
        saved tensors, which the backward freed) where it is a sum of terms."""
        if where is None or retained or len(self._kept) >= MAX_KEPT:
            return
        node = loss.grad_fn if isinstance(loss, torch.Tensor) else None
        if node is None or type(node).__name__ not in _SUMS:
            return
        if sum(1 for kept in self._kept if kept.where == where) >= PER_LINE:
            return
        self._kept.append(_Combined(where, node))

    def forward_ended(self, module: torch.nn.Module, output: Any) -> None:
        """After an outermost forward: a module that returns a one-number tensor with a
        graph computes a loss (a criterion with weights of its own: per-sample weights, a
        learned weighting of tasks), which its weights are meant to train on as a whole."""
        if (
            isinstance(output, torch.Tensor)
            and output.dim() == 0
            and output.requires_grad
            and len(self._loss_params) < MAX_NODES
        ):
            self._loss_params.update(id(p) for p in parameters_of(module))

    def _of_a_loss(self, bits: int, graph: _Graph) -> bool:
        return all(id(graph.leaves[bit]) in self._loss_params for bit in _bits(bits))

    def settle(
        self,
        holders: dict[int, int],
        applied: dict[tuple[str, int], set[int]],
        names: dict[int, str],
    ) -> None:
        """At the end: `holders` maps each parameter an optimizer holds to that optimizer's
        number, `applied` the backwards' lines to the parameters whose gradients from there
        a step applied."""
        kept, self._kept = self._kept, []
        if len(set(holders.values())) < 2:
            return
        for combined in kept:
            stepped = applied.get(combined.where, set())
            if stepped:
                self._judge(combined, holders, stepped, names)

    def _judge(
        self, combined: _Combined, holders: dict[int, int], stepped: set[int], names: dict[int, str]
    ) -> None:
        graph = _Graph.of(combined.root)
        if graph is None:
            return
        terms = _terms(combined.root)
        if len(terms) < 2:
            return
        # optimizer -> the leaves' bits of its parameters
        networks: dict[int, int] = {}
        for bit, leaf in enumerate(graph.leaves):
            holder = holders.get(id(leaf))
            if holder is not None:
                networks[holder] = networks.get(holder, 0) | (1 << bit)
        reach = [graph.below[id(term)] for term in terms]

        def reached(term: int) -> set[int]:
            return {
                holder
                for holder, bits in networks.items()
                if (term & bits).bit_count() >= LEAST_PARAMS
            }

        own = {next(iter(held)) for held in map(reached, reach) if len(held) == 1}
        for term, bits in zip(terms, reach, strict=True):
            held = reached(bits)
            for network in sorted(own & held):
                # (A loss's own weights, on either side, are meant to train on all of it.)
                if any(self._of_a_loss(networks[n], graph) for n in held):
                    continue
                others = [networks[other] for other in held if other != network]
                # (A term that reaches the other networks only through this one is this
                # one's: a critic's penalty on the actor's actions.)
                if (
                    not others
                    or any(graph.feeds(networks[network], o) for o in others)
                    or not any(graph.around(term, networks[network], o) for o in others)
                ):
                    continue
                leaked = [
                    graph.leaves[bit]
                    for bit in _bits(bits & networks[network])
                    if id(graph.leaves[bit]) in stepped
                ]
                if not leaked:
                    continue
                outside = sum(others)
                line = graph.handover(term, networks[network], outside) or combined.where
                shown = sorted(names.get(id(p), "") for p in leaked if id(p) in names)
                listed = ", ".join(shown[:3]) + (
                    f" and {len(shown) - 3} more" if len(shown) > 3 else ""
                )
                detail = (
                    f"summed with that network's own loss into the loss back-propagated at line "
                    f"{combined.where[1]}; {len(leaked)} of its parameters"
                    + (f": {listed}" if listed else "")
                )
                self._events.add("GL204", line, LEAKED_TERM, detail=detail)


def _terms(root: Any) -> list[Any]:
    """The terms of a sum's node: through the sums, and the terms scaled by constants, made
    on the sum's line. (A loss summed elsewhere, `policy_loss = bonus - q_pi.mean()`, is one
    term, meant for one network as a whole.)"""
    line = _line(root)
    terms: list[Any] = []
    stack = [root]
    while stack and len(terms) < 64:
        node = stack.pop()
        name = type(node).__name__
        kids = children(node)
        split = name in _SUMS or (name in _SCALES and len(kids) == 1)
        if split and (node is root or (line is not None and _line(node) == line)):
            stack.extend(reversed(kids))
        elif not hasattr(node, "variable"):
            terms.append(node)
    return terms


def _line(node: Any) -> tuple[Any, int] | None:
    site = site_of(node)
    return site[0] if site else None


def _bits(value: int) -> Iterable[int]:
    bit = 0
    while value:
        if value & 1:
            yield bit
        value >>= 1
        bit += 1


class _Graph:
    """The leaves below each node of a graph, as bits, and for each leaf the leaves below
    the nodes that take it in (a layer's node: its input's graph and its other weights)."""

    def __init__(self) -> None:
        self.leaves: list[torch.Tensor] = []
        self.below: dict[int, int] = {}  # id(node) -> bits of the leaves below it
        self.behind: dict[int, int] = {}  # a leaf's bit -> bits of what is taken in beside it
        self.nodes: dict[int, Any] = {}

    @classmethod
    def of(cls, root: Any) -> _Graph | None:
        graph = cls()
        bit_of: dict[int, int] = {}  # id(leaf) -> its bit
        below, behind = graph.below, graph.behind
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if not done:
                if key in below or key in graph.nodes:
                    continue
                if hasattr(node, "variable"):
                    variable = node.variable
                    bit = bit_of.get(id(variable))
                    if bit is None:
                        bit = bit_of[id(variable)] = len(graph.leaves)
                        graph.leaves.append(variable)
                    below[key] = 1 << bit
                    continue
                graph.nodes[key] = node
                if len(graph.nodes) > MAX_NODES:
                    return None
                stack.append((node, True))
                stack.extend((child, False) for child in children(node))
                continue
            kids = children(node)
            total = 0
            for child in kids:
                total |= below.get(id(child), 0)
            below[key] = total
            for child in kids:
                taken = _taken(child)
                if taken is not None:
                    bits = below.get(id(taken), 0)
                    for bit in _bits(bits):
                        behind[bit] = behind.get(bit, 0) | (total & ~bits)
        return graph

    def feeds(self, network: int, other: int) -> bool:
        """Whether the leaves `network` are taken in beside the leaves `other`: the first
        network's output goes into the second's layers."""
        return any(self.behind.get(bit, 0) & network for bit in _bits(other))

    def around(self, term: Any, network: int, other: int) -> bool:
        """Whether the term reaches the leaves `other` on a path that does not go through
        the layers of `network` (a node that takes one of its leaves in)."""
        seen: set[int] = set()
        stack = [term]
        while stack:
            node = stack.pop()
            if id(node) in seen or not self.below.get(id(node), 0) & other:
                continue
            seen.add(id(node))
            if hasattr(node, "variable"):
                return True
            kids = children(node)
            if any(
                (taken := _taken(kid)) is not None and self.below.get(id(taken), 0) & network
                for kid in kids
            ):
                continue
            stack.extend(kids)
        return False

    def handover(self, term: Any, network: int, outside: int) -> tuple[str, int] | None:
        """The user's line where what reaches `network` goes into the term: down from the
        term while one input alone reaches it, to where it reaches nothing else."""
        node = term
        while True:
            kids = [c for c in children(node) if self.below.get(id(c), 0) & network]
            if len(kids) != 1 or hasattr(kids[0], "variable"):
                break
            node = kids[0]
            if not self.below.get(id(node), 0) & outside:
                break
        site, top = site_of(node), site_of(term)
        if not site:
            return None
        code, line = site[0]
        if top:
            for inner, at in site:
                if inner is top[0][0]:
                    code, line = inner, at
                    break
        return real_path(code.co_filename), line


def _taken(child: Any) -> Any:
    """The leaf a node takes in directly, or through one node of its own (a transpose, a
    view, an `exp`): a layer's weight."""
    if hasattr(child, "variable"):
        return child
    kids = children(child)
    if len(kids) == 1 and hasattr(kids[0], "variable"):
        return kids[0]
    return None
