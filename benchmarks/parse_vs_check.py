"""How much does gradlint cost on top of parsing? Times libcst alone vs gradlint.lint.

    python benchmarks/parse_vs_check.py                  # all .py under /work/corpus
    python benchmarks/parse_vs_check.py --root DIR --limit 500 --repeat 5
    python benchmarks/parse_vs_check.py --profile        # + cProfile of one lint pass

Everything runs in one process. All sources are read into memory first, so neither
phase pays for I/O. Phase (a) is ``libcst.parse_module`` per file; phase (b) is
``gradlint.engine.lint(source, path)`` per file, which parses again and then runs the
analysis and every rule. Each phase runs ``--repeat`` times (alternating a, b) and the
median wall time is reported, with the ratio b/a: what linting costs in parses.
Per-file failures are counted, never fatal: a file libcst rejects, a ``LintError``,
an internal error that lint() reports through ``errors=``, any other exception.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import inspect
import io
import pstats
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import libcst as cst

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CORPUS_ROOT, iter_py_files  # noqa: E402

from gradlint import engine  # noqa: E402
from gradlint.finding import LintError  # noqa: E402


@dataclass
class Source:
    path: str
    text: str
    lines: int


@dataclass
class LintTally:
    findings: Counter[str] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)
    lint_errors: int = 0  # LintError raised (e.g. syntax error)
    internal_errors: int = 0  # reported through errors= (a rule or the analysis failed)
    crashes: Counter[str] = field(default_factory=Counter)  # any other exception, by type
    per_file: list[tuple[float, str]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    shown: dict[str, list[str]] = field(default_factory=dict)  # code -> findings, as text
    show: int = 0


def load(root: Path, limit: int | None) -> tuple[list[Source], list[str]]:
    sources: list[Source] = []
    unreadable: list[str] = []
    for path in iter_py_files(root):
        if limit is not None and len(sources) >= limit:
            break
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            unreadable.append(f"{path}: {exc.__class__.__name__}")
            continue
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        sources.append(Source(str(path), text, lines))
    return sources, unreadable


def run_parse(sources: list[Source]) -> int:
    failures = 0
    for src in sources:
        try:
            cst.parse_module(src.text)
        except Exception:
            failures += 1
    return failures


def _lint_call() -> Callable[[str, str, list[LintError]], list]:
    """lint(source, path, errors=...) where lint takes errors=, else lint(source, path)."""
    lint = engine.lint
    if "errors" in inspect.signature(lint).parameters:
        return lambda text, path, errors: lint(text, path, errors=errors)
    return lambda text, path, errors: lint(text, path)


def run_lint(sources: list[Source], tally: LintTally | None = None) -> None:
    call = _lint_call()
    clock = time.perf_counter
    for src in sources:
        errors: list[LintError] = []
        start = clock()
        try:
            findings = call(src.text, src.path, errors)
        except LintError as exc:
            findings = []
            if tally is not None:
                tally.lint_errors += 1
                if len(tally.examples) < 5:
                    tally.examples.append(f"LintError {exc}")
        except Exception as exc:  # a crash in gradlint: count it, keep going
            findings = []
            if tally is not None:
                tally.crashes[type(exc).__name__] += 1
                if len(tally.examples) < 5:
                    tally.examples.append(f"{type(exc).__name__} {src.path}: {exc}")
        if tally is not None:
            tally.per_file.append((clock() - start, src.path))
            tally.internal_errors += len(errors)
            for error in errors:
                if len(tally.examples) < 5:
                    tally.examples.append(f"internal {error}")
            for finding in findings:
                tally.findings[finding.code] += 1
                tally.names[finding.code] = finding.name
                shown = tally.shown.setdefault(finding.code, [])
                if len(shown) < tally.show:
                    shown.append(
                        f"{finding.path}:{finding.line}:{finding.column}: {finding.message}"
                    )


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CORPUS_ROOT, help="dir or .py file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per phase")
    parser.add_argument("--profile", action="store_true", help="cProfile one lint pass")
    parser.add_argument("--slowest", type=int, default=5, help="list the N slowest files")
    parser.add_argument("--show", type=int, default=0, help="print N findings per rule code")
    args = parser.parse_args(argv)

    sources, unreadable = load(args.root, args.limit)
    if not sources:
        print(f"no .py files under {args.root}", file=sys.stderr)
        return 1
    total_lines = sum(s.lines for s in sources)

    # Warm up once (imports, rule registry, libcst's parser) outside the timings.
    run_parse(sources[:20])
    run_lint(sources[:20])

    parse_times: list[float] = []
    lint_times: list[float] = []
    parse_failures = 0
    tally = LintTally(show=args.show)
    for i in range(max(1, args.repeat)):
        gc.collect()
        start = time.perf_counter()
        parse_failures = run_parse(sources)
        parse_times.append(time.perf_counter() - start)
        # The first lint pass also tallies findings and per-file times (a few counter
        # updates per file: noise next to parsing).
        first = tally if i == 0 else None
        lint_times.append(timed(lambda first=first: run_lint(sources, first)))

    parse_s = statistics.median(parse_times)
    lint_s = statistics.median(lint_times)

    print(f"root      {args.root}")
    print(f"files     {len(sources)}  ({len(unreadable)} unreadable, skipped)")
    print(f"lines     {total_lines:,}")
    print(f"repeats   {len(parse_times)}  (median and min per phase)")
    print(f"python    {sys.version.split()[0]}, libcst {metadata.version('libcst')}")
    print()
    print(f"{'phase':24} {'median s':>9} {'min s':>8} {'files/s':>9} {'klines/s':>9}")
    for label, times in (
        ("(a) libcst.parse_module", parse_times),
        ("(b) gradlint lint", lint_times),
    ):
        med = statistics.median(times)
        print(
            f"{label:24} {med:9.3f} {min(times):8.3f} "
            f"{len(sources) / med:9.1f} {total_lines / med / 1000:9.1f}"
        )
    # Other work on the machine inflates single passes; the min is the steadier figure.
    print(f"{'ratio (b)/(a)':24} {lint_s / parse_s:9.2f} {min(lint_times) / min(parse_times):8.2f}")
    print()
    print(f"parse failures (libcst)   {parse_failures}")
    print(f"LintError (file skipped)  {tally.lint_errors}")
    print(f"internal errors (errors=) {tally.internal_errors}")
    crashes = sum(tally.crashes.values())
    detail = ", ".join(f"{k} {v}" for k, v in tally.crashes.most_common())
    print(f"other exceptions          {crashes}" + (f"  ({detail})" if detail else ""))
    for example in tally.examples:
        print(f"  e.g. {example[:160]}")
    print()
    total_findings = sum(tally.findings.values())
    print(f"findings  {total_findings}")
    for code in sorted(tally.findings):
        print(f"  {code:6} {tally.names[code]:40} {tally.findings[code]:7}")
        for line in tally.shown.get(code, []):
            print(f"      {line}")
    if args.slowest > 0 and tally.per_file:
        print()
        print("slowest files under lint (first pass):")
        for seconds, path in sorted(tally.per_file, reverse=True)[: args.slowest]:
            print(f"  {seconds:7.3f}s  {path}")

    if args.profile:
        print()
        print("cProfile of one lint pass, top 30 by cumulative time:")
        profiler = cProfile.Profile()
        profiler.enable()
        run_lint(sources)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
