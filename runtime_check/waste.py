"""Graphs recorded for nothing: a model run in eval mode with autograd on whose graph no
backward uses (GL301), totals that keep back-propagated graphs alive (GL302), and graphs
retained for a backward that never comes (GL305). Each is
held on the graph node it is about and settled when a backward goes through that node; what
is still unsettled when the trace ends is reported."""

from __future__ import annotations

import gc
import os
import sys
import weakref
from bisect import bisect
from collections import deque
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.frames import real_path, user_frame
from gradlint.runtime_check.graphs import (
    Pending,
    Site,
    freed_below,
    held_on,
    hold,
    holds_freed,
    is_freed,
    near,
    next_sequence,
    site_of,
    went_through,
)

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_MODULE_CALL = os.path.join(_TORCH_DIR, "nn", "modules", "module.py")
_OWN_DIR = os.path.dirname(__file__) + os.sep
MAX_OUT = 16


def _called_by_torch() -> bool:
    """Whether the module whose forward just ended was called by PyTorch's own code (a
    quantization convert, an ONNX export, an FX trace), not by the program."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(MAX_OUT):
        if frame is None:
            return False
        name = frame.f_code.co_filename
        if name != _MODULE_CALL and not name.startswith(_OWN_DIR):
            return name.startswith(_TORCH_DIR)
        frame = frame.f_back
    return False


CARRIED_OVER = (
    "retain_graph=True keeps each step's graph for the next step's backward, through state "
    "carried over with its graph: every backward goes back through all earlier steps"
)
EVAL_FORWARD = (
    "runs the model in eval mode with autograd on, and no backward uses the graph it "
    "records; run it under torch.no_grad()"
)
KEPT_GRAPH = (
    "keeps graphs that a backward already went through alive across iterations; "
    "accumulate loss.item() (or loss.detach())"
)
KEPT_LIST = (
    "combines tensors kept with graphs that a backward already went through: what kept "
    "them (a list of losses) holds every graph; keep loss.item() (or loss.detach())"
)
KEPT_ALIVE = (
    "keeps losses alive after their backward, each with its graph (in a list? a dict?): "
    "keep loss.item() (or loss.detach())"
)
KEPT_LOSSES = 3  # losses of one line alive at the end: more than the last one or two
MAX_BACKWARDS = 1_000_000  # where each backward fell in the order of graph nodes
KEPT_AFTER = (
    "keeps tensors computed from a graph a backward already went through (a metric of the "
    "model's output, kept for a log), each with a graph of its own that no backward uses: "
    "compute them from `.detach()`ed tensors, or keep `.item()`"
)
KEPT_SPENT = (
    "keeps tensors that a backward already went through (a loss's terms, kept for a log?), "
    "each holding its graph: keep `.item()` (or `.detach()`)"
)
MAX_COMBINED = 10_000  # tensors looked at per stack
MAX_HELD = 1000  # per line: enough to tell a loop from a one-off
# Unsettled runs of one line needed to report it: a total kept across iterations is unsettled
# on every one of them; a right sum may be once, if the program stopped before its backward.
THRESHOLD = {"GL301": 1, "GL302": 2, "GL305": 2}
KEPT_FOR_NOTHING = (
    "retain_graph=True keeps a graph that no later backward goes through; drop it, so "
    "the backward frees the graph"
)


class WasteWatch:
    def __init__(self, events: EventLog) -> None:
        self._events = events
        self._held: dict[tuple[str, tuple[str, int]], list[Pending]] = {}
        self._depth = 0  # module calls in progress: only the outermost is the user's
        self._differentiated = False  # a backward ran inside the outermost forward
        self._chained: set[tuple[str, int]] = set()  # lines whose sums build on their own
        # Lines of backwards that retain their graphs -> the optimizer steps taken (by then)
        # each time they ran: a line retaining for nothing step after step is a loop's.
        self._retaining: dict[tuple[str, int], set[int]] = {}
        self._steps = 0
        # The losses back-propagated, by the user's line that made them, as weak references
        # (file, the backward's line, the line that made the loss) -> the losses, as weak
        # references
        self._roots: dict[tuple[str, int, int], deque[weakref.ref[torch.Tensor]]] = {}
        self._backwards: list[int] = []  # the next node number at each backward, in order
        self._combined: set[int] = set()  # ids of kept losses a stack already named

    def _hold(self, code: str, node: Any) -> tuple[Pending, tuple[str, int]] | None:
        where = user_frame()
        if where is None:
            return None
        held = self._held.setdefault((code, where), [])
        if len(held) >= MAX_HELD:
            return None
        pending = Pending()
        hold(node, pending)
        held.append(pending)
        return pending, where

    def accumulated(self, result: torch.Tensor, before: int | None) -> None:
        """After an add: does the sum hold a graph a backward already freed? Reported only
        where sums at one line chain into each other (a total carried across iterations),
        not where a sum is made once from one step's losses."""
        node = result.grad_fn
        if node is not None and before is not None and holds_freed(node, before):
            pending = self._hold("GL302", node)
            if pending is not None and _reaches(node, self._held[("GL302", pending[1])]):
                self._chained.add(pending[1])

    def combined(self, args: tuple[Any, ...]) -> None:
        """After a stack or a concatenation: inputs kept with graphs that a backward already
        went through (losses kept in a list, then stacked for a log)."""
        values = args[0] if args and isinstance(args[0], (list, tuple)) else ()
        spent = sum(
            1
            for value in values[:MAX_COMBINED]
            if isinstance(value, torch.Tensor)
            and value.grad_fn is not None
            and is_freed(value.grad_fn)
        )
        if spent >= 2:
            where = user_frame()
            if where is not None:
                detail = f"{spent} of the tensors combined here still hold their graphs"
                self._events.add("GL302", where, KEPT_LIST, detail=detail)
                # (named here: not again as losses kept alive)
                if len(self._combined) < MAX_COMBINED:
                    self._combined.update(id(value) for value in values[:MAX_COMBINED])

    def stepped(self) -> None:
        self._steps += 1

    def back_propagated(self, root: Any, here: Site) -> None:
        """A loss a backward went through, watched by the backward's line (`here`, the
        user's stack): losses kept alive long after (appended to a list for a plot) keep
        their graphs' nodes too. Named where the function that runs the backward made it."""
        if len(self._backwards) < MAX_BACKWARDS:
            self._backwards.append(next_sequence())
        node = root.grad_fn if isinstance(root, torch.Tensor) else None
        made = site_of(node) if node is not None and here else ()
        if made:
            code, line = here[0]
            at = next((n for c, n in made if c is code), line)
            key = real_path(code.co_filename), line, at
            kept = self._roots.get(key)
            if kept is None:
                kept = self._roots[key] = deque(maxlen=MAX_HELD)
            kept.append(weakref.ref(root))

    def retained(self) -> Pending | None:
        """Before a backward that retains its graph: what the graph holds until a later
        backward uses it. (Reported where that never happens, again and again: every
        step keeps its graph until the next one replaces it.)"""
        where = user_frame()
        if where is None:
            return None
        self._retaining.setdefault(where, set()).add(self._steps)
        held = self._held.setdefault(("GL305", where), [])
        if len(held) >= MAX_HELD:
            return None
        pending = Pending(self._steps, where)
        held.append(pending)
        return pending

    def running(self) -> bool:
        """Whether a module's forward is running."""
        return self._depth > 0

    def outermost(self) -> bool:
        """Whether no module's forward is running: the next one is the user's model."""
        return self._depth == 0

    def forward_starts(self, module: Any, args: Any) -> None:
        if self._depth == 0:
            self._differentiated = False
        self._depth += 1

    def differentiated(self) -> None:
        """A backward (or `autograd.grad`) ran: inside a model's forward, one that needs
        autograd even in eval mode (forces as the gradient of an energy)."""
        if self._depth > 0:
            self._differentiated = True

    def inner_forward_ended(self) -> bool:
        """A module's forward ended: whether it ran inside another's (then there is nothing
        more to look at)."""
        self._depth -= 1
        return self._depth > 0

    def forward_ends(self, module: Any, args: Any, output: Any) -> None:
        """After the outermost module's forward (see `inner_forward_ended`)."""
        if self._depth or module.training or not torch.is_grad_enabled() or self._differentiated:
            return
        if _called_by_torch():
            return  # (a conversion or an export that runs the model: PyTorch's to settle)
        nodes = _output_nodes(output)
        if nodes:
            held = self._hold("GL301", nodes[0])
            if held is not None:
                # (A forward that returns several tensors, `probs, logits`: a backward
                # through any of them uses the graph.)
                for node in nodes[1:]:
                    hold(node, held[0])

    def settle(self) -> None:
        if any(
            sum(ref() is not None for ref in kept) >= KEPT_LOSSES for kept in self._roots.values()
        ):
            # Garbage that only the cycle collector frees (a class made per call, holding a
            # loss) is not kept by the program: free it before counting.
            gc.collect()
        for (path, _, line), kept in self._roots.items():
            alive = [
                ref
                for ref in kept
                if (loss := ref()) is not None
                and loss.grad_fn is not None
                and id(loss) not in self._combined
            ]
            if len(alive) >= KEPT_LOSSES:
                detail = (
                    f"{len(alive)} of the {len(kept)} losses made here that a backward went "
                    "through are still alive at the end"
                )
                event = self._events.add("GL302", (path, line), KEPT_ALIVE, detail=detail)
                event.count = len(alive)
        self._kept_after_use()
        for (code, where), held in self._held.items():
            unsettled = sum(not pending.propagated for pending in held)
            if code == "GL302" and where not in self._chained:
                continue
            crossed = code == "GL305" and all(p.crossed or not p.propagated for p in held)
            if code == "GL305" and crossed and unsettled < len(held):
                # Each kept graph walked again only after the optimizer stepped: state
                # carried across steps (a hidden state) holds every earlier step's graph.
                detail = (
                    f"{len(held) - unsettled} of {len(held)} graphs kept here were walked again "
                    "only by later steps' backwards, through state carried over with its "
                    "graph: `.detach()` that state at each step instead"
                )
                event = self._events.add(code, where, CARRIED_OVER, detail=detail)
                event.count = len(held)
                continue
            if code == "GL305" and (
                unsettled < len(held) or len(self._retaining.get(where, ())) < 2
            ):
                continue  # (a graph kept at this line was used: the line needs it, at times)
            if unsettled >= THRESHOLD[code]:
                messages = {"GL301": EVAL_FORWARD, "GL302": KEPT_GRAPH}
                message = messages.get(code, KEPT_FOR_NOTHING)
                detail = f"{unsettled} of {len(held)} never back-propagated"
                if code == "GL305":
                    detail = f"{unsettled} of {len(held)} graphs kept were never used again"
                event = self._events.add(code, where, message, detail=detail)
                event.count = unsettled

    def _kept_after_use(self) -> None:
        """Tensors alive at the end whose own graph no backward went through, computed from
        a graph that one did (a metric of a model's output, kept in a list for a log): more
        than a few made at one line keep a graph each, for nothing."""
        if not self._backwards:
            return  # no backward freed anything
        roots = {id(loss) for kept in self._roots.values() for ref in kept if (loss := ref())}
        skip = roots | self._combined
        with torch._C.DisableTorchFunction():
            kept, spent = _kept_after_use(self._backwards, skip)
            if any(len(rounds) >= KEPT_LOSSES for rounds in [*kept.values(), *spent.values()]):
                gc.collect()  # (garbage in cycles is not kept by the program)
                kept, spent = _kept_after_use(self._backwards, skip)
        for where, rounds in kept.items():
            # Made between several backwards, not one round's states left on a structure.
            if len(rounds) >= KEPT_LOSSES:
                detail = f"tensors made here between {len(rounds)} backwards are alive at the end"
                event = self._events.add("GL302", where, KEPT_AFTER, detail=detail)
                event.count = len(rounds)
        for where, rounds in spent.items():
            if len(rounds) >= KEPT_LOSSES:
                detail = (
                    f"tensors made here in {len(rounds)} rounds, each back-propagated since, "
                    "are alive at the end with their graphs"
                )
                event = self._events.add("GL302", where, KEPT_SPENT, detail=detail)
                event.count = len(rounds)


