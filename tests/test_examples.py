"""The bundled example that the README's quick start lints."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from gradlint.engine import lint

EXAMPLE = Path(__file__).parent.parent / "examples" / "train_classifier.py"


def test_example_findings_are_the_documented_ones() -> None:
    findings = lint(EXAMPLE.read_text(), str(EXAMPLE))
    assert [(f.line, f.code) for f in findings] == [
        (18, "GL215"),
        (37, "GL101"),
        (43, "GL210"),
        (46, "GL301"),  # the forward that the bare no_grad() was meant to cover
        (60, "GL102"),
    ]


def test_example_really_fails_under_torch() -> None:
    pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=r"Can't call numpy\(\) on Tensor that requires grad"):
        runpy.run_path(str(EXAMPLE), run_name="__main__")


GAN = Path(__file__).parent.parent / "examples" / "train_gan.py"


def test_gan_example_findings_are_the_documented_ones() -> None:
    findings = lint(GAN.read_text(), str(GAN))
    assert [(f.line, f.code) for f in findings] == [(39, "GL201"), (42, "GL213"), (44, "GL302")]


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True")
def test_gan_example_runs_to_the_end() -> None:
    # Its mistakes train wrong without an error: the rules' own examples measure the damage.
    pytest.importorskip("torch")
    namespace = runpy.run_path(str(GAN))
    assert namespace["train"](steps=3) > 0
