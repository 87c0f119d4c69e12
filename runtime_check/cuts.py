"""Where a tensor lost its graph: an op under `no_grad`, or one that gives no gradient
(`argmax`, `detach`, a comparison) on a tensor that required grad; and what was computed
from it since. So that "does not require grad and does not have a grad_fn" names the cut,
not only the backward that found out."""

from __future__ import annotations

import ast
import inspect
import linecache
import sys
from collections.abc import Iterator
from functools import cache
from types import CodeType, FrameType
from typing import Any, NamedTuple

import torch
from gradlint.runtime_check.frames import is_users, next_user_frame, real_path, user_frame
from gradlint.runtime_check.freezes import FreezeLog
from gradlint.runtime_check.graphs import Site, user_stack
from gradlint.runtime_check.layers import assignment, attributes_holding, class_def
from gradlint.runtime_check.modules import parameters_of
from gradlint.runtime_check.sources import (
    defaults_read,
    function_around,
    function_tree,
    keyword_default,
    names_read,
    option_defined,
    parsed,
    setting_default,
)
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.weak import WeakIdKeyDictionary

_GRAD_MODE_CALLS = ("no_grad", "inference_mode", "set_grad_enabled")
MAX_INFERENCE = 4096
MAX_WHY = 1024
MAX_EXITS = 64


# How sure a record is that it names the cut: a tensor made by a factory that never
# required grad is a likely origin; a cut of a graph (no_grad, detach, a frozen parameter)
# is the cause. A record holds each of the strongest causes met on the way (a frozen
# encoder and a frozen head).
MADE, CUT = 1, 2
# Why a graph was cut where no grad-mode block is running: a call that turned autograd off
# for everything after it (`torch.set_grad_enabled(False)`), found among the lines that ran.
OFF_FOR_GOOD = "autograd was off here, turned off by a call rather than a `with` block"
MAX_CAUSES = 6
Cause = tuple[tuple[str, int], int]  # (the user's line, MADE or CUT)
Record = tuple[Cause, ...]


