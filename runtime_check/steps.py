"""Backwards and optimizer steps, watched through the backward calls and PyTorch's global
step hooks: what each step applies, and which parameters no step ever moves.

- GL201: gradients carried over from one step into the next because nothing cleared them.
- GL202: a step whose gradients were all cleared after the backward that made them.
- GL303: frozen parameters (`requires_grad=False`) that an optimizer holds, and that move.
- GL304: parameters a training backward gives gradients to, and that nothing updates.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.cuts import made_at
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import is_users, user_frame
from gradlint.runtime_check.graphs import made_by_model, note_model_output
from gradlint.runtime_check.layers import kept_computed, never_trained
from gradlint.runtime_check.modules import named_parameters_of, parameters_of

CARRIED = (
    "the gradients from before the last step were never cleared, so this step applies their "
    "sum; call optimizer.zero_grad() once per step"
)
LEFT_OVER = (
    "a network's loss leaves gradients on another network's parameters, and that network's "
    "next step applies them with its own"
)
DROPPED = (
    "clears gradients that no step has used yet, so the accumulated ones are lost; with "
    "gradient accumulation, call zero_grad() only after the step"
)
APPLIED = (
    "changes gradients that the optimizer step already applied, so the change has no "
    "effect; clip or scale gradients between backward() and step()"
)
NOTHING_TO_CLIP = (
    "clips no gradients: there are none yet (the backward comes later) or zero_grad() "
    "cleared them; clip between backward() and step()"
)
CLIPPED_PART = (
    "clips gradients that a later backward adds to before the step: the step applies a sum "
    "of clipped parts, not the clipped sum; clip once, after the last backward, right before "
    "the step"
)
CLEARED = (
    "clears the gradients between the backward and the step, so the step applies none; "
    "call zero_grad() before the backward (or after the step)"
)
FROZEN_STEPPED = (
    "this step changes parameters that are frozen (requires_grad=False): they still hold a "
    ".grad from before they were frozen; leave them out of the optimizer, or set their .grad "
    "to None"
)
FROZEN_CHANGED = (
    "frozen parameters (requires_grad=False) that this optimizer holds changed between its "
    "steps: an update applied to every parameter it holds moves them; leave them out of the "
    "optimizer"
)
UPSTREAM = (
    "back-propagates into the network that made its input, whose gradients are cleared before "
    "any step uses them: a wasted backward, or a leak; `.detach()` that input where this loss "
    "takes it in"
)
NOT_OPTIMIZED = (
    "gives gradients to parameters that no optimizer steps, while it trains others: leave "
    "them out of the graph (requires_grad_(False), .detach()) or give them to an optimizer"
)
LEAKED = (
    "gives gradients to another network's parameters, which no optimizer steps (they are "
    "updated otherwise): detach what this loss takes from that network, or compute it under "
    "torch.no_grad()"
)
PILED_UP = (
    "gives gradients to another network's parameters, which no optimizer steps or clears: "
    "they pile up unused; give that network to an optimizer if it should train, or else "
    "freeze it (requires_grad_(False)) or detach its output"
)
READ_SUMMED = (
    "adds to gradients an earlier backward left, which were read at line {read} and are read "
    "there again: the second read sees the sum of both; clear them (zero_grad) before this "
    "backward"
)
READ_TWICE = (
    "reads gradients that hold what an earlier backward left too: nothing cleared them "
    "since the last read here"
)
HELD_FROZEN = (
    "this optimizer holds parameters that are frozen (requires_grad=False) whenever it steps: "
    "it can never update them; build it from the parameters that require grad"
)
MAX_HELD_FROZEN = 1000
SAMPLE = 8  # elements of a parameter compared to tell whether it moved
FROZEN_CHECKED = 32  # frozen parameters per optimizer watched
MAX_CLIPPED = 100_000  # gradients noted as clipped, until the next step
MAX_GRADS = 100_000
EARLY_STEPS = 20  # steps of each optimizer checked one by one; later, one in LATER_EVERY
LATER_EVERY = 100


@dataclass
class _Swapped:
    """A module's parameter that backwards reached and no step took, swapped out since."""

    reached: _Reached
    moved: bool  # its values had changed by then
    label: str  # the holder's class, the place's name and the parameter's
    parent: weakref.ref[torch.nn.Module]


MAX_SWAPPED = 10_000


@dataclass
class _Read:
    """A user's read of a parameter's gradient, and what the program had done by then."""

    param: weakref.ref[Any]
    grad: weakref.ref[torch.Tensor]
    grad_id: int
    version: int
    measured: int  # backwards that measured something
    steps: int
    sets: int  # the parameter's `.grad` set or cleared
    clears: int  # gradients zeroed in place, by then


