"""The runtime tracer (installed as ``gradlint.runtime_check``); it needs torch."""

if __name__ != "gradlint.runtime_check":
    raise ImportError("'runtime_check' is part of gradlint: import gradlint.runtime_check instead")
