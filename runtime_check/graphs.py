"""Where graph nodes were made, kept on the nodes themselves (`grad_fn.metadata`, which
dies with the node), so that "backward through the graph a second time" can name the line
that let an already freed graph into the new one."""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any, NamedTuple, cast

import torch
from gradlint.runtime_check.frames import is_users, real_path, user_frame
from gradlint.runtime_check.layers import assignment

SITE = "gradlint.site"  # the key in a node's metadata: where it was made
FREED = "gradlint.freed"  # ... whether a backward has freed it
RETAINED = "gradlint.retained"  # ... or gone through it, keeping it
PENDING = "gradlint.pending"  # ... and what waits for a backward through it
ENTERED = "gradlint.entered"  # ... and where the graph a backward went through took it in
MODEL = "gradlint.model"  # ... and, on a model's output, the id of the model that made it
HANDED = "gradlint.handed"  # ... and where it was kept from an earlier step (see Handed)
INNER = "gradlint.inner"  # ... and, on a library module's output, what is below it (mark_inner)
LEAVES = "gradlint.leaves"  # ... and, on a retained graph's root, the leaves a walk found below
MAX_FRAMES = 8
MAX_NODES = 100_000
MAX_CODES = 50_000

Site = tuple[tuple[CodeType, int], ...]  # the user's frames, innermost first
# Where state kept from an earlier step went into a forward: the call that handed it in
# (and ""), or the line that keeps it on a module (and the attribute's name).
Handed = tuple[tuple[str, int], str]
MAX_ATTRIBUTES = 200  # a module's attributes looked at, per forward


# Whether a code object is the user's, by the object: asked for every frame of the stack
# at every op that makes a graph node, so a dictionary lookup rather than calls.
_USERS: dict[CodeType, bool] = {}


# Whether the tracer's line collector is the program's trace function (then line events in
# frames not the user's are silenced as the walks pass them)
QUIET_LIBRARIES = [False]

# One entry per module whose forward is running, innermost last: where it is PyTorch's own
# (`nn.TransformerEncoderLayer`, `nn.Linear`) or another library's, the user's frames outside
# it and the frame that calls its forward; None, where it is the user's. The ops its forward
# runs have those same user's frames, found once at its call rather than by a walk of the
# whole stack at each op.
MODULE_SITES: list[tuple[Site, FrameType] | None] = []
MAX_INSIDE = 16  # frames looked through, out from an op to the module's call


def next_sequence() -> int | None:
    """The number autograd gives the next graph node it makes (nodes are numbered in the
    order they are made, per thread), where this PyTorch tells it."""
    read = getattr(torch._C._autograd, "_get_sequence_nr", None)
    return read() if read is not None else None


def op_site(frame: FrameType) -> Site:
    """The user's frames of an op called from `frame`: those of the library's module whose
    forward runs it, unless code of the user's runs between (a hook that a module runs)."""
    sites = MODULE_SITES
    entry = sites[-1] if sites else None
    if entry is not None:
        site, call = entry
        users = _USERS
        inner: FrameType | None = frame
        for _ in range(MAX_INSIDE):
            if inner is None:
                break
            if inner is call:
                if QUIET_LIBRARIES[0]:
                    frame.f_trace_lines = False  # (as a walk of the stack would have done)
                return site
            code = inner.f_code
            mine = users.get(code)
            if mine is None:
                mine = users[code] = is_users(code.co_filename)
            if mine:
                break
            inner = inner.f_back
    return user_stack(frame)


def user_stack(frame: FrameType | None = None) -> Site:
    sys._getframe().f_trace_lines = False  # (a loop over frames: no line events)
    frame = frame or sys._getframe(1)
    found: list[tuple[CodeType, int]] = []
    users = _USERS
    while frame is not None:
        code = frame.f_code
        mine = users.get(code)
        if mine is None:
            if len(users) > MAX_CODES:  # (code made on the fly, again and again)
                users.clear()
            mine = users[code] = is_users(code.co_filename)
        if mine:
            found.append((code, frame.f_lineno))
            if len(found) == MAX_FRAMES:
                break
        elif QUIET_LIBRARIES[0]:
            # PyTorch's frames (a module's call, a functional op): no line events for the
            # rest of them, which the line collector only drops
            frame.f_trace_lines = False
        frame = frame.f_back
    return tuple(found)