class CutLog:
    def __init__(self, freezes: FreezeLog) -> None:
        self._freezes = freezes
        # By identity: a plain WeakKeyDictionary compares tensors with `==`, elementwise.
        # tensor -> Record
        self._cut_at: WeakIdKeyDictionary = WeakIdKeyDictionary()
        # Inference tensors by their storage too: `nn.Parameter(t)` is another tensor object
        # on the same storage. A storage is held weakly, so its key is never another's
        # while the entry lives, and a freed one is seen as such. (Newest last; a few
        # thousand at most.)
        self._inference_at: dict[int, tuple[StorageWeakRef, list[tuple[str, int]]]] = {}
        self._why: dict[tuple[str, int], str] = {}  # a cut's line -> why it cut there
        # The lines that took plain numbers out of tensors that require grad, since the
        # last backward (`.item()`, `float(t)`): a graph ends there without a trace.
        self._exits: dict[tuple[str, int], None] = {}
        # An inference region's first line -> the user's frames that ran it, and the test
        # around it that decides whether to rebuild a cached tensor (see `_Inference`)
        self._inference_made: dict[tuple[str, int], _Inference] = {}
        # A freeze's line -> the command-line options it reads, where each is defined
        # (`p.requires_grad = args.update_decoder`): (option, line of `add_argument`)
        self._settings: dict[tuple[str, int], list[tuple[str, tuple[str, int]]]] = {}
        # A freeze's line -> the parameters of its function with a default that it (or the
        # test around it) reads and that kept it: (name, default, the call that kept it)
        self._defaults: dict[tuple[str, int], list[tuple[str, Any, tuple[str, int]]]] = {}
        # A cut made with autograd turned off by a call -> the user's frames that ran it
        self._off_stacks: dict[tuple[str, int], Site] = {}

    def note(self, args: tuple[Any, ...], result: Any) -> None:
        """After a call whose result needs no grad: was it cut here, or made from a cut?"""
        if not isinstance(result, torch.Tensor) or result.requires_grad or not args:
            return
        inherited: list[Record] = []
        values = _tensors(args)
        for value in values:
            if value.requires_grad:
                # (Under inference mode, `set_grad_enabled(True)` inside turns nothing on.)
                off = not torch.is_grad_enabled() or torch.is_inference_mode_enabled()
                sites = (
                    _grad_off_sites(self._freezes, torch.is_inference_mode_enabled()) if off else ()
                )
                if sites:
                    self._explained(sites)
                    if result.is_inference():
                        self._mark(result, self._inference_record(sites))
                    else:
                        self._mark(result, tuple((where, CUT) for where, _ in sites))
                    return
                where = user_frame()
                if where is not None:
                    self._mark(result, ((where, CUT),))
                    if off and not torch.is_inference_mode_enabled():
                        self._explained(((where, OFF_FOR_GOOD),))
                        if len(self._off_stacks) < MAX_EXITS:
                            self._off_stacks.setdefault(where, user_stack())
                return
            record = self._cut_at.get(value)
            if record is not None:
                inherited.append(record)
        if inherited and not torch.is_grad_enabled() and not result.is_inference():
            # From frozen or cut inputs, but with autograd off: the block cuts it anyway,
            # and is the cause to name (a frozen layer inside an `@torch.no_grad()` helper).
            sites = _grad_off_sites(self._freezes)
            if sites:
                self._explained(sites)
                self._mark(result, tuple((where, CUT) for where, _ in sites))
                return
        if (
            result.is_inference()
            and torch.is_inference_mode_enabled()
            and not any(value.is_inference() and value in self._cut_at for value in values)
        ):
            # Made under inference mode from no inference tensor known (inputs, weights, an
            # index made in the region): the first op of a region, whose start is the cause;
            # the ops after it inherit it.
            record = self._inference_record()
            if record:
                inherited = [record]
        if inherited:
            self._mark(result, inherited[0] if len(inherited) == 1 else _merged(inherited))

    def made(self, args: tuple[Any, ...], result: Any) -> None:
        """After a factory (`torch.zeros`, `torch.tensor`, ...): a floating-point tensor that
        does not require grad, the likely start of a loss with no graph; a cut, where it
        was built from tensors that required grad (`torch.tensor([a, b])`)."""
        if (
            isinstance(result, torch.Tensor)
            and not result.requires_grad
            and result not in self._cut_at
        ):
            if result.is_inference():
                # (Of any dtype: positions from `arange` become the rotary table.)
                record = self._inference_record()
                if record:
                    self._mark(result, record)
                return
            if not result.is_floating_point():
                return
            where = user_frame()
            if where is not None:
                cut = any(value.requires_grad for value in _tensors(args))
                self._mark(result, ((where, CUT if cut else MADE),))

    def gradients_without_graph(
        self, gradients: list[torch.Tensor], where: tuple[str, int], why: str
    ) -> None:
        """Gradients `autograd.grad` returned with no graph of their own: cut here."""
        for gradient in gradients:
            if not gradient.requires_grad and gradient.is_floating_point():
                self._mark(gradient, ((where, CUT),))
        self._explained(((where, why),))

    def _explained(self, sites: tuple[tuple[tuple[str, int], str], ...]) -> None:
        why = self._why
        for where, text in sites:
            if where not in why:
                if len(why) > MAX_WHY:
                    del why[next(iter(why))]
                why[where] = text

    def off_stack(self, where: tuple[str, int]) -> Site:
        """The user's frames that ran a cut made with autograd turned off by a call."""
        return self._off_stacks.get(where, ())

    def why(self, where: tuple[str, int]) -> str | None:
        """What cut graphs at a line, where more is known than that it did."""
        return self._why.get(where)

    def exited(self) -> None:
        """A plain number was taken out of a tensor that requires grad, here."""
        where = user_frame(2)
        if where is not None and len(self._exits) < MAX_EXITS:
            self._exits[where] = None

    def exits(self, most: int = 3) -> list[tuple[str, int]]:
        return list(self._exits)[-most:]

    def backward_ran(self) -> None:
        self._exits.clear()

    def frozen(self, tensor: Any, requires_grad: bool, where: tuple[str, int] | None) -> None:
        """`requires_grad = False` on a parameter, at the user's line `where`: what is
        computed from it alone is cut."""
        if not isinstance(tensor, torch.Tensor) or not tensor.is_leaf:
            return
        if requires_grad:
            self._cut_at.pop(tensor, None)
        else:
            if where is not None:
                self._cut_at[tensor] = ((where, CUT),)
                if where not in self._settings and len(self._settings) < MAX_EXITS:
                    self._settings[where] = _option_behind(where)
                    self._defaults[where] = _default_behind(where)

    def defaults_behind(self, where: tuple[str, int]) -> list[tuple[str, Any, tuple[str, int]]]:
        """The parameters a freeze at a line (or the test around it) read that kept their
        default, each with the default and the user's call that left it so."""
        return self._defaults.get(where, [])

    def options_behind(self, where: tuple[str, int]) -> list[tuple[str, tuple[str, int]]]:
        """The command-line options a freeze at a line read, each with the line that
        defines it (where its default is)."""
        return self._settings.get(where, [])

    def _mark(self, result: torch.Tensor, record: Record) -> None:
        self._cut_at[result] = record
        if result.is_inference():
            memory = self._inference_at
            storage = StorageWeakRef(result.untyped_storage())
            memory[storage.cdata] = (storage, [where for where, _ in record])
            if len(memory) > MAX_INFERENCE:
                del memory[next(iter(memory))]

    def _inference_record(self, sites: tuple[tuple[tuple[str, int], str], ...] = ()) -> Record:
        """Where an inference tensor is being made: the `with torch.inference_mode():` (or
        the decorator) the user's code runs in, the user's line, where they differ, and the
        line that made the object whose settings chose that block, if it was chosen. Given
        the sites of an op on weights, all of them (the user's call just inside the block)."""
        if not sites:
            found = _grad_off_sites(self._freezes, inference=True)
            sites = found[:1] + tuple(
                site for site in found[1:] if site[1].startswith((CONFIGURED, SETTING))
            )
            self._explained(sites[1:])
        here = user_frame()
        lines = dict.fromkeys(where for where in (*(where for where, _ in sites), here) if where)
        if lines:
            made, key = self._inference_made, here or next(iter(lines))
            if key not in made:
                if len(made) > MAX_INFERENCE:
                    del made[next(iter(made))]
                stack = user_stack()
                made[key] = _Inference(stack, _cache_guard(stack))
        return tuple((where, CUT) for where in lines)

    def inference_context(self, line: tuple[str, int]) -> _Inference | None:
        """How the inference region that starts at a line was reached, if it does."""
        return self._inference_made.get(line)

    def inference_origin(self, args: tuple[Any, ...]) -> list[tuple[str, int]]:
        """Where an inference tensor among a failed call's arguments was made, if known:
        the start of the inference-mode region, and the line in it."""
        for value in _tensors(args):
            if value.is_inference():
                record = self._cut_at.get(value)
                found = [where for where, _ in record] if record is not None else []
                if not found:
                    held = self._inference_at.get(value.untyped_storage()._cdata)
                    if held is not None and not held[0].expired():
                        found = held[1]
                if found:
                    return found
        return []

    def cut_term(self, value: Any, changed: bool = False) -> tuple[str, int] | None:
        """Where a one-number tensor (a loss term) that needs no grad was cut from a graph
        that did: `.detach()`, `torch.tensor([...])` of losses, an op under no_grad. (One
        `changed` in place by an add may require grad since.)"""
        if (
            isinstance(value, torch.Tensor)
            and (changed or not value.requires_grad)
            and value.numel() == 1
            and value.is_floating_point()
        ):
            record = self._cut_at.get(value)
            if record is not None and record[0][1] == CUT:
                return record[0][0]
        return None

    def kept_on(
        self, modules: list[Any], causes: set[tuple[str, int]]
    ) -> list[tuple[tuple[str, int], str]]:
        """Modules of the user's holding, as a plain attribute, a tensor (or a tuple of them)
        cut at one of these lines: a cache filled with autograd off and reused. Each with
        the line of its class that sets the attribute, and the attribute's name."""

        def holds(value: Any) -> bool:
            values = value if isinstance(value, (tuple, list)) else (value,)
            return any(
                isinstance(v, torch.Tensor)
                and any(where in causes for where, _ in self._cut_at.get(v, ()))
                for v in values[:MAX_CAUSES]
            )

        return [(w, name) for w, name in attributes_holding(modules, holds) if w not in causes]

    def cut_somewhere(self, tensor: Any) -> bool:
        """Whether a tensor's graph was cut (not only computed from tensors made without
        one)."""
        return any(strength == CUT for record in self._records(tensor) for _, strength in record)

    def cut_of(self, tensor: Any) -> list[tuple[str, int]]:
        """Where a tensor's graph was cut, or where what it was computed from was made
        without one: the likeliest first. (Of each tensor, given several, as
        `torch.autograd.backward` takes them.)"""
        found = dict.fromkeys(where for record in self._records(tensor) for where, _ in record)
        return list(found)

    def _records(self, tensor: Any) -> list[Record]:
        """The records of a tensor, or of each tensor given several."""
        tensors = tensor if isinstance(tensor, (list, tuple)) else [tensor]
        records = (self._cut_at.get(v) for v in tensors if isinstance(v, torch.Tensor))
        return [record for record in records if record is not None]


