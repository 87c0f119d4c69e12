"""GL105 requires-grad-on-non-leaf."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.torch_api import FACTORIES, PARAMETER_CLASSES, VARIABLE_CLASSES
from gradlint.analysis.values import NO, YES, Value
from gradlint.rule import Report, Rule

_NON_LEAF = "sets requires_grad on a non-leaf tensor, which raises; set it on the leaf or detach"
_INTEGER = "integer tensors cannot require grad, which raises; use a floating-point dtype"


def _literal(expr: cst.BaseExpression | None) -> bool | None:
    if isinstance(expr, cst.Name) and expr.value in ("True", "False"):
        return expr.value == "True"
    return None


class RequiresGradOnNonLeaf(Rule):
    """Sets `requires_grad` on a tensor that cannot take it: a non-leaf, or an integer tensor.

    **Why is this bad?** Only leaves carry the flag: `y.requires_grad = ...` on an op's
    result raises `RuntimeError: you can only change requires_grad flags of leaf
    variables`. Only floating-point and complex tensors can require grad:
    `torch.arange(5, requires_grad=True)` raises `RuntimeError: Only Tensors of floating
    point and complex dtype can require gradients`.

    **Example**
    ```python
    y = x * 2
    y.requires_grad = False
    ```

    **Use instead**: detach to get a tensor outside the graph, or use a float dtype.
    ```python
    y = (x * 2).detach()
    idx = torch.arange(5, dtype=torch.float32, requires_grad=True)
    ```
    """

    code = "GL105"
    name = "requires-grad-on-non-leaf"
    message = _NON_LEAF
    raises = ("requires_grad flags of leaf variables", "can require gradients")

    INVALID = [
        """\
import torch
x = torch.randn(3, requires_grad=True)
y = x * 2
y.requires_grad = False  # error
""",
        """\
import torch
x = torch.randn(3, requires_grad=True)
y = x.exp()
y.requires_grad_(False)  # error
""",
        """\
import torch
steps = torch.arange(5, requires_grad=True)  # error
""",
        """\
import torch
labels = torch.tensor([0, 1, 1])
labels.requires_grad = True  # error
""",
        """\
import torch
from torch import nn
mask = nn.Parameter(torch.LongTensor([[1, 0], [0, 1]]))  # error
""",
    ]
    VALID = [
        """\
import torch
x = torch.randn(3, requires_grad=True)
y = (x * 2).detach()
y.requires_grad = True
z = x * 3
z.requires_grad_()
with torch.no_grad():
    w = x * 2
w.requires_grad = True
""",
        """\
import torch
steps = torch.arange(5.0, requires_grad=True)
scale = torch.tensor([1.0, 2.0], requires_grad=True)
ids = torch.arange(5, dtype=torch.float32, requires_grad=True)
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.attribute_sets:
            if event.target.attr.value != "requires_grad":
                continue
            for value in facts.any_run(event.target.value):
                found = list(self._flagged(facts, event.node, value, _literal(event.value)))
                if found:
                    yield found[0]
                    break
        for call in facts.calls:
            if call.method == "requires_grad_" and call.receiver is not None:
                flag = _literal(call.node.args[0].value) if call.node.args else True
                for value in facts.any_run(call.receiver):
                    found = list(self._flagged(facts, call.node, value, flag, method=True))
                    if found:
                        yield found[0]
                        break
            elif call.qualname in PARAMETER_CLASSES or call.qualname in VARIABLE_CLASSES:
                # nn.Parameter requires grad unless told not to; Variable only when told to.
                flag = next(
                    (
                        _literal(arg.value)
                        for arg in call.node.args
                        if arg.keyword is not None and arg.keyword.value == "requires_grad"
                    ),
                    call.qualname in PARAMETER_CLASSES,
                )
                if flag and facts.value(call.node).integer is YES:
                    yield Report(call.node, _INTEGER)
            elif call.qualname is not None and call.qualname.rsplit(".", 1)[-1] in FACTORIES:
                wanted = next(
                    (
                        _literal(arg.value)
                        for arg in call.node.args
                        if arg.keyword is not None and arg.keyword.value == "requires_grad"
                    ),
                    None,
                )
                if wanted and facts.value(call.node).integer is YES:
                    yield Report(call.node, _INTEGER)

    def _flagged(
        self,
        facts: Facts,
        node: cst.CSTNode,
        value: Value,
        flag: bool | None,
        method: bool = False,
    ) -> Iterator[Report]:
        if not value.is_tensor:
            return
        # `requires_grad_()` on a non-leaf is allowed when it asks for grad; the setter is not.
        if value.leaf is NO and value.requires_grad is YES and not (method and flag is not False):
            yield Report(node, _NON_LEAF)
        elif value.integer is YES and flag is True:
            yield Report(node, _INTEGER)
