"""PyTorch's autograd errors, each mapped to the rule that names the misuse behind it."""

from __future__ import annotations

# A fragment of PyTorch's message (as torch 2.x words it), the rule, and what went wrong.
AUTOGRAD_ERRORS: tuple[tuple[str, str, str], ...] = (
    (
        "Can't call numpy() on Tensor that requires grad",
        "GL101",
        "numpy() on a tensor that requires grad; call .detach() first",
    ),
    (
        "leaf Variable that requires grad is being used in an in-place operation",
        "GL102",
        "an in-place change of a leaf tensor that requires grad; make it under torch.no_grad()",
    ),
    (
        "does not require grad and does not have a grad_fn",
        "GL103",
        "backward() on a tensor that has no graph: made under no_grad, detached, or from "
        "tensors that do not require grad",
    ),
    (
        "you can only change requires_grad flags of leaf variables",
        "GL105",
        "requires_grad set on a tensor computed from others; set it on the leaf it came from, "
        "or use .detach().requires_grad_()",
    ),
    (
        # "Only Tensors of floating point and complex dtype ..." / "only ... floating point dtype"
        "dtype can require gradients",
        "GL105",
        "requires_grad on an integer (or bool) tensor: only floating-point and complex tensors "
        "can require grad",
    ),
    (
        "Inference tensors cannot be saved for backward",
        "GL106",
        "a tensor made under torch.inference_mode() used in a graph that will be back-propagated",
    ),
    (
        "Inplace update to inference tensor outside InferenceMode",
        "GL106",
        "an in-place change, outside inference mode, of a tensor made under "
        "torch.inference_mode(); clone it first, or make it under torch.no_grad()",
    ),
    (
        "Trying to backward through the graph a second time",
        "GL107",
        "a second backward through a graph that the first backward freed",
    ),
    (
        "modified by an inplace operation",
        "GL108",
        "a tensor saved for backward was changed in place before the backward",
    ),
    # Raised by an optimizer's constructor (plain Python, which no torch hook sees): known
    # from the program's uncaught error only.
    (
        "optimizer got an empty parameter list",
        "GL109",
        "an optimizer given no parameters: the module has none yet, or the generator was used up",
    ),
    (
        "can't optimize a non-leaf Tensor",
        "GL109",
        "an optimizer given a tensor computed from others; give it the leaf parameters",
    ),
)


def classify(message: str) -> tuple[str, str] | None:
    """(rule code, why) for an autograd error's message; None for any other error."""
    for fragment, code, why in AUTOGRAD_ERRORS:
        if fragment in message:
            return code, why
    return None
