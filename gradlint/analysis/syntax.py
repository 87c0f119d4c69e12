"""Facts read from the syntax alone: literals, parameters and arguments, loop counters,
names and keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import libcst as cst

from gradlint.analysis.names import dotted
from gradlint.analysis.scopes import (
    ClassInfo,
    FunctionInfo,
)
from gradlint.analysis.values import (
    NO,
    UNKNOWN,
    YES,
    Tri,
)


def _string_key(expr: cst.BaseExpression) -> str | None:
    """A string literal's text (`"loss"`, `'ReLU'`)."""
    if type(expr) is not cst.SimpleString:
        return None
    text = _plain_text(expr.value)
    if text is not None:
        return text
    value = expr.evaluated_value  # escapes, prefixes: let Python read it (slower)
    return value if isinstance(value, str) else None


def _int_literal(expr: cst.BaseExpression | None) -> int | None:
    """An integer literal's value, signed (`3`, `-1`)."""
    if type(expr) is cst.UnaryOperation and isinstance(expr.operator, (cst.Minus, cst.Plus)):
        inner = _int_literal(expr.expression)
        if inner is None:
            return None
        return -inner if type(expr.operator) is cst.Minus else inner
    if type(expr) is cst.Integer:
        try:
            # What `evaluated_value` gives, without its compile() of the literal.
            return int(expr.value, 0)
        except ValueError:
            value = expr.evaluated_value  # `00`
            return value if isinstance(value, int) else None
    return None


def _param_names(info: FunctionInfo) -> list[str]:
    params = info.node.params
    return [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]


def _argument_expressions(info: FunctionInfo, call: cst.Call) -> dict[str, cst.BaseExpression]:
    """Which expression of the call each parameter of the function receives."""
    params = info.node.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    if info.owner is not None and not info.is_static and positional:
        positional = positional[1:]  # the instance, or the class
    passed: dict[str, cst.BaseExpression] = {}
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is not None:
            passed[arg.keyword.value] = arg.value
        elif positional:
            passed[positional.pop(0)] = arg.value
    return passed


def _self_name(info: FunctionInfo) -> str | None:
    """The name a method calls its instance (`self`), or None for other functions."""
    if info.owner is None or info.is_static or info.is_classmethod:
        return None
    params = [*info.node.params.posonly_params, *info.node.params.params]
    return params[0].name.value if params else None


def _counts(expr: cst.BaseExpression) -> bool:
    """`range(n)` (not `range(0)`), `range(a, b)`, `enumerate(range(n))`."""
    if type(expr) is not cst.Call or type(expr.func) is not cst.Name:
        return False
    if expr.func.value == "enumerate" and expr.args:
        return _counts(expr.args[0].value)
    if expr.func.value != "range" or not expr.args:
        return False
    return not (len(expr.args) == 1 and _int_literal(expr.args[0].value) == 0)


def _is_super(expr: cst.BaseExpression) -> bool:
    return type(expr) is cst.Call and type(expr.func) is cst.Name and expr.func.value == "super"


def _counter_of(loop: cst.For) -> str | None:
    """The name counting a loop's passes from 0: `for i in range(n)`, `for i, x in
    enumerate(xs)`."""
    it, target = loop.iter, loop.target
    if type(it) is not cst.Call or type(it.func) is not cst.Name:
        return None
    if it.func.value == "range" and len(it.args) == 1 and type(target) is cst.Name:
        return target.value
    if (
        it.func.value == "enumerate"
        and len(it.args) == 1
        and type(target) is cst.Tuple
        and target.elements
        and type(target.elements[0].value) is cst.Name
    ):
        return target.elements[0].value.value
    return None


def _field_names(expr: cst.BaseExpression) -> list[str] | None:
    """A namedtuple's field names: `["a", "b"]`, `("a", "b")` or `"a b"` / `"a, b"`."""
    if type(expr) is cst.SimpleString:
        text = expr.evaluated_value
        return text.replace(",", " ").split() if isinstance(text, str) else None
    if isinstance(expr, (cst.List, cst.Tuple)):
        names = [
            e.value.evaluated_value if type(e.value) is cst.SimpleString else None
            for e in expr.elements
        ]
        if all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    return None


