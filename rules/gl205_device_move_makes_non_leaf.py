"""GL205 device-move-makes-non-leaf."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis import torch_api as api
from gradlint.analysis.facts import DISABLED
from gradlint.analysis.values import NO, YES, Kind, Value
from gradlint.fixes import Replacement, method_called
from gradlint.rule import Report, Rule

# Factories that take no `requires_grad=`: as written the call raises, and dropping the
# keyword would make it run.
_NO_FLAG = frozenset({"as_tensor", "from_numpy"})


class DeviceMoveMakesNonLeaf(Rule):
    """Moves or casts a tensor made with `requires_grad=True`, then uses the copy as the leaf.

    **Why is this bad?** `torch.randn(3, requires_grad=True).cuda()` (or `.double()`,
    `* 0.01`, `.view(...)`) is an op's result: a non-leaf copy of the leaf, and the leaf
    itself is lost. Backward fills the lost leaf's `.grad`, never the copy's: the copy's
    `.grad` stays None (PyTorch only warns), so a hand-written update or a gradient check
    reads nothing and the tensor never trains. (Given to an optimizer, the copy raises:
    GL109 reports that.)

    **Example**
    ```python
    w = torch.randn(784, 10, requires_grad=True) * 0.01
    ...
    w -= lr * w.grad
    ```

    **Use instead**: make the tensor where and as it should be, or ask for grad after
    the move.
    ```python
    w = torch.randn(784, 10, device=device, requires_grad=True)
    w = (torch.randn(784, 10) * 0.01).requires_grad_()
    ```
    """

    code = "GL205"
    name = "device-move-makes-non-leaf"
    message = (
        "makes a non-leaf copy of a tensor made to require grad, whose `.grad` stays None; "
        "create it with device=/dtype=, or call `.requires_grad_()` after the move"
    )
    fixable = True

    INVALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True).double()  # error
loss = (w * 2).sum()
loss.backward()
assert w.grad is None
""",
        """\
import torch as T


def sgd_step(param, lr):
    with T.no_grad():
        if param.grad is not None:
            param -= lr * param.grad


w = T.ones(3, requires_grad=True)
w = w * 0.1  # error
before = w.detach().clone()
for x in [T.tensor([1.0, 2.0, 3.0])]:
    loss = (w * x).sum()
    loss.backward()
    sgd_step(w, 0.1)
assert T.equal(w.detach(), before)  # never trained
""",
        """\
import torch


class Scaler:
    def __init__(self):
        self.log_scale = torch.zeros(2, requires_grad=True).view(2, 1)  # error

    def apply(self, x):
        return x * self.log_scale.exp()

    def scale_grad(self):
        return self.log_scale.grad


s = Scaler()
s.apply(torch.ones(2, 3)).sum().backward()
assert s.scale_grad() is None
""",
        """\
import torch
dtype = torch.DoubleTensor  # torch.cuda.FloatTensor on a GPU
x = torch.ones(4, 3, dtype=torch.float64)
w = torch.randn(3, 2, requires_grad=True).type(dtype)  # error
b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
(x @ w + b).sum().backward()
assert w.grad is None and b.grad is not None
""",
    ]
    FIXED = {
        0: [
            (
                "w = torch.randn(3, requires_grad=True).double()  # error\n",
                "w = torch.randn(3).double().requires_grad_()  # error\n",
            ),
        ],
        2: [
            (
                "torch.zeros(2, requires_grad=True).view(2, 1)  # error\n",
                "torch.zeros(2).view(2, 1).requires_grad_()  # error\n",
            ),
        ],
        3: [
            (
                "w = torch.randn(3, 2, requires_grad=True).type(dtype)  # error\n",
                "w = torch.randn(3, 2).type(dtype).requires_grad_()  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
device = torch.device("cpu")
w = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)
v = torch.randn(3).double().requires_grad_()
u = (torch.randn(3) * 0.1).requires_grad_()
loss = (w * v * u).sum()
loss.backward()
assert w.grad is not None and v.grad is not None and u.grad is not None
""",
        """\
import torch
from torch import nn, optim
t = torch.randn(3)
p = nn.Parameter(t.double())
q = nn.Parameter(t.to("cpu"))
opt = optim.SGD([p, q], lr=0.1)
(p.float() * q).sum().backward()
opt.step()
assert p.grad is not None and q.grad is not None
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
w64 = w.double()
scaled = torch.randn(3, requires_grad=True) * 2
loss = (w64 * 2).sum() + scaled.sum()
loss.backward()
assert w.grad is not None
""",
        """\
import torch
w = torch.randn(3, dtype=torch.float64, requires_grad=True).double()
v = torch.randn(3, requires_grad=True).float().to(torch.float32)
(w.float() * v).sum().backward()
assert w.grad is not None and v.grad is not None
""",
        """\
import torch
w = torch.randn(3, requires_grad=True).double()
w.retain_grad()
(w * 2).sum().backward()
assert w.grad is not None
""",
        """\
import torch as T


def step(leaf, lr):
    with T.no_grad():
        leaf -= lr * leaf.grad
        leaf.grad.zero_()


w = T.ones(3, requires_grad=True)
for _ in range(2):
    loss = (w.double() * 3).sum()
    loss.backward()
    step(w, 0.1)
assert not T.equal(w.detach(), T.ones(3))
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        elsewhere = _reported_elsewhere(facts)
        # Every tensor whose `.grad` is read, by the copy that lost its leaf: a fix must
        # make all of them that one leaf.
        copies: dict[int, list[Value]] = {}
        for runs in facts.grad_reads.values():
            for tensor in runs:
                if isinstance(tensor.moved, cst.CSTNode):
                    copies.setdefault(id(tensor.moved), []).append(tensor)
        seen: set[int] = set()
        for read, runs in facts.grad_reads.items():
            for tensor in runs:
                moved = tensor.moved
                if (
                    not isinstance(moved, cst.CSTNode)
                    or id(moved) in seen
                    or id(moved) in elsewhere
                    or tensor.leaf is not NO
                    or tensor.requires_grad is not YES
                    or facts.may_retain_grad(tensor)
                ):
                    continue
                seen.add(id(moved))
                line = facts.position(read)[0]
                yield Report(
                    facts.focus(moved),
                    "makes a non-leaf copy of a tensor made to require grad: its `.grad`, read "
                    f"at line {line}, stays None; create the tensor with device=/dtype=, or call "
                    "`.requires_grad_()` after this",
                    fix=_requires_grad_after(moved, copies[id(moved)], facts),
                )


def _requires_grad_after(
    moved: cst.CSTNode, reads: list[Value], facts: Facts
) -> Replacement | None:
    """`torch.randn(3).double().requires_grad_()` for `torch.randn(3,
    requires_grad=True).double()`: the same numbers, now the leaf that backward fills.

    Only where the leaf is made by a torch factory right inside the copy, so that nothing
    else can hold it, and where every `.grad` read is of the whole copy. (`dtype=` or
    `device=` in the factory instead is not the same: `randn` in float64 draws other
    numbers than `randn(...).double()`, and `.cuda()` picks the current device.) Unsafe
    where the copy may be changed in place while autograd records, which the leaf would
    make raise, or where the factory might make an integer tensor, which raises as written
    and would not once fixed."""
    made = _factory_in(moved, facts)
    if made is None:
        return None
    factory, flag = made
    copy = _whole_copy(moved, facts)
    value = facts.value(copy)
    if value.head is None or any(tensor.head != value.head for tensor in reads):
        return None  # some `.grad` read is of a later copy, which would stay one
    without = _without_argument(factory, flag)
    if without is None:
        return None  # a comment would be lost
    rebuilt = copy.deep_replace(factory, without)
    assert isinstance(rebuilt, cst.BaseExpression)
    safe = facts.value(factory).integer is NO and not _changed_in_place(value, facts)
    return Replacement(copy, method_called(rebuilt, "requires_grad_"), _TITLE, safe)


_TITLE = "Call `requires_grad_()` after the move"


def _factory_in(moved: cst.CSTNode, facts: Facts) -> tuple[cst.Call, int] | None:
    """The torch factory call that `moved` copies, written with `requires_grad=True`, and
    that keyword's index among its arguments."""
    found = [
        operand
        for operand in _operands(moved)
        if isinstance(operand, cst.Call) and facts.value(operand).grad_leaf is operand
    ]
    if len(found) != 1:
        return None
    factory = found[0]
    module, _, name = (facts.imports.resolve(factory.func) or "").rpartition(".")
    if module != "torch" or name not in api.FACTORIES or name in _NO_FLAG:
        return None
    if any(arg.star == "**" for arg in factory.args):
        return None  # the flag might be there too
    flags = [
        index
        for index, arg in enumerate(factory.args)
        if arg.keyword is not None and arg.keyword.value == "requires_grad"
    ]
    if len(flags) != 1:
        return None
    flag = factory.args[flags[0]].value
    if not (isinstance(flag, cst.Name) and flag.value == "True" and not flag.lpar):
        return None
    return factory, flags[0]


def _operands(node: cst.CSTNode) -> list[cst.BaseExpression]:
    if isinstance(node, cst.Call):
        operands = [arg.value for arg in node.args]
        if isinstance(node.func, cst.Attribute):
            operands.append(node.func.value)
        return operands
    if isinstance(node, cst.BinaryOperation):
        return [node.left, node.right]
    if isinstance(node, cst.UnaryOperation):
        return [node.expression]
    if isinstance(node, cst.Subscript):
        return [node.value]
    return []


def _whole_copy(moved: cst.CSTNode, facts: Facts) -> cst.BaseExpression:
    """The largest expression around `moved` that is still a copy of the lost leaf
    (`.double().cuda()`, `* 0.01` then `.view(...)`): `.requires_grad_()` goes after it,
    since any op after the call would copy again."""
    assert isinstance(moved, cst.BaseExpression)
    copy: cst.BaseExpression = moved
    parents = facts.parents.ancestors(moved)
    at = 0
    while at < len(parents):
        parent = parents[at]
        outer: cst.CSTNode | None = None
        above = parents[at + 1] if at + 1 < len(parents) else None
        if isinstance(parent, cst.Attribute) and parent.value is copy:
            if isinstance(above, cst.Call) and above.func is parent:
                outer, at = above, at + 2  # a method of the copy: `.cuda()`
        elif isinstance(parent, cst.Arg) and isinstance(above, cst.Call):
            qualname = facts.imports.resolve(above.func) or ""
            if qualname.startswith("torch."):
                outer, at = above, at + 2  # `torch.reshape(copy, ...)`
        elif isinstance(parent, (cst.BinaryOperation, cst.UnaryOperation)):
            outer, at = parent, at + 1
        elif isinstance(parent, cst.Subscript) and parent.value is copy:
            outer, at = parent, at + 1
        if not isinstance(outer, cst.BaseExpression) or facts.value(outer).moved is not moved:
            break
        copy = outer
    return copy


def _changed_in_place(copy: Value, facts: Facts) -> bool:
    """Whether the copy, or a view of it, may be changed in place while autograd records:
    fine on a copy, an error on a leaf. A change of a tensor the analysis cannot name
    might be one."""
    for event in facts.inplace:
        for value, mode in facts.runs(event.target):
            if mode == DISABLED or value.kind not in (Kind.TENSOR, Kind.UNKNOWN):
                continue
            if value.node is None or value.node == copy.node or value.head == copy.head:
                return True
    return False


def _without_argument(call: cst.Call, index: int) -> cst.Call | None:
    """`call` without its argument `index`, keeping the commas right, a trailing comma, and
    any comment after the argument; None where a comment would be lost."""
    args = list(call.args)
    gone = args.pop(index)
    after = gone.comma.whitespace_after if isinstance(gone.comma, cst.Comma) else None
    inner = gone.with_changes(comma=cst.MaybeSentinel.DEFAULT) if after is not None else gone
    if _has_comment(inner) or (
        isinstance(gone.comma, cst.Comma) and _has_comment(gone.comma.whitespace_before)
    ):
        return None
    if not args:
        if after is not None and _has_comment(after):
            return None
        return call.with_changes(args=())
    if index == 0:
        before = call.whitespace_before_args
        if after is None:
            return None  # unreachable: a first argument with others after has a comma
        chosen = _keep_comment(before, after)
        if chosen is None:
            return None
        return call.with_changes(args=args, whitespace_before_args=chosen)
    previous = args[index - 1]
    assert isinstance(previous.comma, cst.Comma)  # an argument came after it
    if after is None:
        # It was the last argument, without a trailing comma: neither is the one before it.
        if _has_comment(previous.comma):
            return None
        args[index - 1] = previous.with_changes(
            comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=gone.whitespace_after_arg
        )
    else:
        chosen = _keep_comment(previous.comma.whitespace_after, after)
        if chosen is None:
            return None
        args[index - 1] = previous.with_changes(
            comma=previous.comma.with_changes(whitespace_after=chosen)
        )
    return call.with_changes(args=args)


def _keep_comment(
    before: cst.BaseParenthesizableWhitespace, after: cst.BaseParenthesizableWhitespace
) -> cst.BaseParenthesizableWhitespace | None:
    """Of the whitespace before the removed argument and that after it, the one to keep:
    the one after (it leads to what follows, a `)` on its own line say) unless only the one
    before holds a comment; None where both do."""
    if _has_comment(before):
        return None if _has_comment(after) else before
    return after


def _has_comment(node: cst.CSTNode) -> bool:
    return "#" in cst.Module(body=[]).code_for_node(node)


def _reported_elsewhere(facts: Facts) -> set[int]:
    """Copies that another rule reports where they were made: given to an optimizer
    (GL109: that raises), or assigned in a module's constructor (GL206)."""
    found = {id(t.moved) for t in facts.unregistered_tensors if t.moved is not None}
    for made in facts.optimizers:
        if made.params is None:
            continue
        for value in facts.any_run(made.params):
            for part in _parts(value):
                if part.moved is not None:
                    found.add(id(part.moved))
    return found


def _parts(value: Value) -> list[Value]:
    if value.kind is not Kind.SEQUENCE:
        return [value]
    return [v for v in (value.item, *(value.items or ())) if v is not None]