def _merged(records: list[Record]) -> Record:
    """The strongest causes of several records (a tensor made without grad beside a cut
    is only an input), first met first."""
    strongest = max(strength for record in records for _, strength in record)
    causes = dict.fromkeys(
        where for record in records for where, strength in record if strength == strongest
    )
    return tuple((where, strongest) for where in list(causes)[:MAX_CAUSES])


def _tensors(args: tuple[Any, ...]) -> list[torch.Tensor]:
    """The tensors among a call's arguments, and in its lists (two deep: `torch.tensor([[a,
    b], [c, d]])` of scalar tensors)."""
    found = []
    for value in args:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, torch.Tensor):
                    found.append(item)
                elif isinstance(item, (list, tuple)):
                    found.extend(inner for inner in item if isinstance(inner, torch.Tensor))
    return found


class _Inference(NamedTuple):
    """An inference region's first op: the user's frames that ran it (innermost first), and
    the `if` around them, between it and the grad-mode block, whose test reads the
    module's state (`if seqlen > self._cached_len:`): the check that decides whether to
    rebuild a cache, and lets a later training step reuse the inference tensor."""

    stack: Site
    guard: tuple[str, int] | None


def _cache_guard(stack: Site) -> tuple[str, int] | None:
    """The `if` of the user's frames (innermost first), between the op and the grad-mode
    block, that decides whether to rebuild a cache."""
    for code, line in stack:
        path = real_path(code.co_filename)
        if _grad_mode_block(path, line) is not None:
            return None  # the block itself: no cache between it and the op
        guard = _guard_around(path, line, code.co_firstlineno)
        if guard is not None:
            return path, guard
    return None


def _guard_around(path: str, line: int, first: int) -> int | None:
    """The innermost `if` of the function that starts at `first` whose body holds `line`
    and whose test reads an attribute of `self`."""
    best = None
    for start, body, end in _state_tests(path):
        if first <= start and body <= line <= end and (best is None or start > best):
            best = start
    return best


@cache
def state_guard(path: str, line: int, name: str) -> int | None:
    """The innermost `if` whose body holds `line` and whose test reads `self.<name>`: what
    decides whether the state kept there is made anew (`if self.cache is None:`)."""
    tree = parsed(path)
    if tree is None:
        return None
    best = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.If) or (best is not None and node.lineno <= best):
            continue
        end = node.body[-1].end_lineno or node.body[-1].lineno
        if node.body[0].lineno <= line <= end and any(
            isinstance(part, ast.Attribute)
            and part.attr == name
            and isinstance(part.value, ast.Name)
            and part.value.id == "self"
            for part in ast.walk(node.test)
        ):
            best = node.lineno
    return best


@cache
def _state_tests(path: str) -> tuple[tuple[int, int, int], ...]:
    """(the `if`'s line, its body's first and last line) for each `if` whose test reads
    `self.<attribute>`."""
    tree = parsed(path)
    if tree is None:
        return ()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and any(
            isinstance(part, ast.Attribute)
            and isinstance(part.value, ast.Name)
            and part.value.id == "self"
            for part in ast.walk(node.test)
        ):
            end = node.body[-1].end_lineno or node.body[-1].lineno
            found.append((node.lineno, node.body[0].lineno, end))
    return tuple(found)


# (code, line) -> the start of the grad-mode block around that line in the code's file
# (Code objects compare by value, not by file: the file is part of the key.)
_BLOCK_AT: dict[tuple[CodeType, str, int], int | None] = {}
MAX_BLOCKS = 50_000


def _grad_off_sites(
    freezes: FreezeLog, inference: bool = False
) -> tuple[tuple[tuple[str, int], str], ...]:
    """Why autograd is off where the user's code runs now, as (line, why): the grad-mode
    block the stack runs in, looking out from the innermost frame. One of the user's is
    named with the user's call just inside it, where that is not the op itself (a
    framework's hook, run under its caller's block). One in a library (a reentrant
    `checkpoint`, a trainer's evaluation loop) is named by the user's calls on each side
    of it: the call into the library, and the user's code it runs."""
    frame: FrameType | None = sys._getframe(2)
    blocks = _BLOCK_AT
    innermost: tuple[str, int] | None = None
    inner: tuple[str, int] | None = None  # the user's frame nearest inside, so far
    while frame is not None:
        code, line = frame.f_code, frame.f_lineno
        key = (code, code.co_filename, line)
        if key in blocks:
            start = blocks[key]
        else:
            if len(blocks) > MAX_BLOCKS:
                blocks.clear()
            start = blocks[key] = _grad_mode_block(real_path(code.co_filename), line)
        if start is not None and inference:
            # (A `no_grad` block inside an inference-mode one makes no inference tensors:
            # the inference-mode block around it, in this frame or further out, does.)
            start = _grad_mode_block(real_path(code.co_filename), line, inference=True)
        if start is not None:
            return _off_because(frame, start, inner, innermost, freezes)
        if is_users(code.co_filename):
            inner = real_path(code.co_filename), line
            innermost = innermost or inner
        frame = frame.f_back
    return ()


