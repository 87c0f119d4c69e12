"""`trace()`: watch a program's autograd through PyTorch's public hooks while it runs."""

from __future__ import annotations

import os
import sys
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
from gradlint.runtime_check.combined import CombinedWatch
from gradlint.runtime_check.cuts import (
    OFF_FOR_GOOD,
    CutLog,
    aliases,
    assigned_here,
    freezing_loop,
    sibling_call,
    undecorated_sibling,
    weight_editor,
    with_freezing_loops,
)
from gradlint.runtime_check.errors import classify
from gradlint.runtime_check.events import EventLog
from gradlint.runtime_check.explain import (
    backward_at,
    came_from,
    dict_built,
    handed_in,
    handed_out,
    lines_of,
    non_leaf_site,
    second_backward,
    sequence,
    unfrozen,
)
from gradlint.runtime_check.flags import assignments, flagged_modules, misspelt_flags
from gradlint.runtime_check.frames import is_users, real_path, user_frame
from gradlint.runtime_check.freezes import FreezeLog
from gradlint.runtime_check.graphs import (
    MODULE_SITES,
    QUIET_LIBRARIES,
    SITE,
    Pending,
    Site,
    changed_since_saved,
    children,
    hold,
    is_view_node,
    mark_inner,
    mark_made,
    mark_propagated,
    next_sequence,
    note_handed,
    note_kept,
    note_made,
    op_site,
    reaches_leaf,
    site_of,
    user_stack,
    view_taken,
    went_through,
)
from gradlint.runtime_check.inference import bound_at as model_bound_at
from gradlint.runtime_check.inference import inference_models
from gradlint.runtime_check.inplace import Change, InplaceLog, changes_in_place
from gradlint.runtime_check.layers import file_of, users_object
from gradlint.runtime_check.modes import ModeWatch
from gradlint.runtime_check.modules import buffers_of, modules_of, parameters_of
from gradlint.runtime_check.networks import NetworkWatch
from gradlint.runtime_check.optimizers import (
    bound_at,
    construction,
    empty_causes,
    made_inline,
    trainable_at_hand,
    used_up,
    user_frames,
)
from gradlint.runtime_check.origins import Origins
from gradlint.runtime_check.replaced import ReplacedFrozen
from gradlint.runtime_check.scaled import ScaledClips
from gradlint.runtime_check.sources import (
    assigned_in_block,
    changed_name,
    element_line,
    flag_off_after,
    grad_switched_off,
    numbers_in_sums,
    settings_after,
    type_test_around,
)
from gradlint.runtime_check.steps import StepWatch, param_names
from gradlint.runtime_check.waste import WasteWatch
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.overrides import TorchFunctionMode