def note_made(node: Any) -> None:
    """Mark a graph node a torch call just made with the user's frames that made it."""
    metadata = node.metadata
    if SITE not in metadata:
        metadata[SITE] = op_site(sys._getframe(2))


# The graph nodes that ops run unwatched made (those of a library's module), by their
# numbers: (first, past the last, the user's frames that made them), in order. A walk of
# each module's graph as it returns would cost more than the rest of the watch on a model
# of PyTorch's layers; a lookup, only for the few nodes an explanation asks about.
_MADE: list[tuple[int, int, Site]] = []
MAX_MADE = 10_000


def mark_made(nodes: list[Any], site: Site, since: int | None = None) -> None:
    """Mark the graph nodes that ops run unwatched made, from `since` (the number autograd
    gave the first of them, where this PyTorch tells it) to now, with the user's frames
    that made them: the outputs' nodes on themselves, the rest by their numbers."""
    now = next_sequence() if since is not None else None
    if since is None or now is None or (_MADE and since < _MADE[-1][1]):
        # (No numbers, or numbered by another thread: the nodes are walked.)
        _walk_made(nodes, site)
        return
    for node in nodes:
        if node is not None and not hasattr(node, "variable"):
            node.metadata.setdefault(SITE, site)
    if now > since:
        if len(_MADE) >= MAX_MADE:
            del _MADE[: MAX_MADE // 2]
        _MADE.append((since, now, site))


def _made_at(number: int) -> Site | None:
    """The user's frames that made, unwatched, the node numbered `number`."""
    at = bisect_right(_MADE, number, key=lambda made: made[0]) - 1
    if at >= 0 and number < _MADE[at][1]:
        return _MADE[at][2]
    return None


def _walk_made(nodes: list[Any], site: Site, most: int = MAX_NODES) -> None:
    queue = deque(node for node in nodes if node is not None)
    count = 0
    while queue and count < most:
        node = queue.popleft()
        if hasattr(node, "variable"):
            continue
        metadata = node.metadata
        if SITE in metadata:
            continue
        metadata[SITE] = site
        count += 1
        queue.extend(child for child, _ in node.next_functions if child is not None)


def note_handed(args: tuple[Any, ...], before: int) -> None:
    """Before a module's forward: an argument (or a tensor of a tuple of them, an LSTM's
    state) made before the latest backward (its node numbered below `before`) is state kept
    from an earlier step. The call's line is kept on its node, for when a backward through
    the new graph finds that state's graph freed."""
    for value in args:
        for tensor in value if isinstance(value, (tuple, list)) else (value,):
            node = tensor.grad_fn if isinstance(tensor, torch.Tensor) else None
            if node is not None and node._sequence_nr() < before:
                metadata = _metadata(node)
                if HANDED not in metadata:
                    where = user_frame()
                    if where is not None:
                        metadata[HANDED] = (where, "")


def note_kept(module: Any, before: int) -> None:
    """Before a forward of a module of the user's: a tensor kept on it as a plain attribute,
    made before the latest backward, is state kept from an earlier step (`self.hidden = h`,
    `self.target = target`). The line that assigns the attribute is kept on its node."""
    for name, value in list(vars(module).items())[:MAX_ATTRIBUTES]:
        node = value.grad_fn if isinstance(value, torch.Tensor) else None
        if node is not None and node._sequence_nr() < before:
            metadata = _metadata(node)
            if HANDED not in metadata:
                where = assignment(type(module), name, updated=True) or user_frame()
                if where is not None:
                    metadata[HANDED] = (where, name)


def note_model_output(node: Any, model: Any) -> None:
    """A model's forward (the outermost module's) made this node's tensor."""
    _metadata(node)[MODEL] = id(model)


def made_by_model(node: Any) -> int | None:
    """The id of the model whose forward made a node's tensor, if one did."""
    made = _metadata(node).get(MODEL)
    return made if isinstance(made, int) else None


def handed_at(node: Any) -> Handed | None:
    """Where a node's tensor, kept from an earlier step, went into a forward."""
    handed = _metadata(node).get(HANDED)
    return handed if isinstance(handed, tuple) else None


class Pending:
    """A graph that should be back-propagated (or it was a waste to record): settled when a
    backward goes through the node that holds it."""

    __slots__ = ("propagated", "step", "where", "crossed")

    def __init__(self, step: int = 0, where: object = None) -> None:
        self.propagated = False
        self.step = step  # the optimizer steps taken before it was held
        self.where = where  # the line that held it
        # Walked again only by the same line's backward after an optimizer step: kept alive
        # across steps by state carried over (an RNN's hidden state), not used in its step.
        self.crossed = False


def hold(node: Any, pending: Pending) -> None:
    _metadata(node).setdefault(PENDING, []).append(pending)


def held_on(node: Any) -> list[Pending]:
    return cast(list[Pending], _metadata(node).get(PENDING, []))


def mark_inner(
    outputs: list[Any], since: int, inputs: tuple[torch.Tensor, ...], weights: list[torch.Tensor]
) -> None:
    """On the output nodes of a library's module run unwatched (made since node number
    `since`): what a backward through them reaches below the module, the nodes its inputs
    came from and the tensors that take gradients there (inputs that are leaves, weights),
    so that a walk steps over the module's own nodes, which nothing of the user's holds."""
    # (A weight that is a view of another, a flat parameter's, is reached through its node.)
    below = tuple(
        t.grad_fn for t in (*inputs, *weights) if t.requires_grad and t.grad_fn is not None
    )
    takers = tuple(t for t in (*inputs, *weights) if t.requires_grad and t.grad_fn is None)
    for node in outputs:
        if node is not None and not hasattr(node, "variable") and node._sequence_nr() >= since:
            node.metadata[INNER] = (below, takers)


def mark_propagated(
    roots: Any, freed: bool, where: Site = (), kept: Pending | None = None, gradients: bool = False
) -> list[torch.Tensor]:
    """After a backward: settle what waited for one on the nodes it went through, and, when
    it did not retain its graph, mark them freed. Returns the leaves it reached (the tensors
    it gave gradients). (Stops at nodes an earlier backward already went through: the walk
    covers each graph once. With `gradients`, a backward that left them in `.grad`: a
    library's module run unwatched is stepped over, its weights reached if they got one.)"""
    sys._getframe().f_trace_lines = False  # (a walk over every node: no line events)
    # Each node goes with the site of the nearest node above it that has one: where the
    # graph being back-propagated took in the part below (a later backward that finds that
    # part freed names the line, the place for a `.detach()`).
    queue: deque[tuple[Any, Site | None]] = deque((node, None) for node in root_nodes(roots))
    count = 0
    mark = FREED if freed else RETAINED
    value = (where or True) if freed else (kept or True)
    leaves: dict[int, torch.Tensor] = {}
    leaf_types = _LEAF_TYPES
    while queue and count < MAX_NODES:
        node, above = queue.popleft()
        kind = type(node)
        leaf = leaf_types.get(kind)
        if leaf is None:
            leaf = leaf_types[kind] = hasattr(node, "variable")
        if leaf:
            variable = node.variable
            leaves.setdefault(id(variable), variable)
            continue
        metadata = node.metadata
        if mark in metadata or FREED in metadata:
            # (A graph kept and back-propagated again from the same root: what it reaches,
            # as the first walk found it.)
            for below in metadata.get(LEAVES, ()):
                leaves.setdefault(id(below), below)
            _reuse(metadata, kept)
            if kept is None or FREED in metadata or metadata.get(RETAINED) is kept:
                continue
            # (Kept again, for this backward's own later use: one that goes through any
            # part of it, a trunk shared with the next loss, settles this one too. The
            # walk goes on below, marking that part kept for this backward as well.)
            metadata[RETAINED] = kept
        else:
            if RETAINED in metadata:
                _reuse(metadata, kept)
            # A freed node keeps the user's stack at the backward; a retained one, what
            # waits for a later backward to use the graph kept for it.
            metadata[mark] = value
            if above is not None:
                metadata[ENTERED] = above
            if PENDING in metadata:
                for pending in metadata[PENDING]:
                    pending.propagated = True
        count += 1
        below = metadata.get(SITE) or above
        inner = metadata.get(INNER) if gradients else None
        if inner is not None:
            nodes, takers = inner
            for taker in takers:
                if taker.is_leaf:
                    if taker.grad is not None:
                        leaves.setdefault(id(taker), taker)
                elif taker.grad_fn is not None:
                    # (Weights computed from others: `functional_call` with fast weights, a
                    # parametrization. The walk goes on into what computed them.)
                    queue.append((taker.grad_fn, below))
            for child in nodes:
                queue.append((child, below))
            continue
        for child, _ in node.next_functions:
            if child is not None:
                queue.append((child, below))
    if not freed:
        for node in root_nodes(roots):
            if LEAVES not in node.metadata and not hasattr(node, "variable"):
                node.metadata[LEAVES] = tuple(leaves.values())
    return list(leaves.values())


def _reuse(metadata: dict[str, Any], this: Pending | None) -> None:
    """A backward went through a node an earlier one retained: that graph was kept for it.
    (Not this backward's own, met again on another path.)"""
    kept = metadata.get(RETAINED)
    if isinstance(kept, Pending) and kept is not this:
        if this is not None and this.step > kept.step and this.where == kept.where:
            if not kept.propagated:
                kept.crossed = True
        else:
            kept.crossed = False
        kept.propagated = True


def holds_freed(node: Any, before: int, most: int = 64) -> bool:
    """Whether a sum's node takes in, directly, a part made before the latest backward (its
    node numbered below `before`) whose graph reaches, within `most` nodes, one a backward
    freed: the sum keeps an already back-propagated graph alive (a running loss total, a
    history list). A sum of parts all made since (a residual add) is not looked into."""
    queue: deque[Any] = deque(
        child for child in children(node) if not _is_leaf(child) and child._sequence_nr() < before
    )
    seen: set[int] = set()
    while queue and len(seen) < most:
        current = queue.popleft()
        if id(current) in seen or _is_leaf(current):
            continue
        seen.add(id(current))
        if FREED in _metadata(current):
            return True
        queue.extend(children(current))
    return False


def reaches_leaf(node: Any, leaf: torch.Tensor, most: int = 256) -> bool:
    """Whether a graph reaches, within `most` nodes, the node that accumulates a leaf's
    gradient."""
    queue: deque[Any] = deque([node])
    seen: set[int] = set()
    while queue and len(seen) < most:
        current = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "variable", None) is leaf:
            return True
        queue.extend(children(current))
    return False


