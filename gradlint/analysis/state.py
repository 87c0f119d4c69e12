"""What the interpreter carries along one path through the code: the values names hold,
the grad mode, and the state of tensors (freed graphs, in-place versions, saved tensors,
frozen modules); and what a running call knows of its own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from gradlint.analysis.facts import (
    ANY_MODE,
    Mode,
)
from gradlint.analysis.gradients import Grads, join_grads
from gradlint.analysis.train_modes import TrainMode, join_modes
from gradlint.analysis.values import (
    UNKNOWN,
    Node,
    Tri,
    Value,
)

# A call's effects on its arguments: requires_grad flags set on tensor parameters,
# (path, frozen, where) for module parameters frozen or unfrozen, and (path, mode) for
# modules set to train or eval mode.
Effects = tuple[
    tuple[tuple[str, Tri], ...],
    tuple[tuple[str, Tri, "cst.CSTNode | None"], ...],
    tuple[tuple[str, TrainMode], ...],
]


@dataclass
class Frame:
    """What a running function did to the objects its caller handed it."""

    params: frozenset[str]  # its parameter names (and `self`)
    rebound: set[str] = field(default_factory=set)  # parameters assigned anew
    flags: dict[str, Tri] = field(default_factory=dict)  # `x.requires_grad = ...` on a param
    loops: int = 0  # how many loops were running when the call began
    root: bool = False  # run with no caller in this module: what it returns goes elsewhere
    # Modules whose parameters the caller handed it (`freeze(model.parameters())`), as the
    # caller names them: what it freezes of them, it freezes for the caller.
    handed: frozenset[str] = frozenset()
    # Children it set to new layers with parameters (`self.head = nn.Linear(...)`).
    remade: set[str] = field(default_factory=set)


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
    grads: dict[int, Grads] = field(default_factory=dict)  # optimizer origin -> its .grad
    # Graph node -> a change through `.data` of a tensor it saved, which autograd cannot see.
    hidden: dict[Node, cst.CSTNode] = field(default_factory=dict)
    training: dict[str, TrainMode] = field(default_factory=dict)  # module path -> its mode

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
            dict(self.grads),
            dict(self.hidden),
            dict(self.training),
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
            grads=join_grads(self.grads, other.grads),
            hidden={**other.hidden, **self.hidden},
            training=join_modes(self.training, other.training),
        )

    def age(self, sites: set[int], generation: int) -> State:
        """Values made on this pass of a loop become values of an earlier pass (marked with
        a generation of their own, so that passes of different loops never meet)."""
        if not sites:
            return self

        def old(node: Node) -> Node:
            return _aged_node(node, sites, generation)

        older = self.copy()
        older.env = {key: aged(value, sites, generation) for key, value in self.env.items()}
        older.freed = {old(n): at for n, at in self.freed.items()}
        older.versions = {old(n): v for n, v in self.versions.items()}
        older.changed_at = {old(n): at for n, at in self.changed_at.items()}
        older.hidden = {old(n): at for n, at in self.hidden.items()}
        older.saves = {
            old(n): frozenset((old(s), v) for s, v in saved) for n, saved in self.saves.items()
        }
        return older

    def age_in_place(self, sites: set[int], generation: int) -> None:
        older = self.age(sites, generation)
        self.env, self.freed, self.versions = older.env, older.freed, older.versions
        self.changed_at, self.saves = older.changed_at, older.saves
        self.hidden = older.hidden


def _aged_node(node: Node, sites: set[int], generation: int) -> Node:
    return (node[0], generation) if node[1] == 0 and node[0] in sites else node


def aged(value: Value, sites: set[int], generation: int) -> Value:
    """`State.age` of one value. (A module function: a recursive closure would be a
    reference cycle, which only the garbage collector frees, with all it holds.)"""
    if (
        not value.graph
        and value.node is None
        and value.item is None
        and value.items is None
        and value.fields is None
    ):
        return value
    return value.with_(
        graph=frozenset(_aged_node(n, sites, generation) for n in value.graph),
        node=_aged_node(value.node, sites, generation) if value.node is not None else None,
        head=_aged_node(value.head, sites, generation) if value.head is not None else None,
        item=aged(value.item, sites, generation) if value.item is not None else None,
        items=(
            tuple(aged(v, sites, generation) for v in value.items)
            if value.items is not None
            else None
        ),
        fields=(
            tuple((k, aged(v, sites, generation)) for k, v in value.fields)
            if value.fields is not None
            else None
        ),
    )
