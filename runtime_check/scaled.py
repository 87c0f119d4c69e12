"""GL213 at run time: gradients clipped while a GradScaler still has them multiplied by the
loss scale. The clip compares the scaled norm with `max_norm`, so it cuts every step down
to almost nothing (or, with a scale below one, not at all); `scaler.unscale_(optimizer)`
belongs before the clip."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog

SCALED_CLIP = (
    "clips gradients that the GradScaler still has multiplied by the loss scale; call "
    "`scaler.unscale_(optimizer)` before clipping"
)
MAX_OUT = 6  # frames looked through, out from the norm, for PyTorch's clipping code
MAX_CLIPPED = 100_000  # gradients remembered as clipped


class ScaledClips:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._clipped: dict[int, tuple[str, int]] = {}  # id of a gradient -> the clip's line

    def backward(self) -> None:
        """A backward: the gradients are made anew (or added to), scaled as the loss was."""
        self._clipped.clear()

    def norm(self, args: tuple[Any, ...], where: tuple[str, int] | None) -> None:
        """A norm taken of tensors: by `clip_grad_norm_`, of the gradients it clips."""
        if where is None or not args or not _in_clipping(sys._getframe(1)):
            return
        tensors = args[0] if isinstance(args[0], (list, tuple)) else (args[0],)
        if len(self._clipped) + len(tensors) > MAX_CLIPPED:
            return
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                self._clipped[id(tensor)] = where

    def unscaled(self, args: tuple[Any, ...]) -> None:
        """A GradScaler divides gradients by its scale (at `unscale_`, or in `step`): those
        clipped since the backward were clipped scaled."""
        if len(args) < 3 or not self._clipped or not isinstance(args[2], torch.Tensor):
            return
        with torch._C.DisableTorchFunction():
            if float(args[2].item()) == 1.0:
                return  # (a scale of one: scaled and unscaled are the same)
        lines = {self._clipped[id(g)] for g in args[0] if id(g) in self._clipped}
        for line in lines:
            detail = "the clip saw the norm times the loss scale; the step then unscaled them"
            self._events.add("GL213", line, SCALED_CLIP, detail=detail)


def _in_clipping(frame: FrameType | None) -> bool:
    for _ in range(MAX_OUT):
        if frame is None:
            return False
        if "clip_grad" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
