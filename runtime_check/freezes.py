"""The freezes of leaf tensors while traced (`p.requires_grad = False`), one record each: the
line and the user's frames that froze it, and how many optimizer steps had run by then.

The record serves three readers: cut explanations (the lines that froze what is still
frozen), the reentrant-checkpoint explanation (the frames that froze a model's embeddings),
and freezes undone before they did anything (GL216): parameters frozen, then set trainable
again by a pass over every parameter (`for p in model.parameters(): p.requires_grad_(True)`
in a helper that then freezes its own choice) before any optimizer step, and trained.

Freezing everything and then unfreezing a part (a head to fine-tune) is the common way to
choose what trains: an unfreeze that touches only frozen parameters is not reported. Nor is
one after a step (a warm-up that unfreezes the backbone later)."""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.graphs import Site, user_stack
from torch.utils.weak import WeakIdKeyDictionary

UNDONE = (
    "sets every parameter trainable, undoing a freeze made before any step: the frozen "
    "parameters train; unfreeze only what should train (or freeze after this)"
)
MAX_WATCHED = 100_000


class Freeze(NamedTuple):
    where: tuple[str, int]  # the user's line that froze it
    stack: Site  # the user's frames then, innermost first
    steps: int  # optimizer steps run before it


class FreezeLog:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._steps = 0
        # By identity: a plain WeakKeyDictionary compares tensors with `==`, elementwise.
        # parameter -> its freeze, while it stays frozen
        self._frozen: WeakIdKeyDictionary = WeakIdKeyDictionary()
        # unfreezing line -> the parameters it unfroze (each with the line that froze it),
        # and how many trainable ones it set trainable again
        self._undone: dict[tuple[str, int], list[tuple[weakref.ref[Any], tuple[str, int]]]] = {}
        self._already: dict[tuple[str, int], int] = {}
        self._undone_ids: dict[tuple[str, int], set[int]] = {}  # (ids of `_undone`'s)
        self._unjudged: set[tuple[str, int]] = set()  # unfreezing lines since the last step
        # unfreezing line -> (id, freeze line) of those still trainable at the next step
        self._at_first_step: dict[tuple[str, int], list[tuple[int, tuple[str, int]]]] = {}

    def flag(self, tensor: Any, requires_grad: bool, where: tuple[str, int] | None) -> None:
        """After `requires_grad` of a leaf tensor was set at the user's line `where`."""
        if not isinstance(tensor, torch.Tensor) or not tensor.is_leaf or where is None:
            return
        if not requires_grad:
            if len(self._frozen) < MAX_WATCHED:
                self._frozen[tensor] = Freeze(where, user_stack(), self._steps)
            return
        frozen: Freeze | None = self._frozen.pop(tensor, None)
        if not isinstance(tensor, torch.nn.Parameter):
            return
        if frozen is None:
            # (Not one this line unfroze itself a moment ago: modules matched by name and
            # nested, `motion_modules` and `motion_modules.0`, set the same ones twice.)
            if id(tensor) not in self._undone_ids.get(where, ()):
                self._already[where] = self._already.get(where, 0) + 1
        elif frozen.steps == self._steps and len(self._undone) < MAX_WATCHED:
            # (A step between them is a schedule: a warm-up, not an undone freeze.)
            self._undone.setdefault(where, []).append((weakref.ref(tensor), frozen.where))
            self._undone_ids.setdefault(where, set()).add(id(tensor))
            self._unjudged.add(where)

    def of(self, tensor: Any) -> Freeze | None:
        """The freeze of a tensor that is still frozen."""
        freeze: Freeze | None = self._frozen.get(tensor)
        return freeze if freeze is not None and not tensor.requires_grad else None

    def sites(self, most: int = 3) -> list[tuple[str, int]]:
        """The lines that froze the parameters that are still frozen, first first."""
        found = dict.fromkeys(
            freeze.where for param, freeze in list(self._frozen.items()) if not param.requires_grad
        )
        return list(found)[:most]

    def froze(self, where: tuple[str, int]) -> bool:
        """Whether a line froze a tensor that is still frozen."""
        return any(
            freeze.where == where and not tensor.requires_grad
            for tensor, freeze in list(self._frozen.items())
        )

    def stepped(self) -> None:
        self._steps += 1
        if self._unjudged:
            # What the first step after an unfreeze found trainable, for parameters the
            # program lets go of before the end (a model local to `main()`).
            for where in self._unjudged:
                undone = self._undone[where]
                self._at_first_step[where] = [
                    (id(param), frozen_at)
                    for ref, frozen_at in undone
                    if (param := ref()) is not None and param.requires_grad
                ]
            self._unjudged.clear()

    def settle(self, optimized: set[int]) -> None:
        """At the end: the unfreezing lines that also set trainable parameters trainable (a
        pass over all of them), whose unfrozen parameters an optimizer that stepped holds
        and that still require grad."""
        for where, undone in self._undone.items():
            if not self._already.get(where):
                continue
            if all(ref() is None for ref, _ in undone):
                trained = [at for key, at in self._at_first_step.get(where, []) if key in optimized]
            else:
                trained = [
                    frozen_at
                    for ref, frozen_at in undone
                    if (param := ref()) is not None
                    and param.requires_grad
                    and id(param) in optimized
                ]
            if trained:
                lines = ", ".join(str(line) for line in sorted({at[1] for at in trained})[:3])
                detail = (
                    f"{len(trained)} parameters frozen at line {lines} before it, and no step "
                    "between, train"
                )
                self._events.add("GL216", where, UNDONE, detail=detail)
