"""A module's parameters, buffers and submodules, read the way `nn.Module` defines them.

The tracer never calls a user's override of `parameters()` or `modules()`: meta-learning
code often redefines them (to return a `ParameterList`, or to take arguments), and calling
user code from the tracer could change what the program computes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

_Module = torch.nn.Module


def parameters_of(module: _Module) -> Iterator[torch.nn.Parameter]:
    return _Module.parameters(module)


def named_parameters_of(module: _Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
    return _Module.named_parameters(module)


def buffers_of(module: _Module) -> Iterator[torch.Tensor]:
    return _Module.buffers(module)


def modules_of(module: _Module) -> Iterator[_Module]:
    return _Module.modules(module)
