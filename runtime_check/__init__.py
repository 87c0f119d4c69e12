"""The runtime tracer (installed as ``gradlint.runtime_check``); it needs torch."""

if __name__ != "gradlint.runtime_check":
    raise ImportError("'runtime_check' is part of gradlint: import gradlint.runtime_check instead")

from typing import Any

__all__ = ["Tracer", "trace"]


def __getattr__(name: str) -> Any:
    # Imported on first use: reading a runtime report needs no torch.
    if name in __all__:
        from gradlint.runtime_check import tracer

        return getattr(tracer, name)
    raise AttributeError(f"module 'gradlint.runtime_check' has no attribute {name!r}")
