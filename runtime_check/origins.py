"""Where a leaf tensor came to be what an error says it is: where a parameter was made
(registered in its module), where a plain tensor was set to require grad, or made by a
factory with `requires_grad=True`. So that an error on a leaf (changed in place, its flag set
though it is an integer) names the code that made it so, not only the line that failed."""

from __future__ import annotations

from typing import Any

import torch
from gradlint.runtime_check.graphs import Site, user_stack
from torch.utils.weak import WeakIdKeyDictionary

MAX_ORIGINS = 100_000


class Origins:
    def __init__(self) -> None:
        # By identity (tensor -> the user's frames that made it a parameter, or required
        # its grad); held weakly.
        self._stacks: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def note(self, tensor: Any) -> None:
        """A parameter registered in a module, a plain tensor set to require grad, or one
        made requiring it: the user's frames now (the first time only)."""
        if (
            isinstance(tensor, torch.Tensor)
            and tensor not in self._stacks
            and len(self._stacks) < MAX_ORIGINS
        ):
            stack = user_stack()
            if stack:
                self._stacks[tensor] = stack

    def of(self, tensor: torch.Tensor) -> Site:
        """The user's frames that made a leaf (or the base of a view of one) what it is."""
        found = self._stacks.get(tensor)
        if found is None and tensor._base is not None:
            found = self._stacks.get(tensor._base)
        return found or ()  # type: ignore[no-any-return]