def near(node: Any, depth: int = 3) -> Iterator[Any]:
    """The node and those a few edges below it: where a sum's inputs' graphs start."""
    level = [node]
    for _ in range(depth):
        following: list[Any] = []
        for current in level:
            yield current
            following.extend(children(current))
        level = following


def root_nodes(roots: Any) -> list[Any]:
    """The graph nodes of a backward's tensors (one, or a list)."""
    tensors = roots if isinstance(roots, (tuple, list)) else (roots,)
    return [
        tensor.grad_fn
        for tensor in tensors
        if isinstance(tensor, torch.Tensor) and tensor.grad_fn is not None
    ]


def children(node: Any) -> list[Any]:
    return [child for child, _ in node.next_functions if child is not None]


class Shared(NamedTuple):
    """Where a backward met a graph an earlier backward freed."""

    freed: Any  # the node nearest the roots that an earlier backward freed
    top: Any  # that node, or where it was made inside one torch call the nearest node
    # above it with a site of its own: the line that built the shared part
    entry: Site  # the site of the nearest node above `top`: where this graph took it in
    handed: Handed | None  # where state holding it, kept from an earlier step, went in
    # Where what `entry` made was handed on to a helper or a model, in entry's function
    # (`fake_ab = cat(...)`, then `penalty(d, real_ab, fake_ab)`), with the callee's name
    onward: tuple[Site, str] | None = None


