"""How long does `gradlint check` take, cold and warm, on one process and on two, and how
long do TorchFix and ruff take on the same files?

    python benchmarks/speed.py                          # the whole corpus, 3 repeats
    python benchmarks/speed.py --root /work/corpus/karpathy__nanoGPT --repeat 5
    python benchmarks/speed.py --limit 300

Each timing is a whole command in a fresh subprocess, so start-up counts, as it does for a
user. Each repeat runs, in order:

    gradlint, cold, 1 job    check --exit-zero --format json --no-cache --jobs 1
    gradlint, cold, 2 jobs   ... --jobs 2, with an empty cache (which this run fills)
    gradlint, warm, 1 job    ... --jobs 1, with the cache the run before filled
    TorchFix                 torchfix -j 1 (its default rules), in its own pinned venv
    ruff                     ruff check --no-cache --isolated --exit-zero (default rules)
    ruff, all rules          ... --select ALL

and the report is the median of the repeats; the three gradlint runs' JSON reports must be
identical, byte for byte. ruff has no option for its thread count; it runs with
`RAYON_NUM_THREADS=1` (its thread pool's setting), so that every tool here runs on one
core, and its CPU time shows whether that held. TorchFix is installed as
`compare_tools.py` installs it (`~/.cache/gradlint-compare/torchfix`, `--tools-dir`);
a tool that is missing or cannot be installed is left out with a note. The files are
handed over in batches that fit on a command line (one batch for the whole corpus
here). The subprocesses run in a temporary folder, so gradlint's cache lives (and dies)
there. For scale, libcst's parse alone over the same files is timed in this process
(sources read first, as `parse_vs_check.py` does, so without start-up or reading).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_tools import OTHER_TOOLS, TOOLS_DIR, TORCHFIX, ensure_tool  # noqa: E402
from corpus import CORPUS_ROOT  # noqa: E402
from parse_vs_check import load, run_parse  # noqa: E402

GRADLINT_RUNS = (
    ("gradlint cold, 1 job", ["--no-cache", "--jobs", "1"]),
    ("gradlint cold, 2 jobs", ["--jobs", "2"]),
    ("gradlint warm, 1 job", ["--jobs", "1"]),
)
PARSE = "libcst parse alone, in-process"


@dataclass
class Command:
    """A linter run over the files: the command before them, and what it must exit with."""

    label: str
    argv: list[str]
    ok: tuple[int, ...]
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system, children included


def batches(files: Sequence[str], argv: Sequence[str]) -> Iterator[list[str]]:
    """The files in runs of arguments that fit on one command line with `argv` (as xargs
    does); the limit counts each argument's bytes, its NUL and its pointer."""
    budget = os.sysconf("SC_ARG_MAX") // 2  # the environment takes its share too
    budget -= sum(len(a) + 9 for a in argv) + sum(
        len(k) + len(v) + 10 for k, v in os.environ.items()
    )
    batch: list[str] = []
    used = 0
    for path in files:
        size = len(os.fsencode(path)) + 9
        if batch and used + size > budget:
            yield batch
            batch, used = [], 0
        batch.append(path)
        used += size
    if batch:
        yield batch


def timed(command: Command, files: Sequence[str], cwd: str) -> tuple[float, float, bytes]:
    """Seconds taken over all batches, CPU seconds, and the output."""
    env = {**os.environ, **command.env}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = []
    start = time.perf_counter()
    for batch in batches(files, command.argv):
        done = subprocess.run([*command.argv, *batch], cwd=cwd, env=env, capture_output=True)
        if done.returncode not in command.ok:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr.decode()[-1000:]}")
        out.append(done.stdout)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu, b"".join(out)


def gradlint_commands() -> list[Command]:
    # The installed `gradlint` script does just this; calling it through this interpreter
    # keeps the benchmark on the gradlint it imports.
    launch = [sys.executable, "-c", "from gradlint.cli import main; main()"]
    base = [*launch, "check", "--exit-zero", "--format", "json"]
    # 2: some files could not be linted, as expected on real code
    return [Command(label, [*base, *options], (0, 2)) for label, options in GRADLINT_RUNS]