Rounds = dict[tuple[str, int], set[int]]


def _kept_after_use(backwards: list[int], skip: set[int]) -> tuple[Rounds, Rounds]:
    """Per line, the rounds (backwards before them) of the tensors it made that are alive:
    with a graph of their own that no backward went through, taken in from one it did; and
    inside a graph a backward freed (a loss's terms, kept for a log; not the losses
    themselves, in `skip`)."""
    kept: Rounds = {}
    spent: Rounds = {}
    for value in gc.get_objects():
        # (`type`, not `isinstance`: some objects warn when asked their class)
        if not issubclass(type(value), torch.Tensor):
            continue
        node = value.grad_fn
        if node is None:
            continue
        if went_through(node):
            if is_freed(node) and id(value) not in skip and (site := site_of(node)):
                code, line = site[0]
                key = real_path(code.co_filename), line
                spent.setdefault(key, set()).add(bisect(backwards, node._sequence_nr()))
            continue
        site = site_of(node)
        if site and freed_below(node):
            code, line = site[0]
            key = real_path(code.co_filename), line
            kept.setdefault(key, set()).add(bisect(backwards, node._sequence_nr()))
    return kept, spent


def _output_nodes(output: Any, most: int = 8) -> list[Any]:
    """The graph nodes of a forward's output tensors (the first few of a tuple or dict)."""
    if isinstance(output, torch.Tensor):
        return [output.grad_fn] if output.grad_fn is not None else []
    values = output.values() if isinstance(output, dict) else output
    if not isinstance(values, (list, tuple)) and not isinstance(output, dict):
        return []
    return [
        value.grad_fn
        for value in list(values)[:most]
        if isinstance(value, torch.Tensor) and value.grad_fn is not None
    ]


def _reaches(node: Any, earlier: list[Pending]) -> bool:
    """Whether a node's graph reaches, within a few nodes, one holding an earlier sum of the
    same line."""
    wanted = {id(pending) for pending in earlier[:-1]}
    return any(
        id(pending) in wanted
        for below in near(node, depth=5)  # (a running mean: `(mean * n + x) / (n + 1)`)
        if below is not node
        for pending in held_on(below)
    )