def first_freed(roots: Any) -> Shared | None:
    """Where the graph of `roots` meets one an earlier backward freed."""
    queue: deque[tuple[Any, Any]] = deque((node, None) for node in root_nodes(roots))
    parents: dict[int, Any] = {}
    while queue and len(parents) < MAX_NODES:
        node, parent = queue.popleft()
        if id(node) in parents:
            continue
        parents[id(node)] = parent
        if FREED in _metadata(node) and not _is_leaf(node):
            found: Any = node
            while found is not None and not site_of(found):
                found = parents.get(id(found))
            if found is None:
                return None
            above = parents.get(id(found))
            while above is not None and not site_of(above):
                above = parents.get(id(above))
            handed, up = None, node
            while up is not None and handed is None:
                handed, up = handed_at(up), parents.get(id(up))
            entry = site_of(above) if above is not None else ()
            onward = _handed_on(above, entry, parents) if above is not None else None
            return Shared(node, found, entry, handed, onward)
        queue.extend((child, node) for child in children(node))
    return None


def _handed_on(entry: Any, site: Site, parents: dict[int, Any]) -> tuple[Site, str] | None:
    """The first node above `entry`, on the way to the roots, made inside a call (a helper,
    a model) from entry's function at another line: that call, and the callee's name. None
    where the way leaves entry's function first."""
    if not site:
        return None
    code, line = site[0]
    node = parents.get(id(entry))
    for _ in range(MAX_NODES):
        if node is None:
            return None
        stack = site_of(node)
        if stack:
            depth = next((i for i, (c, _) in enumerate(stack) if c is code), None)
            if depth is None:
                return None
            if stack[depth][1] != line:
                if depth == 0:
                    return None  # used by an op in entry's function itself
                return stack[depth:], stack[depth - 1][0].co_name
        node = parents.get(id(node))
    return None


