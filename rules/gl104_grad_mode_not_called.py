"""GL104 grad-mode-not-called."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.fixes import Replacement
from gradlint.rule import Report, Rule


class GradModeNotCalled(Rule):
    """Uses a grad-mode class in `with` without calling it: `with torch.no_grad:`.

    **Why is this bad?** `torch.no_grad`, `enable_grad`, `inference_mode` and
    `set_grad_enabled` are classes; the context manager is an instance of one. Without the
    parentheses the `with` statement raises `TypeError: 'type' object does not support the
    context manager protocol` the moment it runs.

    **Example**
    ```python
    with torch.no_grad:
        preds = model(x)
    ```

    **Use instead**
    ```python
    with torch.no_grad():
        preds = model(x)
    ```
    """

    code = "GL104"
    name = "grad-mode-not-called"
    message = "grad-mode class used without calling it; write `torch.no_grad()`"
    fixable = True
    raises = ("does not support the context manager protocol",)

    INVALID = [
        """\
import torch
model = torch.nn.Linear(2, 1)
with torch.no_grad:  # error
    preds = model(torch.randn(1, 2))
""",
        """\
from torch import inference_mode as im
with im:  # error
    pass
""",
    ]
    FIXED = {
        0: [
            (
                "with torch.no_grad:  # error\n",
                "with torch.no_grad():  # error\n",
            ),
        ],
        1: [
            (
                "with im:  # error\n",
                "with im():  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
from torch import no_grad
model = torch.nn.Linear(2, 1)
with torch.no_grad():
    preds = model(torch.randn(1, 2))
with no_grad(), torch.inference_mode():
    preds = model(torch.randn(1, 2))

@torch.no_grad
def predict(x):
    return model(x)

predict(torch.randn(1, 2))
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for item in facts.with_items:
            if not item.called:
                written = item.node.item
                yield Report(
                    written,
                    f"`{item.qualname}` is used without calling it; "
                    f"write `{item.qualname.rsplit('.', 1)[-1]}()`",
                    Replacement(written, cst.Call(func=written), "Call the grad-mode class"),
                )
