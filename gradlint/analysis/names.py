"""Names resolved through imports: `import torch as T`, `from torch import nn`, and so on."""

from __future__ import annotations

from typing import cast

import libcst as cst

# Where a public name really lives, so that rules see one spelling.
_CANONICAL = {
    "torch.nn.modules.module.Module": "torch.nn.Module",
    "torch.nn.parameter.Parameter": "torch.nn.Parameter",
    "torch.autograd.grad_mode.no_grad": "torch.no_grad",
    "torch.autograd.no_grad": "torch.no_grad",
    "torch.autograd.grad_mode.enable_grad": "torch.enable_grad",
    "torch.autograd.enable_grad": "torch.enable_grad",
    "torch.autograd.grad_mode.inference_mode": "torch.inference_mode",
    "torch.autograd.inference_mode": "torch.inference_mode",
    "torch.autograd.grad_mode.set_grad_enabled": "torch.set_grad_enabled",
    "torch.autograd.set_grad_enabled": "torch.set_grad_enabled",
    "torch.autograd.variable.Variable": "torch.autograd.Variable",
    "torch.autograd.backward": "torch.autograd.backward",
    "pytorch_lightning.core.LightningModule": "pytorch_lightning.LightningModule",
    "lightning.pytorch.LightningModule": "lightning.LightningModule",
    "lightning.pytorch.core.LightningModule": "lightning.LightningModule",
}


def dotted(expr: cst.BaseExpression) -> str | None:
    """`a.b.c` as a string, or None for anything that is not a plain dotted name."""
    # `type() is`: a failed isinstance on libcst's ABC node classes is slow, and this runs
    # for most expressions.
    kind = type(expr)
    if kind is cst.Name:
        return cast(cst.Name, expr).value
    if kind is cst.Attribute:
        attribute = cast(cst.Attribute, expr)
        base = dotted(attribute.value)
        return None if base is None else f"{base}.{attribute.attr.value}"
    return None


def _module_name(node: cst.BaseExpression) -> str:
    name = dotted(node)
    return name or ""


class ImportTable:
    """Local name -> the qualified name it was imported as."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, node: cst.Import | cst.ImportFrom) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = _module_name(alias.name)
                if alias.asname is not None:
                    local = dotted(alias.asname.name)  # type: ignore[arg-type]
                    if local:
                        self.names[local] = full
                else:
                    # `import torch.nn` binds `torch`, and `torch.nn.X` resolves through it.
                    top = full.split(".")[0]
                    self.names[top] = top
            return
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        base = _module_name(node.module)
        for alias in node.names:
            name = dotted(alias.name)
            if not name:
                continue
            local = dotted(alias.asname.name) if alias.asname is not None else name  # type: ignore[arg-type]
            if local:
                self.names[local] = f"{base}.{name}"

    def resolve(self, expr: cst.BaseExpression) -> str | None:
        """The qualified name of a dotted expression rooted at an import, or None."""
        name = dotted(expr)
        return None if name is None else resolve_dotted(self, name)


def resolve_dotted(imports: ImportTable, name: str) -> str | None:
    """`resolve` for a dotted name already spelt out as a string."""
    head, _, rest = name.partition(".")
    base = imports.names.get(head)
    if base is None:
        return None
    full = f"{base}.{rest}" if rest else base
    return _CANONICAL.get(full, full)
