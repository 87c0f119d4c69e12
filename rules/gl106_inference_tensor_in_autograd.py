"""GL106 inference-tensor-in-autograd."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.values import YES
from gradlint.rule import Report, Rule

_SAVED = "a tensor made under inference_mode is saved for backward here, which raises; clone it"
_INPLACE = "in-place change of a tensor made under inference_mode, outside it, raises; clone it"


class InferenceTensorInAutograd(Rule):
    """Uses a tensor made under `torch.inference_mode()` in computation autograd records.

    **Why is this bad?** Inference tensors have no version counter and cannot enter a
    graph. Feeding one to a layer that trains (its input is saved for backward) raises
    `RuntimeError: Inference tensors cannot be saved for backward`; changing one in place
    outside inference mode raises `Inplace update to inference tensor outside
    InferenceMode is not allowed`. `no_grad()` tensors have neither limit.

    **Example**
    ```python
    with torch.inference_mode():
        feats = backbone(images)
    loss = criterion(head(feats), labels)
    ```

    **Use instead**: use `torch.no_grad()` for tensors that will meet autograd, or clone.
    ```python
    with torch.no_grad():
        feats = backbone(images)
    ```
    """

    code = "GL106"
    name = "inference-tensor-in-autograd"
    message = _SAVED
    raises = (
        "Inference tensors cannot be saved for backward",
        "Inplace update to inference tensor outside InferenceMode",
        "Setting requires_grad=True on inference tensor outside InferenceMode",
    )

    INVALID = [
        """\
import torch
from torch import nn
backbone = nn.Linear(8, 4)
head = nn.Linear(4, 2)
with torch.inference_mode():  # error
    feats = backbone(torch.randn(3, 8))
loss = head(feats).sum()
loss.backward()
""",
        """\
import torch
with torch.inference_mode():
    buffer = torch.zeros(4)
buffer.add_(1)  # error
""",
        """\
import torch
w = torch.randn(3, requires_grad=True)
with torch.inference_mode():  # error
    x = torch.randn(3)
loss = (x * w).sum()
""",
    ]
    VALID = [
        """\
import torch
from torch import nn
backbone = nn.Linear(8, 4)
head = nn.Linear(4, 2)
with torch.no_grad():
    feats = backbone(torch.randn(3, 8))
loss = head(feats).sum()
loss.backward()
with torch.inference_mode():
    feats = backbone(torch.randn(3, 8))
    preds = head(feats)
loss = head(feats.clone()).sum()
""",
        """\
import torch
with torch.inference_mode():
    buffer = torch.zeros(4)
    buffer.add_(1)
shifted = buffer + 1
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for node, made_in in facts.inference_saved:
            # An inference tensor can never join a graph: the block that made it should
            # have been `no_grad()`.
            yield self._report(facts, made_in, node, _SAVED, at_block=True)
        for event in facts.inplace:
            for value, mode in facts.runs(event.target):
                if value.is_tensor and value.inference is YES and "I" not in mode:
                    yield self._report(facts, value.made_in, event.node, _INPLACE)
                    break

    def _report(
        self,
        facts: Facts,
        made_in: object,
        use: cst.CSTNode,
        message: str,
        at_block: bool = False,
    ) -> Report:
        # A decorated function made inference-only is the thing to change, and so is a
        # helper whose inference block hands its results to a caller that trains on them;
        # a block in the same code is usually right, and the use after it is the mistake.
        if isinstance(made_in, cst.Decorator) or (
            isinstance(made_in, cst.With)
            and (at_block or facts.scope.get(made_in) is not facts.scope.get(use))
        ):
            line = facts.position(use)[0]
            return Report(
                made_in,
                f"this makes inference tensors that line {line} uses with "
                "autograd, which raises; use `torch.no_grad()` instead",
            )
        return Report(use, message)
