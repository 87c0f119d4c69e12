"""GL210 grad-mode-call-without-with."""

from __future__ import annotations

from collections.abc import Iterator

from gradlint.analysis import Facts
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
    ]
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
                )
