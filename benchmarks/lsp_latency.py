"""How soon after a change the language server's diagnostics arrive, on a large file.

Starts `gradlint server` over stdio (pygls's client, as tests/test_server.py does), opens
a generated training script of about 1,000 lines with a few bugs
(benchmarks/training_script.py), and edits it with one-line changes (the learning rate on
one line) sent as incremental didChange notifications, timing each from the moment it is
sent until the publishDiagnostics for that version arrives:

- single edits: each after a pause longer than the debounce delay, as after a thought;
  the server lints such a change at once.
- bursts: 5 edits 30 ms apart, as typing; the server publishes once the typing pauses
  for the debounce delay, and the time runs from the burst's last edit. Shown raw and
  minus the debounce delay (how long after the pause they arrive: the server lints while
  the delay runs, so this is what is left of the lint, and the round trip).

For comparison it also times `gradlint.engine.lint` on the same text in this process.

    python benchmarks/lsp_latency.py                 # 1,000 lines, 30 of each, debounce 150 ms
    python benchmarks/lsp_latency.py --edits 50 --lines 2000 --debounce 250
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lsp_client import Client  # noqa: E402
from lsprotocol import types  # noqa: E402
from training_script import training_script  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def edit_at(text: str, number: int) -> tuple[types.Range, str]:
    """A one-line edit: the learning rate on the `lr: float = ...` line, a new value each
    time (the file's length and findings stay the same)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("    lr: float = "):
            start = len("    lr: float = ")
            end = len(line.rstrip("\n"))
            where = types.Range(
                start=types.Position(line=index, character=start),
                end=types.Position(line=index, character=end),
            )
            return where, f"{1e-3 + number * 1e-5:.5f}"
    raise ValueError("no `lr` line in the script")


def apply(text: str, where: types.Range, new: str) -> str:
    lines = text.splitlines(keepends=True)
    line = lines[where.start.line]
    lines[where.start.line] = line[: where.start.character] + new + line[where.end.character :]
    return "".join(lines)


async def measure(lines: int, edits: int, debounce_ms: int) -> dict[str, object]:
    text = training_script(lines)
    debounce = debounce_ms / 1000
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pyproject.toml").write_text("[tool.gradlint]\n")
        path = root / "train.py"
        path.write_text(text)
        client = Client(root, "--debounce", str(debounce_ms))
        try:
            await client.start()
            started = time.perf_counter()
            uri = client.open(path, text)
            opened = await client.diagnostics(uri, version=1, timeout=60)
            first = opened.at - started
            findings = len(opened.diagnostics)
            single: list[float] = []
            burst: list[float] = []
            number = 0
            for _ in range(edits):
                await asyncio.sleep(debounce + 0.05)  # a quiet spell
                number += 1
                where, new = edit_at(text, number)
                text = apply(text, where, new)
                sent = time.perf_counter()
                version = client.edit(uri, [types.TextEdit(range=where, new_text=new)])
                published = await client.diagnostics(uri, version=version, timeout=60)
                single.append(published.at - sent)
                assert len(published.diagnostics) == findings
            for _ in range(edits):
                await asyncio.sleep(debounce + 0.05)
                for key in range(5):
                    if key:
                        await asyncio.sleep(0.03)
                    number += 1
                    where, new = edit_at(text, number)
                    text = apply(text, where, new)
                    sent = time.perf_counter()
                    version = client.edit(uri, [types.TextEdit(range=where, new_text=new)])
                published = await client.diagnostics(uri, version=version, timeout=60)
                burst.append(published.at - sent)
                assert len(published.diagnostics) == findings
            await client.stop()
        except BaseException:
            await client.kill()
            raise
    return {
        "lines": text.count("\n"),
        "findings": findings,
        "open": first,
        "single": single,
        "burst": burst,
    }


def engine_times(lines: int, repeat: int, edited: bool = False) -> list[float]:
    """`engine.lint` of the whole text; or (``edited``) of the text after a one-line
    edit, with a `Reparser` that parsed the text before it, as the server lints."""
    import gc

    from gradlint.engine import lint
    from gradlint.reparse import Reparser

    text = training_script(lines)
    lint(text, "train.py")  # imports, warm-up
    reparser = Reparser() if edited else None
    if reparser is not None:
        reparser.parse(text)
    times = []
    for number in range(repeat):
        if edited:
            text = apply(text, *edit_at(text, number + 1))
        gc.disable()
        start = time.perf_counter()
        lint(text, "train.py", reparser=reparser)
        times.append(time.perf_counter() - start)
        gc.enable()
        gc.collect()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--debounce", type=int, default=150, metavar="MS")
    args = parser.parse_args()

    result = asyncio.run(measure(args.lines, args.edits, args.debounce))
    single = [t * 1000 for t in result["single"]]  # type: ignore[attr-defined]
    burst = [t * 1000 for t in result["burst"]]  # type: ignore[attr-defined]
    net = [t - args.debounce for t in burst]
    engine = [t * 1000 for t in engine_times(args.lines, 10)]
    edited = [t * 1000 for t in engine_times(args.lines, 10, edited=True)]
    opened = float(result["open"]) * 1000  # type: ignore[arg-type]

    def line(label: str, values: list[float]) -> None:
        print(
            f"{label:<44} median {statistics.median(values):4.0f} ms, "
            f"p90 {percentile(values, 0.9):4.0f} ms, max {max(values):4.0f} ms"
        )

    print(
        f"file: {result['lines']} lines, {result['findings']} findings; "
        f"{len(single)} single edits, {len(burst)} bursts of 5; debounce {args.debounce} ms"
    )
    print(f"first diagnostics after didOpen: {opened:.0f} ms")
    line("single edit -> diagnostics:", single)
    line("burst's last edit -> diagnostics, raw:", burst)
    line("burst's last edit -> diagnostics, - debounce:", net)
    line("engine.lint in-process (no server):", engine)
    line("the same after a one-line edit, re-parsing:", edited)


if __name__ == "__main__":
    main()