def _off_because(
    frame: FrameType,
    start: int,
    inner: tuple[str, int] | None,
    innermost: tuple[str, int] | None,
    freezes: FreezeLog,
) -> tuple[tuple[tuple[str, int], str], ...]:
    path = real_path(frame.f_code.co_filename)
    block = f"{_short(path)}:{start}"
    if inner is not None and inner[0] == path:
        block = f"line {start}"
    if is_users(frame.f_code.co_filename):
        found = [((path, start), "autograd is off inside this block")]
        if inner is not None and inner != innermost:
            if torch.is_inference_mode_enabled():
                why = (
                    f"runs under the inference-mode block at {block}, which "
                    "`torch.enable_grad()` cannot undo: run it outside the block, or make "
                    "that block `torch.no_grad()`, if it needs autograd"
                )
            else:
                why = (
                    f"runs under the grad-mode block at {block}; wrap it in "
                    "`torch.enable_grad()` if it should train"
                )
            found.append((inner, why))
        call = (path, frame.f_lineno)
        if inner is not None and call != inner and frame.f_lineno != start:
            # (The call inside the block that leads down to it: what to move out.)
            there = f"line {inner[1]}" if inner[0] == path else f"{_short(inner[0])}:{inner[1]}"
            why = (
                f"calls from inside the grad-mode block at {block} the code at {there}: "
                "call it outside the block if what it makes is trained"
            )
            found.append((call, why))
        if start in _decorated(path):
            # `@torch.no_grad()` over a function: its callers meant it for inference; the
            # call of it on the way to a loss is where the fix may belong.
            outer = next_user_frame(frame.f_back)
            if outer is not None:
                name = frame.f_code.co_name
                why = (
                    f"calls {name}(), which runs with autograd off (its decorator at {block}): "
                    f"call code that records a graph here, if this should train"
                )
                found.append(((real_path(outer.f_code.co_filename), outer.f_lineno), why))
        inherited = _inherited_by(frame)
        if inherited is not None:
            why = (
                f"derives from `{inherited[1]}`, whose method turns autograd off in the block "
                f"at {block}: derive it from a base that keeps autograd, if it should train"
            )
            found.append((inherited[0], why))
        made = _chooser_made(frame, path, start)
        if made is not None:
            why = (
                f"{CONFIGURED}; its settings chose the grad mode of the block at {block}: "
                "check them (`inference_mode=...`)"
            )
            found.append((made, why))
        for line in mode_returned(path, start, torch.is_inference_mode_enabled()):
            why = (
                f"returns the grad mode that the block at {block} turns autograd off with: "
                "return `contextlib.nullcontext()` where the code run needs autograd"
            )
            found.append(((path, line), why))
        default = setting_default(path, start)
        if default is not None:
            line, name = default
            why = (
                f"{SETTING} `{name}`, by its default here, chose the grad mode of the block "
                f"at {block}: check it"
            )
            found.append(((path, line), why))
        return tuple(found)
    found = []
    if inner is not None:
        found.append((inner, f"runs with autograd off, under the grad-mode block at {block}"))
    outer = next_user_frame(frame.f_back)
    if outer is not None:
        why = f"calls code that runs with autograd off (the grad-mode block at {block})"
        found.append(((real_path(outer.f_code.co_filename), outer.f_lineno), why))
        made = _checkpoint_input_made(frame, outer)
        if made is not None:
            # (What made the checkpoint's input as it is, first: the likelier fixes.)
            found[:0] = [(made, CHECKPOINT_INPUT), *_checkpoint_input_frozen(outer, freezes)]
            call = real_path(outer.f_code.co_filename), outer.f_lineno
            default = keyword_default(*call, "use_reentrant")
            if default is not None:
                line, name = default
                why = (
                    f"{SETTING} `{name}`, by its default here, makes the `checkpoint` at line "
                    f"{call[1]} reentrant, which records no graph for an input that does not "
                    "require grad: make it False"
                )
                found.insert(1, ((call[0], line), why))
    return tuple(found)


CHECKPOINT_INPUT = (
    "makes the input of a reentrant `checkpoint` that does not require grad (frozen "
    "embeddings?): the checkpointed part then records no graph, though its parameters "
    "train; make the input require grad (`model.enable_input_require_grads()`), or pass "
    "use_reentrant=False"
)


_CHECKPOINTING_ON = ("gradient_checkpointing_enable", "set_grad_checkpointing")


def _checkpoint_input_frozen(
    outer: FrameType, freezes: FreezeLog
) -> list[tuple[tuple[str, int], str]]:
    """For a reentrant checkpoint whose input does not require grad, in a model's method:
    the user's lines that froze the model's first parameters (its embeddings, which make
    that input), and the calls that turned checkpointing on (`model.
    gradient_checkpointing_enable()`): the places for `enable_input_require_grads()`."""
    # (explain's helper: imported here, as explain imports this module)
    from gradlint.runtime_check.explain import lines_of

    model = outer.f_locals.get("self")
    if not isinstance(model, torch.nn.Module):
        return []
    found: list[tuple[tuple[str, int], str]] = []
    here = user_stack(outer)
    first = next(iter(parameters_of(model)), None)
    freeze = freezes.of(first) if first is not None else None
    stack = freeze.stack if freeze is not None else None
    text = (
        "froze the parameters that make the input of the reentrant `checkpoint` (the "
        "embeddings, with the rest): that input then does not require grad, and the "
        "checkpointed part records no graph; call `model.enable_input_require_grads()` after "
        "this, or use use_reentrant=False"
    )
    for line in lines_of(stack, here) if stack else []:
        found.append((line, text))
    running = {real_path(code.co_filename) for code, _ in here}
    for path in running:
        for line in _calls_named(path, _CHECKPOINTING_ON):
            found.append(
                (
                    (path, line),
                    "turns on reentrant checkpointing for a model whose inputs do not require "
                    "grad (frozen embeddings): call `model.enable_input_require_grads()` "
                    "after this, or use use_reentrant=False",
                )
            )
    return found