def other_commands(tools_dir: Path) -> tuple[list[Command], list[str]]:
    """TorchFix and ruff, where they can be had; and a note for each that cannot."""
    commands: list[Command] = []
    notes: list[str] = []
    spec = next(s for s in OTHER_TOOLS if s.name == TORCHFIX)
    try:
        torchfix = ensure_tool(spec, tools_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        notes.append(f"TorchFix left out: not installed in {tools_dir} ({exc})")
    else:
        # Exit 1: it found something. Its default rules, as a user runs it.
        commands.append(
            Command(f"TorchFix {spec.version} (-j 1)", [str(torchfix), "-j", "1"], (0, 1))
        )
    here = Path(sys.executable).parent / "ruff"
    ruff = str(here) if here.exists() else shutil.which("ruff")
    if ruff is None:
        notes.append("ruff left out: no `ruff` beside this interpreter or on PATH")
    else:
        version = subprocess.run([ruff, "--version"], capture_output=True, text=True)
        name = version.stdout.strip() or "ruff"
        base = [ruff, "check", "--no-cache", "--isolated", "--exit-zero", "--quiet"]
        one_thread = {"RAYON_NUM_THREADS": "1"}
        commands.append(Command(f"{name} (default rules)", base, (0,), one_thread))
        commands.append(
            Command(f"{name} --select ALL", [*base, "--select", "ALL"], (0,), one_thread)
        )
    return commands, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CORPUS_ROOT, help="dir or .py file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind")
    parser.add_argument("--tools-dir", type=Path, default=TOOLS_DIR, help="default: %(default)s")
    parser.add_argument(
        "--gradlint-only", action="store_true", help="leave TorchFix and ruff out (faster)"
    )
    args = parser.parse_args(argv)

    sources, _ = load(args.root, args.limit)
    if not sources:
        print(f"no .py files under {args.root}", file=sys.stderr)
        return 1
    files = [os.path.abspath(source.path) for source in sources]
    lines = sum(source.lines for source in sources)

    ours = gradlint_commands()
    others, notes = ([], []) if args.gradlint_only else other_commands(args.tools_dir)
    times: dict[str, Timing] = {c.label: Timing() for c in [*ours, *others]}
    parse = Timing()
    loads: list[float] = []
    for _ in range(max(1, args.repeat)):
        folder = tempfile.mkdtemp(prefix="gradlint-speed-")
        try:
            reports = set()
            for command in ours:
                seconds, cpu, report = timed(command, files, folder)
                times[command.label].seconds.append(seconds)
                times[command.label].cpu.append(cpu)
                reports.add(report)
            # A faster run that reports something else is no result.
            if len(reports) != 1:
                raise SystemExit("the gradlint runs gave different reports")
            for command in list(others):
                try:
                    seconds, cpu, _ = timed(command, files, folder)
                except (OSError, RuntimeError) as exc:
                    notes.append(f"{command.label} left out: it failed ({exc})")
                    others.remove(command)
                    del times[command.label]
                    continue
                times[command.label].seconds.append(seconds)
                times[command.label].cpu.append(cpu)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        cpu_start = time.process_time()
        start = time.perf_counter()
        run_parse(sources)
        parse.seconds.append(time.perf_counter() - start)
        parse.cpu.append(time.process_time() - cpu_start)
        loads.append(os.getloadavg()[0])

    parse_s = statistics.median(parse.seconds)
    print(f"root      {args.root}")
    print(f"files     {len(files)} ({lines:,} lines; unreadable or non-UTF-8 ones left out)")
    print(f"repeats   {len(parse.seconds)} (median; min beside it)")
    shown_loads = ", ".join(f"{load:.1f}" for load in loads)
    print(f"cpus      {os.cpu_count()}, load average (1 min) after each repeat: {shown_loads}")
    for note in notes:
        print(f"note      {note}")
    print()
    print(f"{'run':44} {'median s':>9} {'min s':>8} {'files/s':>8} {'x parse':>8} {'cpu s':>8}")
    for label, timing in [(PARSE, parse), *times.items()]:
        median = statistics.median(timing.seconds)
        cpu = statistics.median(timing.cpu)
        rate = len(files) / median
        print(
            f"{label:44} {median:9.2f} {min(timing.seconds):8.2f} {rate:8.1f} "
            f"{median / parse_s:8.2f} {cpu:8.2f}"
        )
    print()
    cold, two, warm = (statistics.median(times[label].seconds) for label, _ in GRADLINT_RUNS)
    print(f"warm / cold         {warm / cold:6.3f}")
    print(f"jobs 2 / jobs 1     {two / cold:6.3f}")
    print(f"cold / parse        {cold / parse_s:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
