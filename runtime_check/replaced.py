"""A freeze undone by re-making the weights (GL216): a frozen parameter replaced in its module
by a copy of itself that requires grad (`register_parameter(name, nn.Parameter(p.detach()
.to(dtype)))`, a conversion or re-materialization of every weight), which an optimizer
then trains. `nn.Parameter` requires grad unless told otherwise, so the copy has lost the
freeze."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame

MESSAGE = (
    "replaces a frozen parameter with a copy of it that requires grad (`nn.Parameter` "
    "requires grad unless told otherwise): the freeze is lost and the optimizer trains it; "
    "pass `requires_grad=param.requires_grad`"
)
MAX_REPLACED = 10_000


class ReplacedFrozen:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(new parameter) -> it, the user's line that registered it, its module's class
        # and name
        self._copies: dict[int, tuple[weakref.ref[Any], tuple[str, int], str]] = {}
        self._trained: set[int] = set()  # ids of the copies an optimizer stepped

    def registered(self, module: torch.nn.Module, name: str, param: Any) -> None:
        """Before `module` registers `param` as `name` (the old one still in place)."""
        old = module._parameters.get(name)
        if (
            not isinstance(param, torch.Tensor)
            or not param.requires_grad
            or not isinstance(old, torch.Tensor)
            or old.requires_grad
            or old is param
            or len(self._copies) >= MAX_REPLACED
            or not _copy_of(param, old)
        ):
            return
        where = user_frame()
        if where is not None:
            self._copies[id(param)] = (weakref.ref(param), where, f"{type(module).__name__}.{name}")

    def stepped(self, optimizer: Any) -> None:
        """After an optimizer step: the copies it held and gave gradients."""
        if len(self._trained) == len(self._copies):
            return  # (none, in most programs)
        for group in optimizer.param_groups:
            for param in group["params"]:
                if (
                    id(param) in self._copies
                    and param.requires_grad
                    and param.grad is not None
                    and self._copies[id(param)][0]() is param
                ):
                    self._trained.add(id(param))

    def settle(self) -> None:
        """At the end: the copies an optimizer trained, by the line that made them."""
        trained: dict[tuple[str, int], list[str]] = {}
        for key in self._trained:
            _, where, name = self._copies[key]
            trained.setdefault(where, []).append(name)
        for where, names in trained.items():
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            self._events.add(
                "GL216",
                where,
                MESSAGE,
                detail=f"{len(names)} frozen parameters re-made here were trained: {shown}",
            )


def _copy_of(new: torch.Tensor, old: torch.Tensor) -> bool:
    """Whether `new` holds `old`'s values (in its own dtype and device): the same weight
    re-made, not a fresh one put in its place on purpose. (A weight on the meta device has
    no values: the same shape counts.)"""
    if new.shape != old.shape:
        return False
    if old.is_meta or new.is_meta:
        return True
    with torch.no_grad():
        return bool(torch.equal(old.detach().to(new.device, new.dtype), new.detach()))
