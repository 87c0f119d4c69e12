"""GL102 inplace-on-grad-leaf."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import ENABLED
from gradlint.analysis.values import YES
from gradlint.fixes import Replacement, string_lines
from gradlint.rule import Report, Rule


class InplaceOnGradLeaf(Rule):
    """Changes in place a leaf tensor that requires grad while autograd is recording.

    **Why is this bad?** Autograd cannot record an in-place change of a leaf it is
    differentiating with respect to: `w += ...`, `w.add_(...)`, `w[0] = ...` or
    `w.zero_()` on a parameter or on a tensor made with `requires_grad=True` raise
    `RuntimeError: a leaf Variable that requires grad is being used in an in-place
    operation`. It is the classic hand-written SGD step outside `torch.no_grad()`.

    **Example**
    ```python
    w = torch.randn(3, requires_grad=True)
    loss = (w * x).sum()
    loss.backward()
    w -= lr * w.grad
    ```

    **Use instead**: update parameters with autograd off (or let an optimizer do it).
    ```python
    with torch.no_grad():
        w -= lr * w.grad
    ```
    """

    code = "GL102"
    name = "inplace-on-grad-leaf"
    message = (
        "in-place change of a leaf tensor that requires grad raises; do it under `torch.no_grad()`"
    )
    raises = ("a leaf Variable that requires grad is being used in an in-place operation",)
    fixable = True

    INVALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True)
x = torch.randn(3)
for step in range(2):
    loss = (w * x).sum()
    loss.backward()
    w -= 0.1 * w.grad  # error
""",
        """\
import torch.nn as nn
layer = nn.Linear(2, 2)
layer.weight.mul_(0.5)  # error
""",
        """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
for p in model.parameters():
    p.zero_()  # error
""",
        """\
import torch
b = torch.zeros(4, requires_grad=True)
b[0] = 1.0  # error
""",
        """\
import torch
from torch import nn
conv = nn.Conv2d(3, 6, 1)
rows = conv.bias.view(2, 3)
rows[:, 0] += 1.0  # error
""",
    ]
    FIXED = {
        0: """\
import torch
w = torch.randn(3, requires_grad=True)
x = torch.randn(3)
for step in range(2):
    loss = (w * x).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad  # error
""",
        2: """\
import torch
from torch import nn
model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
for p in model.parameters():
    with torch.no_grad():
        p.zero_()  # error
""",
        3: """\
import torch
b = torch.zeros(4, requires_grad=True)
with torch.no_grad():
    b[0] = 1.0  # error
""",
        4: """\
import torch
from torch import nn
conv = nn.Conv2d(3, 6, 1)
rows = conv.bias.view(2, 3)
with torch.no_grad():
    rows[:, 0] += 1.0  # error
""",
    }
    VALID = [
        """\
import torch
w = torch.randn(3, requires_grad=True)
x = torch.randn(3)
for step in range(2):
    loss = (w * x).sum()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
    w.grad.zero_()
""",
        """\
import torch.nn as nn
layer = nn.Linear(2, 2)
layer.weight.data.mul_(0.5)
""",
        """\
import torch
from torch import nn
model = nn.Linear(2, 2)

@torch.no_grad()
def reset(m):
    for p in m.parameters():
        p.zero_()

def init_weights():
    for p in model.parameters():
        p.zero_()

reset(model)
with torch.no_grad():
    init_weights()
""",
        """\
import torch
x = torch.randn(4, requires_grad=True)
y = x * 2
y[0] = 1.0
y.add_(1)
y.sum().backward()
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.inplace:
            if any(
                value.is_tensor
                and ((value.leaf is YES and value.requires_grad is YES) or value.leaf_view)
                and mode == ENABLED
                for value, mode in facts.runs(event.target)
            ):
                yield Report(event.node, fix=_under_no_grad(event.node, facts))


def _under_no_grad(node: cst.CSTNode, facts: Facts) -> Replacement | None:
    """The statement under `with torch.no_grad():`, the way to update a parameter by
    hand (an optimizer's step does the same). Inside a forward, where the change may hit a
    tensor a backward still needs, it is offered as unsafe."""
    grad_off = _local_name(facts, "torch.no_grad") or _with_attr(_local_name(facts, "torch"))
    statement = _statement_of(facts.module, node)
    if grad_off is None or statement is None:
        return None
    first, _, last, _ = facts.position(statement)
    lines = facts.module.code.splitlines(keepends=True)
    if last > len(lines) or string_lines(facts.module.code) & set(range(first + 1, last + 1)):
        return None
    head = lines[first - 1]
    indent = head[: len(head) - len(head.lstrip())]
    unit = facts.module.default_indent
    text = f"{indent}with {grad_off}():{facts.module.default_newline}"
    text += "".join(unit + line if line.strip() else line for line in lines[first - 1 : last])
    if not text.endswith(("\n", "\r")):
        text += facts.module.default_newline
    in_forward = facts.in_forward(node)
    title = "Update under `no_grad()`"
    return Replacement(node, text, title, safe=not in_forward, lines=(first, last))


def _local_name(facts: Facts, qualname: str) -> str | None:
    """The name this module imported `qualname` as (`T` for `import torch as T`)."""
    names = [local for local, full in facts.imports.names.items() if full == qualname]
    return min(names, key=len) if names else None


def _with_attr(module: str | None) -> str | None:
    return f"{module}.no_grad" if module is not None else None


def _statement_of(module: cst.Module, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
    """The line holding `node` as its only statement (`x.add_(1)`, `w -= g`)."""
    found: list[cst.SimpleStatementLine] = []

    class Finder(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, line: cst.SimpleStatementLine) -> bool:
            if len(line.body) == 1:
                small = line.body[0]
                if small is node or (isinstance(small, cst.Expr) and small.value is node):
                    found.append(line)
            return False

    module.visit(Finder())
    return found[0] if found else None