class Tracer:
    """What one traced run saw: events, the lines that ran, and faults of the tracer itself."""

    def __init__(self, lines: bool = True) -> None:
        self.events = EventLog()
        self.faults: list[str] = []
        self.lines: dict[str, set[int]] = {}
        # Lines only where no other tracer (a debugger, pytest-cov) holds sys.settrace.
        self._lines = _LineCollector() if lines and sys.gettrace() is None else None
        # id(module) -> the user's line that made it part of its parent (`self.act = ...`)
        self.layer_sites: dict[int, tuple[str, int]] = {}
        self.inplace = InplaceLog(self.layer_sites)
        self.steps = StepWatch(self.events)
        self.waste = WasteWatch(self.events)
        self.scaled = ScaledClips(self.events)
        self.networks = NetworkWatch(self.events)
        self.combined = CombinedWatch(self.events)
        self.modes = ModeWatch(self.events)
        self.replaced = ReplacedFrozen(self.events)
        self.origins = Origins()
        self.freezes = FreezeLog(self.events)
        self.cuts = CutLog(self.freezes)
        self._models: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()  # outermost run
        # The outermost modules run with autograd on since the last backward (a loss with no
        # graph may come from modules whose parameters are all frozen)
        self._ran: list[weakref.ref[torch.nn.Module]] = []
        self._ran_params: tuple[int, set[int]] = (0, set())  # (len(_ran), their parameters)
        # id -> `.data` of a tensor that requires grad, taken while a graph was pending
        # id(`t.data`) -> it and `t`, for the tensors whose graphs wait for a backward
        self._aliases: dict[int, tuple[weakref.ref[torch.Tensor], weakref.ref[torch.Tensor]]] = {}
        # ... and for parameters whose graphs do not (read with autograd on)
        self._data_reads: dict[
            int, tuple[weakref.ref[torch.Tensor], weakref.ref[torch.Tensor]]
        ] = {}
        # The graph nodes of ops that combined such a `.data` with what depends on it, and
        # the user's lines, until a backward goes through them (the latest few)
        self._data_mixed: deque[tuple[Any, tuple[str, int]]] = deque(maxlen=MAX_MIXED)
        # Every module that had a layer registered on it while traced, and the lines that
        # set `requires_grad` of a tensor: for the freezes that did nothing.
        self._built: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
        self._flag_lines: set[tuple[str, int]] = set()
        # Loss terms cut from their graphs, summed into a loss: (settled by a backward
        # through the sum, the cut, the sum)
        self._dead: list[tuple[Pending, tuple[str, int], tuple[str, int]]] = []
        self._handles: list[Any] = []
        self._quiet: _Aside | None = None  # the watch set aside while an optimizer steps
        self.watch = _Watch(self)
        # The library's module whose forward runs with the watch set aside, if one does,
        # that setting aside, and the number of the first graph node its ops may make; per
        # running forward, what was kept beside it (its inputs, their versions)
        self._set_aside: tuple[Any, _Aside, int | None] | None = None
        self._asides: list[tuple[tuple[torch.Tensor, ...], tuple[int, ...]] | None] = []
        self._libraries: dict[int, tuple[weakref.ref[Any], bool]] = {}
        # id(library's module) -> it, and its weights (see `_library_weights`)
        self._backward_done: int | None = None  # the number of the next node at the last backward
        # A graph cut where autograd was turned off by a call, not a block: (why, what the
        # backward found), for the call to be found among the lines that ran
        self._off_for_good: tuple[str, str, Site] | None = None

    def explain(
        self,
        error: BaseException,
        where: tuple[str, int] | None = None,
        args: tuple[Any, ...] = (),
    ) -> None:
        """Note a PyTorch autograd error at the user's line that raised it (`where`, or the
        innermost user frame now)."""
        found = classify(str(error))
        if found is None:
            return
        code, why = found
        detail = str(error).splitlines()[0]
        if where is None and code in _AT_THE_MISUSE:
            where = _innermost_user_line(error)  # (in a custom Function's backward, say)
        where = where or user_frame()
        if code == "GL108":
            changes = self.inplace.culprits(str(error))
            if args:
                self._saved_before_change(args[0], where, why, changes)
            at = f"; {backward_at(where)}" if where is not None else ""
            detail = detail.split(" Hint:")[0]
            for number, change in enumerate(changes):
                again = (
                    f", and again at line {changes[-1].where[1]}"
                    if number < len(changes) - 1
                    else ""
                )
                if change.layer is not None:
                    text = (
                        f"changed by this layer's in-place op at line {change.where[1]}{again}{at}"
                    )
                    self.events.add(code, change.layer, why, detail=text)
                else:
                    text = f"the tensor changed here after it was saved{again}{at}: {detail}"
                    self.events.add(code, change.where, why, detail=text)
                    # (Inside a helper: the calls on the way, where it could wait.)
                    for line in _calls_out(change.stack, user_stack()) if not change.step else ():
                        text = (
                            f"calls code that changes in place (at line {change.where[1]}) a "
                            f"tensor saved for the {backward_at(where)}: call it after that "
                            "backward, or have it change a copy"
                        )
                        self.events.add(code, line, why, detail=text)
            stepped = [c.where for c in changes if c.step and c.where != where]
            if stepped and where is not None:
                # Parameters an optimizer stepped before this backward: the order of the two
                # is a place for the fix.
                self.events.add(
                    code,
                    where,
                    why,
                    detail=f"back-propagates a graph that saved parameters the step at line "
                    f"{stepped[-1][1]} changed since: run this backward before that step",
                )
            if changes:
                return
        if code == "GL107" and args:
            modules = self._modules_in_reach()
            for line, text in second_backward(args[0], where, detail, modules):
                self.events.add(code, line, why, detail=text)
            for line, name, call in unfrozen(args[0], self.steps.optimized(), self.origins.of):
                by_call = f" by the call at line {call[1]}" if call is not None else ""
                text = (
                    f"`{name}` kept this default, so the parameters made{by_call} were not "
                    "frozen (no optimizer holds them): what they computed kept a graph, which "
                    f"the earlier backward freed; pass `{name}` to freeze them, or compute "
                    "with them under torch.no_grad()"
                )
                self.events.add(code, line, why, detail=text)
            return
        if code == "GL101" and args and isinstance(args[0], torch.Tensor) and where is not None:
            for line, name in handed_in(args[0]):
                self.events.add(
                    code,
                    line,
                    why,
                    detail=f"hands a tensor that requires grad to {name}(), which converts it "
                    f"to NumPy at line {where[1]}: pass it `.detach()`ed",
                )
        if code in _ORIGINS and args and isinstance(args[0], torch.Tensor):
            self._origin(code, why, args[0], where)
        if code == "GL103" and args:
            if self._no_graph(args[0], where, why):
                return
        if code == "GL106" and args:
            made = [line for line in self.cuts.inference_origin(args) if line != where]
            at = f" at line {where[1]}" if where is not None else ""
            saved = "saved for backward" in detail
            use = "used by autograd" if saved else "changed in place"
            for line in made:
                text = f"{self.cuts.why(line) or 'made here under inference mode'}; {use}{at}"
                self.events.add(code, line, why, detail=text)
            for line, text in self._inference_context(made, use):
                self.events.add(code, line, why, detail=text)
            name = changed_name(*where) if where is not None and not saved else None
            for path, start in made if name is not None else ():
                for line in assigned_in_block(path, start, name):
                    text = (
                        f"assigns `{name}` a tensor made under inference mode, which line "
                        f"{where[1]} changes in place outside it: keep `.item()` of it (or "
                        "clone it after the block)"
                    )
                    self.events.add(code, (path, line), why, detail=text)
            if made and "saved for backward" in detail:
                return
        if where is not None:
            self.events.add(code, where, why, detail=detail)

    def _origin(
        self, code: str, why: str, tensor: torch.Tensor, where: tuple[str, int] | None
    ) -> None:
        """Where the tensor of an error on a leaf (or on a model's output, for NumPy) came
        from: the lines that made it, and the call that handed it on to the failing line."""
        if code == "GL101":
            # (A leaf that requires grad is meant to: the conversion is the place.)
            node = _graph_node(tensor)
            origin = site_of(node) if node is not None else ()
            built = dict_built(tensor, origin) if origin else None
            if built is not None:
                at = f"line {where[1]}" if where is not None else "the failing line"
                text = (
                    f"puts a tensor that requires grad into the dict that reaches the "
                    f"conversion to NumPy at {at}: store `.detach()` (or `.item()`) of it"
                )
                self.events.add(code, built, why, detail=text)
            out = handed_out(origin, user_stack()) if origin and built is None else None
            if out is not None and out != where:
                at = f"line {where[1]}" if where is not None else "the failing line"
                text = (
                    f"returns a tensor that requires grad to the code that converts it to "
                    f"NumPy at {at}: return `.detach()` (or `.item()`) of it"
                )
                self.events.add(code, out, why, detail=text)
            if node is not None and went_through(node):
                return  # (a loss a backward went through: it was meant to have a graph)
            if node is not None:
                self._inference_model(why, tensor, where)
        else:
            if code == "GL102" and where is not None:
                if tensor._is_view():
                    self._view_of_leaf(why, tensor, where)
                self._weight_editor(why, where)
                late = flag_off_after(*where)
                if late is not None:
                    text = (
                        f"turns requires_grad off only after line {where[1]} changed the "
                        "tensor in place, which raised: turn it off before the change (or make "
                        "the change under `torch.no_grad()`)"
                    )
                    self.events.add(code, (where[0], late), why, detail=text)
            # (GL105 on a computed tensor, not a leaf: where it was computed.)
            node = _graph_node(tensor) if code == "GL105" else None
            origin = site_of(node) if node is not None else self.origins.of(tensor)
        if code == "GL105" and where is not None and node is None:
            self._dtype_unchecked(why, where)
        if not origin:
            return
        made, call = came_from(origin, user_stack(), where)
        at = f"line {where[1]}" if where is not None else "the failing line"
        computed = code == "GL105" and node is not None
        written = computed and any(n in node.name() for n in ("CopySlices", "CopyBackwards"))
        key = ("GL105 written" if written else "GL105 computed") if computed else code
        made_text, call_text = _ORIGINS[key]
        kind = node.name().removesuffix("Backward0").removesuffix("Backward1") if computed else ""
        for line in made:
            self.events.add(code, line, why, detail=made_text.format(at=at, kind=kind))
        if code == "GL101":
            self._undecorated(why, origin, at)
        if call is not None and made:
            self.events.add(code, call, why, detail=call_text.format(at=at, made=made[-1][1]))

    def _inference_model(
        self, why: str, tensor: torch.Tensor, where: tuple[str, int] | None
    ) -> None:
        """A tensor converted to NumPy, made by a model in eval mode whose parameters all
        require grad though nothing trains them: where the program binds that model."""
        at = f"line {where[1]}" if where is not None else "the failing line"
        with _unwatched():
            models = inference_models(tensor, list(self._models), self.steps.optimized())
        for model in models[:1]:
            for line in model_bound_at(model, sys._getframe(1)):
                text = (
                    f"binds here the model, in eval mode, that made the tensor {at} converts "
                    "to NumPy: its parameters require grad though nothing trains them, so "
                    "its outputs carry a graph; `.requires_grad_(False)` it here, or run it "
                    "under `torch.no_grad()`"
                )
                self.events.add("GL101", line, why, detail=text)

    def _undecorated(self, why: str, origin: Site, at: str) -> None:
        """A tensor converted to NumPy, made in a method with autograd on whose class runs
        another method under a grad-mode decorator: that method's `def`, for the same."""
        running = {code for code, _ in user_stack()}
        for code, _ in origin:
            if code in running or code.co_name == "forward":
                continue
            path = real_path(code.co_filename)
            found = undecorated_sibling(path, code.co_firstlineno, code.co_name)
            if found is not None:
                line, other, decorator = found
                text = (
                    f"runs with autograd on and makes the tensor that {at} converts to NumPy, "
                    f"though `{other}` beside it runs under the decorator at line {decorator}: "
                    "decorate this one too, if nothing is trained through it"
                )
                self.events.add("GL101", (path, line), why, detail=text)
                return

    def _settings_after_freeze(self, line: tuple[str, int]) -> list[tuple[tuple[str, int], str]]:
        """For a line that froze parameters, when nothing trainable came of it: the settings
        at their defaults that later calls were to make something trainable with again
        (which layers to adapt), each at its default's line."""
        if not self.freezes.froze(line):
            return []
        found = []
        for default, name, call, value in settings_after(*line):
            did = "made nothing trainable" if not value else "matched nothing to train"
            text = (
                f"gives `{name}` its default here ({value!r}), with which the call at line "
                f"{call} {did} after the freeze at line {line[1]}: set it"
            )
            found.append(((line[0], default), text))
        return found

    def _dtype_unchecked(self, why: str, where: tuple[str, int]) -> None:
        """requires_grad set on an integer leaf: the loop over parameters, or the type test,
        around the line, which let it through (where a dtype test belongs)."""
        loop = freezing_loop(where)
        if loop is not None:
            text = (
                f"sets requires_grad (at line {where[1]}) of every parameter it goes through, "
                "some of a dtype that cannot require grad (quantized?): go through the "
                "floating-point ones only (`if p.is_floating_point()`)"
            )
            self.events.add("GL105", loop, why, detail=text)
        test = type_test_around(*where)
        if test is not None:
            text = (
                f"lets through to the requires_grad at line {where[1]} any tensor, integer "
                "ones too: test `.is_floating_point()` here as well"
            )
            self.events.add("GL105", (where[0], test), why, detail=text)

    def _weight_editor(self, why: str, where: tuple[str, int]) -> None:
        """A leaf that requires grad changed in place inside a function that only edits
        tensors (no backward, no step in it): its `def`, where `@torch.no_grad()` belongs."""
        line = weight_editor(*where)
        if line is not None and line != where[1]:
            text = (
                f"changes a leaf that requires grad in place (at line {where[1]}) with autograd "
                "on, and trains nothing itself: decorate it with `@torch.no_grad()`"
            )
            self.events.add("GL102", (where[0], line), why, detail=text)

    def _view_of_leaf(self, why: str, view: torch.Tensor, where: tuple[str, int]) -> None:
        """A view of a leaf that requires grad, changed in place: the line that made the
        view, where a `.clone()` gives the change a tensor of its own."""
        node = _graph_node(view)
        line = None
        here = user_stack()
        # (A view of a view, `b[:, 4] += ...` on `b = bias.view(...)`: the first taken
        # at a line of its own.)
        for _ in range(MAX_VIEWS):
            made = site_of(node) if node is not None else ()
            line = next(iter(lines_of(made, here)), None) if made else None
            below = children(node) if node is not None and line == where else []
            if not below or not is_view_node(below[0]):
                break
            node = below[0]
        if line is not None and line != where:
            text = (
                f"makes here a view of a leaf that requires grad, which line {where[1]} "
                "changes in place: `.detach()` it here to edit the values with autograd "
                "out of it, or `.clone()` it to change a copy"
            )
            self.events.add("GL102", line, why, detail=text)

    def _inference_context(
        self, made: list[tuple[str, int]], use: str
    ) -> list[tuple[tuple[str, int], str]]:
        """Where, beside the lines that made an inference tensor, the fix may belong: the
        test that decides whether to rebuild the cache that kept it, and, for an in-place
        change, the user's call that runs it outside the inference block when a sibling
        call ran that block (`generate(...)`, then `cache.reset()`)."""
        found: list[tuple[tuple[str, int], str]] = []
        for line in made:
            context = self.cuts.inference_context(line)
            if context is None:
                continue
            if context.guard is not None:
                found.append(
                    (
                        context.guard,
                        f"decides whether to rebuild what line {line[1]} made under inference "
                        f"mode, and lets it be {use} later: test `.is_inference()` here too, "
                        "or build it under `torch.no_grad()`",
                    )
                )
            if use == "changed in place":
                sibling = sibling_call(context.stack, user_stack())
                if sibling is not None:
                    found.append(
                        (
                            sibling,
                            f"calls code that changes in place, outside inference mode, what "
                            f"line {line[1]} made under it: run this under "
                            "`torch.inference_mode()` too, or make that under `torch.no_grad()`",
                        )
                    )
        return found

    def _saved_before_change(
        self, roots: Any, where: tuple[str, int] | None, why: str, changes: list[Change]
    ) -> None:
        """The lines whose ops saved a tensor for the failed backward that was changed in
        place since (where the change should have waited, or a copy been saved), and the
        line where the failed backward's graph took that part in after the change (where a
        `.detach()` or a fresh forward belongs)."""
        here = user_stack()
        changed = min((c.sequence for c in changes if c.sequence is not None), default=None)
        this = backward_at(where)
        for stale in changed_since_saved(roots):
            # (A node made inside one torch call, `a @ b`'s, has the site of the node above.)
            saver = stale.node if site_of(stale.node) else next(iter(stale.above), None)
            saved = lines_of(site_of(saver), here) if saver is not None else []
            if not saved:
                continue
            for line in lines_of(view_taken(stale.node, saved[0]), here)[:1]:
                self.events.add(
                    "GL108",
                    line,
                    why,
                    detail=f"takes a view here, which the op at line {saved[0][1]} saved for "
                    f"the {this}; its base was changed in place before that ran: `.clone()` "
                    "the view",
                )
            for line in saved:
                self.events.add(
                    "GL108",
                    line,
                    why,
                    detail=f"saved a tensor here for the {this}, which was changed in place "
                    "before it ran: back-propagate first, or change a copy",
                )
            # The nearest node above of another line, made after the change: where this
            # graph took in the stale part (taken in before the change, the change is the
            # place for the fix).
            entry: list[tuple[str, int]] = []
            for node in stale.above:
                lines = lines_of(site_of(node), here)
                if lines and lines[-1] != saved[-1]:
                    if changed is not None and sequence(node) >= changed:
                        entry = lines
                    break
            for line in entry:
                self.events.add(
                    "GL108",
                    line,
                    why,
                    detail=f"takes in the part made at line {saved[-1][1]}, whose saved "
                    f"tensor was changed in place since: `.detach()` it here, or compute it "
                    "anew",
                )
            # Where the function that made it, since returned, handed it out (`return
            # fake_out` of a discriminator's step, used by the generator's after it).
            out = handed_out(site_of(saver), here) if saver is not None else None
            if out is not None and out not in saved:
                self.events.add(
                    "GL108",
                    out,
                    why,
                    detail=f"returns the part made at line {saved[0][1]}, whose saved tensor "
                    f"is changed in place before the {this} that uses it: return what is "
                    "computed after the change (or `.detach()` it)",
                )
            # Where that part was handed on as it is, under another name (`real_ref =
            # hr_output`, reused after the step that changed what it saved).
            for node in [saver, *list(stale.above)[:MAX_ABOVE]]:
                named = aliases(node, sys._getframe(1), set(saved)) if node is not None else []
                for line, name in named:
                    self.events.add(
                        "GL108",
                        line,
                        why,
                        detail=f"hands the part made at line {saved[-1][1]} on as `{name}`, "
                        "with a saved tensor changed in place since: compute it anew here "
                        "(or `.detach()` it)",
                    )
                if named:
                    break

    def explain_uncaught(self, error: BaseException) -> None:
        """The error that ended the program, at the innermost user line of its traceback,
        unless a watched call already explained it on its way out."""
        where = None
        tb = error.__traceback__
        if getattr(error, _EXPLAINED, False):
            return
        while tb is not None:
            if tb.tb_frame.f_code is _Watch.__torch_function__.__code__:
                return
            if is_users(tb.tb_frame.f_code.co_filename):
                where = real_path(tb.tb_frame.f_code.co_filename), tb.tb_lineno
            last = tb
            tb = tb.tb_next
        if where is None:
            return
        found = classify(str(error))
        if found is not None and found[0] == "GL109" and self._refused(error, last, found[1]):
            return
        self.explain(error, where)

    def _refused(self, error: BaseException, last: Any, why: str) -> bool:
        """An optimizer refused its parameters: name the lines that explain why, and the
        line that built it; False where none is known."""
        frames = user_frames(error)
        built = construction(frames)
        at = f" at line {built[1]}" if built is not None else ""
        causes: list[tuple[tuple[str, int], str]] = []
        if "non-leaf" in str(error):
            # A tensor computed from others: where it was made (and the call to a helper
            # that made it, as the optimizer's line sees it).
            here = tuple((frame.f_code, line) for frame, line in frames)
            for line in lines_of(non_leaf_site(last.tb_frame), here):
                causes.append((line, f"made here from other tensors; given to the optimizer{at}"))
        else:
            causes.extend(empty_causes(frames))
            given = last.tb_frame.f_locals.get("params")
            if not trainable_at_hand(frames):
                text = f"froze parameters here; the optimizer{at} was left with none"
                frozen = with_freezing_loops(self.freezes.sites())
                causes.extend((line, text) for line in frozen)
                for line in frozen:
                    causes.extend(self._settings_after_freeze(line))
            elif built is not None and hasattr(type(given), "__next__"):
                for line in used_up(frames, given):
                    causes.append(
                        (
                            line,
                            "goes through the one-pass iterator of parameters before handing "
                            "it on: the optimizer then finds it used up; make it a list first",
                        )
                    )
                inline = made_inline(frames, given)
                if inline is not None:
                    causes.append(
                        (
                            inline,
                            "makes the one-pass iterator of parameters that a helper goes "
                            "through before the optimizer gets it: pass `list(...)` here",
                        )
                    )
                for line in bound_at(frames, given):
                    causes.append(
                        (
                            line,
                            "keeps the one-pass iterator of parameters under a name, to be "
                            "gone through more than once: make it `list(...)` here",
                        )
                    )
                # A one-pass iterator (a `filter`, a generator) of trainable parameters that
                # are there, empty by now
                causes.append(
                    (
                        built,
                        "given a one-pass iterator of parameters (a `filter` or a generator) "
                        "that was used up before it got here: make it a list where it is made",
                    )
                )
        if not causes:
            return False
        for line, detail in causes:
            self.events.add("GL109", line, why, detail=detail)
        innermost = (real_path(frames[0][0].f_code.co_filename), frames[0][1]) if frames else None
        for line in dict.fromkeys(x for x in (built, innermost) if x is not None):
            self.events.add("GL109", line, why, detail=str(error).splitlines()[0])
        return True

    def after(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> None:
        """What a torch call that returned did, noted for later explanations. (Runs after
        every torch call the program makes: the common case, a plain op whose result
        requires grad, is kept short.)"""
        sys._getframe().f_trace_lines = False  # (see `_Watch.__torch_function__`)
        kind = _KINDS.get(func)
        if kind is None:
            kind = _KINDS[func] = _kind_of(func)
        if kind == _FACT:
            return
        if kind == _NORMS:
            self.scaled.norm(args, user_frame())
            kind = _PLAIN
        elif kind == _UNSCALES:
            self.scaled.unscaled(args)
            kind = _CHANGES
        if kind == _EXITS:
            if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
                self.cuts.exited()
            return
        if kind == _READS_DATA or kind == _SETS_DATA:
            if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
                self._through_data(args[0], result if kind == _READS_DATA else None)
                if kind == _READS_DATA:
                    self.cuts.note(args, result)  # (`.data` cuts the graph, as `.detach()`)
            return
        if kind == _READS_GRAD:
            if result is None and args:
                self._non_leaf_grad(args[0])
            return
        if kind == _PLAIN:
            if kwargs and kwargs.get("inplace") is True:  # a layer built `inplace=True`
                self.inplace.note(args, layer=True)
        elif kind == _BACKWARD:
            self.waste.differentiated()
            if args:
                creates = _creates(func, args, kwargs)
                retains = creates or _retains(func, args, kwargs)
                where = user_frame()
                kept = self.waste.retained() if retains and not creates else None
                here = user_stack()
                # (Stepping over a library's module needs its weights' `.grad`s to say
                # what it reached: a backward of all its graph, not `autograd.grad`.)
                gradients = (
                    func.__name__ == "backward" and kwargs.get("inputs") is None and len(args) < 5
                )
                leaves = mark_propagated(args[0], not retains, here, kept, gradients)
                self.networks.reached(leaves)
                if self._data_mixed:
                    self._data_mixed_used()
                if func.__name__ == "backward":  # `autograd.grad` leaves `.grad` alone
                    self.scaled.backward()
                    self.steps.backward(leaves, where, creates, here[:2], retains)
                    self.combined.backward(args[0], where, retains)
                    self.waste.back_propagated(args[0], here)
                    if where is not None:
                        with _unwatched():
                            self._built_from_numbers(leaves, where)
                elif not creates and where is not None:
                    self._gradients_without_graph(result, where)
                self._backward_done = next_sequence()
                self._ran.clear()
                self._ran_params = (0, set())
                self._aliases.clear()
                self._data_reads.clear()
                _DATA_READ[0] = False
                self.cuts.backward_ran()
        elif kind == _FACTORY:
            if func.__name__ == "tensor" and _clipping_nothing():
                self.steps.clipped_nothing()
            self.cuts.made(args, result)
            if isinstance(result, torch.Tensor) and result.requires_grad:
                self.origins.note(result)  # (`torch.zeros(..., requires_grad=True)`)
            return
        elif kind == _SETS_FLAG:
            if len(args) == 2:  # `tensor.requires_grad = flag`
                where = self._flagged(args[0], bool(args[1]))
                if args[1] and not isinstance(args[0], torch.nn.Parameter):
                    self.origins.note(args[0])
                if where is not None and len(self._flag_lines) < 10_000:
                    self._flag_lines.add(where)
            return
        elif kind == _FREEZES:
            if args:  # `tensor.requires_grad_(flag=True)`
                flag = args[1] if len(args) > 1 else kwargs.get("requires_grad", True)
                self._flagged(args[0], bool(flag))
                if flag and not isinstance(args[0], torch.nn.Parameter):
                    self.origins.note(args[0])
        elif kind == _COMBINES:
            self.waste.combined(args)
        elif kind != _ADDS:
            self.inplace.note(args)
            changed = _graph_node(args[0]) if args and isinstance(args[0], torch.Tensor) else None
            if changed is not None:
                note_made(changed)  # (a leaf written into this way is one no more)
            if kind == _ZEROES:
                if args:
                    self.steps.zeroed(args[0])
            elif args:
                self.steps.changed(args[0])
                if self._aliases:
                    self._alias_changed(args[0])
        if isinstance(result, torch.Tensor):
            if result.requires_grad:
                node = _graph_node(result)
                if node is not None:
                    note_made(node)
                    if _DATA_READ[0]:
                        self.data_mixed(args, node)
                    if kind == _ADDS or kind == _IADDS:
                        self.waste.accumulated(result, self._backward_done)
                        if result.numel() == 1:
                            self._dead_terms(args, node, kind == _IADDS)
            elif args:
                self.cuts.note(args, result)
        elif isinstance(result, (tuple, list)):
            # (`max(dim=1)`, `chunk`, `topk`: each part, as a single result would be.)
            for item in result:
                if isinstance(item, torch.Tensor):
                    if item.grad_fn is not None:
                        note_made(item.grad_fn)
                    elif args and not item.requires_grad:
                        self.cuts.note(args, item)

    def _no_graph(self, tensor: Any, where: tuple[str, int] | None, why: str) -> bool:
        """Name where the graph of a tensor that a backward found without one was cut;
        whether any line was found."""
        after = f"the {backward_at(where)} had none to go through"
        causes = self.cuts.cut_of(tensor)
        texts = {line: self.cuts.why(line) or "the graph was cut here" for line in causes}
        if not self.cuts.cut_somewhere(tensor):
            # Made only from tensors that never required grad (an input, a target): the
            # layers of the model that ran, if it has only frozen ones, say more.
            frozen = self._frozen_layers()
            exits = self.cuts.exits()
            if frozen:
                causes = frozen
                texts = dict.fromkeys(frozen, "its parameters are all frozen")
            elif exits:
                causes = exits
                texts = dict.fromkeys(exits, _EXITED)
        for line in with_freezing_loops(causes):
            text = texts.get(line, "the graph was cut here")
            self.events.add("GL103", line, why, detail=f"{text}; {after}")
            if text is OFF_FOR_GOOD and self._off_for_good is None:
                self._off_for_good = (why, after, self.cuts.off_stack(line))
            for name, default, call in self.cuts.defaults_behind(line):
                self.events.add(
                    "GL103",
                    call,
                    why,
                    detail=f"leaves `{name}` at its default ({default!r}) in this call, which "
                    f"froze the parameters at line {line[1]}: pass it; {after}",
                )
            for at, text in self._settings_after_freeze(line):
                self.events.add("GL103", at, why, detail=f"{text}; {after}")
            for option, defined in self.cuts.options_behind(line):
                self.events.add(
                    "GL103",
                    defined,
                    why,
                    detail=f"the option `{option}`, as given or by its default here, froze "
                    f"the parameters at line {line[1]}; {after}",
                )
        if causes:
            modules = self._modules_in_reach()
            for line, name in self.cuts.kept_on(modules, set(causes)):
                text = (
                    f"keeps a tensor made with autograd off on the module as `self.{name}` "
                    "(a cache?), and later uses get no graph from it: rebuild it where "
                    "autograd is on, or clear it after the no_grad code"
                )
                self.events.add("GL103", line, why, detail=f"{text}; {after}")
        computed = assigned_here(tensor, where, causes) if causes else None
        if computed is not None and computed not in causes:
            # (The name the backward is called on, assigned from a call in this function:
            # `loss = dice(mask, onehot)`, the place to take the tensor that has a graph.)
            lines = ", ".join(str(line) for _, line in causes)
            text = f"computes here what the {backward_at(where)} finds with no graph, from "
            text += f"what was cut at line {lines}: compute it from tensors that keep theirs"
            if any("autograd is off" in texts.get(line, "") for line in causes):
                text += " (under `torch.enable_grad()`, if a caller turns autograd off)"
            self.events.add("GL103", computed, why, detail=text)
        if causes and where is not None and where not in causes:
            lines = ", ".join(str(line) for _, line in causes)
            text = f"the tensor has no graph to go back through: cut at line {lines}"
            self.events.add("GL103", where, why, detail=text)
        return bool(causes)

    def _modules_in_reach(self) -> list[Any]:
        """The models run, the modules built, and the modules (and other objects of the
        user's classes: a hook's store) that the user's frames on the stack hold (a module
        used only through its methods): where a cache may be kept."""
        found: dict[int, Any] = {id(m): m for m in [*self._models, *self._built]}
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            if is_users(frame.f_code.co_filename):
                for value in list(frame.f_locals.values())[:MAX_LOCALS]:
                    if isinstance(value, torch.nn.Module) or users_object(value):
                        found.setdefault(id(value), value)
            frame = frame.f_back
        return list(found.values())

    def _through_data(self, tensor: torch.Tensor, alias: Any) -> None:
        """`.data` of a tensor that requires grad, while a graph that may have saved it waits
        for its backward (inside a forward, or after one): a new value set through it, or
        a change in place of what it returns, is one autograd cannot see, and the backward
        computes with the changed values (GL208)."""
        if not torch.is_grad_enabled():
            return
        if not self._pending(tensor):
            # (A parameter's `.data` read with autograd on, as a gradient step taken with
            # create_graph=True might: watched for what it is combined with.)
            reads = self._data_reads
            if tensor.is_leaf and isinstance(alias, torch.Tensor) and len(reads) < MAX_ALIASES:
                reads[id(alias)] = (weakref.ref(alias), weakref.ref(tensor))
                _DATA_READ[0] = True
            return
        if alias is None:
            where = user_frame()
            if where is not None:
                self.events.add("GL208", where, _THROUGH_DATA, detail=_DATA_SET_DETAIL)
        elif isinstance(alias, torch.Tensor) and len(self._aliases) < MAX_ALIASES:
            self._aliases[id(alias)] = (weakref.ref(alias), weakref.ref(tensor))
            _DATA_READ[0] = True

    def _pending(self, tensor: torch.Tensor) -> bool:
        """Whether a graph that no backward went through yet may hold a tensor, while a model
        runs or after one ran: it was made by one, or it is a parameter of a model run since
        the last backward."""
        if not (self._ran or self.waste.running()):
            return False
        node = tensor.grad_fn
        if node is not None:
            # (A view of a parameter, taken to edit it (`bias.view(3, -1).data[:, 4] += b`),
            # is no graph anything waits on.)
            base = tensor._base
            return not went_through(node) and not (base is not None and base.is_leaf)
        # (The parameters of the models run, gathered once per model added: a loop over
        # every parameter's `.data` would otherwise gather them once per parameter.)
        if self._ran_params[0] != len(self._ran):
            params = {
                id(param)
                for ref in self._ran
                if (model := ref()) is not None
                for param in parameters_of(model)
            }
            self._ran_params = (len(self._ran), params)
        return id(tensor) in self._ran_params[1]

    def _alias_changed(self, tensors: Any) -> None:
        for tensor in tensors if isinstance(tensors, (list, tuple)) else (tensors,):
            refs = self._aliases.get(id(tensor))
            if refs is not None and refs[0]() is tensor:
                where = user_frame()
                if where is not None:
                    self.events.add("GL208", where, _THROUGH_DATA, detail=_DATA_CHANGED_DETAIL)
                return

    def data_mixed(self, args: tuple[Any, ...], node: Any) -> None:
        """An op that takes `p.data` of a parameter beside a tensor whose graph reaches that
        parameter (`p.data - lr * g`, `g` a gradient taken with create_graph=True): it wants
        gradients through `p`, and `.data` cuts the direct path. Held until a backward goes
        through what it made (GL208); a value only written back through `.data` is not."""
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        for value in tensors:
            refs = self._aliases.get(id(value)) or self._data_reads.get(id(value))
            if refs is None or refs[0]() is not value:
                continue
            source = refs[1]()
            if source is None or not source.is_leaf:
                continue
            others = [_graph_node(t) for t in tensors if t is not value and t.requires_grad]
            if any(n is not None and reaches_leaf(n, source) for n in others):
                where = user_frame()
                if where is not None:
                    self._data_mixed.append((node, where))
                return

    def _data_mixed_used(self) -> None:
        """After a backward: the ops of `data_mixed` it went through."""
        for node, where in list(self._data_mixed):
            if went_through(node):
                self.events.add("GL208", where, _DATA_IN_GRAPH, detail=_DATA_MIXED_DETAIL)
                self._data_mixed.remove((node, where))

    def _built_from_numbers(self, leaves: list[torch.Tensor], where: tuple[str, int]) -> None:
        """A backward that reaches no trainable parameter of the models run since the last
        one, after plain numbers were taken out of tensors that require grad: the loss was
        rebuilt from those numbers (`loss - log_prob.item() * reward` on a tensor that
        requires grad), and trains nothing (GL211)."""
        exits = [line for line in self.cuts.exits() if line[1] in numbers_in_sums(line[0])]
        if not exits:
            return
        reached = {id(leaf) for leaf in leaves}
        trainable = [
            param
            for ref in self._ran
            if (model := ref()) is not None
            for param in parameters_of(model)
            if param.requires_grad
        ]
        if trainable and not any(id(param) in reached for param in trainable):
            detail = (
                f"the loss the backward at line {where[1]} goes through was built from it, "
                "and reaches none of the parameters of the models that ran: keep the tensor "
                "(drop `.item()`) in the loss"
            )
            for line in exits:
                self.events.add("GL211", line, _BUILT_FROM_NUMBERS, detail=detail)

    def _flagged(self, tensor: Any, requires_grad: bool) -> tuple[str, int] | None:
        """`requires_grad` of a tensor was set: a freeze cuts what is computed from it
        alone. The user's line that set it."""
        where = user_frame()
        self.freezes.flag(tensor, requires_grad, where)
        self.cuts.frozen(tensor, requires_grad, where)
        return where

    def _frozen_layers(self, most: int = 4) -> list[tuple[str, int]]:
        """Where the layers were set of the models run since the last backward that have
        parameters, none of them trainable (`Embedding.from_pretrained(freeze=True)`)."""
        found: dict[tuple[str, int], None] = {}
        for ref in self._ran:
            model = ref()
            params = list(parameters_of(model)) if model is not None else []
            if model is None or not params or any(p.requires_grad for p in params):
                continue
            for layer in modules_of(model):
                site = self.layer_sites.get(id(layer))
                if site is not None and any(True for _ in layer.parameters(recurse=False)):
                    found[site] = None
        return list(found)[:most]

    def _non_leaf_grad(self, tensor: Any) -> None:
        """`.grad` read of a tensor computed from others (GL214): autograd keeps gradients
        only for leaves, so it is None, unless `retain_grad()` asked for it."""
        if (
            isinstance(tensor, torch.Tensor)
            and tensor.requires_grad
            and not tensor.is_leaf
            and not tensor.retains_grad
        ):
            where = user_frame()
            if where is not None:
                node = tensor.grad_fn
                made = site_of(node) if node is not None else ()
                at = f" (made at line {made[0][1]})" if made else ""
                self.events.add(
                    "GL214",
                    where,
                    "`.grad` of a non-leaf tensor is None: autograd keeps gradients only for "
                    "leaves; call `.retain_grad()` on it before the backward",
                    detail=f"reads the gradient of a tensor computed from others{at}",
                )

    def _gradients_without_graph(self, result: Any, where: tuple[str, int]) -> None:
        """`autograd.grad` without `create_graph=True`: the gradients it returns have no
        graph, so a loss built from them (a gradient penalty, a derivative to match) is a
        constant to the next backward. Marked as cut here, for `_dead_terms` to find."""
        gradients = [g for g in result if isinstance(g, torch.Tensor)] if result else []
        if gradients:
            self.cuts.gradients_without_graph(gradients, where, _GRADIENT_WITHOUT_GRAPH)

    def _dead_terms(self, args: tuple[Any, ...], node: Any, inplace: bool) -> None:
        """A loss summed from terms, one of which was cut from its graph: it adds nothing to
        the gradient. Reported if a backward goes through the sum (GL211). (`term += other`
        made the cut term itself require grad.)"""
        for i, value in enumerate(args[:2]):
            cut = self.cuts.cut_term(value, changed=inplace and i == 0)
            if cut is not None and len(self._dead) < MAX_DEAD:
                added = user_frame()
                if added is not None:
                    pending = Pending()
                    hold(node, pending)
                    self._dead.append((pending, cut, added))

    def _registered(self, parent: Any, name: str, module: Any) -> None:
        try:
            self._libraries.clear()  # (a module's tree changed)
            old = getattr(parent, "_modules", {}).get(name)
            if isinstance(old, torch.nn.Module) and old is not module:
                with _unwatched():
                    self.steps.swapped_out(parent, name, old)
                    self.replaced.swapped(parent, name, old, module)
            self._built.add(parent)
            if isinstance(module, torch.nn.Module):
                self._built.add(module)
            if module is not None and id(module) not in self.layer_sites:
                where = user_frame()
                if where is not None and name.isdigit():
                    # (A layer of `nn.Sequential(...)` written over several lines: its own.)
                    line = element_line(where[0], where[1], int(name))
                    where = (where[0], line) if line is not None else where
                if where is not None:
                    self.layer_sites[id(module)] = where
        except Exception:
            self.fault("noting where a layer was registered")

    def _parameter_registered(self, module: Any, name: str, param: Any) -> None:
        try:
            with _unwatched():
                self.replaced.registered(module, name, param)
                self.origins.note(param)
        except Exception:
            self.fault("noting a parameter registered")

    def _forward_starts(self, module: Any, args: Any) -> None:
        # Runs before every module's forward: guarded here, not by a wrapper (a call more),
        # and with torch functions unwatched once, only where tensors are looked at.
        sys._getframe().f_trace_lines = False
        sites = MODULE_SITES
        if self._set_aside is not None:
            # Inside a library's module set aside, nothing of the user's runs: only the depth
            # is kept, and an `inplace=True` layer's input, whose change is seen by versions.
            sites.append(None)
            self.waste.forward_starts(module, args)
            if getattr(module, "inplace", False) is True:
                inputs = tuple(a for a in args if isinstance(a, torch.Tensor))
                self._asides.append((inputs, tuple(t._version for t in inputs)))
            else:
                self._asides.append(None)
            return
        if _library_module(module):
            call = sys._getframe(1)  # (the module's `_call_impl`)
            sites.append((op_site(call), call))
        else:
            sites.append(None)
        self._asides.append(None)
        try:
            if self._quiet is not None:  # (a step that failed)
                self._watch_again()
            self.steps.inside = False  # no model runs inside a step but through its closure
            outermost = self.waste.outermost()
            self.waste.forward_starts(module, args)
            recording = torch.is_grad_enabled()
            # (State goes in beside the input, `cell(x, state)`: a layer called on its input
            # alone is not looked at.)
            handing = recording and len(args) > 1 and self._backward_done is not None
            keeping = recording and self._backward_done is not None and _users_module(module)
            if outermost or handing or keeping:
                with _unwatched():
                    if outermost:
                        self._models.add(module)
                        if recording and len(self._ran) < MAX_RAN:
                            self._ran.append(weakref.ref(module))
                        self.steps.model_starts(module, args)
                        self.modes.forward(module)
                    if handing:
                        note_handed(args, self._backward_done)
                    if keeping:
                        note_kept(module, self._backward_done)
            if recording:
                self.networks.forward(module)
            if sites[-1] is not None and self._library_tree(module):
                self._aside(module, args)
        except Exception:
            self.fault("before a forward")

    def _library_tree(self, module: Any) -> bool:
        """Whether a module and all its submodules are a library's, with no hook of the
        user's on any: nothing of the user's runs in its forward."""
        known = self._libraries.get(id(module))
        if known is not None and known[0]() is module:
            return known[1]
        if len(self._libraries) > MAX_LIBRARY_MODULES:
            self._libraries.clear()
        inside = list(modules_of(module))
        whole = len(inside) <= MAX_LIBRARY_MODULES and all(
            _library_module(m) and not (m._forward_hooks or m._forward_pre_hooks) for m in inside
        )
        self._libraries[id(module)] = (weakref.ref(module), whole)
        return whole

    def _library_weights(self, module: Any) -> list[torch.Tensor]:
        """The parameters and buffers of a library's module and all inside it, as they are
        for this forward (`functional_call` swaps in others without registering them)."""
        return [*parameters_of(module), *buffers_of(module)]

    def _aside(self, module: Any, args: Any) -> None:
        """Before the forward of a library's module with nothing of the user's inside: the
        watch set aside until it returns (each of its ops would take the same user's line),
        where it is on top of the mode stack."""
        inputs = tuple(a for a in args if isinstance(a, torch.Tensor))
        versions = tuple(t._version for t in inputs) if getattr(module, "inplace", False) else ()
        aside = _Aside(self.watch)
        if aside.done:
            self._set_aside = (module, aside, next_sequence())
            self._asides[-1] = (inputs, versions)

    def _forward_ends(self, module: Any, args: Any, output: Any) -> None:
        sys._getframe().f_trace_lines = False
        entry = MODULE_SITES.pop() if MODULE_SITES else None
        aside = self._asides.pop() if self._asides else None
        if aside is not None:
            try:
                if self._set_aside is not None and self._set_aside[0] is module:
                    since = self._set_aside[2]
                    self._library_done()
                    self._after_library(module, aside, output, entry[0] if entry else (), since)
                else:
                    self._changed_in_place(aside)
            except Exception:
                self.fault("after a library's module")
        try:
            if self.waste.inner_forward_ended():
                return
            with _unwatched():
                self.waste.forward_ends(module, args, output)
                self.steps.model_ends(module, output)
                self.combined.forward_ended(module, output)
        except Exception:
            self.fault("after a forward")

    def _after_library(
        self,
        module: Any,
        aside: tuple[tuple[torch.Tensor, ...], tuple[int, ...]],
        output: Any,
        site: Site,
        since: int | None,
    ) -> None:
        """What the ops of a library's module run unwatched did, as the watch would have
        noted it: where the graph nodes it made were made (the user's call of it), its
        in-place change of its input, an output cut from the graph, and the autograd
        error it raised."""
        inputs, versions = aside
        error = sys.exc_info()[1]
        if isinstance(error, RuntimeError) and not getattr(error, _EXPLAINED, False):
            self.explain(error, args=(*inputs, *_weights(module)))
            setattr(error, _EXPLAINED, True)
            return
        self._changed_in_place(aside)
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        with _unwatched():
            nodes = [t.grad_fn for t in outputs if isinstance(t, torch.Tensor)]
            mark_made(nodes, site, since)
            if since is not None and isinstance(output, torch.Tensor):
                # (One output only: the other outputs of an RNN, its last state, carried
                # into the next step, lead into the same nodes a walk would step over.)
                mark_inner(nodes, since, inputs, self._library_weights(module))
            for value in outputs:
                if isinstance(value, torch.Tensor) and not value.requires_grad:
                    # (From its inputs and its own weights, as its first op would be.)
                    self.cuts.note((*inputs, *_weights(module)), value)

    def _changed_in_place(self, aside: tuple[tuple[torch.Tensor, ...], tuple[int, ...]]) -> None:
        """After an `inplace=True` layer ran unwatched: its change of its input, if made."""
        inputs, versions = aside
        if versions and any(t._version != v for t, v in zip(inputs, versions, strict=False)):
            self.inplace.note(inputs[:1], layer=True)

    def _step_starts(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sys._getframe().f_trace_lines = False
        try:
            with _unwatched():
                self.steps.before(optimizer, args, kwargs)
            if self.steps.inside and self._quiet is None:
                # A step with no closure runs only the optimizer's own update ops, hundreds
                # of them, which its hooks sum up: unwatched, until it ends (or, if it
                # fails, until the program goes on to a forward, a step or the end).
                self._quiet = _Aside(self.watch)
        except Exception:
            self.fault("before a step")

    def _stepped(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        sys._getframe().f_trace_lines = False
        try:
            self._watch_again()
            with _unwatched():
                self.inplace.stepped(self.steps.after(optimizer, args, kwargs))
                self.modes.stepped(optimizer)
                self.replaced.stepped(optimizer)
                self.freezes.stepped()
                self.waste.stepped()
        except Exception:
            self.fault("after a step")

    def _library_done(self) -> None:
        """The watch back, if a library's module's forward never ended (the program left
        it some other way)."""
        if self._set_aside is not None:
            aside = self._set_aside[1]
            self._set_aside = None
            aside.restore()

    def _watch_again(self) -> None:
        if self._quiet is not None:
            quiet, self._quiet = self._quiet, None
            quiet.restore()

    def fault(self, where: str) -> None:
        """A bug of the tracer: kept for the report, never raised into the user's program."""
        self.faults.append(f"{where}: {traceback.format_exc(limit=-3).strip()}")

    def start(self) -> None:
        MODULE_SITES.clear()
        self._handles.append(
            torch.nn.modules.module.register_module_module_registration_hook(self._registered)
        )
        self._handles.append(
            torch.nn.modules.module.register_module_parameter_registration_hook(
                self._parameter_registered
            )
        )
        self._handles.append(register_optimizer_step_pre_hook(self._step_starts))
        self._handles.append(register_module_forward_pre_hook(self._forward_starts))
        self._handles.append(register_module_forward_hook(self._forward_ends, always_call=True))
        self._handles.append(register_optimizer_step_post_hook(self._stepped))
        if self._lines is not None:
            self._lines.start()

    def stop(self) -> None:
        self._watch_again()
        while self._handles:
            self._handles.pop().remove()
        MODULE_SITES.clear()
        _DATA_READ[0] = False
        try:
            self.waste.settle()
        except Exception:
            self.fault("settling the graphs recorded for nothing")
        try:
            evaluated = {(e.path, e.line) for e in self.events.events() if e.code == "GL301"}
            self.networks.settle(evaluated, self.steps.optimized())
        except Exception:
            self.fault("settling the networks no backward reached")
        try:
            self.steps.settle(list(self._models), list(self._built))
        except Exception:
            self.fault("settling the parameters nothing updated")
        try:
            models = list(self._models)
            self.combined.settle(
                self.steps.holders(), self.steps.applied(), param_names([*models, *self._built])
            )
        except Exception:
            self.fault("settling the losses summed from several networks'")
        try:
            self.freezes.settle(self.steps.optimized())
        except Exception:
            self.fault("settling the freezes undone")
        try:
            self.replaced.settle()
        except Exception:
            self.fault("settling the frozen parameters re-made")
        if self._lines is not None:
            self.lines = self._lines.stop()
            self._switched_off()
        for pending, cut, added in self._dead:
            if pending.propagated and self.cuts.why(cut) is _GRADIENT_WITHOUT_GRAPH:
                self.events.add(
                    "GL212",
                    cut,
                    _GRADIENT_WITHOUT_GRAPH,
                    detail=f"a loss term made from it is summed into the loss {_at(added, cut)}, "
                    "which is back-propagated, and adds nothing to the gradient",
                )
            elif pending.propagated:
                self.events.add(
                    "GL211",
                    cut,
                    "a loss term computed from a tensor cut from its graph here adds nothing "
                    "to the gradient",
                    detail=f"summed into the loss {_at(added, cut)}, which is back-propagated; "
                    "drop the `.detach()` (or the no_grad) if this term should train",
                )
        try:
            self._ineffective_freezes()
        except Exception:
            self.fault("looking for freezes that did nothing")

    def _switched_off(self, most: int = 3) -> None:
        """Where autograd was turned off by a call that ran, when a backward found a graph
        cut with autograd off and no block to blame: `torch.set_grad_enabled(False)` whose
        `torch.set_grad_enabled(True)` an exception skipped, or that nothing undid. (Those
        with a literal False first; a flag that may have been False, where none is.)"""
        if self._off_for_good is None:
            return
        why, after, stack = self._off_for_good
        sure: list[tuple[str, int]] = []
        maybe: list[tuple[str, int]] = []
        for path, ran in self.lines.items():
            for line, certain in grad_switched_off(path).items():
                if line in ran:
                    (sure if certain else maybe).append((real_path(path), line))
        for where in sorted(sure or maybe)[:most]:
            text = (
                "turns autograd off for all the code that runs after it, until a call turns it "
                "back on (which an exception on the way skips): use `with torch.no_grad():`"
            )
            self.events.add("GL103", where, why, detail=f"{text}; {after}")
            # The call in the same function that led to the cut, past the switch: where
            # `torch.enable_grad()` goes, if what it runs should train.
            for code, line in stack[1:]:
                if real_path(code.co_filename) == where[0] and line > where[1]:
                    if any(start == where[1] for _, _, start in code.co_lines()):
                        self.events.add(
                            "GL103",
                            (where[0], line),
                            why,
                            detail=f"runs with autograd off since line {where[1]}: wrap it in "
                            f"`with torch.enable_grad():` if it should train; {after}",
                        )
                        break

    def _ineffective_freezes(self) -> None:
        """Flags set as plain attributes, whose parameters still train: at the assignments
        that ran (only known where the lines were collected)."""
        modules = list(self._built) + list(self._models)
        typos = misspelt_flags(modules)
        for where in assignments(self.lines, typos) if typos else ():
            self.events.add(
                "GL209",
                where,
                "a misspelt `requires_grad`: a plain attribute PyTorch never reads",
                detail="the parameters it was set on still require grad",
            )
        if flagged_modules(modules):
            for where in assignments(self.lines, {"requires_grad"}):
                if where not in self._flag_lines:  # (no tensor's flag was set there)
                    self.events.add(
                        "GL215",
                        where,
                        "`requires_grad` set on a module, which has no such flag",
                        detail="its parameters still require grad; use "
                        "`module.requires_grad_(False)`",
                    )


# What a torch function is, to the tracer: decided once per function.
(
    _PLAIN,
    _ADDS,
    _IADDS,
    _CHANGES,
    _BACKWARD,
    _ZEROES,
    _FACT,
    _SETS_GRAD,
    _SETS_FLAG,
    _FREEZES,
    _FACTORY,
    _READS_GRAD,
    _COMBINES,
    _EXITS,
    _READS_DATA,
    _SETS_DATA,
    _NORMS,
    _UNSCALES,
) = range(18)
# Functions that make a tensor from numbers: one that does not require grad may be where a
# loss with no graph began.
_FACTORIES = frozenset(
    "tensor as_tensor from_numpy zeros ones full empty rand randn arange linspace logspace "
    "eye zeros_like ones_like full_like empty_like rand_like randn_like".split()
)
_KINDS: dict[Any, int] = {}
_COMBINERS = frozenset({"stack", "cat", "concat", "concatenate", "hstack", "vstack"})


# Tensor properties that read a fact and make no tensor: optimizers and `zero_grad()` read
# them of every parameter, every step.
_FACTS = frozenset(
    {
        "grad",
        "device",
        "dtype",
        "is_sparse",
        "is_leaf",
        "grad_fn",
        "requires_grad",
        "shape",
        "is_nested",
        "is_cuda",
        "ndim",
        "layout",
        "_version",
        "is_meta",
        "is_quantized",
    }
)


# Functions that read a fact of a tensor or set a mode, and make no tensor.
# Functions that take plain numbers out of a tensor: what is built from them has no graph.
_EXITING = frozenset({"item", "tolist", "__int__", "__float__"})
_FACT_FUNCTIONS = frozenset(
    "_set_grad_enabled is_floating_point is_complex dim size numel stride is_contiguous "
    "data_ptr element_size get_device is_inference _is_view _has_compatible_shallow_copy_type "
    "__len__ __bool__ __index__ __format__ __repr__ "
    "__hash__".split()
)


def _kind_of(func: Callable[..., Any]) -> int:
    name = getattr(func, "__name__", "")
    if name in ("_foreach_norm", "linalg_vector_norm", "vector_norm"):
        return _NORMS  # (how `clip_grad_norm_` measures the gradients it clips)
    if name == "_amp_foreach_non_finite_check_and_unscale_":
        return _UNSCALES
    if name in _FACT_FUNCTIONS:
        return _FACT
    if name in _EXITING:
        return _EXITS
    if name in ("__get__", "__set__"):
        # `tensor.grad` reads, `param.grad = None` sets: nothing made, nothing changed in place
        prop = getattr(getattr(func, "__self__", None), "__name__", "")
        if prop == "data":
            return _READS_DATA if name == "__get__" else _SETS_DATA
        if name == "__set__":
            return (
                _SETS_GRAD if prop == "grad" else _SETS_FLAG if prop == "requires_grad" else _FACT
            )
        if prop == "grad":
            return _READS_GRAD
        return _FACT if prop in _FACTS else _PLAIN
    if name in ("backward", "grad"):
        return _BACKWARD
    if name in _FACTORIES:
        return _FACTORY  # (`torch.tensor` is also how `clip_grad_norm_` makes a norm of nothing)
    if name == "requires_grad_":
        return _FREEZES
    if name in _COMBINERS:
        return _COMBINES  # a stack of losses may hold graphs a backward already went through
    if name in ("add", "__add__", "__radd__"):
        return _ADDS  # a sum: it may hold graphs a backward already went through
    if name in ("add_", "__iadd__"):
        return _IADDS
    if changes_in_place(func, {}):
        return _ZEROES if name in ("zero_", "_foreach_zero_") else _CHANGES
    return _PLAIN


def _clipping_nothing() -> bool:
    """Whether `torch.tensor` was just called by `clip_grad_norm_`'s norm of no gradients
    (`return torch.tensor(0.0)` on an empty list), as the user's own code called it on
    parameters that all train (a frozen module's have no gradient to clip, rightly)."""
    frame: FrameType | None = sys._getframe(3)
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_code.co_name == "_get_total_norm" and "clip_grad" in frame.f_code.co_filename:
            break
        frame = frame.f_back
    else:
        return False
    for _ in range(4):  # out to `clip_grad_norm_` (through its no-grad wrapper), then its caller
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return False
        if frame.f_code.co_name == "clip_grad_norm_":
            parameters = frame.f_locals.get("parameters")
            caller = frame.f_back
            while caller is not None and not is_users(caller.f_code.co_filename):
                if "clip_grad" not in caller.f_code.co_filename:  # called by a library
                    return False
                caller = caller.f_back
            return (
                caller is not None
                and isinstance(parameters, list)
                and bool(parameters)
                and all(getattr(p, "requires_grad", False) for p in parameters)
            )
    return False


def _backward_flag(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
) -> bool:
    """`retain_graph` or `create_graph` of a backward call. Positional,
    `Tensor.backward(gradient, retain_graph, create_graph)` and `torch.autograd.backward(
    tensors, grad_tensors, retain_graph, create_graph)` take them third and fourth;
    `torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph, create_graph)`,
    fourth and fifth."""
    at = (3 if getattr(func, "__name__", "") == "grad" else 2) + (name == "create_graph")
    return bool(kwargs.get(name, args[at] if len(args) > at else False))


def _creates(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A graph of the backward itself (a gradient penalty, a second order): the graph it
    keeps is the point."""
    return _backward_flag(func, args, kwargs, "create_graph")


def _retains(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """`retain_graph`, or `create_graph`, which implies it."""
    return _backward_flag(func, args, kwargs, "retain_graph") or _creates(func, args, kwargs)


class _Watch(TorchFunctionMode):
    """Sees every torch function and tensor method the program calls (PyTorch leaves the
    mode off while it runs one, so calls inside torch are not seen twice)."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer
        self._steps = tracer.steps
        self._after = tracer.after

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        # Runs around every torch call of the program: kept short.
        __tracebackhide__ = True  # noqa: F841 - pytest leaves this frame out of tracebacks
        # No line events for the tracer's own frames: under the line collector's
        # `sys.settrace`, each line of them would cost a call into it.
        sys._getframe().f_trace_lines = False
        try:
            result = func(*args, **kwargs) if kwargs else func(*args)
        except BaseException as error:
            self._failed(error, args)
            raise
        if self._steps.inside:
            if _KINDS.get(func) != _BACKWARD:
                return result  # an optimizer's own update op: its step hooks sum it up
            # (A step that runs backwards of its own, on the losses it is given: the user's
            # code, watched as such from here.)
            self._steps.inside = False
        kind = _KINDS.get(func)
        if kind is None:  # (the first call of each function: the checks below need its kind)
            kind = _KINDS[func] = _kind_of(func)
        if kind == _READS_GRAD and result is not None:
            if self._steps.measured and args:  # (only once a backward measured something)
                try:
                    self._grad_read(args[0], result, sys._getframe(1))
                except Exception:
                    self.tracer.fault("watching a gradient read")
            return result
        if kind == _FACT:
            return result
        if kind == _SETS_GRAD:  # (`zero_grad()` runs one for each parameter)
            if len(args) == 2 and args[1] is None:
                try:
                    self._steps.grad_cleared(args[0], sys._getframe(1))
                except Exception:
                    self.tracer.fault("watching a gradient cleared")
            elif args:
                self._steps.grads_set[id(args[0])] = self._steps.grads_set.get(id(args[0]), 0) + 1
            return result
        if (
            kind == _PLAIN
            and isinstance(result, torch.Tensor)
            and not (kwargs and kwargs.get("inplace") is True)
        ):
            # The common case, inline (each call out costs a frame, dear under a line
            # tracer): a plain op whose result has a graph node; mark where it was made.
            try:
                node = result.grad_fn
            except RuntimeError:  # (see `_graph_node`)
                node = None
            if node is not None:
                metadata: dict[str, Any] = node.metadata  # type: ignore[assignment]
                if SITE not in metadata:
                    metadata[SITE] = op_site(sys._getframe(1))
                if _DATA_READ[0]:
                    try:
                        self.tracer.data_mixed(args, node)
                    except Exception:
                        self.tracer.fault("watching `.data` in a graph")
                return result
        try:
            self._after(func, args, kwargs or _NO_KWARGS, result)
        except Exception:
            self.tracer.fault(f"watching {getattr(func, '__name__', func)}")
        return result

    def _grad_read(self, param: Any, grad: Any, caller: FrameType) -> None:
        if isinstance(grad, torch.Tensor) and is_users(caller.f_code.co_filename):
            where = (real_path(caller.f_code.co_filename), caller.f_lineno)
            self._steps.read(param, grad, where)

    def _failed(self, error: BaseException, args: tuple[Any, ...]) -> None:
        # A step that raises ends without its post-hook: watch what follows it.
        self._steps.inside = False
        if isinstance(error, RuntimeError):
            try:
                self.tracer.explain(error, args=args)
            except Exception:
                self.tracer.fault("explaining an error")


_NO_KWARGS: dict[str, Any] = {}
MAX_MIXED = 64
# Whether `.data` of a tensor that requires grad was read since the last backward (then
# plain ops are looked at for it: see `Tracer.data_mixed`)
_DATA_READ = [False]
MAX_ABOVE = 8  # nodes above a stale one looked at for a name it was handed on as


def _at(line: tuple[str, int], event: tuple[str, int]) -> str:
    """Where a line is, as the detail of an event at `event` names it."""
    return "on the same line" if line == event else f"at line {line[1]}"


def _graph_node(tensor: torch.Tensor) -> Any:
    """A tensor's graph node; None where PyTorch forbids reading it (a view made under
    no_grad whose base was changed in place with autograd on: the program's own next use
    of it raises, and says why)."""
    try:
        return tensor.grad_fn
    except RuntimeError:
        return None


_USER_MODULES: dict[type, bool] = {}  # module class -> whether the user's code defines it


def _weights(module: Any) -> list[torch.Tensor]:
    """A few of a module's parameters and buffers: what its ops took in beside its inputs."""
    parameters = [p for _, p in zip(range(MAX_HELD), parameters_of(module), strict=False)]
    return parameters + [b for _, b in zip(range(MAX_HELD), buffers_of(module), strict=False)]


_LIBRARY_MODULES: dict[type, bool] = {}  # module class -> whether a library defines it


def _calls_out(stack: Site, here: Site, most: int = 4) -> list[tuple[str, int]]:
    """The calls that led from the function running now (on `here`) down to the innermost
    frame of `stack`: each, outermost last, a line where the code below could be called
    later (a helper's in-place change, called from a loss module's forward)."""
    running = {code for code, _ in here}
    found: list[tuple[str, int]] = []
    for code, line in stack[1 : most + 1]:
        found.append((real_path(code.co_filename), line))
        if code in running:
            break
    return found


def _library_module(module: Any) -> bool:
    """Whether a module's class is PyTorch's or another library's, not the user's."""
    kind = type(module)
    known = _LIBRARY_MODULES.get(kind)
    if known is None:
        source = getattr(sys.modules.get(kind.__module__), "__file__", None)
        known = _LIBRARY_MODULES[kind] = bool(source) and not is_users(source)
    return known


def _users_module(module: Any) -> bool:
    kind = type(module)
    mine = _USER_MODULES.get(kind)
    if mine is None:
        mine = _USER_MODULES[kind] = file_of(kind) is not None
    return mine


# Errors raised at the misuse itself: its line is the one to name, even where the user's
# code that raised it ran inside a torch call (a custom Function's backward, a hook).
# Per code: what the lines that made the tensor of the error, and the call that handed it
# on to the failing line, are told
_ORIGINS = {
    "GL101": (
        "makes here, with autograd on, the tensor that {at} converts to NumPy: `.detach()` "
        "it, or make it under `torch.no_grad()` if nothing is trained through it",
        "hands on the tensor the call at line {made} made, which requires grad, to the "
        "conversion to NumPy at {at}: `.detach()` it here",
    ),
    "GL102": (
        "makes here the leaf that requires grad which {at} changes in place: change it "
        "under `torch.no_grad()`, or do not make it require grad if it is not trained",
        "hands the leaf that requires grad (made by line {made}) to the in-place change at "
        "{at}: make this call under `torch.no_grad()`",
    ),
    "GL105 computed": (
        "computes here ({kind}) the tensor whose requires_grad {at} sets: it is not a leaf; "
        "set the flag on the tensor it is computed from, before this",
        "sets requires_grad (at {at}) of a tensor the call at line {made} computed, not a "
        "leaf: set it before that call, on the tensors it starts from",
    ),
    "GL105 written": (
        "writes into the tensor here, in place, values computed with autograd on: it is a "
        "leaf no more, so {at} cannot set its requires_grad; write under `torch.no_grad()` "
        "or write `.detach()`ed values",
        "writes (through the call at line {made}) values with a graph into the tensor whose "
        "requires_grad {at} sets: make this call under `torch.no_grad()`",
    ),
    "GL105": (
        "makes here a tensor whose requires_grad {at} sets, of a dtype that cannot "
        "require grad (integer or bool): leave it out of what is set",
        "sets requires_grad (at {at}) of tensors the call at line {made} made, some of a "
        "dtype that cannot require grad: leave those out",
    ),
}
_AT_THE_MISUSE = frozenset({"GL101", "GL102", "GL104", "GL105"})


def _innermost_user_line(error: BaseException) -> tuple[str, int] | None:
    where = None
    tb = error.__traceback__
    while tb is not None:
        if is_users(tb.tb_frame.f_code.co_filename):
            where = real_path(tb.tb_frame.f_code.co_filename), tb.tb_lineno
        tb = tb.tb_next
    return where


# The tracer's own hooks read tensors too (`param.grad`, `.shape`): with torch functions
# unwatched while they run, those reads cost no trip through `_Watch`.
_unwatched = torch._C.DisableTorchFunction  # (for the tracer's own reads of tensors)
_EXPLAINED = "_gradlint_explained"  # set on an error the tracer explained on its way out
MAX_LIBRARY_MODULES = 512
MAX_VIEWS = 8  # views of views followed back to the first
MAX_HELD = 16  # a module's parameters and buffers looked at, for an error it raised


class _Aside:
    """The watch taken off PyTorch's mode stack, where it is on top, while an optimizer
    steps (its own update ops, which its hooks sum up): only the watch, so that tensor
    subclasses and the user's own modes still see every op."""

    def __init__(self, watch: _Watch) -> None:
        current = getattr(torch.overrides, "_get_current_function_mode", None)
        self._watch: _Watch | None = None
        if current is not None and current() is watch:
            watch.__exit__(None, None, None)
            self._watch = watch

    @property
    def done(self) -> bool:
        """Whether the watch was taken off (it was on top)."""
        return self._watch is not None

    def restore(self) -> None:
        if self._watch is not None:
            watch, self._watch = self._watch, None
            watch.__enter__()


MAX_RAN = 64
MAX_LOCALS = 1000  # names looked at per frame, for modules
_EXITED = (
    "takes plain numbers out of a tensor that requires grad (`.item()`, `float()`, "
    "`torch.Tensor([...])` of tensors): what is built from them has no graph"
)
MAX_DEAD = 1000
MAX_ALIASES = 10_000
_THROUGH_DATA = (
    "changes a tensor that requires grad through `.data` while a graph that used it waits for "
    "its backward: autograd cannot see the change, and the backward computes with the new "
    "values; change it under `torch.no_grad()` after the backward, or compute out of place"
)
_DATA_IN_GRAPH = (
    "computes with `.data` of a parameter beside a tensor whose graph reaches that parameter "
    "(a gradient taken with create_graph=True?): the gradient through the `.data` path is "
    "lost; use the parameter itself"
)
_DATA_MIXED_DETAIL = "`.data` of a parameter combined with a tensor that depends on it"
_DATA_SET_DETAIL = "a new value set through `.data`"
_DATA_CHANGED_DETAIL = "changed in place through `.data`"
_GRADIENT_WITHOUT_GRAPH = (
    "takes gradients with `autograd.grad` without `create_graph=True`: they have no graph, "
    "so a loss computed from them trains nothing; pass create_graph=True"
)
_BUILT_FROM_NUMBERS = (
    "a plain number taken out of a tensor that requires grad (`.item()`, `float()`) went into "
    "a loss: the gradient stops there"
)


class _LineCollector:
    """The lines that ran in the user's files, by coverage.py's tracer."""

    def __init__(self) -> None:
        import coverage

        import gradlint

        # PyTorch's and gradlint's own lines are not the user's.
        omit = [
            os.path.join(os.path.dirname(os.path.abspath(path)), "*")
            for path in (torch.__file__, gradlint.__file__, __file__)
        ]
        self._coverage = coverage.Coverage(data_file=None, config_file=False, omit=omit)
        # A program that ran none of the user's lines (it failed to start) is not news.
        self._coverage.set_option("run:disable_warnings", ["no-data-collected"])

    def start(self) -> None:
        self._coverage.start()
        QUIET_LIBRARIES[0] = True

    def stop(self) -> dict[str, set[int]]:
        QUIET_LIBRARIES[0] = False
        self._coverage.stop()
        data = self._coverage.get_data()
        return {path: set(data.lines(path) or ()) for path in data.measured_files()}


@contextmanager
def trace(lines: bool = True) -> Iterator[Tracer]:
    """Watch the body's autograd; every hook is removed on the way out, even on an error.

    >>> with trace() as tracer:
    ...     train()
    >>> tracer.events.events()
    """
    tracer = Tracer(lines=lines)
    tracer.start()
    try:
        with tracer.watch:
            try:
                yield tracer
            finally:
                # (Back on the stack, for the block to take it off.)
                tracer._watch_again()
                tracer._library_done()
    finally:
        tracer.stop()
