"""GL210 grad-mode-call-without-with."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.fixes import Replacement, string_lines
from gradlint.rule import Report, Rule

_CONTEXT_ONLY = frozenset({"torch.no_grad", "torch.enable_grad", "torch.inference_mode"})


class GradModeCallWithoutWith(Rule):
    """Calls `torch.no_grad()` (or `enable_grad()`, `inference_mode()`) as a statement.

    **Why is this bad?** These calls only build a context manager; on their own they
    change nothing. The code after them still records a graph, spending memory and time
    (or, for `enable_grad()`, still records none). Only `torch.set_grad_enabled(False)`
    works as a plain call.

    **Example**
    ```python
    torch.no_grad()
    preds = model(x)
    ```

    **Use instead**
    ```python
    with torch.no_grad():
        preds = model(x)
    ```
    """

    code = "GL210"
    name = "grad-mode-call-without-with"
    message = "this call alone does nothing; use it in a `with` statement"
    fixable = True

    INVALID = [
        """\
import torch
model = torch.nn.Linear(2, 1)
torch.no_grad()  # error
preds = model(torch.randn(1, 2))
assert preds.requires_grad  # autograd still records
""",
        """\
from torch import inference_mode
import torch
inference_mode()  # error
assert not torch.is_inference_mode_enabled()
""",
        """\
import torch
from torch import nn


def predict(model, x):
    model.eval()
    torch.no_grad()  # error
    out = model(x)
    return out.softmax(dim=1)


probs = predict(nn.Linear(4, 3), torch.randn(2, 4))
assert probs.requires_grad  # autograd still records
""",
    ]
    FIXED = {
        2: """\
import torch
from torch import nn


def predict(model, x):
    model.eval()
    with torch.no_grad():  # error
        out = model(x)
        return out.softmax(dim=1)


probs = predict(nn.Linear(4, 3), torch.randn(2, 4))
assert probs.requires_grad  # autograd still records
""",
    }
    VALID = [
        """\
import torch
model = torch.nn.Linear(2, 1)
with torch.no_grad():
    preds = model(torch.randn(1, 2))
torch.set_grad_enabled(False)
preds = model(torch.randn(1, 2))
torch.set_grad_enabled(True)
guard = torch.no_grad()
with guard:
    preds = model(torch.randn(1, 2))
assert not preds.requires_grad
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for call in facts.statement_calls:
            if call.qualname in _CONTEXT_ONLY:
                yield Report(
                    call.node,
                    f"`{call.qualname}()` alone does nothing; use it in a `with` statement",
                    _with_block(call.node, facts),
                )


def _with_block(call: cst.Call, facts: Facts) -> Replacement | None:
    """`torch.no_grad()` as a statement in a function, followed by the rest of that
    function's block: that block under `with torch.no_grad():`, which is what the call
    was meant to do. No fix where it is unclear: at module level, with nothing after it,
    when the rest trains (a `backward()` or `step()` that the block would break), or when
    re-indenting would change a multi-line string."""
    found = _block_after(facts.module, call)
    if found is None:
        return None
    block, rest = found
    first = facts.position(call)[0]
    last = facts.position(rest[-1])[2]
    if any(
        call.method in ("backward", "step") and first <= facts.position(call.node)[0] <= last
        for call in facts.calls
    ):
        return None
    lines = facts.module.code.splitlines(keepends=True)
    if last > len(lines) or string_lines(facts.module.code) & set(range(first + 1, last + 1)):
        return None
    head = lines[first - 1]
    written = facts.module.code_for_node(call)
    at = head.find(written)
    if at < 0:
        return None
    unit = block.indent if block.indent is not None else facts.module.default_indent
    text = head[:at] + f"with {written}:" + head[at + len(written) :]
    for line in lines[first:last]:
        text += unit + line if line.strip() else line
    if not text.endswith(("\n", "\r")):
        text += facts.module.default_newline
    return Replacement(call, text, "Put the rest of the block under `with`", lines=(first, last))


def _block_after(
    module: cst.Module, call: cst.Call
) -> tuple[cst.IndentedBlock, list[cst.BaseStatement]] | None:
    """The function block holding the statement `call`, and the statements after it."""
    found: list[tuple[cst.IndentedBlock, list[cst.BaseStatement]]] = []

    class Finder(cst.CSTVisitor):
        def visit_IndentedBlock(self, node: cst.IndentedBlock) -> bool:
            for index, statement in enumerate(node.body):
                if (
                    isinstance(statement, cst.SimpleStatementLine)
                    and len(statement.body) == 1
                    and isinstance(statement.body[0], cst.Expr)
                    and statement.body[0].value is call
                ):
                    found.append((node, list(node.body[index + 1 :])))
            return not found

    module.visit(Finder())
    if not found or not found[0][1]:
        return None
    return found[0]
