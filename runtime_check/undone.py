"""Freezes undone before they did anything: parameters frozen, then set trainable again by
a pass over every parameter (`for p in model.parameters(): p.requires_grad_(True)` in a
helper that then freezes its own choice) before any optimizer step, and trained (GL216).

Freezing everything and then unfreezing a part (a head to fine-tune) is the common way to
choose what trains: an unfreeze that touches only frozen parameters is not reported. Nor is
one after a step (a warm-up that unfreezes the backbone later)."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame

UNDONE = (
    "sets every parameter trainable, undoing a freeze made before any step: the frozen "
    "parameters train; unfreeze only what should train (or freeze after this)"
)
MAX_WATCHED = 100_000


class FreezesUndone:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._steps = 0
        # id(parameter) -> (it, the line that froze it, the count of steps then)
        self._frozen: dict[int, tuple[weakref.ref[Any], tuple[str, int], int]] = {}
        # unfreezing line -> the parameters it unfroze (each with the line that froze it),
        # and how many trainable ones it set trainable again
        self._undone: dict[tuple[str, int], list[tuple[weakref.ref[Any], tuple[str, int]]]] = {}
        self._already: dict[tuple[str, int], int] = {}

    def flag(self, tensor: Any, requires_grad: bool) -> None:
        """After `requires_grad` of a parameter was set."""
        if not isinstance(tensor, torch.nn.Parameter):
            return
        if not requires_grad:
            where = user_frame(2)
            if where is not None and len(self._frozen) < MAX_WATCHED:
                self._frozen[id(tensor)] = (weakref.ref(tensor), where, self._steps)
            return
        frozen = self._frozen.pop(id(tensor), None)
        if frozen is not None and (frozen[0]() is not tensor or frozen[2] != self._steps):
            return  # (another tensor by now, or a step came between: a schedule)
        where = user_frame(2)
        if where is None:
            return
        if frozen is None:
            self._already[where] = self._already.get(where, 0) + 1
        elif len(self._undone) < MAX_WATCHED:
            self._undone.setdefault(where, []).append((frozen[0], frozen[1]))

    def stepped(self) -> None:
        self._steps += 1

    def settle(self, optimized: set[int]) -> None:
        """At the end: the unfreezing lines that also set trainable parameters trainable (a
        pass over all of them), whose unfrozen parameters an optimizer that stepped holds
        and that still require grad."""
        for where, undone in self._undone.items():
            if not self._already.get(where):
                continue
            trained = [
                frozen_at
                for ref, frozen_at in undone
                if (param := ref()) is not None and param.requires_grad and id(param) in optimized
            ]
            if trained:
                lines = ", ".join(str(line) for line in sorted({at[1] for at in trained})[:3])
                detail = (
                    f"{len(trained)} parameters frozen at line {lines} before it, and no step "
                    "between, train"
                )
                self._events.add("GL216", where, UNDONE, detail=detail)
