"""gradlint: find PyTorch autograd misuse before you train."""

from gradlint.finding import Finding, LintError

__version__ = "0.1.0"

__all__ = ["Finding", "LintError", "__version__", "lint"]


def __getattr__(name: str) -> object:
    # `lint` pulls in libcst; keep `import gradlint` itself light.
    if name == "lint":
        from gradlint.engine import lint

        return lint
    raise AttributeError(name)
