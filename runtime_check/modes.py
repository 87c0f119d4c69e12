"""Training in eval mode (GL203): a model whose dropout or batch norm behaves differently in
eval mode is stepped on a forward run in eval mode, after steps on forwards in train mode.
A `model.eval()` (a validation pass, a helper that evaluates) was left in force."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import user_frame
from gradlint.runtime_check.modules import modules_of, parameters_of

MESSAGE = (
    "trains a model in eval mode after it trained in train mode: a `model.eval()` was left "
    "in force; call `model.train()` before training again"
)
MAX_OPTIMIZERS = 100
_MODAL = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)


class ModeWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(model) -> the model, its mode and the user's line of its last forward since
        # the last step (with autograd on: a forward that can be trained on)
        self._since_step: dict[int, tuple[weakref.ref[Any], bool, tuple[str, int]]] = {}
        self._trained: set[int] = set()  # models stepped on a train-mode forward
        self._modal: dict[int, bool] = {}
        # id(optimizer) -> its groups' sizes, the optimizer and its parameters' ids
        self._optimizers: dict[int, tuple[tuple[int, ...], weakref.ref[Any], set[int]]] = {}

    def forward(self, model: torch.nn.Module) -> None:
        """Before the forward of a user's model (the outermost module running)."""
        if not torch.is_grad_enabled() or not self._is_modal(model):
            return
        where = user_frame()
        if where is not None:
            self._since_step[id(model)] = (weakref.ref(model), model.training, where)

    def stepped(self, optimizer: Any) -> None:
        """After an optimizer step: the models it trained, in the mode of their last forward."""
        if not self._since_step:
            return
        params = self._params(optimizer)
        step = user_frame()
        for key, (ref, training, where) in list(self._since_step.items()):
            model = ref()
            if model is None or not any(id(p) in params for p in parameters_of(model)):
                continue
            del self._since_step[key]
            if training:
                self._trained.add(key)
            elif key in self._trained:
                at = f" at line {step[1]}" if step is not None else ""
                self._events.add(
                    "GL203",
                    where,
                    MESSAGE,
                    detail=f"this forward ran in eval mode and the step{at} trained on it",
                )

    def _params(self, optimizer: Any) -> set[int]:
        """The ids of an optimizer's parameters, kept while its groups keep their sizes."""
        groups = optimizer.param_groups
        sizes = tuple(len(group["params"]) for group in groups)
        known = self._optimizers.get(id(optimizer))
        if known is None or known[0] != sizes or known[1]() is not optimizer:
            if len(self._optimizers) >= MAX_OPTIMIZERS:
                self._optimizers.clear()
            ids = {id(p) for group in groups for p in group["params"]}
            known = self._optimizers[id(optimizer)] = (sizes, weakref.ref(optimizer), ids)
        return known[2]

    def _is_modal(self, model: torch.nn.Module) -> bool:
        known = self._modal.get(id(model))
        if known is None:
            known = self._modal[id(model)] = any(isinstance(m, _MODAL) for m in modules_of(model))
        return known