def _calls_named(path: str, names: tuple[str, ...]) -> list[int]:
    tree = parsed(path)
    if tree is None:
        return []
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    ]


def _checkpoint_input_made(frame: FrameType, outer: FrameType) -> tuple[str, int] | None:
    """A reentrant checkpoint runs its function under no_grad and gives the output a graph
    only if an input requires grad: where none does, the user's line (in the function that
    called `checkpoint`) that last assigned the first input, before the call."""
    if not frame.f_code.co_filename.replace("\\", "/").endswith("utils/checkpoint.py"):
        return None
    inputs = [v for v in frame.f_locals.get("args", ()) if isinstance(v, torch.Tensor)]
    if not inputs or any(v.requires_grad for v in inputs):
        return None
    return _assigned_in(outer, inputs[0], outer.f_lineno - 1)


CONFIGURED = "made the object whose method runs this code"
SETTING = "the setting"
_COMPREHENSIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")
# (the code running a chosen block, its first line) -> the user's line that made its object
_CHOOSERS: dict[tuple[CodeType, str, int], tuple[str, int] | None] = {}


@cache
def mode_returned(path: str, start: int, inference: bool) -> tuple[int, ...]:
    """For a block `with self._grad_context():` (a helper of the file's that picks the grad
    mode), the helper's `return` lines that hand out the mode on now: `torch.no_grad()` (or
    `set_grad_enabled(...)`), or `torch.inference_mode()` under inference mode."""
    tree = parsed(path)
    if tree is None:
        return ()
    names = {
        _called_name(item.context_expr)
        for node in ast.walk(tree)
        if isinstance(node, ast.With) and node.lineno == start
        for item in node.items
    } - {None}
    wanted = ("inference_mode",) if inference else ("no_grad", "set_grad_enabled")
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name not in names:
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Call):
                if _called_name(inner.value) in wanted:
                    found.append(inner.lineno)
    return tuple(sorted(found))


def _called_name(expr: ast.expr) -> str | None:
    """`f` for `f(...)` and `obj.f(...)`."""
    if not isinstance(expr, ast.Call):
        return None
    if isinstance(expr.func, ast.Attribute):
        return expr.func.attr
    return expr.func.id if isinstance(expr.func, ast.Name) else None


def _inherited_by(frame: FrameType) -> tuple[tuple[str, int], str] | None:
    """For a grad-mode block in a method that `self`'s class inherits from a base of the
    user's (`class L2Regularizer(NonTrainableNM)`, whose `__call__` runs under no_grad):
    the subclass's `class` line, and the base's name."""
    owner = frame.f_locals.get("self")
    if owner is None:
        return None
    klass = type(owner)
    name = frame.f_code.co_name
    if name in vars(klass) or not is_users(getattr(inspect.getmodule(klass), "__file__", "")):
        return None
    base = next(
        (
            b
            for b in klass.__mro__[1:]
            if getattr(vars(b).get(name), "__code__", None) is frame.f_code
        ),
        None,
    )
    defined = class_def(klass) if base is not None else None
    if defined is None or base is None:
        return None
    return (defined[0], defined[1].lineno), base.__name__


def _chooser_made(frame: FrameType, path: str, start: int) -> tuple[str, int] | None:
    """For a chosen grad-mode block in a method, the user's line that made the object
    whose settings chose it (`trainer = Trainer(max_epochs=2)`): found as a name bound to
    that object in a frame out from this one, and the last assignment to that name there."""
    key = (frame.f_code, frame.f_code.co_filename, start)
    if key in _CHOOSERS:
        return _CHOOSERS[key]
    found = None
    holder: FrameType | None = frame
    while holder is not None and holder.f_code.co_name in _COMPREHENSIONS:
        holder = holder.f_back  # (the block's line runs in a comprehension of the method)
    chosen = holder is not None and _chosen(path, start)
    owner = holder.f_locals.get("self") if holder is not None and chosen else None
    if holder is not None and owner is not None:
        found = made_at(owner, holder.f_back, attributes=False)
    if len(_CHOOSERS) > MAX_BLOCKS:
        _CHOOSERS.clear()
    _CHOOSERS[key] = found
    return found


def _option_behind(where: tuple[str, int]) -> list[tuple[str, tuple[str, int]]]:
    """The `args.<option>` reads of the statement at a user's line that runs now, whose
    name holds parsed command-line arguments, each with the `add_argument` line that
    defines it (in the user's files that ran: the frames' own, outwards)."""
    frame = next_user_frame(sys._getframe(2))
    if frame is None:
        return []
    found = []
    for name, attribute in names_read(*where):
        value = frame.f_locals.get(name, frame.f_globals.get(name))
        # (Options that are off, as a flag that freezes reads: `or`-ed with a test of
        # another, that one is only a choice among several.)
        if type(value).__name__ != "Namespace" or getattr(value, attribute, True):
            continue
        outer: FrameType | None = frame
        for _ in range(MAX_OUT):
            if outer is None:
                break
            path = real_path(outer.f_code.co_filename)
            if is_users(outer.f_code.co_filename):
                line = option_defined(path, attribute)
                if line is not None:
                    found.append((attribute, (path, line)))
                    break
            outer = outer.f_back
    return found


def _default_behind(where: tuple[str, int]) -> list[tuple[str, Any, tuple[str, int]]]:
    """The parameters with a default that the freeze at a user's line running now reads
    (or the tests of the `if`s around it: `if not trainable:`), whose value is the default:
    each with the user's call that left it so (`load(ckpt)` of `def load(ckpt,
    trainable=False)`)."""
    frame = next_user_frame(sys._getframe(2))
    if frame is None:
        return []
    caller = next_user_frame(frame.f_back)
    if caller is None:
        return []
    found = []
    for name, default in defaults_read(*where):
        value = frame.f_locals.get(name, _MISSING)
        if type(value) is type(default) and value == default:
            for call in _calls_leaving(caller, name):
                found.append((name, default, call))
    return found