def first_spent(node: Any) -> Any:
    """The nearest node at or below `node` whose saved tensors a backward freed, made by a
    torch call of the user's: where a second backward through it fails. (A node that saved
    nothing, a sum's or a split's, goes through again without harm.)"""
    queue: deque[Any] = deque([node])
    seen: set[int] = set()
    while queue and len(seen) < MAX_NODES:
        current = queue.popleft()
        if id(current) in seen or _is_leaf(current):
            continue
        seen.add(id(current))
        if site_of(current) and _saved_raises(current, FREED_ERROR):
            return current
        queue.extend(children(current))
    return None


class Stale(NamedTuple):
    """A node of a failed backward's graph whose saved tensor was changed in place since."""

    node: Any
    above: list[Any]  # the nodes with a site above it, nearest first, up to a root


def changed_since_saved(roots: Any, limit: int = 3) -> list[Stale]:
    """The nodes of a graph whose saved tensors were changed in place after they saved them
    (after a backward failed on one: reading such a tensor raises)."""
    found: list[Stale] = []
    parents: dict[int, Any] = {}
    queue: deque[tuple[Any, Any]] = deque((node, None) for node in root_nodes(roots))
    while queue and len(parents) < MAX_NODES and len(found) < limit:
        node, parent = queue.popleft()
        if id(node) in parents or _is_leaf(node):
            continue
        parents[id(node)] = parent
        if _saved_raises(node, CHANGED_ERROR):
            above = []
            while parent is not None:
                if site_of(parent):
                    above.append(parent)
                parent = parents.get(id(parent))
            found.append(Stale(node, above))
            continue
        queue.extend((child, node) for child in children(node))
    return found


