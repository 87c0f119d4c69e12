"""Train and eval mode of modules along one path through the code: what `.train()` and
`.eval()` left each module in, where, and on which pass of the loops then running.

`model.eval()` sets the module and every module under it to eval mode, `model.train()` (or
`train(True)`) back to training mode, `train(False)` to eval mode. The mode is a flag on
each module that stays until changed: set on one pass of a loop, it is still set on the
next (a validation pass at the end of an epoch leaves the model in eval mode for the next
epoch's training). Paths that disagree join to UNKNOWN, and rules stay silent there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import libcst as cst

from gradlint.analysis.values import UNKNOWN, Tri

# A pass of a loop: (the loop's id, the pass's own id). Each pass of each run of a loop has
# an id of its own, so that a mode set on an earlier pass can be told from one set on this.
LoopPass = tuple[int, int]


@dataclass(frozen=True)
class Left:
    """An eval mode set and not undone on some path: where, and what happened since."""

    at: cst.CSTNode  # the `.eval()`, or the call of a helper that did it
    passes: frozenset[LoopPass]  # the loop passes running when it was set
    evaluated: bool = False  # the module was run in it with autograd off since (validation)
    path: str | None = None  # the module, as named where `at` is

    def resumed(self, running: frozenset[LoopPass]) -> bool:
        """Whether training in this mode now is training resumed after an evaluation: the
        mode was set on an earlier pass of a loop running now (carried into this pass from
        the one before), or the model was evaluated in it."""
        if self.evaluated:
            return True
        current = dict(running)
        return any(loop in current and current[loop] != index for loop, index in self.passes)


@dataclass(frozen=True)
class TrainMode:
    """What the last `.train()`/`.eval()` on a module's path left it in."""

    training: Tri  # YES training mode, NO eval mode, UNKNOWN either (on every path)
    # The call that set it: `.eval()`, or the call of a helper that did.
    at: cst.CSTNode | None = None
    # The eval modes that some path still has in force (a may-set: a path that called
    # `.train()` since has none): those a training forward here would train in.
    left: frozenset[Left] = frozenset()

    def join(self, other: TrainMode) -> TrainMode:
        if self == other:
            return self
        return TrainMode(
            self.training.join(other.training),
            self.at if self.at is other.at else None,
            self.left | other.left,
        )


UNKNOWN_MODE = TrainMode(UNKNOWN)


def join_modes(a: dict[str, TrainMode], b: dict[str, TrainMode]) -> dict[str, TrainMode]:
    """A module set on one path only is in an unknown mode after both."""
    return {key: a.get(key, UNKNOWN_MODE).join(b.get(key, UNKNOWN_MODE)) for key in a.keys() | b}


def mode_of(path: str, modes: dict[str, TrainMode]) -> TrainMode | None:
    """The mode of the module at `path`: as set on it or on the nearest module above it;
    UNKNOWN where a module under it was set otherwise since (with the eval modes left on
    any of them); None where nothing was set."""
    found: TrainMode | None = None
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = modes.get(".".join(parts[:end]))
        if found is not None:
            break
    prefix = path + "."
    children = [mode for key, mode in modes.items() if key.startswith(prefix)]
    if found is None:
        return (
            TrainMode(UNKNOWN, None, frozenset().union(*(c.left for c in children)))
            if children
            else None
        )
    if any(child.training is not found.training for child in children):
        left = found.left.union(*(child.left for child in children))
        return TrainMode(UNKNOWN, None, left)
    return found


def set_on_or_above(path: str, modes: dict[str, TrainMode]) -> TrainMode | None:
    """The mode set on the module at `path` or on the nearest module above it; None where
    none was (not one made up from the modules under it, which are their own)."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = modes.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def note_evaluated(path: str, modes: dict[str, TrainMode]) -> None:
    """The module at `path` was run with autograd off in the eval mode it is in."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        found = modes.get(key)
        if found is not None:
            if found.left and not all(left.evaluated for left in found.left):
                left = frozenset(replace(left, evaluated=True) for left in found.left)
                modes[key] = replace(found, left=left)
            return


def set_mode(path: str, mode: TrainMode, modes: dict[str, TrainMode]) -> None:
    """`.train()`/`.eval()` on the module at `path`: it and every module under it; a module
    above it, set to the other mode before, is now in both."""
    prefix = path + "."
    for key in [key for key in modes if key.startswith(prefix)]:
        del modes[key]
    modes[path] = mode
    parts = path.split(".")
    for end in range(1, len(parts)):
        parent = ".".join(parts[:end])
        above = modes.get(parent)
        if above is not None and above.training is not mode.training:
            modes[parent] = TrainMode(UNKNOWN, None, above.left)


def forget_mode(path: str, modes: dict[str, TrainMode]) -> None:
    """Code we cannot follow had the module (or a new one took its name): its mode and the
    modes of those under it are no longer known."""
    if modes and mode_of(path, modes) is not None:
        set_mode(path, UNKNOWN_MODE, modes)
