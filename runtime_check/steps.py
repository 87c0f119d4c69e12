"""Optimizer steps, watched through PyTorch's global step hooks: gradients that carry over
from one step into the next because nothing cleared them."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame

CARRIED = (
    "the gradients from before the last step were never cleared, so this step applies their "
    "sum; call optimizer.zero_grad() once per step"
)


class StepWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(param) -> its .grad right after the last step, and the grad's version then
        self._after_step: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        self._zeroed: set[int] = set()  # ids of gradients zeroed in place since

    def zeroed(self, tensors: Any) -> None:
        """`grad.zero_()` / `torch._foreach_zero_(grads)`: cleared, in place."""
        for tensor in tensors if isinstance(tensors, (list, tuple)) else (tensors,):
            self._zeroed.add(id(tensor))

    def before(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        carried = 0
        for param in _params(optimizer):
            grad = param.grad
            last = self._after_step.get(id(param))
            if grad is None or last is None:
                continue
            same, version = last
            # The very tensor the last step used, added to since, and never zeroed.
            if same() is grad and grad._version != version and id(grad) not in self._zeroed:
                carried += 1
        if carried:
            where = user_frame()
            if where is not None:
                self._events.add("GL201", where, CARRIED, detail=f"{carried} parameters")

    def after(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for param in _params(optimizer):
            grad = param.grad
            if grad is None:
                self._after_step.pop(id(param), None)
                continue
            self._after_step[id(param)] = (weakref.ref(grad), grad._version)
            self._zeroed.discard(id(grad))


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [
        param
        for group in optimizer.param_groups
        for param in group["params"]
        if isinstance(param, torch.Tensor)
    ]
