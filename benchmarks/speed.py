"""How long does `gradlint check` take, cold and warm, on one process and on two?

    python benchmarks/speed.py                          # the whole corpus, 3 repeats
    python benchmarks/speed.py --root /work/corpus/karpathy__nanoGPT --repeat 5
    python benchmarks/speed.py --limit 300

Each timing is a whole `gradlint check --exit-zero --format json FILES...` in a fresh
subprocess, so start-up counts, as it does for a user. Each repeat runs, in order:

    cold, 1 job    --no-cache --jobs 1
    cold, 2 jobs   --jobs 2, with an empty cache (which this run fills)
    warm, 1 job    --jobs 1, with the cache the run before filled

and the report is the median of the repeats; the three runs' JSON reports must be
identical, byte for byte. The subprocesses run in a temporary folder,
so their cache lives (and dies) there. For scale, libcst's parse alone over the same files
is timed in this process (sources read first, as `parse_vs_check.py` does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CORPUS_ROOT  # noqa: E402
from parse_vs_check import load, run_parse  # noqa: E402

RUNS = (
    ("cold, 1 job", ["--no-cache", "--jobs", "1"]),
    ("cold, 2 jobs", ["--jobs", "2"]),
    ("warm, 1 job", ["--jobs", "1"]),
)


def gradlint_run(files: list[str], options: list[str], cwd: str) -> tuple[float, bytes]:
    """Seconds taken, and the report."""
    # The installed `gradlint` script does just this; calling it through this interpreter
    # keeps the benchmark on the gradlint it imports.
    launch = "from gradlint.cli import main; main()"
    command = [sys.executable, "-c", launch, "check", "--exit-zero", "--format", "json"]
    start = time.perf_counter()
    done = subprocess.run([*command, *options, *files], cwd=cwd, capture_output=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 2):  # 2: some files could not be linted, as expected
        raise SystemExit(f"gradlint failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CORPUS_ROOT, help="dir or .py file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each kind")
    args = parser.parse_args(argv)

    sources, _ = load(args.root, args.limit)
    if not sources:
        print(f"no .py files under {args.root}", file=sys.stderr)
        return 1
    files = [os.path.abspath(source.path) for source in sources]
    lines = sum(source.lines for source in sources)

    times: dict[str, list[float]] = {label: [] for label, _ in RUNS}
    parse_times: list[float] = []
    for _ in range(max(1, args.repeat)):
        folder = tempfile.mkdtemp(prefix="gradlint-speed-")
        try:
            reports = set()
            for label, options in RUNS:
                seconds, report = gradlint_run(files, options, folder)
                times[label].append(seconds)
                reports.add(report)
            # A faster run that reports something else is no result.
            if len(reports) != 1:
                raise SystemExit("the runs gave different reports")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        run_parse(sources)
        parse_times.append(time.perf_counter() - start)

    median = {label: statistics.median(values) for label, values in times.items()}
    parse_s = statistics.median(parse_times)
    print(f"root      {args.root}")
    print(f"files     {len(files)} ({lines:,} lines; unreadable or non-UTF-8 ones left out)")
    print(f"repeats   {len(parse_times)} (median; min in brackets)")
    print(f"cpus      {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"{'run':32} {'median s':>9} {'min s':>8} {'files/s':>9}")
    for label, options in RUNS:
        values = times[label]
        shown = f"{label} ({' '.join(options)})"
        rate = len(files) / median[label]
        print(f"{shown:32} {median[label]:9.2f} {min(values):8.2f} {rate:9.1f}")
    print(f"{'libcst parse alone, in-process':32} {parse_s:9.2f} {min(parse_times):8.2f}")
    print()
    cold, two, warm = (median[label] for label, _ in RUNS)
    print(f"warm / cold         {warm / cold:6.3f}")
    print(f"jobs 2 / jobs 1     {two / cold:6.3f}")
    print(f"cold / parse        {cold / parse_s:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
