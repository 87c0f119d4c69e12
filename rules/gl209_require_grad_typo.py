"""GL209 require-grad-typo."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from gradlint.analysis import Facts
from gradlint.analysis.facts import AttributeSet
from gradlint.analysis.values import YES, Kind
from gradlint.fixes import Replacement
from gradlint.rule import Report, Rule

TYPOS = frozenset(
    {
        "require_grad",
        "requires_grads",
        "require_grads",
        "required_grad",
        "requires_gradient",
        "requieres_grad",
        "requires_gard",
        "reqires_grad",
        "requres_grad",
    }
)


class RequireGradTypo(Rule):
    """Sets a misspelt `requires_grad` attribute, such as `p.require_grad = False`.

    **Why is this bad?** Python lets you set any attribute on a tensor or a module, so
    the typo raises nothing: it creates a new attribute that PyTorch never reads. The
    parameters you meant to freeze keep training (or the tensor you meant to track is
    never tracked), and nothing tells you.

    **Example**
    ```python
    for p in backbone.parameters():
        p.require_grad = False
    ```

    **Use instead**
    ```python
    for p in backbone.parameters():
        p.requires_grad = False
    ```
    """

    code = "GL209"
    name = "require-grad-typo"
    message = "misspelt `requires_grad`: this sets an attribute PyTorch never reads"
    fixable = True

    INVALID = [
        """\
import torch
from torch import nn
backbone = nn.Linear(4, 4)
for p in backbone.parameters():
    p.require_grad = False  # error
assert backbone.weight.requires_grad  # the freeze did nothing
""",
        """\
import torch
x = torch.randn(3)
x.requires_grads = True  # error
assert not x.requires_grad
""",
        """\
import torch
from torch import nn
head = nn.Linear(4, 2)
head.require_grad = False  # error
assert head.weight.requires_grad  # the freeze did nothing
""",
    ]
    FIXED = {
        0: [
            (
                "    p.require_grad = False  # error\n",
                "    p.requires_grad = False  # error\n",
            ),
        ],
        1: [
            (
                "x.requires_grads = True  # error\n",
                "x.requires_grad = True  # error\n",
            ),
        ],
        2: [
            (
                "head.require_grad = False  # error\n",
                "head.requires_grad_(False)  # error\n",
            ),
        ],
    }
    VALID = [
        """\
import torch
from torch import nn
backbone = nn.Linear(4, 4)
for p in backbone.parameters():
    p.requires_grad = False
assert not backbone.weight.requires_grad
""",
        """\
class Options:
    def __init__(self, require_grad):
        self.require_grad = require_grad

    def describe(self):
        return "grad" if self.require_grad else "no grad"

print(Options(True).describe())
""",
    ]

    def check(self, facts: Facts) -> Iterator[Report]:
        for event in facts.attribute_sets:
            attr = event.target.attr.value
            if attr not in TYPOS:
                continue
            known = any(
                v.kind in (Kind.TENSOR, Kind.MODULE) for v in facts.any_run(event.target.value)
            )
            # On an unknown object, a literal flag never read back is still a typo.
            literal = isinstance(event.value, cst.Name) and event.value.value in ("True", "False")
            if known or (literal and attr not in facts.attributes_read):
                yield Report(
                    event.node,
                    f"`{attr}` is not an attribute PyTorch reads; did you mean `requires_grad`?",
                    _spelt_right(event, facts),
                )


def _spelt_right(event: AttributeSet, facts: Facts) -> Replacement | None:
    """On tensors, the attribute spelt right; on modules, `requires_grad_(flag)` (a module
    has no flag of its own). Setting True on a tensor that may not be a leaf raises, which
    the misspelling hid: that fix is offered as unsafe."""
    runs = facts.any_run(event.target.value)
    if len(event.node.targets) != 1 or not runs:
        return None
    if all(v.kind is Kind.TENSOR for v in runs):
        turns_off = isinstance(event.value, cst.Name) and event.value.value == "False"
        safe = turns_off or all(v.leaf is YES for v in runs)
        name = event.target.attr.with_changes(value="requires_grad")
        return Replacement(event.target.attr, name, "Spell `requires_grad` right", safe)
    if all(v.kind is Kind.MODULE for v in runs):
        call = cst.Call(
            func=event.target.with_changes(attr=cst.Name("requires_grad_")),
            args=[cst.Arg(event.value)],
        )
        return Replacement(event.node, cst.Expr(call), "Call `requires_grad_()`")
    return None
