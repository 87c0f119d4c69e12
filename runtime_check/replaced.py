"""A freeze undone by re-making the weights (GL216): a frozen parameter replaced in its module
by a copy of itself that requires grad (`register_parameter(name, nn.Parameter(p.detach()
.to(dtype)))`, a conversion or re-materialization of every weight), which an optimizer
then trains. `nn.Parameter` requires grad unless told otherwise, so the copy has lost the
freeze."""

from __future__ import annotations

import sys
import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import next_user_frame, real_path, user_frame

MESSAGE = (
    "replaces a frozen parameter with a copy of it that requires grad (`nn.Parameter` "
    "requires grad unless told otherwise): the freeze is lost and the optimizer trains it; "
    "pass `requires_grad=param.requires_grad`"
)
SWAPPED = (
    "re-makes frozen layers as trainable copies of themselves (new modules require grad): "
    "the freeze is lost and the optimizer trains them; freeze them again after this"
)
MAX_REPLACED = 10_000


class ReplacedFrozen:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(new parameter) -> it, the user's line that registered it, its module's class
        # and name
        self._copies: dict[int, tuple[weakref.ref[Any], tuple[str, int], str]] = {}
        self._trained: set[int] = set()  # ids of the copies an optimizer stepped
        # The lines that put a re-made module in place of a frozen one, each with the
        # user's call that led there from another function, if one did
        self._swaps: dict[tuple[str, int], tuple[str, int] | None] = {}
        self._refrozen: set[tuple[str, int]] = set()  # swaps some of whose copies were frozen

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

    def swapped(self, parent: torch.nn.Module, name: str, old: Any, new: Any) -> None:
        """Before `parent` registers the module `new` as `name` in place of `old`: a frozen
        module re-made as a trainable copy of itself (a vocabulary resized: new, larger
        layers with the old rows copied in). A fresh head put in place of a frozen one, as
        transfer learning does on purpose, holds no copy of the old weights."""
        if not isinstance(old, torch.nn.Module) or not isinstance(new, torch.nn.Module):
            return
        olds = dict(old._parameters)
        if not olds or any(p is not None and p.requires_grad for p in olds.values()):
            return
        where = None
        for key, param in new._parameters.items():
            before = olds.get(key)
            if (
                isinstance(param, torch.Tensor)
                and param.requires_grad
                and isinstance(before, torch.Tensor)
                and len(self._copies) < MAX_REPLACED
                and _holds_rows_of(param, before)
            ):
                where = where or user_frame()
                if where is None:
                    return
                label = f"{type(parent).__name__}.{name}.{key}"
                self._copies[id(param)] = (weakref.ref(param), where, label)
                self._swaps[where] = _caller(where)

    def stepped(self, optimizer: Any) -> None:
        """After an optimizer step: the copies it held and gave gradients."""
        if len(self._trained) == len(self._copies):
            return  # (none, in most programs)
        if self._swaps and not self._refrozen:
            self._refrozen = {
                where
                for ref, where, _ in self._copies.values()
                if where in self._swaps and (param := ref()) is not None and not param.requires_grad
            }
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
        # (A swap after which the program froze some of what it made again, the output
        # head of a resized vocabulary, was seen to: what it left trainable is meant to be.)
        refrozen = self._refrozen
        for key in self._trained:
            _, where, name = self._copies[key]
            if where not in refrozen:
                trained.setdefault(where, []).append(name)
        for where, names in trained.items():
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            if where not in self._swaps:
                self._events.add(
                    "GL216",
                    where,
                    MESSAGE,
                    detail=f"{len(names)} frozen parameters re-made here were trained: {shown}",
                )
                continue
            self._events.add(
                "GL216",
                where,
                SWAPPED,
                detail=f"{len(names)} frozen parameters re-made here were trained: {shown}",
            )
            call = self._swaps[where]
            if call is not None:
                self._events.add(
                    "GL216",
                    call,
                    SWAPPED,
                    detail=f"the call that re-made them (at line {where[1]}) after the freeze: "
                    "freeze what it made again after it",
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


def _holds_rows_of(new: torch.Tensor, old: torch.Tensor) -> bool:
    """Whether `new` begins with `old`'s rows (a resized embedding or output layer), or is
    a copy of it."""
    if new.shape == old.shape:
        return _copy_of(new, old)
    if new.dim() != old.dim() or new.shape[1:] != old.shape[1:] or new.shape[0] <= old.shape[0]:
        return False
    if old.is_meta or new.is_meta:
        return False
    with torch.no_grad():
        head = new.detach()[: old.shape[0]]
        return bool(torch.equal(old.detach().to(new.device, new.dtype), head))


def _caller(where: tuple[str, int]) -> tuple[str, int] | None:
    """The user's line, out from the frame running `where`, that called into it from
    another function (the method that resized the layers, called from `__init__`)."""
    frame = next_user_frame(sys._getframe(1))
    while frame is not None and (real_path(frame.f_code.co_filename), frame.f_lineno) != where:
        frame = next_user_frame(frame.f_back)
    caller = next_user_frame(frame.f_back) if frame is not None else None
    if caller is None:
        return None
    return real_path(caller.f_code.co_filename), caller.f_lineno