def _calls_leaving(caller: FrameType, name: str) -> list[tuple[str, int]]:
    """The user's call that left a parameter at its default, and, where that call hands on
    its own function's `**kwargs` without it (`cls(modules=..., **kwargs)` in
    `from_hparams`), the calls further out that could have passed it."""
    found = []
    frame: FrameType | None = caller
    for _ in range(MAX_FORWARDED):
        if frame is None:
            break
        found.append((real_path(frame.f_code.co_filename), frame.f_lineno))
        code = frame.f_code
        if not code.co_flags & inspect.CO_VARKEYWORDS:
            break
        kwargs = code.co_varnames[
            code.co_argcount
            + code.co_kwonlyargcount
            + (1 if code.co_flags & inspect.CO_VARARGS else 0)
        ]
        text = linecache.getline(code.co_filename, frame.f_lineno)
        passed = frame.f_locals.get(kwargs)
        if f"**{kwargs}" not in text or not isinstance(passed, dict) or name in passed:
            break
        frame = next_user_frame(frame.f_back)
    return found


MAX_FORWARDED = 3


_MISSING = object()


def made_at(value: Any, frame: FrameType | None, attributes: bool = True) -> tuple[str, int] | None:
    """The user's line that made an object the program holds (an optimizer, a trainer): a
    name bound to it in a frame of the user's, from `frame` outwards, and the last
    assignment of a call's result to that name there; with `attributes`, also an attribute
    of a `self` there, and the line of its class that assigns it."""
    for _ in range(MAX_OUT):
        if frame is None:
            return None
        if is_users(frame.f_code.co_filename):
            found = _assigned_in(frame, value, frame.f_lineno)
            if found is not None:
                return found
            owner = frame.f_locals.get("self") if attributes else None
            for attribute, held in list(getattr(owner, "__dict__", {}).items()):
                if held is value:
                    found = assignment(type(owner), attribute)
                    if found is not None:
                        return found
        frame = frame.f_back
    return None


def assigned_here(
    value: Any, where: tuple[str, int] | None, cuts: list[tuple[str, int]]
) -> tuple[str, int] | None:
    """The line of the innermost user's function running now, before `where` (a line of
    it), that assigned `value` from a call (`loss = dice(mask, onehot)` before
    `loss.backward()`): where what was cut elsewhere came in, when none of the `cuts` is
    in this function (where they would show it already)."""
    frame = next_user_frame(sys._getframe(1))
    if frame is None or where is None or real_path(frame.f_code.co_filename) != where[0]:
        return None
    own = {line for _, _, line in frame.f_code.co_lines()}  # (not those of inner functions)
    if any(path == where[0] and line in own for path, line in cuts):
        return None
    # (`autograd.grad` is handed its outputs as a tuple: each of them.)
    values = value if isinstance(value, (tuple, list)) else (value,)
    for item in values[:MAX_OUTPUTS]:
        line = _assigned_in(frame, item, where[1] - 1)
        if line is not None and line != where:
            return line
    return None


MAX_OUTPUTS = 8


def _assigned_in(frame: FrameType, value: Any, before: int) -> tuple[str, int] | None:
    """The last line, up to `before`, of a frame's function that assigns a call's result to a
    name the frame binds to `value`."""
    code = frame.f_code
    path = real_path(code.co_filename)
    for name, bound in list(frame.f_locals.items()):
        if bound is value:
            line = _assigned_before(path, code.co_firstlineno, code.co_name, name, before)
            if line is not None:
                return path, line
    return None


MAX_OUT = 32  # frames looked through, out from the caller


def aliases(node: Any, frame: FrameType | None, made: set[tuple[str, int]]) -> list[Named]:
    """The names that the user's frames on the stack, from `frame` outwards, bind to the
    tensor a graph node made, by plain assignment of another name (`actor_feat = feat`),
    each with the line of that assignment: where it was handed on as it is, for the fix to
    `.detach()` it. (Not the lines in `made`, that computed it.)"""
    found: list[Named] = []
    for at, path, name, bound in _users_locals(frame):
        if _holds_node(bound, node):
            code = at.f_code
            line = _assigned_before(
                path, code.co_firstlineno, code.co_name, name, at.f_lineno, alias=True
            )
            if line is not None and (path, line) not in made:
                found.append(((path, line), name))
            # Where a loop hands what it kept under this name on to the next round
            # (`h = last_h` at an epoch's start, `last_h = h` at its end)
            for line, other in _handed_on_as(path, code.co_firstlineno, code.co_name, name):
                if (path, line) not in made:
                    found.append(((path, line), other))
    return found


def _users_locals(frame: FrameType | None) -> Iterator[tuple[FrameType, str, str, Any]]:
    """The names bound in the user's frames on the stack, from `frame` outwards: each
    frame, its file, a name and its value."""
    for _ in range(MAX_OUT):
        if frame is None:
            return
        code = frame.f_code
        if is_users(code.co_filename):
            path = real_path(code.co_filename)
            for name, bound in list(frame.f_locals.items())[:MAX_LOCALS]:
                yield frame, path, name, bound
        frame = frame.f_back


def leaves_taken(node: Any, frame: FrameType | None, most: int = 256) -> list[Named]:
    """The names that the user's frames on the stack, from `frame` outwards, bind to a leaf
    that requires grad and is no parameter (an input an optimizer tuned, returned by the
    helper that tuned it), found in the graph below a node: each with the line that
    assigned it. What is computed from it keeps a graph into later backwards."""
    leaves: list[torch.Tensor] = []
    seen: set[int] = set()
    queue = [node]
    while queue and len(seen) < most:
        current = queue.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        variable = getattr(current, "variable", None)
        if isinstance(variable, torch.Tensor):
            if not isinstance(variable, torch.nn.Parameter):
                leaves.append(variable)
            continue
        queue.extend(child for child, _ in current.next_functions if child is not None)
    found: list[Named] = []
    for at, path, name, bound in _users_locals(frame if leaves else None):
        if isinstance(bound, torch.Tensor) and any(bound is leaf for leaf in leaves):
            code = at.f_code
            # (In a loop, the last round's assignment may come after the line.)
            line = _assigned_before(
                path, code.co_firstlineno, code.co_name, name, at.f_lineno
            ) or _assigned_before(path, code.co_firstlineno, code.co_name, name, 10**9)
            if line is not None and _calls_own_function(path, line):
                found.append(((path, line), name))
    return found


