"""Limits of the interpreter, tables of operators, and small rules over abstract values
(truth, None, what an op's operands make of its result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from gradlint.analysis.facts import (
    Mode,
)
from gradlint.analysis.scopes import (
    ClassInfo,
)
from gradlint.analysis.state import State
from gradlint.analysis.syntax import (
    _int_literal,
    _is_literal,
)
from gradlint.analysis.values import (
    NO,
    OTHER,
    UNKNOWN,
    UNKNOWN_VALUE,
    YES,
    Kind,
    Node,
    Tri,
    Value,
    sequence,
)

if TYPE_CHECKING:
    from gradlint.analysis.interpreter_base import InterpreterBase

MAX_LOOP_DEPTH = 3
MAX_CONTEXTS = 4  # distinct calls a function is run for; later ones are unknown
# Normalisation layers save their input even when frozen (backward to the input needs it).
_SAVING_NORMS = frozenset(
    {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm2d"}
)
# nn.Module methods; any other `model.x(...)` calls a submodule or a method of the class.
MODULE_METHODS = frozenset(
    "parameters named_parameters buffers named_buffers children named_children modules "
    "named_modules state_dict load_state_dict train eval requires_grad_ zero_grad to cuda cpu "
    "float double half bfloat16 apply forward register_buffer register_parameter "
    "register_forward_hook register_forward_pre_hook register_full_backward_hook add_module "
    "get_submodule get_parameter type extra_repr append extend insert register_module".split()
)
_BINARY_SAVING = (cst.Multiply, cst.Divide, cst.MatrixMultiply)
# Binary and augmented operators by what they compute.
_OPERATORS: dict[type[cst.CSTNode], str] = {}
for _name, _types in {
    "add": (cst.Add, cst.AddAssign),
    "sub": (cst.Subtract, cst.SubtractAssign),
    "mul": (cst.Multiply, cst.MultiplyAssign),
    "div": (cst.Divide, cst.DivideAssign),
    "matmul": (cst.MatrixMultiply, cst.MatrixMultiplyAssign),
    "pow": (cst.Power, cst.PowerAssign),
    "floordiv": (cst.FloorDivide, cst.FloorDivideAssign),
    "mod": (cst.Modulo, cst.ModuloAssign),
    "bits": (
        cst.BitAnd,
        cst.BitOr,
        cst.BitXor,
        cst.LeftShift,
        cst.RightShift,
        cst.BitAndAssign,
        cst.BitOrAssign,
        cst.BitXorAssign,
        cst.LeftShiftAssign,
        cst.RightShiftAssign,
    ),
}.items():
    _OPERATORS.update(dict.fromkeys(_types, _name))
_NO_GRAD_OPERATORS = frozenset({"floordiv", "mod", "bits"})  # results without a gradient
_INTEGER_OPERATORS = frozenset({"add", "sub", "mul", "floordiv", "mod"})  # int op int is int


# Builtins that never change a model's parameters.
_BUILTINS = frozenset(
    "print len list tuple dict set sorted reversed zip enumerate range sum max min abs int "
    "float str repr bool isinstance hasattr getattr type id iter next any all map filter "
    "round format vars dir".split()
)

# `__init__` as it gets mistyped; Python calls none of them.
_INIT_MISSPELLINGS = frozenset({"init", "inti", "intit", "innit", "initt", "iniit", "ini"})

_REGISTERS = frozenset({"register_parameter", "add_module", "register_module", "__setattr__"})


def _without_graph(value: Value) -> Value:
    """An attribute as any method may have left it: which graph it holds, and which tensor
    it is, depend on the order methods run in, which is not known."""
    if not value.graph and value.node is None and value.item is None:
        return value
    item = _without_graph(value.item) if value.item is not None else None
    items = tuple(_without_graph(v) for v in value.items) if value.items is not None else None
    return value.with_(graph=frozenset(), head=None, node=None, item=item, items=items)


def _truth(value: Value) -> Value:
    """A condition's value with what is known of its truth: None is false; a model, an
    optimizer, a function or an instance of a local class is true."""
    if value.truth is not UNKNOWN or value.nullable:
        return value
    if value.layer == "none":
        return value.with_(truth=NO)
    if value.kind is Kind.NUMBER and (value.low, value.high) == (0, 0):
        return value.with_(truth=NO)
    if value.kind is Kind.NUMBER and value.low is not None and value.low > 0:
        return value.with_(truth=YES)
    if value.kind in (Kind.MODULE, Kind.OPTIMIZER) or (
        value.kind is Kind.OTHER and (value.cls is not None or value.layer == "function")
    ):
        return value.with_(truth=YES)
    return value


def _is_none(value: Value) -> Tri:
    if value.layer == "none":
        return YES
    if (
        value.nullable
        or value.kind in (Kind.UNKNOWN,)
        or (
            value.kind is Kind.OTHER
            and value.layer is None
            and value.cls is None
            and value.fields is None
        )
    ):
        return UNKNOWN
    return NO


def _number_dtype(value: Value) -> Tri:
    """Whether torch.tensor() of this Python value makes an integer tensor."""
    while value.kind is Kind.SEQUENCE and value.item is not None:
        value = value.item
    return value.integer if value.kind is Kind.NUMBER else UNKNOWN


def _record_fields(
    cls: ClassInfo, node: cst.Call, args: list[Value], interpreter: InterpreterBase
) -> tuple[tuple[str, Value], ...] | None:
    names: list[tuple[str, cst.BaseExpression | None]] = []
    for statement in cls.node.body.body:
        if type(statement) is not cst.SimpleStatementLine:
            continue
        for small in statement.body:
            if type(small) is cst.AnnAssign and type(small.target) is cst.Name:
                names.append((small.target.value, small.value))
    positional, keywords = _split_args(node, args)
    if any(v.spread for v in positional):
        return None
    fields: list[tuple[str, Value]] = []
    for name, default in names:
        if positional:
            fields.append((name, positional.pop(0)))
        elif name in keywords:
            fields.append((name, keywords[name]))
        elif default is not None and _is_literal(default):
            fields.append((name, interpreter.eval(default, State())))
    return tuple(fields)


def _without_unknown_target(args: list[Value]) -> list[Value]:
    """A classification loss's target is class indices from the data, with no graph,
    unless it is known to be otherwise."""
    if len(args) >= 2 and args[1].kind is Kind.UNKNOWN:
        return [args[0], *args[2:]]
    return args


def _owns(roots: frozenset[str], path: str) -> bool:
    """Whether an optimizer over the parameters of `roots` steps the module at `path`."""
    return any(path == root or path.startswith(root + ".") for root in roots)


def _is_field_of_record(key: str, state: State) -> bool:
    name, _, attr = key.rpartition(".")
    holder = state.env.get(name)
    return holder is not None and holder.kind is Kind.OTHER and holder.field(attr) is not None


def _with_field_writes(value: Value, name: str, state: State) -> Value:
    """A record as the code since changed it: `state.positions = ...` or
    `state.positions.requires_grad_()` hold in `state` handed on."""
    assert value.fields is not None
    changed = [(k, state.env.get(f"{name}.{k}")) for k, _ in value.fields]
    if all(new is None for _, new in changed):
        return value
    fields = tuple(
        (k, new if new is not None else old)
        for (k, new), (_, old) in zip(changed, value.fields, strict=True)
    )
    return value.with_(fields=fields)


def _compare_bounds(left: Value, comparison: cst.ComparisonTarget) -> Tri:
    """`i == 0`, `i > 0`, ... for a number whose bounds are known, against an integer."""
    k = _int_literal(comparison.comparator)
    if k is None:
        return UNKNOWN
    low = left.low if left.low is not None else -(10**18)
    high = left.high if left.high is not None else 10**18
    if left.low is None and left.high is None:
        return UNKNOWN
    op = comparison.operator
    if isinstance(op, (cst.Equal, cst.NotEqual)):
        truth = YES if low == high == k else (NO if k < low or k > high else UNKNOWN)
        return truth.negate() if type(op) is cst.NotEqual else truth
    if type(op) is cst.GreaterThan:
        return YES if low > k else (NO if high <= k else UNKNOWN)
    if type(op) is cst.GreaterThanEqual:
        return YES if low >= k else (NO if high < k else UNKNOWN)
    if type(op) is cst.LessThan:
        return YES if high < k else (NO if low >= k else UNKNOWN)
    if type(op) is cst.LessThanEqual:
        return YES if high <= k else (NO if low > k else UNKNOWN)
    return UNKNOWN


def _inference_in(mode: Mode) -> Tri:
    """Whether tensors made in this grad mode are inference tensors."""
    return YES if mode == frozenset("I") else (NO if "I" not in mode else UNKNOWN)


SPREAD_KEYWORDS = "**"  # a keyword no parameter has: the call spread a mapping


def _split_args(node: cst.Call, args: list[Value]) -> tuple[list[Value], dict[str, Value]]:
    """A call's arguments as positional values and keyword values. `*xs` of a known tuple
    spreads its elements; of a list of unknown length, it is one value that stands for
    every element (marked by SPREAD)."""
    positional: list[Value] = []
    keywords: dict[str, Value] = {}
    for arg, value in zip(node.args, args, strict=False):
        if arg.star == "*":
            if value.items is not None:
                positional.extend(value.items)
            else:
                item = value.item if value.kind is Kind.SEQUENCE and value.item else UNKNOWN_VALUE
                positional.append(item.with_(spread=True))
        elif arg.star == "**":
            # `f(**cfg)`: the keys known are passed; any other parameter may be too, so
            # none takes its default for sure (SPREAD_KEYWORDS marks that).
            for key, item in value.fields or ():
                keywords.setdefault(key, item)
            keywords[SPREAD_KEYWORDS] = UNKNOWN_VALUE
        elif arg.keyword is not None:
            keywords[arg.keyword.value] = value
        else:
            positional.append(value)
    return positional, keywords


def _shape(value: Value) -> tuple[object, ...]:
    """What distinguishes two calls' arguments for the analysis (not the graph's identity)."""
    item = value.item
    return (
        value.kind,
        value.requires_grad,
        value.leaf,
        value.inference,
        value.integer,
        value.cls,
        value.has_params,
        value.frozen,
        value.layer,
        value.spread,
        None if item is None else (item.kind, item.requires_grad, item.cls),
        _fields_shape(value),
        value.text,
        value.low if value.low is not None and value.low == value.high else None,
        _lambda_key(value),
    )


def _fields_shape(value: Value) -> tuple[object, ...] | None:
    """The fields of an object, as far as they tell calls apart (a lambda kept in one, made
    over other values, is another lambda)."""
    if value.fields is None:
        return None
    return tuple((k, v.kind, v.truth, _lambda_key(v)) for k, v in value.fields)


def _lambda_key(value: Value) -> int | None:
    """The key of one evaluation of a lambda (negative, unlike a function's id)."""
    if value.layer == "function" and value.origin is not None and value.origin < 0:
        return value.origin
    return None


def _tensor_args(args: list[Value]) -> list[Value]:
    tensors: list[Value] = []
    for value in args:
        if value.kind is Kind.TENSOR:
            tensors.append(value)
        elif value.kind is Kind.SEQUENCE and value.item is not None and value.item.is_tensor:
            tensors.append(value.item)
    return tensors


def _grad_of(values: list[Value], potential: bool = False) -> Tri:
    """Whether any operand requires grad; an operand of unknown kind may be such a tensor.
    With `potential`, an operand whose graph is known counts as requiring grad: it does
    wherever grad mode is on."""
    result = NO
    for value in values:
        if value.kind is Kind.TENSOR:
            result = result | (YES if potential and value.graph else value.requires_grad)
        elif value.kind is Kind.SEQUENCE:
            if value.item is not None:
                item = value.item
                if item.kind is Kind.TENSOR:
                    result = result | (YES if potential and item.graph else item.requires_grad)
                elif item.kind in (Kind.UNKNOWN, Kind.SEQUENCE):
                    result = result | UNKNOWN
        elif value.kind is Kind.UNKNOWN:
            result = result | UNKNOWN
    return result


def _pair(item: Value) -> Value:
    """`(name, parameter)` as `named_parameters()` yields it."""
    return sequence([OTHER, item], fixed=True)


def _known_part(items: tuple[Value, ...], index: cst.BaseSlice) -> Value | None:
    """An element or a slice, by integer literals, of a sequence whose elements are known."""
    if type(index) is cst.Index:
        at = _position(items, index)
        return None if at is None else items[at]
    if type(index) is cst.Slice and index.step is None:
        lower, upper = _int_literal(index.lower), _int_literal(index.upper)
        if (index.lower is not None and lower is None) or (
            index.upper is not None and upper is None
        ):
            return None
        return sequence(list(items[lower:upper]), fixed=True)
    return None


def _position(items: tuple[Value, ...], index: cst.Index) -> int | None:
    """`[2]` or `[-1]` within known elements."""
    at = _int_literal(index.value)
    return at if at is not None and -len(items) <= at < len(items) else None


def _parameter(frozen: Tri, path: str | None, node: Node | None = None) -> Value:
    """A module's parameter: a float leaf that requires grad unless the module is frozen."""
    return Value(
        kind=Kind.TENSOR,
        requires_grad=frozen.negate(),
        leaf=YES,
        inference=NO,
        integer=NO,
        path=path,
        node=node,
    )


def _known_index(expr: cst.Subscript, items: tuple[Value, ...] | None) -> int | None:
    """`layers[2]` (or `[-1]`) with a literal index within known elements."""
    if items is None or len(expr.slice) != 1 or type(expr.slice[0].slice) is not cst.Index:
        return None
    return _position(items, expr.slice[0].slice)
