"""The abstract values the analysis tracks: what a name holds, as far as it is known."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum


class Tri(Enum):
    """Three-valued knowledge: rules act on YES or NO, and stay silent on UNKNOWN."""

    NO = 0
    YES = 1
    UNKNOWN = 2

    def join(self, other: Tri) -> Tri:
        return self if self is other else Tri.UNKNOWN

    def __or__(self, other: Tri) -> Tri:  # logical or, three-valued
        if self is Tri.YES or other is Tri.YES:
            return Tri.YES
        if self is Tri.NO and other is Tri.NO:
            return Tri.NO
        return Tri.UNKNOWN

    def negate(self) -> Tri:
        return {Tri.NO: Tri.YES, Tri.YES: Tri.NO}.get(self, Tri.UNKNOWN)


YES, NO, UNKNOWN = Tri.YES, Tri.NO, Tri.UNKNOWN


class Kind(Enum):
    UNKNOWN = "unknown"
    TENSOR = "tensor"
    MODULE = "module"  # an nn.Module instance
    OPTIMIZER = "optimizer"
    PARAMS = "params"  # the generator that .parameters() returns
    SEQUENCE = "sequence"  # list, tuple or comprehension; `item` joins the elements
    MAPPING = "mapping"  # a dict; `item` joins the values
    NUMBER = "number"
    ARRAY = "array"  # a numpy array
    OTHER = "other"  # known, and none of the above (str, None, a class, a function)


# A node of the autograd graph, or a tensor's identity: (site id, age).
# Age 0 is the value made on this pass of a loop; 1 is one made on an earlier pass.
Node = tuple[int, int]


@dataclass(frozen=True, eq=False)
class Value:
    kind: Kind = Kind.UNKNOWN
    requires_grad: Tri = UNKNOWN
    leaf: Tri = UNKNOWN
    inference: Tri = UNKNOWN
    integer: Tri = UNKNOWN  # integer or bool dtype: can never require grad
    # The tensor's identity (its creation site), for version counters and saved tensors.
    node: Node | None = None
    # Graph nodes this tensor's graph surely holds (op results that require grad).
    graph: frozenset[Node] = frozenset()
    head: Node | None = None  # the graph node that made this tensor
    item: Value | None = None  # SEQUENCE: the join of its elements
    items: tuple[Value, ...] | None = None  # SEQUENCE of known length: each element
    truth: Tri = UNKNOWN  # `True` / `False` literals
    # MODULE: whether it has parameters, and whether all of them are frozen.
    has_params: Tri = UNKNOWN
    frozen: Tri = UNKNOWN
    path: str | None = None  # MODULE/PARAMS/tensor attribute: the access path it came from
    cls: str | None = None  # instance of a class defined in this module
    layer: str | None = None  # MODULE: the torch.nn class, e.g. "ReLU"
    inplace: bool = False  # MODULE: built with inplace=True
    spread: bool = False  # an argument `*xs` of unknown length: stands for each element
    leaf_view: bool = False  # a view of a leaf that requires grad (in-place on it raises)
    # PARAMS, parameter lists, OPTIMIZER: the modules (access paths) whose parameters they hold.
    roots: frozenset[str] = frozenset()
    # MODULE: the modules (access paths) handed to the call that made it, whose
    # parameters it may hold: `DataParallel(net)`, `nn.Sequential(encoder, decoder)`.
    wraps: frozenset[str] = frozenset()
    # PARAMS, parameter lists: only the trainable ones were kept (`if p.requires_grad`).
    trainable_only: bool = False
    cut: object = None  # tensor without grad: the node where its graph was cut, if known
    born: object = None  # a factory's tensor made without requires_grad: that call
    made_in: object = None  # inference tensor: the inference_mode block or decorator
    made_by: object = None  # non-leaf tensor: the op that made it
    # A leaf that the code made require grad: the factory (`requires_grad=True`), the
    # `nn.Parameter`, or the `requires_grad_()` / `requires_grad = True` that did.
    grad_leaf: object = None
    parameter: bool = False  # made by `nn.Parameter`: a module registers it
    # A non-leaf copy of such a leaf (moved, cast, scaled, reshaped): the first op that
    # surely made a copy. The copy's `.grad` stays None, and an optimizer rejects it.
    moved: object = None
    # The assignments that last put this tensor under a name, an attribute or a container
    # slot: where `retain_grad()` belongs.
    kept_at: frozenset[object] = frozenset()
    # A tensor's dtype where known (`float32`; `cuda.float32` on the GPU), or the dtype a
    # value such as `torch.float64` or `torch.DoubleTensor` names.
    dtype: str | None = None
    # PARAMS/OPTIMIZER: id of the creating call; a function used as a value: its id.
    origin: int | None = None
    # A namespace or a dict with string keys: what each named field holds.
    fields: tuple[tuple[str, Value], ...] | None = None
    grad_mode: frozenset[str] | None = None  # a grad-mode object (`torch.no_grad()`)
    filled_by: object = None  # SEQUENCE: a call that put a tensor requiring grad into it
    # May also be None (`h = None`, later a tensor): what it holds when it is not None.
    nullable: bool = False
    # A function's parameter: the call (outermost, through helpers that pass it on) that
    # handed the value in.
    handed: object = None
    # A running total (`total = 0`, then `total += loss`) that became a tensor with a graph:
    # that augmented assignment.
    summed_at: object = None
    text: str | None = None  # a string whose value is known (`"ReLU"`)
    # A gradient that `torch.autograd.grad` returned without `create_graph` (so without a
    # graph of its own), or a tensor made from one: that call.
    grad_of: object = None
    # A tensor made from the size of such a gradient (a gradient penalty): that call.
    penalized: object = None
    # A tensor cut from its graph and then made to require grad again (`loss.requires_grad =
    # True`, `torch.tensor(loss.item(), requires_grad=True)`), or one made from it: where.
    revived: object = None
    # A loss computed by a criterion from values surely cut from their graph (a detached
    # prediction), or a sum holding one: where the cut was. It can train nothing.
    dropped: object = None
    # A log-probability of an action (`dist.log_prob(a)`), or made from one: that call.
    log_prob_of: object = None
    # A policy-gradient term: a log-probability times a weight (an advantage, a return)
    # that still has a graph of its own: where that weight was made.
    weighted: object = None
    # A bootstrapped target: data plus a network's output that still has its graph
    # (`reward + gamma * q_net(next_state)`), or made from one: that sum.
    bootstrap: object = None
    # A loss regressing a network's output onto a bootstrapped target with a graph through
    # that same network, or made from one: where the target was summed.
    leaky_target: object = None
    # A detached bootstrapped target: the model calls whose outputs went only into it.
    wasted: frozenset[object] = frozenset()
    # NUMBER: a loop counter's bounds on the pass being run (the first pass: 0; later: >= 1).
    low: int | None = None
    high: int | None = None

    # Equality and hash by every field, as `eq=True` would give them, but comparing the
    # instances' dicts in C: values are compared on every join, hundreds of thousands of
    # times a file.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Value:
            return NotImplemented
        return self is other or self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        fields = self.__dict__
        return hash(tuple(fields[name] for name in _FIELD_ORDER))

    def with_(self, **changes: object) -> Value:
        # What `dataclasses.replace` does, without calling __init__ with every field again:
        # the interpreter makes hundreds of thousands of these.
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            raise TypeError(f"Value has no field {sorted(unknown)[0]!r}")
        changed = object.__new__(Value)
        changed.__dict__.update(self.__dict__)
        changed.__dict__.update(changes)
        return changed

    @property
    def was_cut(self) -> bool:
        """A tensor detached from its graph on purpose (`.detach()`, `.data`, no_grad)."""
        return self.requires_grad is NO and self.cut is not None

    @property
    def is_none(self) -> bool:
        return self.kind is Kind.OTHER and self.layer == "none"

    @property
    def is_tensor(self) -> bool:
        return self.kind is Kind.TENSOR

    def join(self, other: Value) -> Value:
        if self is other or (self.kind is other.kind and self == other):
            return self
        if self.is_none or other.is_none:
            # None on one path, a value on the other: code that uses it as the value only
            # runs where it is one, and code that tests for None cannot tell.
            value = other if self.is_none else self
            if value.kind is Kind.UNKNOWN or value.is_none:
                return UNKNOWN_VALUE
            return value.with_(nullable=True, truth=UNKNOWN)
        if self.kind is not other.kind:
            # A running total reset to a number on some paths (`running_loss = 0.0` every
            # k steps): where it accumulates, it is the tensor it became.
            for total, reset in ((self, other), (other, self)):
                if total.summed_at is not None and total.is_tensor and reset.kind is Kind.NUMBER:
                    return total
            return UNKNOWN_VALUE
        # An empty sequence adds no element: the join's elements are the other's.
        item = self.item if other.item is None else other.item
        if self.item is not None and other.item is not None:
            item = self.item.join(other.item)
        fields = None
        if (
            self.fields is not None
            and other.fields is not None
            and [k for k, _ in self.fields] == [k for k, _ in other.fields]
        ):
            fields = tuple(
                (k, a.join(b)) for (k, a), (_, b) in zip(self.fields, other.fields, strict=False)
            )
        grad_mode = None
        if self.grad_mode is not None and other.grad_mode is not None:
            grad_mode = self.grad_mode | other.grad_mode
        items = None
        if (
            self.items is not None
            and other.items is not None
            and len(self.items) == len(other.items)
        ):
            items = tuple(a.join(b) for a, b in zip(self.items, other.items, strict=False))
        graph = self.graph | other.graph
        if self.kind is Kind.TENSOR and (self.was_cut or other.was_cut):
            # Detached on one path (`h = h.detach()` every k steps, a reset): which graph
            # it holds is the code's choice, not a mistake to report.
            graph = frozenset()
        return Value(
            kind=self.kind,
            requires_grad=self.requires_grad.join(other.requires_grad),
            leaf=self.leaf.join(other.leaf),
            inference=self.inference.join(other.inference),
            integer=self.integer.join(other.integer),
            node=self.node if self.node == other.node else None,
            head=self.head if self.head == other.head else None,
            # May-analysis: a graph that either path built can be the one backward frees.
            graph=graph,
            item=item,
            items=items,
            truth=self.truth.join(other.truth),
            has_params=self.has_params.join(other.has_params),
            frozen=self.frozen.join(other.frozen),
            path=self.path if self.path == other.path else None,
            cls=self.cls if self.cls == other.cls else None,
            layer=self.layer if self.layer == other.layer else None,
            inplace=self.inplace and other.inplace,
            leaf_view=self.leaf_view and other.leaf_view,
            roots=self.roots & other.roots,
            trainable_only=self.trainable_only and other.trainable_only,
            wraps=self.wraps | other.wraps,
            cut=self.cut if self.cut is not None else other.cut,
            born=self.born if self.born is not None else other.born,
            made_in=self.made_in if self.made_in is not None else other.made_in,
            made_by=self.made_by if self.made_by is other.made_by else None,
            grad_leaf=self.grad_leaf if self.grad_leaf is other.grad_leaf else None,
            parameter=self.parameter and other.parameter,
            moved=self.moved if self.moved is other.moved else None,
            kept_at=self.kept_at | other.kept_at,
            dtype=self.dtype if self.dtype == other.dtype else None,
            origin=self.origin if self.origin == other.origin else None,
            fields=fields,
            grad_mode=grad_mode,
            filled_by=self.filled_by if self.filled_by is not None else other.filled_by,
            nullable=self.nullable or other.nullable,
            handed=self.handed if self.handed is other.handed else None,
            summed_at=self.summed_at if self.summed_at is not None else other.summed_at,
            text=self.text if self.text == other.text else None,
            grad_of=self.grad_of if self.grad_of is not None else other.grad_of,
            penalized=self.penalized if self.penalized is not None else other.penalized,
            revived=self.revived if self.revived is not None else other.revived,
            dropped=self.dropped if self.dropped is not None else other.dropped,
            log_prob_of=self.log_prob_of if self.log_prob_of is not None else other.log_prob_of,
            weighted=self.weighted if self.weighted is not None else other.weighted,
            bootstrap=self.bootstrap if self.bootstrap is not None else other.bootstrap,
            leaky_target=self.leaky_target if self.leaky_target is not None else other.leaky_target,
            wasted=self.wasted & other.wasted,
            low=None if self.low is None or other.low is None else min(self.low, other.low),
            high=None if self.high is None or other.high is None else max(self.high, other.high),
        )

    def field(self, name: str) -> Value | None:
        if self.fields is None:
            return None
        for key, value in self.fields:
            if key == name:
                return value
        return None


_FIELD_ORDER = tuple(f.name for f in fields(Value))
_FIELD_NAMES = frozenset(_FIELD_ORDER)
UNKNOWN_VALUE = Value()
OTHER = Value(kind=Kind.OTHER)
NONE = Value(kind=Kind.OTHER, layer="none")
NUMBER = Value(kind=Kind.NUMBER, requires_grad=NO)
INT = NUMBER.with_(integer=YES)
FLOAT = NUMBER.with_(integer=NO)


def sites_of(value: Value) -> set[int]:
    """The graph sites a value holds, in itself and in whatever it contains."""
    sites = {node[0] for node in value.graph}
    parts = [*(value.items or ()), *(v for _, v in value.fields or ())]
    if value.item is not None:
        parts.append(value.item)
    for part in parts:
        sites |= sites_of(part)
    return sites


def sequence(items: list[Value], fixed: bool = False) -> Value:
    """A list or tuple; `fixed` keeps each element's value, for unpacking."""
    item: Value | None = None
    for value in items:
        item = value if item is None else item.join(value)
    return Value(kind=Kind.SEQUENCE, item=item, items=tuple(items) if fixed else None)