def _is_literal(expr: cst.BaseExpression) -> bool:
    """A constant that needs no state to evaluate: numbers, strings, booleans, None, and
    tuples, lists, dicts and `dict(k=...)` of them (`act_cfg=dict(type="ReLU")`)."""
    if type(expr) is cst.Name:
        return expr.value in ("True", "False", "None")
    if type(expr) is cst.UnaryOperation:
        return _is_literal(expr.expression)
    if isinstance(expr, (cst.Tuple, cst.List)):
        return all(type(e) is cst.Element and _is_literal(e.value) for e in expr.elements)
    if type(expr) is cst.Dict:
        return all(
            type(e) is cst.DictElement and _is_literal(e.key) and _is_literal(e.value)
            for e in expr.elements
        )
    if type(expr) is cst.Call and type(expr.func) is cst.Name and expr.func.value == "dict":
        return all(arg.keyword is not None and _is_literal(arg.value) for arg in expr.args)
    return isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString))


def body_statements_of_module(module: cst.Module) -> Sequence[cst.BaseStatement]:
    return module.body


def _target_keys(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, (cst.Tuple, cst.List)):
        keys: list[str] = []
        for element in target.elements:
            keys.extend(_target_keys(element.value))
        return keys
    key = dotted(target)
    return [key] if key else []


def _is_requires_grad_test(expr: cst.BaseExpression) -> bool:
    """`p.requires_grad`, or `lambda p: p.requires_grad`."""
    if type(expr) is cst.Lambda:
        expr = expr.body
    return type(expr) is cst.Attribute and expr.attr.value == "requires_grad"


def _keeps_trainable(for_in: cst.CompFor, elt: cst.BaseExpression) -> bool:
    """Keeps only trainable elements: `[p for p in ps if p.requires_grad]`."""
    return (
        for_in.inner_for_in is None
        and type(elt) is cst.Name
        and any(
            _is_requires_grad_test(cond.test)
            and type(cond.test) is cst.Attribute
            and dotted(cond.test.value) == elt.value
            for cond in for_in.ifs
        )
    )


def _bool_literal(expr: cst.BaseExpression) -> Tri:
    if type(expr) is cst.Name and expr.value in ("True", "False"):
        return YES if expr.value == "True" else NO
    return UNKNOWN


def _literal_integer(expr: cst.BaseExpression) -> Tri:
    """Whether a literal such as `[1, 2, 3]` makes an integer tensor."""
    if type(expr) is cst.Integer:
        return YES
    if type(expr) is cst.Float:
        return NO
    if isinstance(expr, (cst.List, cst.Tuple)) and expr.elements:
        kinds = {_literal_integer(element.value) for element in expr.elements}
        if kinds == {YES}:
            return YES
        if NO in kinds:
            return NO
    if type(expr) is cst.UnaryOperation:
        return _literal_integer(expr.expression)
    return UNKNOWN


def _is_record_class(cls: ClassInfo, imports: object) -> bool:
    """A dataclass or NamedTuple: its constructor sets the annotated fields."""
    for decorator in cls.node.decorators:
        target = decorator.decorator
        if type(target) is cst.Call:
            target = target.func
        name = dotted(target) or ""
        if name.rsplit(".", 1)[-1] == "dataclass":
            return True
    return any(base.rsplit(".", 1)[-1] == "NamedTuple" for base in cls.bases)


def _literal_range(for_in: cst.CompFor) -> int | None:
    """`for _ in range(4)` without conditions: how many passes (a few at most)."""
    it = for_in.iter
    if (
        for_in.ifs
        or for_in.inner_for_in is not None
        or type(it) is not cst.Call
        or type(it.func) is not cst.Name
        or it.func.value != "range"
        or len(it.args) != 1
    ):
        return None
    count = _int_literal(it.args[0].value)
    return count if count is not None and 0 < count <= 8 else None


def _cleared_list(target: cst.BaseExpression) -> str | None:
    """`del xs[:]`: the dotted name of the list emptied in place."""
    if (
        type(target) is cst.Subscript
        and len(target.slice) == 1
        and type(target.slice[0].slice) is cst.Slice
        and target.slice[0].slice.lower is None
        and target.slice[0].slice.upper is None
    ):
        return dotted(target.value)
    return None


