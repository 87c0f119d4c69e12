"""Small helpers the test modules share."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, text: str | bytes) -> Path:
    """Write a file (making its folders), text as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def explained(tmp_path: Path, source: str, error: str, code: str) -> dict[int, str]:
    """Run a program plainly, where PyTorch must raise `error`, then under the tracer: the
    tracer's events of `code`, by line. (Needs torch.)"""
    import subprocess
    import sys
    import textwrap

    from gradlint.runtime_check.runner import run_program

    script = write(tmp_path / "train.py", textwrap.dedent(source).lstrip("\n"))
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert plain.returncode == 1 and error in plain.stderr
    report = run_program(str(script), [])
    assert report.exit_code == 1 and not report.faults
    return {e.line: e.detail for e in report.events if e.code == code}
