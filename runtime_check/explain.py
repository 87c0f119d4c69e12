"""How an autograd error is explained at the user's lines: each place where the fix could go,
from the graph nodes' recorded sites and the user's stacks (a second backward through a freed
graph, a tensor handed down to a `.numpy()`, a non-leaf given to an optimizer)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any

import torch
from gradlint.runtime_check.cuts import aliases, leaves_taken, state_guard, weight_editor
from gradlint.runtime_check.frames import next_user_frame, real_path
from gradlint.runtime_check.graphs import (
    Handed,
    Site,
    children,
    entered_at,
    first_freed,
    first_spent,
    freed_by,
    site_of,
    user_stack,
)
from gradlint.runtime_check.layers import (
    Line,
    assignment,
    attribute_uses,
    attributes_holding,
    holders,
)
from gradlint.runtime_check.sources import (
    carried_attribute,
    dict_display,
    returned,
    skipped_freeze,
)


def non_leaf_site(frame: FrameType) -> Site:
    """Where the non-leaf tensor an optimizer refused was made (its constructor's frame
    holds it as `param`), from its graph node."""
    param = frame.f_locals.get("param")
    node = getattr(param, "grad_fn", None) if isinstance(param, torch.Tensor) else None
    return site_of(node) if node is not None else ()


def backward_at(where: tuple[str, int] | None) -> str:
    return f"backward at line {where[1]}" if where is not None else "backward"


def second_backward(
    tensors: Any, raised: tuple[str, int] | None, error: str, modules: Iterable[Any] = ()
) -> list[tuple[tuple[str, int], str]]:
    """The lines of a backward through a freed graph, each a place for the fix: the line
    that built the part it shares with a graph an earlier backward freed, the lines where
    each graph took that part in (for a `.detach()`), the earlier backward (that could have
    retained it) and this one. A line inside a helper or a model's forward comes with the
    call to it in the function that runs this backward, where that is on the way."""
    shared = first_freed(tensors)
    if shared is None:
        return [(raised, error)] if raised is not None else []
    here = user_stack()
    freeing, raising = _backward_lines(freed_by(shared.freed), here)
    raised = raising or raised
    by = f"the backward at line {freeing[1]}" if freeing is not None else "an earlier backward"
    this = backward_at(raised)
    found: list[tuple[tuple[str, int], str]] = []

    def add(where: tuple[str, int] | None, text: str) -> None:
        if where is not None and all(where != seen for seen, _ in found):
            found.append((where, text))

    made = lines_of(site_of(shared.top), here)
    if not made:
        add(raised, error)
        return found
    part = f"the part made at line {made[-1][1]}"
    for line in made:
        add(line, f"made here, back-propagated and freed by {by}, and used again by the {this}")
    spent = first_spent(shared.freed)
    if spent is not None and spent is not shared.top:
        for line in lines_of(site_of(spent), here)[:1]:
            add(line, f"saved tensors here that {by} freed; the {this} needs them again")
    if freeing != raised:
        # Two backwards: the first graph might have left the shared part alone. (One
        # backward's later pass: it is the state carried over that should not be.)
        for line in lines_of(entered_at(shared.freed), here):
            add(
                line,
                f"takes {part} into the graph that {by} frees; `.detach()` it here if no "
                f"gradient should reach {part} from here",
            )
        add(
            freeing,
            f"frees the graph that the {this} goes through again; pass retain_graph=True "
            "here if both must",
        )
    for line, name in aliases(shared.top, sys._getframe(1), set(made)):
        add(
            line,
            f"hands {part} on as `{name}`, with the graph that {by} frees: `.detach()` it here "
            "if no gradient should reach it from what follows, or compute it anew",
        )
    for line, name in leaves_taken(shared.top, sys._getframe(1)):
        add(
            line,
            f"takes here `{name}`, a tensor that requires grad from which {part} was "
            f"computed; its graph outlives {by}: `.detach()` it here if it is data from now on",
        )
    out = handed_out(site_of(shared.top), here) if freeing == raised else None
    if out is not None and out not in made:
        # (One backward's later pass: a helper returned the part, and its caller kept it.)
        add(
            out,
            f"returns the part made at line {made[0][1]} with its graph, which the caller "
            f"keeps past {by}: return "
            "`.detach()` of it, or compute it anew for each backward",
        )
    entered = lines_of(shared.entry, here)
    for line in entered:
        add(
            line,
            f"takes in {part}, which {by} already freed: `.detach()` it here, or compute it "
            "anew for this backward",
        )
    # (Where this graph, or the one the earlier backward freed, took the part in.)
    for code, line in dict.fromkeys((*shared.entry, *entered_at(shared.freed))):
        path = real_path(code.co_filename)
        for at, attribute, kept in carried_attribute(path, code.co_firstlineno, code.co_name, line):
            add(
                (path, at),
                f"starts from `self.{attribute}`, which line {kept} keeps from the last call, "
                f"with the graph that {by} freed: start from fresh values, or keep "
                "`.detach()`ed ones",
            )
            add(
                (path, kept),
                f"keeps `self.{attribute}` for the next call with its graph, which {by} "
                f"frees: keep `.detach()`ed values (line {at} starts from it)",
            )
    if shared.onward is not None and entered:
        stack, callee = shared.onward
        add(
            _line(stack[0]),
            f"hands what line {entered[0][1]} made, which takes in {part}, to {callee}(): "
            f"the {this} goes through it into the freed part; `.detach()` it here",
        )
    for where, name, kind in _kept_in(modules, (shared.freed, shared.top)):
        add(
            where,
            f"keeps {part} in the {kind} `self.{name}`, into the next step, after {by} freed "
            "its graph: empty it each step, or keep `.detach()`ed tensors in it",
        )
    handed = shared.handed or _kept_on(modules, (shared.freed, shared.top))
    if handed is not None:
        where, name = handed
        if name:
            text = (
                f"keeps {part} on the module as `self.{name}`, into the next step, after {by} "
                f"freed its graph: keep `.detach()`ed state"
            )
            guard = state_guard(where[0], where[1], name)
            if guard is not None:
                add(
                    (where[0], guard),
                    f"decides whether to make `self.{name}` anew, and let the one with the "
                    f"graph {by} freed be used again: make it anew whenever autograd is on "
                    "(`torch.is_grad_enabled()`), or keep it `.detach()`ed",
                )
            helper = _computed_by_helper(site_of(shared.top), where)
            if helper is not None:
                add(
                    helper,
                    f"computes with autograd on the `self.{name}` that line {where[1]} keeps "
                    f"into the next step, whose graph {by} frees: decorate it with "
                    "`@torch.no_grad()` if no gradient is meant to go through it",
                )
        else:
            text = (
                f"hands {part} to a module after {by} freed its graph: `.detach()` it before "
                "it goes in (state kept from an earlier step?)"
            )
        add(where, text)
    if freeing == raised:
        add(
            raised,
            f"goes through {part} again, which this backward freed on an earlier pass: "
            "build it anew for each backward, or `.detach()` what carries over",
        )
    else:
        add(raised, f"goes through {part} again, which {by} freed")
    return found


def unfrozen(
    tensors: Any, optimized: set[int], origin: Callable[[torch.Tensor], Site], most: int = 5000
) -> list[tuple[tuple[str, int], str, tuple[str, int] | None]]:
    """For a backward through a freed graph: the freezes skipped by a parameter's default
    (`def load(freeze=False)`) in the code that made parameters in the freed part that no
    optimizer holds (a feature network meant to be fixed, whose graph a target kept): the
    default's line, the parameter's name and the call that made them. (Once an optimizer
    has stepped: before, none is known to hold anything.)"""
    shared = first_freed(tensors) if optimized else None
    if shared is None:
        return []
    found: dict[tuple[str, int], tuple[str, tuple[str, int] | None]] = {}
    seen: set[int] = set()
    queue = [shared.freed]
    while queue and len(seen) < most:
        node = queue.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if hasattr(node, "variable"):
            param = node.variable
            if isinstance(param, torch.nn.Parameter) and id(param) not in optimized:
                stack = origin(param)
                for at, (code, _) in enumerate(stack):
                    path = real_path(code.co_filename)
                    skipped = skipped_freeze(path, code.co_firstlineno, code.co_name)
                    if skipped is not None:
                        call = _line(stack[at + 1]) if at + 1 < len(stack) else None
                        found.setdefault((path, skipped[0]), (skipped[1], call))
                        break
            continue
        queue.extend(children(node))
    return [(line, name, call) for line, (name, call) in found.items()]


MAX_KEPT = 64  # the items of a container on a holder looked at


def _kept_in(keepers: Iterable[Any], nodes: tuple[Any, ...]) -> list[tuple[Line, str, str]]:
    """A list or dict on an object of the user's (a module, a hook's store) that holds the
    freed part now, among what it collected on earlier steps: the lines of its class that
    fill it and take from it, with the attribute's name and the container's kind."""

    def freed(value: Any) -> bool:
        return isinstance(value, torch.Tensor) and any(value.grad_fn is n for n in nodes)

    def holds(value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return any(freed(v) for v in value[:MAX_KEPT])
        if isinstance(value, dict):
            return any(freed(v) for v in list(value.values())[:MAX_KEPT])
        return False

    found = []
    for holder, name in holders(keepers, holds):
        kind = "dict" if isinstance(getattr(holder, name), dict) else "list"
        uses = attribute_uses(type(holder), name)
        made = assignment(type(holder), name)
        for where in uses or ([made] if made is not None else []):
            found.append((where, name, kind))
    return found


def _computed_by_helper(site: Site, kept: tuple[str, int]) -> tuple[str, int] | None:
    """The `def` of the helper of the user's that the line keeping state on a module called
    to compute it (`self.scale = tensor_to_scale(self.weight)`), when the helper trains
    nothing itself and runs with autograd on."""
    for deeper, (code, line) in zip(site, site[1:], strict=False):
        if (real_path(code.co_filename), line) != kept:
            continue
        path = real_path(deeper[0].co_filename)
        at = weight_editor(path, deeper[1])
        return (path, at) if at is not None else None
    return None


def _kept_on(modules: Iterable[Any], nodes: tuple[Any, ...]) -> Handed | None:
    """A module of the user's that holds the freed part as a plain attribute now (a cache
    filled on an earlier step, `self.cached = freqs`): the line of its class that sets it."""

    def holds(value: Any) -> bool:
        return isinstance(value, torch.Tensor) and any(value.grad_fn is n for n in nodes)

    return next(attributes_holding(modules, holds), None)


def handed_in(tensor: torch.Tensor, most: int = 3) -> list[tuple[tuple[str, int], str]]:
    """The user's calls that handed `tensor` down to the innermost user function, as one of
    its arguments or inside one (a list of losses to plot): outermost last."""
    frame = next_user_frame(sys._getframe(1))
    found: list[tuple[tuple[str, int], str]] = []
    while frame is not None and len(found) < most and _holds_argument(frame, tensor):
        name = frame.f_code.co_name
        caller = next_user_frame(frame.f_back)
        if caller is None:
            break
        found.append(((real_path(caller.f_code.co_filename), caller.f_lineno), name))
        frame = caller
    return found


def dict_built(tensor: torch.Tensor, made: Site, most: int = 64) -> tuple[str, int] | None:
    """Where the dict that carries `tensor` to the failing call (a logger's metrics, taken as
    an argument by a user's frame on the stack) was built: a display of the same keys, in
    a function that made the tensor (`{"train_loss": loss}` in `training_step`)."""
    keys: frozenset[str] | None = None
    frame = next_user_frame(sys._getframe(1))
    while frame is not None and keys is None:
        code = frame.f_code
        for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
            value = frame.f_locals.get(name)
            if (
                isinstance(value, dict)
                and 0 < len(value) <= most
                and all(isinstance(key, str) for key in value)
                and any(item is tensor for item in value.values())
            ):
                keys = frozenset(value)
                break
        frame = next_user_frame(frame.f_back)
    if keys is None:
        return None
    for code, _ in made:
        path = real_path(code.co_filename)
        line = dict_display(path, code.co_firstlineno, code.co_name, keys)
        if line is not None:
            return path, line
    return None


def _holds_argument(frame: FrameType, tensor: torch.Tensor) -> bool:
    code = frame.f_code
    if code.co_name == "<module>":
        return False
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    for name in code.co_varnames[:count]:
        value = frame.f_locals.get(name)
        if value is tensor:
            return True
        if isinstance(value, (list, tuple)) and any(item is tensor for item in value[:10_000]):
            return True
        if isinstance(value, dict) and any(
            item is tensor for item in list(value.values())[:10_000]
        ):
            return True
    return False


def sequence(node: Any) -> int:
    return int(node._sequence_nr())


def _backward_lines(
    freeing: Site, raising: Site
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The lines of the two backwards, as the user's code tells them apart: both may run in
    one helper (`def backward(self, loss): loss.backward()`), called from two places. The
    same stack twice is a loop's pass over a graph an earlier pass freed."""
    if not freeing:
        return None, _line(raising[0]) if raising else None
    for first, second in zip(freeing, raising, strict=False):
        if first != second:
            return _line(first), _line(second)
    return _line(freeing[0]), _line(freeing[0])


def _line(frame: tuple[CodeType, int]) -> tuple[str, int]:
    return real_path(frame[0].co_filename), frame[1]


def came_from(
    origin: Site, here: Site, where: tuple[str, int] | None
) -> tuple[list[tuple[str, int]], tuple[str, int] | None]:
    """Where a tensor an error is about was made (`lines_of` its site), and, in the function
    on both stacks, the call on the failing side that handed it on to the line `where`
    that failed, if that call is another line."""
    made = [line for line in lines_of(origin, here) if line != where]
    running = {code: line for code, line in reversed(here)}
    for code, _ in origin:
        if code in running:
            call = (real_path(code.co_filename), running[code])
            return made, (call if call != where and call not in made else None)
    return made, None


def handed_out(origin: Site, here: Site) -> tuple[str, int] | None:
    """Where the function that made a tensor, no longer running, returned it to the code on
    the failing stack: the `return` that hands out the name it was assigned to."""
    running = {code for code, _ in here}
    returning: tuple[CodeType, int] | None = None
    for frame in origin:
        if frame[0] in running:
            break
        returning = frame
    else:
        return None
    if returning is None:
        return None
    code, line = returning
    path = real_path(code.co_filename)
    found = returned(path, code.co_firstlineno, code.co_name, line)
    return (path, found) if found is not None else None


def lines_of(stack: Site, here: Site) -> list[tuple[str, int]]:
    """A site's lines: the innermost (inside a helper or a model's forward), the call in the
    function on both stacks (as the code running now sees it), and, between the two, the
    calls in helpers on the way (`get_embeddings(...)` that returns the tensor), not in
    modules' forwards (a model's own structure)."""
    if not stack:
        return []
    running = {code for code, _ in here}
    chain = [stack[0]]
    if stack[0][0] not in running:
        for frame in stack[1:]:
            if frame[0] in running:
                chain.append(frame)
                break
            if frame[0].co_name != "forward":
                chain.append(frame)
        else:
            chain = chain[:1]  # (no function on both stacks: the innermost line alone)
    return list(dict.fromkeys(_line(frame) for frame in chain))