# Graph nodes of ops whose result is a view of their input (sharing its storage and its
# version counter): `x[:, 0]`, `.view()`, `.transpose()`, ...
_VIEWS = frozenset(
    "Select Slice View ReshapeAlias AsStrided Transpose Permute Expand Unsqueeze Squeeze T "
    "Unbind Split SplitWithSizes Narrow Diagonal Alias Unfold ViewAsReal ViewAsComplex".split()
)


def view_taken(node: Any, not_at: tuple[str, int]) -> Site:
    """Where a tensor a node saved was taken as a view of another, at a line other than
    `not_at`: a change in place of the base reaches the saved view (`.clone()` it there)."""
    for child in children(node):
        while is_view_node(child):
            site = site_of(child)
            if site and (real_path(site[0][0].co_filename), site[0][1]) != not_at:
                return site
            below = children(child)
            if not below:
                break
            child = below[0]
    return ()


def is_view_node(node: Any) -> bool:
    name = type(node).__name__.rstrip("0123456789")
    return name.endswith("Backward") and name[: -len("Backward")] in _VIEWS


# What reading a node's saved tensor raises, when a backward freed it, or when it was
# changed in place after it was saved.
FREED_ERROR = "already been freed"
CHANGED_ERROR = "modified by an inplace operation"


def _saved_raises(node: Any, error: str) -> bool:
    """Whether reading one of the tensors a node saved raises `error`."""
    for name in dir(node):
        if name.startswith("_saved_") and not name.endswith("_sizes"):
            try:
                getattr(node, name)
            except RuntimeError as raised:
                if error in str(raised):
                    return True
    return False


def entered_at(node: Any) -> Site:
    """Where the graph of the backward that went through a node took it in, if known."""
    entered = _metadata(node).get(ENTERED)
    return entered if isinstance(entered, tuple) else ()


def _metadata(node: Any) -> dict[str, Any]:
    return cast(dict[str, Any], node.metadata)


def _is_leaf(node: Any) -> bool:
    """A parameter's or input's AccumulateGrad: every graph that reaches the tensor shares
    it, and it saves nothing to free."""
    kind = type(node)
    leaf = _LEAF_TYPES.get(kind)
    if leaf is None:
        leaf = _LEAF_TYPES[kind] = hasattr(node, "variable")
    return leaf


_LEAF_TYPES: dict[type, bool] = {}  # node type -> whether it is a leaf's AccumulateGrad


def is_freed(node: Any) -> bool:
    """Whether a backward went through a node without keeping its graph."""
    return FREED in _metadata(node)


def freed_below(node: Any) -> bool:
    """Whether a node takes in, a few edges below, a part of a graph a backward freed (not a
    parameter's AccumulateGrad, which every graph shares)."""
    return any(
        FREED in _metadata(below) and not _is_leaf(below)
        for below in near(node)
        if below is not node
    )


def went_through(node: Any) -> bool:
    """Whether a backward went through a node, freeing its graph or keeping it."""
    metadata = _metadata(node)
    return FREED in metadata or RETAINED in metadata


def freed_by(node: Any) -> Site:
    """The user's stack at the backward that freed a node, where it is known."""
    freed = _metadata(node).get(FREED)
    return freed if isinstance(freed, tuple) else ()


def site_of(node: Any) -> Site:
    site = _metadata(node).get(SITE)
    if site is None and _MADE and not hasattr(node, "variable"):
        site = _made_at(node._sequence_nr())
    return site if isinstance(site, tuple) else ()
