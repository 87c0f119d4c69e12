"""Networks run with autograd on whose parameters no backward ever reaches: a target
network, a teacher or an EMA copy whose outputs serve only as fixed targets. Each forward
records a graph for nothing (GL306)."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame
from gradlint.runtime_check.modules import modules_of, parameters_of

UNREACHED = (
    "runs a network with autograd on, yet no backward ever reaches its parameters: each "
    "forward records a graph for nothing; run it under torch.no_grad() (or freeze it)"
)
MAX_MODULES = 10_000  # modules watched
LEAST_FORWARDS = 2  # forwards with autograd on needed to judge a network


class NetworkWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(module) -> [the module, forwards with autograd on, the user's line of the first,
        # forwards while some parameter of its own required grad]
        self._forwards: dict[int, list[Any]] = {}
        self._reached: set[int] = set()  # ids of parameters some backward went through

    def forward(self, module: torch.nn.Module) -> None:
        """Before a module's forward, with autograd on."""
        seen = self._forwards.get(id(module))
        if seen is None:
            if len(self._forwards) >= MAX_MODULES:
                return
            seen = self._forwards[id(module)] = [weakref.ref(module), 0, user_frame(), 0]
        seen[1] += 1
        # (A network frozen while it runs, as in `with frozen(model):` of an attack, records
        # its graph for what it is given, not for its parameters.)
        own = module._parameters
        if own:
            trainable = any(p is not None and p.requires_grad for p in own.values())
        else:  # (a container, whose layers may run unseen inside a library's module)
            first = next(parameters_of(module), None)
            trainable = first is not None and first.requires_grad
        if trainable:
            seen[3] += 1

    def reached(self, leaves: list[torch.Tensor]) -> None:
        """The leaves a backward (or `autograd.grad`) went through."""
        self._reached.update(id(leaf) for leaf in leaves)

    def settle(self, skip: set[tuple[str, int]], optimized: set[int]) -> None:
        """At the end of a program that trained (an optimizer stepped parameters, their ids
        `optimized`): the outermost networks with trainable parameters, run with autograd on
        again and again, none of whose parameters any backward reached or any optimizer
        holds (lines in `skip` are reported already). (A network an optimizer holds is
        trained, if not by every step; a gradient checkpoint hides from the tracer's walks
        what its backward reaches, but not the `.grad` it leaves.)"""
        if not optimized:
            return
        unreached: dict[int, tuple[torch.nn.Module, tuple[str, int]]] = {}
        for key, (ref, count, where, _) in self._forwards.items():
            module = ref()
            if module is None or count < LEAST_FORWARDS or where is None or where in skip:
                continue
            if not self._trainable_forwards(module):
                continue
            # (Leaves only: a replica's parameters, `DataParallel`'s, are computed from the
            # module's own, which train through them.)
            params = [p for p in parameters_of(module) if p.requires_grad and p.is_leaf]
            if params and not any(
                id(p) in self._reached or id(p) in optimized or p.grad is not None for p in params
            ):
                unreached[key] = (module, where)
        inner = {  # (named at the outermost)
            id(sub)
            for module, _ in unreached.values()
            for sub in modules_of(module)
            if sub is not module
        }
        for key, (module, where) in unreached.items():
            if key not in inner:
                detail = f"`{type(module).__name__}`: its outputs are only used without gradients"
                self._events.add("GL306", where, UNREACHED, detail=detail)

    def _trainable_forwards(self, module: torch.nn.Module) -> bool:
        """Whether the layers of a network ran, with autograd on, while their parameters
        required grad, again and again."""
        for sub in modules_of(module):
            seen = self._forwards.get(id(sub))
            if seen is not None and seen[3] >= LEAST_FORWARDS:
                return True
        return False