def _plain_text(literal: str) -> str | None:
    """A short string literal's text without evaluating it (`"ReLU"`, `'lrelu'`): no
    prefix, no escapes, no triple quotes. (libcst evaluates strings by compiling them.)"""
    if len(literal) < 2 or literal[0] not in "'\"" or literal[-1] != literal[0]:
        return None
    body = literal[1:-1]
    if "\\" in body or literal[0] in body or literal.startswith(literal[0] * 3):
        return None
    return body


def _names_grad(expr: cst.BaseExpression) -> bool:
    """Whether an expression reaches into a `.grad` (`p.grad`, `p.grad.data`, `p.grad[0]`):
    writing it changes what an optimizer step will apply."""
    while True:
        kind = type(expr)
        if kind is cst.Attribute:
            attribute = cast(cst.Attribute, expr)
            if attribute.attr.value == "grad":
                return True
            expr = attribute.value
        elif kind is cst.Subscript:
            expr = cast(cst.Subscript, expr).value
        else:
            return False


def _names_assigned(loop: cst.CSTNode) -> frozenset[str]:
    """The plain names a loop binds or assigns: its target, `x = ...`, `x += ...`."""
    found: set[str] = set()
    todo: list[cst.CSTNode] = [loop]
    while todo:
        node = todo.pop()
        targets: list[cst.BaseExpression] = []
        if type(node) is cst.For:
            targets.append(node.target)
        elif type(node) is cst.Assign:
            targets.extend(target.target for target in node.targets)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets.append(node.target)
        for target in targets:
            found |= {n.value for n in _walk_names(target)}
        if not isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) or node is loop:
            todo.extend(node.children)
    return frozenset(found)


def _names_reset(loop: cst.For | cst.While) -> frozenset[str]:
    """The plain names a loop's body assigns on every pass: outside the `if`s and loops
    nested in it, and before any `continue` or `break` (`count = 0` before an inner loop
    that counts)."""
    found: set[str] = set()
    for statement in loop.body.children:
        if _leaves_pass(statement):
            break
        todo: list[cst.CSTNode] = [statement]
        while todo:
            node = todo.pop()
            if isinstance(node, (cst.For, cst.While, cst.If, cst.FunctionDef, cst.ClassDef)):
                continue
            if type(node) is cst.Assign:
                for target in node.targets:
                    found |= {n.value for n in _walk_names(target.target)}
            elif type(node) is cst.AnnAssign:
                found |= {n.value for n in _walk_names(node.target)}
            todo.extend(node.children)
    return frozenset(found)


def _leaves_pass(statement: cst.CSTNode) -> bool:
    """Whether a statement may end its loop's pass early (`continue`, `break`, `return`)."""
    todo: list[cst.CSTNode] = [statement]
    while todo:
        node = todo.pop()
        if isinstance(node, (cst.Continue, cst.Break, cst.Return, cst.Raise)):
            return True
        if not isinstance(node, (cst.For, cst.While, cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            todo.extend(node.children)
    return False


def _walk_names(expr: cst.CSTNode) -> list[cst.Name]:
    if type(expr) is cst.Name:
        return [expr]
    if isinstance(expr, (cst.Tuple, cst.List)):
        return [name for element in expr.elements for name in _walk_names(element.value)]
    return []


def _names_read(expr: cst.CSTNode) -> frozenset[str]:
    """The plain names an expression reads (`self.count` reads `self`, not `count`)."""
    found: set[str] = set()
    todo: list[cst.CSTNode] = [expr]
    while todo:
        node = todo.pop()
        if type(node) is cst.Name:
            found.add(node.value)
        elif type(node) is cst.Attribute:
            todo.append(node.value)
        else:
            todo.extend(node.children)
    return frozenset(found)


def _reads_any(expr: cst.CSTNode, names: frozenset[str]) -> bool:
    """Whether an expression reads one of these plain names."""
    todo: list[cst.CSTNode] = [expr]
    while todo:
        node = todo.pop()
        if type(node) is cst.Name and node.value in names:
            return True
        if type(node) is cst.Attribute:
            todo.append(node.value)  # `self.count` reads `self`, not `count`
            continue
        todo.extend(node.children)
    return False
