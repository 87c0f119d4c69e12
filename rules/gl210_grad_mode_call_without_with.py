"""GL210 grad-mode-call-without-with."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.fixes import Replacement, statement_in_block, under_with
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
        2: [
            (
                "    torch.no_grad()  # error\n    out = model(x)\n    return out.softmax(dim=1)\n",
                "    with torch.no_grad():  # error\n"
                "        out = model(x)\n"
                "        return out.softmax(dim=1)\n",
            ),
        ],
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
    found = statement_in_block(facts.module, call, facts.parents)
    if found is None or not isinstance(found[1], cst.IndentedBlock):
        return None
    _, block, index = found
    rest = block.body[index + 1 :]
    if not rest:
        return None
    first = facts.position(call)[0]
    last = facts.position(rest[-1])[2]
    region = {found[0], *rest}

    def inside(node: cst.CSTNode) -> bool:
        around = facts.parents.ancestors(node)
        if not around:  # pragma: no cover - every call is below the module
            return first <= facts.position(node)[0] <= last
        return any(parent in region for parent in around)

    if any(other.method in ("backward", "step") and inside(other.node) for other in facts.calls):
        return None
    text = under_with(facts.text, facts.module.code_for_node(call), first, last, keep_head=True)
    if text is None:
        return None
    return Replacement(call, text, "Put the rest of the block under `with`", lines=(first, last))