def _calls_own_function(path: str, line: int) -> bool:
    """Whether the assignment at a line takes the result of a function the file defines
    (a helper that handed the tensor out), not of torch's."""
    tree = parsed(path)
    if tree is None:
        return False
    defined = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and node.lineno == line
            and isinstance(node.value, ast.Call)
        ):
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            return name in defined
    return False


def _holds_node(value: Any, node: Any) -> bool:
    """Whether a value is the tensor a graph node made, or a list or tuple that holds it
    (the gradients of each layer, handed on together)."""
    if isinstance(value, torch.Tensor):
        return value.grad_fn is node
    if isinstance(value, (list, tuple)):
        return any(
            isinstance(item, torch.Tensor) and item.grad_fn is node for item in value[:MAX_ITEMS]
        )
    return False


MAX_ITEMS = 64


def _handed_on_as(path: str, first: int, function: str, name: str) -> list[tuple[int, str]]:
    """In a loop of the function (or module) that starts at `first`, the plain assignments
    of `name` to another name (`h = last_h`), and the names given it, when the function
    also binds `name` back from that other name (`last_h = h`): state carried across the
    loop's rounds as it is."""
    scope = function_tree(path, first, function)
    if scope is None:
        return []
    pairs = [
        (node.lineno, target.id, node.value.id)
        for loop in ast.walk(scope)
        if isinstance(loop, (ast.For, ast.While))
        for node in ast.walk(loop)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    back = {(target, value) for _, target, value in pairs}
    return sorted(
        {
            (line, target)
            for line, target, value in pairs
            if value == name and (name, target) in back
        }
    )


Named = tuple[tuple[str, int], str]
MAX_LOCALS = 200


def _assigned_before(
    path: str, first: int, function: str, name: str, line: int, alias: bool = False
) -> int | None:
    """The last line, up to `line`, of the function (or module) that starts at `first`, that
    assigns a call's result to `name` (with `alias`, another name or attribute's value, or
    an item of one: `d_z = self.cache["d_z"]`)."""
    scope = function_tree(path, first, function)
    if scope is None:
        return None
    best = None
    for node in own_nodes(scope):
        if (
            isinstance(node, ast.Assign)
            and isinstance(
                node.value, (ast.Name, ast.Attribute, ast.Subscript) if alias else ast.Call
            )
            and node.lineno <= line
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and (best is None or node.lineno > best)
        ):
            best = node.lineno
    return best


def own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function (or module), not those of the functions and classes it
    defines, whose names are their own."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _short(path: str) -> str:
    """A file by its last two parts (`utils/checkpoint.py`)."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def _grad_mode_block(path: str, line: int, inference: bool = False) -> int | None:
    """The line of the innermost `with torch.no_grad():` (or `inference_mode`,
    `set_grad_enabled`) around `line` in the user's file, if there is one; with
    `inference`, not a plain `no_grad` or `set_grad_enabled` one."""
    plain = _plain_blocks(path) if inference else frozenset()
    best = None
    for start, end, _ in _grad_mode_blocks(path):
        if start <= line <= end and (best is None or start > best) and start not in plain:
            best = start
    return best


@cache
def _plain_blocks(path: str) -> frozenset[int]:
    """The first lines of the grad-mode blocks of a file that are `torch.no_grad()` or
    `torch.set_grad_enabled(...)` as written: blocks that make no inference tensors."""
    tree = parsed(path)
    if tree is None:
        return frozenset()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            contexts = [(item.context_expr, node.lineno) for item in node.items]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            contexts = [(decorator, decorator.lineno) for decorator in node.decorator_list]
        else:
            continue
        for context, start in contexts:
            target = context.func if isinstance(context, ast.Call) else context
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in ("no_grad", "set_grad_enabled"):
                found.add(start)
    return frozenset(found)


def _chosen(path: str, start: int) -> bool:
    """Whether the grad-mode block at a line is chosen by the program (`torch.inference_mode()
    if self.inference_mode else torch.no_grad()`, a helper that returns one, a name bound
    to one) rather than written as such."""
    return any(chosen for begin, _, chosen in _grad_mode_blocks(path) if begin == start)


@cache
def _decorated(path: str) -> frozenset[int]:
    """The lines of grad-mode decorators over functions (`@torch.no_grad()`) in a file."""
    tree = parsed(path)
    if tree is None:
        return frozenset()
    made = _decorator_makers(tree)
    return frozenset(
        decorator.lineno
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for decorator in node.decorator_list
        if _names_grad_mode(decorator, made, frozenset())
    )


def _decorator_makers(tree: ast.Module) -> frozenset[str]:
    """The functions of a file that make a grad-mode decorator of their own (YOLO's
    `smart_inference_mode()`, which returns `torch.inference_mode()(fn)` in a wrapper)."""
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(isinstance(inner, (ast.FunctionDef, ast.Lambda)) for inner in ast.walk(node))
        and any(
            (isinstance(part, ast.Attribute) and part.attr in _TURNS_OFF)
            or (isinstance(part, ast.Name) and part.id in _TURNS_OFF)
            for part in ast.walk(node)
        )
    )


_TURNS_OFF = ("no_grad", "inference_mode")


@cache
def undecorated_sibling(path: str, first: int, name: str) -> tuple[int, str, int] | None:
    """A method that runs with autograd on in a class that decorates another method with a
    grad-mode decorator (`@torch.inference_mode()` over `_forward_single`, none over
    `_forward_batch`): its `def` line, the other's name and that decorator's line."""
    tree = parsed(path)
    if tree is None:
        return None
    for klass in ast.walk(tree):
        if not isinstance(klass, ast.ClassDef):
            continue
        methods = [n for n in klass.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        target = next(
            (
                m
                for m in methods
                if m.name == name
                and min([m.lineno, *(d.lineno for d in m.decorator_list)]) == first
            ),
            None,
        )
        if target is None:
            continue
        off = frozenset[str]()
        if any(_names_grad_mode(d, off, off) for d in target.decorator_list):
            return None
        for method in methods:
            for decorator in method.decorator_list:
                if method is not target and _names_grad_mode(decorator, off, off):
                    return target.lineno, method.name, decorator.lineno
    return None


_TRAINS = frozenset({"backward", "grad", "step", "zero_grad"})


def weight_editor(path: str, line: int) -> int | None:
    """The `def` of the function (not a forward) around a line that changes a leaf that
    requires grad in place, when it only edits tensors: it calls no backward, no
    `autograd.grad` and no step, and no grad-mode decorator is on it (a fold of batch norm
    into a convolution, a pruning mask applied, a manual update in a helper)."""
    tree = parsed(path)
    if tree is None:
        return None
    function = function_around(tree, line)
    if function is None or function.name in ("forward", "__call__"):
        return None
    off = frozenset[str]()
    if any(_names_grad_mode(d, off, off) for d in function.decorator_list):
        return None
    arguments = {a.arg for a in (*function.args.posonlyargs, *function.args.args)}
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Name)
            and node.value.id in arguments
        ):
            return None  # (it hands back the tensor it was given: an op on data)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in _TRAINS:
                return None
        elif isinstance(node, ast.With) and any(
            _names_grad_mode(item.context_expr, off, off) for item in node.items
        ):
            return None  # (it turns autograd off somewhere already: the block is the place)
    return function.lineno


@cache
def _grad_mode_blocks(path: str) -> tuple[tuple[int, int, bool], ...]:
    tree = parsed(path)
    if tree is None:
        return ()
    # What may name a grad mode besides `torch.no_grad()` itself: a helper that returns
    # one (`with self._eval_context():`), and a name bound to one (`ctx = ... ; with ctx:`)
    helpers: set[str] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            isinstance(part, ast.Return)
            and part.value is not None
            and _names_grad_mode(part.value, frozenset(), frozenset())
            for part in ast.walk(node)
        ):
            helpers.add(node.name)
        elif isinstance(node, ast.Assign) and _names_grad_mode(
            node.value, frozenset(), frozenset()
        ):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    known, bound = frozenset(helpers), frozenset(names)
    makers = _decorator_makers(tree)
    blocks = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            chosen = False
            for item in node.items:
                if _names_grad_mode(item.context_expr, frozenset(), frozenset()):
                    chosen = chosen or isinstance(item.context_expr, ast.IfExp)
                elif _names_grad_mode(item.context_expr, known, bound):
                    chosen = True
                else:
                    continue
                blocks.append((node.lineno, node.end_lineno or node.lineno, chosen))
                break
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # `@torch.no_grad()` over a function: its body, from the decorator's line
            for decorator in node.decorator_list:
                if _names_grad_mode(decorator, makers, frozenset()):
                    blocks.append((decorator.lineno, node.end_lineno or node.lineno, False))
    return tuple(blocks)


def _names_grad_mode(expr: ast.expr, helpers: frozenset[str], names: frozenset[str]) -> bool:
    """Whether an expression may make a context that turns autograd off: a grad-mode call
    (not `set_grad_enabled(True)` or `inference_mode(False)`), either branch of a choice,
    a call of a helper that returns one, or a name bound to one."""
    if isinstance(expr, ast.IfExp):
        return any(_names_grad_mode(side, helpers, names) for side in (expr.body, expr.orelse))
    if isinstance(expr, ast.Name) and expr.id in names:
        return True
    target = expr.func if isinstance(expr, ast.Call) else expr
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    if isinstance(expr, ast.Call) and name in helpers:
        return True
    if name not in _GRAD_MODE_CALLS:
        return False
    # `set_grad_enabled(True)` and `inference_mode(False)` turn nothing off.
    harmless = _HARMLESS_FLAG.get(name)
    flag = expr.args[0] if isinstance(expr, ast.Call) and expr.args else None
    return not (harmless is not None and isinstance(flag, ast.Constant) and flag.value is harmless)


_HARMLESS_FLAG = {"set_grad_enabled": True, "inference_mode": False}


def with_freezing_loops(lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Lines, each followed by the `for p in model.parameters():` around it that sets
    `requires_grad` (the loop, not the line, says which parameters froze)."""
    found: dict[tuple[str, int], None] = {}
    for line in lines:
        found[line] = None
        loop = freezing_loop(line)
        if loop is not None:
            found[loop] = None
    return list(found)


def freezing_loop(where: tuple[str, int]) -> tuple[str, int] | None:
    """The `for p in model.parameters():` around a line that sets `requires_grad` (the
    loop, not the line, says which parameters froze), if there is one."""
    path, line = where
    for start, first, end in _freezing_loops(path):
        if first <= line <= end:
            return path, start
    return None


@cache
def _freezing_loops(path: str) -> tuple[tuple[int, int, int], ...]:
    """(the loop's line, its body's first and last lines) of each loop over parameters
    that sets `requires_grad`, innermost first."""
    tree = parsed(path)
    if tree is None:
        return ()
    loops = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.For)
            and "parameters" in ast.unparse(node.iter)
            and "requires_grad" in ast.unparse(node)
        ):
            loops.append((node.lineno, node.body[0].lineno, node.end_lineno or node.lineno))
    return tuple(sorted(loops, key=lambda loop: -loop[0]))


def sibling_call(made: Site, failing: Site) -> tuple[str, int] | None:
    """The user's call, in the innermost function that ran both, that leads to a failing
    op, where that function reached the inference region by another call (a decorated
    `generate()`) rather than by a block of its own, which is named already."""
    for depth, ((code, line), (other, here)) in enumerate(
        zip(made[::-1], failing[::-1], strict=False)
    ):
        if code is not other:
            return None
        if line != here:
            path = real_path(code.co_filename)
            if depth == len(failing) - 1 or _grad_mode_block(path, line) is not None:
                return None
            return path, here
    return None