@dataclass
class _Reached:
    """A parameter that a backward gave a gradient to."""

    param: weakref.ref[torch.Tensor]
    first: torch.Tensor  # a few of its values when it was first reached
    grad: weakref.ref[torch.Tensor] | None = None  # its .grad after the latest backward
    version: int = 0  # ... and that gradient's version then
    where: tuple[str, int] | None = None  # that backward's line, until a step uses it
    stepped: bool = False  # an optimizer stepped it
    used: bool = False  # its gradient was cleared at some point: something used it
    rounds: int = 0  # how many steps apart backwards reached it (1: reached, no step since)
    seen_at_step: int = -1  # the count of steps when a backward last reached it
    # The user's two innermost frames at that backward: one helper's line (`def update(opt,
    # loss): loss.backward()`) is many backwards, told apart by their callers.
    call: tuple[Any, ...] = ()
    # That backward measured something: it kept its graph (one loss's gradient, then the
    # next), or gave gradients to an input no optimizer holds (an attack's perturbation, a
    # saliency map). The parameters' gradients were a by-product, cleared rightly.
    measured: bool = False


@dataclass
class _HeldFrozen:
    """The parameters an optimizer held frozen at its first step, while they stay so (and
    unmoved) at each of its steps: parameters it can never update."""

    where: tuple[str, int]  # the line that made the optimizer (or its first step's)
    params: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]]  # id -> (it, sample)
    steps: int = 1
    # One of them was unfrozen at a later step: a schedule that freezes and unfreezes the
    # optimizer's parameters (a warm-up, LISA's random layers), which needs them all held.
    scheduled: bool = False


@dataclass
class _Optimizer:
    steps: int = 0
    held: _HeldFrozen | None = None
    frozen: dict[int, torch.Tensor] = field(default_factory=dict)  # id(param) -> sample
    # ... and of the trainable parameters, right after a step
    trained: dict[int, torch.Tensor] = field(default_factory=dict)


class StepWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        # id(param) -> its .grad right after the last step, and the grad's version then
        self._after_step: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        # id(grad) -> its version right after it was zeroed in place
        self._zeroed: dict[int, int] = {}
        self._reached: dict[int, _Reached] = {}
        self._steps_taken = 0  # by every optimizer
        # Backwards that measured something (see `_Reached.measured`), and the user's reads
        # of gradients since the first
        self.measured = 0
        self._backward_calls = 0
        # id(optimizer) -> the clear, and the detail, of a step that began with none of the
        # gradients a backward gave its parameters
        self._found_none: dict[int, tuple[tuple[str, int], str, tuple[Any, ...]]] = {}
        # A parameter's gradient added to what another network's loss left on it: (the
        # backward's line, the gradient, its version then).
        self._left_over: dict[int, tuple[tuple[str, int], weakref.ref[torch.Tensor], int]] = {}
        # A leaf that requires grad was changed in place with autograd off, after a
        # backward and outside any optimizer's step: parameters updated by hand
        self._by_hand = False
        self._reads: dict[tuple[int, tuple[str, int]], _Read] = {}
        self._held: set[int] = set()  # ids of the parameters of optimizers that stepped
        self.grads_set: dict[int, int] = {}  # id(param) -> its `.grad` set or cleared, times
        self._zeroed_memory: dict[int, int] = {}  # data_ptr -> the count of clears then
        self._clears = 0
        # id(grad) -> (the grad, its version, the step's line) for the gradients the latest
        # step applied: `_after_step` by gradient, for in-place changes, which name only it
        self._applied: dict[int, tuple[weakref.ref[torch.Tensor], int, tuple[str, int]]] = {}
        # id(param) set to None, or id(grad) zeroed -> the user's line that cleared it
        self._cleared_at: dict[int, tuple[str, int]] = {}
        # The library's frame that clears gradients (`zero_grad`), and the user's line
        self._clearing: tuple[FrameType, tuple[str, int] | None] | None = None
        # id(parameter) -> a parameter a module swapped out untrained (see `swapped_out`)
        self._swapped: dict[int, _Swapped] = {}
        self._backwards: dict[tuple[str, int], set[int]] = {}  # line -> ids of params reached
        # Per backward line: the parameters whose gradients from it a step applied, and those
        # whose gradients from it were cleared unused.
        self._applied_from: dict[tuple[str, int], set[int]] = {}
        self._wasted_from: dict[tuple[str, int], set[int]] = {}
        # (id of a model, id of a model whose output it took in): the generator feeds the
        # discriminator, the actor the critic.
        self._feeds: set[tuple[int, int]] = set()
        self._optimizers: weakref.WeakKeyDictionary[Any, _Optimizer] = weakref.WeakKeyDictionary()
        self._held_frozen: list[_HeldFrozen] = []  # (kept after their optimizers are gone)
        # id(grad) -> (the grad, its version right after a clip changed it, the clip's
        # line), until the next step; and the ids of the gradients the backwards left
        self._clipped: dict[int, tuple[weakref.ref[torch.Tensor], int, tuple[str, int]]] = {}
        self._grads: set[int] = set()
        # Inside a step that runs no closure of the user's: only the optimizer's own update
        # ops run, and the tracer need not look at each one.
        self.inside = False

    def read(self, param: Any, grad: torch.Tensor, where: tuple[str, int]) -> None:
        """The user's code read `param.grad` at a line (once some backward measured
        something): the same line reading it again, after another measuring backward added
        to it, with no clear or step between, reads a sum where it meant one gradient (one
        loss's, or one attack step's). (A gradient viewed elsewhere is added to out of
        place: a new tensor, not a clear.)"""
        key = (id(param), where)
        seen = self._reads.get(key)
        sets = self.grads_set.get(id(param), 0)
        if (
            seen is not None
            and seen.param() is param
            and self.measured > seen.measured
            and self._steps_taken == seen.steps
            and sets == seen.sets
            and ((seen.grad() is grad and grad._version > seen.version) or seen.grad() is not grad)
            and self._zeroed.get(seen.grad_id, -1) < seen.version
            and self._zeroed_memory.get(grad.data_ptr(), -1) < seen.clears
        ):
            reached = self._reached.get(id(param))
            if reached is not None and reached.where is not None:
                self._events.add(
                    "GL201",
                    reached.where,
                    READ_SUMMED.format(read=where[1]),
                    detail=f"the read at line {where[1]} of gradients two backwards added up",
                )
                self._events.add(
                    "GL201",
                    where,
                    READ_TWICE,
                    detail=f"the backward at line {reached.where[1]} added to what it read "
                    "before; clear them after this read (`.grad.zero_()` or `= None`)",
                )
        if len(self._reads) < MAX_GRADS:
            self._reads[key] = _Read(
                weakref.ref(param),
                weakref.ref(grad),
                id(grad),
                grad._version,
                self.measured,
                self._steps_taken,
                sets,
                self._clears,
            )

    def zeroed(self, tensors: Any) -> None:
        """`grad.zero_()` / `torch._foreach_zero_(grads)`: cleared, in place."""
        where = None
        for tensor in tensors if isinstance(tensors, (list, tuple)) else (tensors,):
            if isinstance(tensor, torch.Tensor) and not tensor.is_inference():
                self._zeroed[id(tensor)] = tensor._version
                if self.measured:  # (`grad.data.zero_()`: another tensor, the same memory)
                    self._zeroed_memory[tensor.data_ptr()] = self._clears
                    self._clears += 1
                where = where or user_frame()
                if where is not None:
                    self._cleared_at[id(tensor)] = where

    def grad_cleared(self, tensor: Any, setter: FrameType) -> None:
        """`param.grad = None` in the frame `setter`, as `zero_grad()` clears: where, for a
        later explanation. (The user's line is found once per library's frame that clears:
        it cannot change while that frame runs.)"""
        if self.measured:  # (reads are watched)
            self.grads_set[id(tensor)] = self.grads_set.get(id(tensor), 0) + 1
        if isinstance(tensor, torch.Tensor) and id(tensor) in self._reached:
            known = self._clearing
            if known is not None and known[0] is setter:
                where = known[1]
            else:
                where = user_frame(2)
                self._clearing = None if is_users(setter.f_code.co_filename) else (setter, where)
            if where is not None:
                self._cleared_at[id(tensor)] = where

    def changed(self, tensors: Any) -> None:
        """After an in-place change: is it of gradients a step already applied, untouched
        since (clipping or scaling them after the step, where it changes nothing)? Or a
        clip of gradients, noted in case a backward adds to them before the step."""
        many = isinstance(tensors, (list, tuple))
        first = (tensors[0] if tensors else None) if many else tensors
        if (
            not self._by_hand
            and self._backward_calls
            and isinstance(first, torch.Tensor)
            and first.requires_grad
            and first.is_leaf
            and not torch.is_grad_enabled()
        ):
            self._by_hand = True
        if id(first) in self._grads and _clipping():
            where = user_frame()
            if where is not None:
                for tensor in tensors if many else (tensors,):
                    if isinstance(tensor, torch.Tensor) and len(self._clipped) < MAX_CLIPPED:
                        self._clipped[id(tensor)] = (weakref.ref(tensor), tensor._version, where)
        if not self._applied:
            return
        for tensor in tensors if isinstance(tensors, (list, tuple)) else (tensors,):
            applied = self._applied.get(id(tensor))
            if applied is None or not isinstance(tensor, torch.Tensor) or tensor.is_inference():
                continue
            if applied[0]() is tensor and tensor._version == applied[1] + 1:
                where = user_frame()
                if where is not None:
                    detail = f"the step at line {applied[2][1]} already applied them"
                    self._events.add("GL213", where, APPLIED, detail=detail)
                self._applied.clear()
                return

    def clipped_nothing(self) -> None:
        """A gradient clip that found no gradient at all: before the backward, or after
        the gradients were cleared."""
        where = user_frame()
        if where is not None:
            self._events.add("GL213", where, NOTHING_TO_CLIP)

    def backward(
        self,
        leaves: list[torch.Tensor],
        where: tuple[str, int] | None,
        create_graph: bool,
        call: tuple[Any, ...] = (),
        retained: bool = False,
    ) -> None:
        """After a backward: the leaves it gave gradients to. Gradients of an earlier
        backward at the same line, cleared before any step used them, were thrown away."""
        if where is None:
            return
        ids = self._backwards.setdefault(where, set())
        dropped: tuple[str, int] | None = None
        clipped: tuple[str, int] | None = None
        # (With no optimizer stepped after a first backward, parameters are updated by
        # hand, from the gradients the user's code reads: each backward measures them.)
        by_hand = self._by_hand and not self._optimizers
        self._backward_calls += 1
        measured = (
            retained
            or by_hand
            or any(
                not isinstance(leaf, torch.nn.Parameter) and id(leaf) not in self._held
                for leaf in leaves
            )
        )
        self.measured += measured
        for leaf in leaves:
            grad = leaf.grad
            if grad is None or not leaf.requires_grad:
                continue
            if len(self._grads) < MAX_GRADS:
                self._grads.add(id(grad))
            clip = self._clipped.get(id(grad))
            if (
                clip is not None
                and clip[0]() is grad
                and grad._version > clip[1]
                and self._zeroed.get(id(grad), -1) <= clip[1]
            ):
                clipped = clip[2]
            reached = self._reached.get(id(leaf))
            if reached is None or reached.param() is not leaf:
                reached = self._reached[id(leaf)] = _Reached(weakref.ref(leaf), _sample(leaf))
            elif reached.grad is not None and not create_graph:
                # (`create_graph` makes each gradient a new tensor: no sign of a clear.)
                if reached.grad() is not grad:  # set to None, and made anew by this backward
                    reached.used = True
                    key = id(leaf)
                elif self._zeroed.get(id(grad), -1) > reached.version:
                    reached.used = True
                    key = id(grad)
                else:
                    key = None
                    if (
                        reached.where is not None
                        and reached.stepped
                        and reached.seen_at_step != self._steps_taken
                        and reached.where == where
                        and not reached.measured
                        and not measured
                    ):
                        # Added to what an earlier backward left, though an optimizer
                        # stepped in between and not this one: that backward was another
                        # network's loss, and its gradients here were never cleared. (Said
                        # at the step that applies them, if one does before a clear.)
                        if len(self._left_over) < MAX_GRADS:
                            self._left_over[id(leaf)] = (where, weakref.ref(grad), grad._version)
                # (Of an optimizer's parameter: an update by hand clears what it used.)
                # (Not when another optimizer stepped since that backward: it was that
                # network's loss, and these gradients a side effect, cleared rightly, as a
                # trainer that runs each optimizer's loss in turn does.)
                if (
                    key is not None
                    and reached.where == where
                    and reached.call == call
                    and reached.stepped
                    and not reached.measured
                    and reached.seen_at_step == self._steps_taken
                ):
                    dropped = dropped or self._cleared_at.get(key, where)
                elif key is not None and reached.where is not None:
                    # Another backward's gradients, cleared before a step applied them.
                    self._wasted_from.setdefault(reached.where, set()).add(id(leaf))
            reached.grad, reached.version, reached.where = weakref.ref(grad), grad._version, where
            reached.call, reached.measured = call, measured
            if reached.seen_at_step != self._steps_taken:
                reached.rounds += 1
                reached.seen_at_step = self._steps_taken
            ids.add(id(leaf))
        if dropped is not None:
            detail = f"the backward at line {where[1]} gave them; the step comes later"
            self._events.add("GL202", dropped, DROPPED, detail=detail)

        if clipped is not None:
            detail = f"the backward at line {where[1]} adds to them after the clip"
            self._events.add("GL213", clipped, CLIPPED_PART, detail=detail)
            self._clipped.clear()

    def before(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # `args` are the step's own, the optimizer first: `step(self, closure=None)`.
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        self._clearing = None
        self.inside = closure is None
        params = _params(optimizer)
        state = self._optimizers.setdefault(optimizer, _Optimizer())
        state.steps += 1
        if state.steps == 1 and len(self._held) < MAX_GRADS:
            self._held.update(id(p) for p in params)
        where = user_frame()
        if where is None:
            return
        carried = 0
        cleared: list[tuple[tuple[str, int], tuple[str, int]]] = []  # (backward, clear)
        kept = False
        for param in params:
            grad = param.grad
            last = self._after_step.get(id(param))
            if grad is not None and last is not None:
                same, version = last
                # The very tensor the last step used, added to since, and never zeroed.
                if same() is grad and grad._version != version and id(grad) not in self._zeroed:
                    carried += 1
            reached = self._reached.get(id(param))
            if reached is not None and reached.grad is not None and reached.where is not None:
                at = self._cleared(param, grad, reached.grad())
                if at is not None:
                    cleared.append((reached.where, at))
                else:
                    kept = True
        if carried:
            self._events.add("GL201", where, CARRIED, detail=f"{carried} parameters")
        if cleared and not kept:
            (backward, at), count = cleared[0], len(cleared)
            detail = (
                f"the backward at line {backward[1]} gave {count} parameters gradients; "
                f"the step at line {where[1]} found none"
            )
            # (Judged when the step ends: a step that runs backwards of its own, on the
            # losses it is given, makes the gradients it applies.)
            grads = tuple((g, g._version if g is not None else 0) for g in (p.grad for p in params))
            self._found_none[id(optimizer)] = (at, detail, grads)
        if state.steps == 1:
            state.held = self._frozen_at_first_step(optimizer, params, where)
        elif state.held is not None:
            state.held.steps = state.steps
            if _checked(state.steps):
                _still_frozen(state.held)
        if _checked(state.steps):
            # Changed between steps by an update of every parameter (a weight decay by
            # hand), which moved trainable ones too: a momentum encoder's moving average
            # changes only the frozen ones, and is the program's own business.
            moved = (
                _moved(state.frozen, params) if _moved(state.trained, params, frozen=False) else 0
            )
            if moved:
                self._events.add(
                    "GL303", where, FROZEN_CHANGED, detail=f"{moved} frozen parameters changed"
                )
            state.frozen = _samples(params)

    def _frozen_at_first_step(
        self, optimizer: Any, params: list[torch.Tensor], where: tuple[str, int]
    ) -> _HeldFrozen | None:
        frozen = [
            param
            for param in params
            if not param.requires_grad and isinstance(param, torch.nn.Parameter)
        ]
        if not frozen or len(self._held_frozen) >= MAX_HELD_FROZEN:
            return None
        held = _HeldFrozen(
            made_at(optimizer, sys._getframe(1)) or where,
            {id(p): (weakref.ref(p), _sample(p)) for p in frozen},
        )
        self._held_frozen.append(held)
        return held

    def _cleared(
        self, param: torch.Tensor, grad: torch.Tensor | None, after_backward: torch.Tensor | None
    ) -> tuple[str, int] | None:
        """Where the gradient a backward left was cleared (set to None, or zeroed in place
        and not added to since), if it was: the clearing line, or else the step's."""
        if grad is None:
            return self._cleared_at.get(id(param)) or user_frame()
        if grad is after_backward and self._zeroed.get(id(grad)) == grad._version:
            return self._cleared_at.get(id(grad)) or user_frame()
        return None

    def after(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> list[Any]:
        """Note the step; return the parameters it may have changed (those with a grad)."""
        sys._getframe().f_trace_lines = False  # (a loop over every parameter: no line events)
        params = _params(optimizer)
        state = self._optimizers.get(optimizer)
        if state is not None and state.frozen:
            moved = _moved(state.frozen, params)
            if moved:
                where = user_frame()
                if where is not None:
                    self._events.add(
                        "GL303", where, FROZEN_STEPPED, detail=f"{moved} frozen parameters"
                    )
            state.frozen = _samples(params)
            state.trained = _samples(params, frozen=False)
        self.inside = False
        self._steps_taken += 1
        none = self._found_none.pop(id(optimizer), None)
        if none is not None and all(
            param.grad is grad and (grad is None or grad._version == version)
            for param, (grad, version) in zip(params, none[2], strict=False)
        ):
            self._events.add("GL202", none[0], CLEARED, detail=none[1])
        stepped = []
        where = user_frame()
        self._applied.clear()
        self._clipped.clear()
        self._grads.clear()
        left: tuple[str, int] | None = None
        for param in params:
            entry = self._left_over.pop(id(param), None)
            if (
                entry is not None
                and param.grad is not None
                and entry[1]() is param.grad
                and self._zeroed.get(id(param.grad), -1) < entry[2]
            ):
                left = entry[0]
            reached = self._reached.get(id(param))
            if reached is not None:
                if reached.where is not None and param.grad is not None:
                    self._applied_from.setdefault(reached.where, set()).add(id(param))
                reached.stepped = True
                reached.where = None
            grad = param.grad
            if grad is None:
                self._after_step.pop(id(param), None)
                continue
            ref, version = weakref.ref(grad), grad._version
            self._after_step[id(param)] = (ref, version)
            self._zeroed.pop(id(grad), None)
            if where is not None:
                self._applied[id(grad)] = (ref, version, where)
            stepped.append(param)
        if left is not None:
            detail = (
                f"the backward at line {left[1]} added to gradients an earlier loss left on "
                "these parameters, which another optimizer's step did not clear: clear every "
                "model's gradients (`model.zero_grad()`) before each backward"
            )
            self._events.add("GL201", left, LEFT_OVER, detail=detail)
        return stepped

    def holders(self) -> dict[int, int]:
        """The parameters of the optimizers that stepped, by id, each to its optimizer's
        number."""
        return {
            id(p): number
            for number, optimizer in enumerate(list(self._optimizers))
            for p in _params(optimizer)
        }

    def applied(self) -> dict[tuple[str, int], set[int]]:
        """The backwards' lines, each to the parameters whose gradients from there a step
        applied."""
        return self._applied_from

    def optimized(self) -> set[int]:
        """The ids of the parameters of the optimizers that stepped (those the program has
        let go of by the end, an optimizer local to `main()`, included)."""
        return self._held | {
            id(p) for optimizer in list(self._optimizers) for p in _params(optimizer)
        }

    def model_starts(self, model: torch.nn.Module, args: Any) -> None:
        """Before the forward of a model (the outermost module running): the models whose
        outputs it takes in."""
        for value in args if isinstance(args, tuple) else ():
            node = value.grad_fn if isinstance(value, torch.Tensor) else None
            made = made_by_model(node) if node is not None else None
            if made is not None and made != id(model):
                self._feeds.add((id(model), made))

    def model_ends(self, model: torch.nn.Module, output: Any) -> None:
        values = output if isinstance(output, (tuple, list)) else (output,)
        for value in values:
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                note_model_output(value.grad_fn, model)

    def _frozen_throughout(self, models: list[torch.nn.Module]) -> None:
        """GL303: optimizers that held parameters frozen at each of their steps (two at
        least: not a program that stopped before it unfroze them)."""
        reported = [h for h in self._held_frozen if h.steps >= 2 and h.params and not h.scheduled]
        names = param_names(models) if reported else {}
        for held in reported:
            count = len(held.params)
            # (Parameters of no module the program ran are counted, not named.)
            listed = sorted(names[i] for i in held.params if i in names)[:3]
            rest = count - len(listed)
            shown = ", ".join(listed) + (f" and {rest} more" if listed and rest else "")
            detail = f"{count} parameters, frozen at each of its {held.steps} steps"
            detail += f": {shown}" if shown else ""
            self._events.add("GL303", held.where, HELD_FROZEN, detail=detail)

    def _upstream(self, models: list[torch.nn.Module], owner: dict[int, int]) -> None:
        """Backwards whose gradients a step applied to one model's parameters, and whose
        gradients to the model that made that model's input were cleared unused: the loss
        went on into the network behind (a discriminator's loss into the generator, a
        critic's into the actor). (A generator's loss goes through the discriminator on its
        way: that it reaches the discriminator and wastes those gradients is no leak.)"""
        names: dict[int, str] | None = None
        for where, wasted in self._wasted_from.items():
            applied = self._applied_from.get(where, set()) - wasted
            producers = {owner.get(i) for i in wasted}
            consumers = {owner.get(i) for i in applied}
            if len(producers) != 1 or len(consumers) != 1 or None in producers | consumers:
                continue
            (producer,), (consumer,) = producers, consumers
            if (consumer, producer) in self._feeds and (producer, consumer) not in self._feeds:
                names = names if names is not None else param_names(models)
                shown = sorted(names[i] for i in wasted if i in names)
                listed = ", ".join(shown[:3]) + (
                    f" and {len(shown) - 3} more" if len(shown) > 3 else ""
                )
                detail = f"{len(wasted)} parameters" + (f": {listed}" if listed else "")
                self._events.add("GL204", where, UPSTREAM, detail=detail)

    def swapped_out(self, parent: torch.nn.Module, name: str, old: torch.nn.Module) -> None:
        """Before `parent` puts another module in the place of `old` as `name`: the
        parameters of `old` that backwards reached and no step took, as they are now (a
        vocabulary's reduced embedding, put back for the full one after training)."""
        for inner, param in named_parameters_of(old):
            reached = self._reached.get(id(param))
            if reached is None or reached.stepped or not param.requires_grad:
                continue
            moved = not torch.equal(_sample(param), reached.first)
            label = f"{type(parent).__name__}.{name}.{inner}"
            if len(self._swapped) < MAX_SWAPPED:
                self._swapped[id(param)] = _Swapped(reached, moved, label, weakref.ref(parent))

    def settle(
        self, models: list[torch.nn.Module], containers: Sequence[torch.nn.Module] = ()
    ) -> None:
        """At the end: the training backwards (those some step used) that also gave
        gradients to parameters nothing used: no optimizer stepped them, and either their
        values never moved or their gradients were never cleared. Part of a model whose
        other parameters train (GL304), or of another network (GL204, GL304); and the
        optimizers that held frozen parameters throughout (GL303). Only parameters
        reached again after a step, so that a program stopped before the step meant for
        them is not judged."""
        self._clearing = None
        owner = {id(p): id(model) for model in models for p in parameters_of(model)}
        self._upstream(models, owner)
        self._frozen_throughout([*models, *containers])
        if self._steps_taken:
            # A parameter that got gradients, hidden behind a tensor computed from it: no
            # module registers it, and no optimizer of the program stepped it (GL206).
            held = set(owner) | self.optimized()
            stepped = {i for i, reached in self._reached.items() if reached.stepped}

            def orphan(param: torch.nn.Parameter) -> bool:
                return param.grad is not None and id(param) not in held | stepped

            for line, message, detail in kept_computed(models, orphan):
                self._events.add("GL206", line, message, detail=detail)
        idle: dict[int, tuple[bool, bool]] = {}  # id(param) -> (values moved, grads cleared)
        for i, reached in self._reached.items():
            param = reached.param()
            # Reached again after a step that left it alone: a loop that trains, not one
            # stopped (by an error) before the step meant for it.
            if param is None or reached.stepped or reached.rounds < 2 or not param.requires_grad:
                continue
            moved = not torch.equal(_sample(param), reached.first)
            if not (moved and reached.used):  # updated by hand, gradients and all
                idle[i] = moved, reached.used
        swapped = {
            i: gone
            for i, gone in self._swapped.items()
            if gone.reached.rounds >= 2 and not gone.reached.stepped and gone.parent() is not None
        }
        for i, gone in swapped.items():
            if not (gone.moved and gone.reached.used):
                idle[i] = gone.moved, gone.reached.used
        if not idle:
            return
        # Reached by a backward that trains other parameters, yet held out of the sight of
        # `parameters()`: a layer no optimizer could have been given (GL206).
        training = set().union(
            *(
                ids
                for ids in self._backwards.values()
                if any(self._reached[i].stepped for i in ids if i in self._reached)
            )
        )
        for line, message, detail in never_trained(models, set(idle) & training):
            self._events.add("GL206", line, message, detail=detail)
        names: dict[int, str] = {}
        trained: set[int] = set()  # ids of params in a model some of whose params train
        # (The models run, and the modules that hold them: a module whose methods, not
        # its forward, run its parts, `module.training_step(x)`.)
        # (An optimizer that steps holds some of it, though they may be frozen since.)
        optimized = self.optimized()
        for model in [*models, *containers]:
            params = {id(p): name for name, p in named_parameters_of(model)}
            prefix = type(model).__name__
            for i, name in params.items():
                names.setdefault(i, f"{prefix}.{name}")
            if any(
                (i in self._reached and self._reached[i].stepped) or i in optimized for i in params
            ):
                trained.update(params)
                # (and what it trained with in a place it has since given back)
                trained.update(i for i, gone in swapped.items() if gone.parent() is model)
        for i, gone in swapped.items():
            names.setdefault(i, gone.label)
        for where, ids in self._backwards.items():
            # A training backward: some step used it, or it reaches a model an optimizer
            # holds part of (whose step found no gradients: they went elsewhere).
            if not any(self._reached[i].stepped for i in ids if i in self._reached) and not (
                optimized and any(i in trained for i in ids)
            ):
                continue
            # (A module's parameters only: a plain tensor that requires grad, such as a
            # memory bank updated by hand, is no network.)
            unused = sorted((i for i in ids if i in idle and i in names), key=lambda i: names[i])
            # Part of a model that trains, yet never updated: left out of its optimizer.
            # In another network, moved yet no optimizer's: kept up to date otherwise (a
            # target network, a teacher), which this loss should not reach. (Another network
            # that never moves is left alone: an adversary or a probe whose training the
            # program may just not show.)
            # Another network that never moved, whose gradients piled up, never cleared, and
            # whose output a model that trains takes in, or the loss (a target network run
            # with autograd on, a perceptual loss's network): trained through by this loss,
            # yet no optimizer of the program has it (one that did would clear them; a
            # discriminator trained elsewhere moves).
            piled = [i for i in unused if idle[i] == (False, False) and i not in trained]
            for code, group, message in (
                ("GL304", [i for i in unused if i in trained], NOT_OPTIMIZED),
                ("GL204", [i for i in unused if idle[i][0] and i not in trained], LEAKED),
                ("GL304", piled, PILED_UP),
            ):
                if group:
                    shown = ", ".join(names[i] for i in group[:3])
                    more = f" and {len(group) - 3} more" if len(group) > 3 else ""
                    self._events.add(
                        code, where, message, detail=f"{len(group)} parameters: {shown}{more}"
                    )


def param_names(models: list[torch.nn.Module]) -> dict[int, str]:
    names: dict[int, str] = {}
    for model in models:
        for name, param in named_parameters_of(model):
            names.setdefault(id(param), f"{type(model).__name__}.{name}")
    return names


def _clipping() -> bool:
    """Whether PyTorch's gradient clipping (`clip_grad_norm_`, `clip_grad_value_`) is on the
    stack, a few frames out."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            return False
        if "clip_grad" in frame.f_code.co_filename and frame.f_code.co_name.startswith("clip"):
            return True
        frame = frame.f_back
    return False


def _checked(step: int) -> bool:
    return step <= EARLY_STEPS or step % LATER_EVERY in (0, 1)


def _sample(param: torch.Tensor) -> torch.Tensor:
    """A few of a tensor's values, spread over it: enough to tell an update (which moves
    every element) from none."""
    flat = param.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // SAMPLE)][:SAMPLE].clone()


def _samples(params: list[torch.Tensor], frozen: bool = True) -> dict[int, torch.Tensor]:
    """Samples of a few of the frozen (or the trainable) parameters, by id. A module's
    parameters only: a plain tensor an optimizer holds without requires_grad (a master
    copy given its .grad by hand) is not frozen."""
    chosen = [
        param
        for param in params
        if param.requires_grad is not frozen and isinstance(param, torch.nn.Parameter)
    ][:FROZEN_CHECKED]
    return {id(param): _sample(param) for param in chosen}


def _still_frozen(held: _HeldFrozen) -> None:
    """At a step: forget the parameters unfrozen since, or moved (a momentum encoder's
    moving average), or gone."""
    for i, (ref, sample) in list(held.params.items()):
        param = ref()
        if param is None or param.requires_grad or not torch.equal(_sample(param), sample):
            del held.params[i]
            held.scheduled = held.scheduled or (param is not None and param.requires_grad)


def _moved(
    samples: dict[int, torch.Tensor], params: list[torch.Tensor], frozen: bool = True
) -> int:
    """How many of the sampled parameters (still frozen, for frozen ones) changed since
    they were sampled."""
    return sum(
        1
        for param in params
        if id(param) in samples
        and not (frozen and param.requires_grad)
        and not torch.equal(_sample(param), samples[id(param)])
    )


def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [
        param
        for group in optimizer.param_groups
        for param in group["params"]
        if isinstance(param, torch.Tensor)
    ]
