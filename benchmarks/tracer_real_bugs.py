"""The tracer on the reproductions of reported bugs: does `gradlint run` name the misuse?

    python benchmarks/tracer_real_bugs.py [--root tests/fixtures/real_bugs ...] [--jobs 2] [--show]

Each case's `buggy.py` and `fixed.py` (see tests/fixtures/real_bugs/README.md) run under the
tracer, each in a process of its own forked from one that has imported torch, in a copy of
the case's folder. A case *raises* when its buggy program ends on an error other than a
failed assert, and is *silent* otherwise (its assert shows the damage). Reported:

- raising cases where an event is at a line marked `# bug:` (the root cause);
- silent cases with any event (the tracer saw the effect);
- fixed programs with no event at all (no false alarm).

Beside the tracer's own events, `gradlint run` shows the static findings of the program,
each judged by the run; raising cases whose marked line holds a *confirmed* finding are
counted apart, as what a user of `gradlint run` sees.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


@dataclass
class Outcome:
    exit_code: int | None
    last_error: str  # the last line of what the program printed on stderr
    events: list[tuple[str, int]] = field(default_factory=list)  # (code, line) in the program
    faults: int = 0
    confirmed: list[tuple[str, int]] = field(default_factory=list)  # static, judged so


def run_one(program: Path) -> Outcome:
    """Run a program under the tracer in a temporary copy of its folder."""
    from gradlint.runtime_check.runner import run_program

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "case"
        shutil.copytree(program.parent, work)
        target = work / program.name
        err = io.StringIO()
        os.chdir(work)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            report = run_program(str(target), [])
        real = str(target.resolve())
        events = [(e.code, e.line) for e in report.events if e.path == real]
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return Outcome(report.exit_code, last, events, len(report.faults), confirmed(report, real))


def confirmed(report: Any, path: str) -> list[tuple[str, int]]:
    """The static findings in the program that its run confirmed, as `gradlint run` shows."""
    from gradlint.run import run
    from gradlint.verdicts import CONFIRMED, judge

    findings = judge(run([path]).findings, report)
    return [(f.code, f.line) for f in findings if f.runtime == CONFIRMED]


def _worker(program: Path, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        queue.put(run_one(program))
    except BaseException as exc:  # noqa: BLE001 - reported as the case's failure
        queue.put(Outcome(None, f"benchmark error: {exc!r}"))


def run_forked(program: Path, timeout: float) -> Outcome:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(program, queue))
    process.start()
    try:
        return queue.get(timeout=timeout)
    except Exception:
        return Outcome(None, "timed out")
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()


def marked_lines(buggy: Path) -> set[int]:
    text = buggy.read_text(encoding="utf-8").splitlines()
    return {number for number, line in enumerate(text, start=1) if "# bug:" in line}


def cases(roots: list[Path]) -> list[Path]:
    return sorted(
        folder.parent
        for root in roots
        for folder in root.rglob("buggy.py")
        if (folder.parent / "fixed.py").exists()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", type=Path, help="folders of cases")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--jobs", type=int, default=1, help="programs run at once")
    parser.add_argument("--show", action="store_true", help="list each case's outcome")
    args = parser.parse_args()
    # Imported once here, so that every fork starts with them (and runs the tracer as it
    # was when the benchmark started, whatever changes on disk meanwhile).
    import gradlint.runtime_check.runner  # noqa: F401
    import torch  # noqa: F401

    import gradlint.run  # noqa: F401

    roots = [r.resolve() for r in args.root or sorted(p for p in FIXTURES.iterdir() if p.is_dir())]
    raising = raising_hit = with_static = silent = silent_hit = fixed_total = fixed_clean = 0
    missed: Counter[str] = Counter()
    faulted: list[str] = []
    by_set: dict[str, list[int]] = {}  # set -> [raising, at root, silent, effect, fixed clean]
    found = cases(roots)
    marks = {case: marked_lines(case / "buggy.py") for case in found}  # (read before the runs)
    programs = [case / name for case in found for name in ("buggy.py", "fixed.py")]
    # Each program runs in a process of its own; threads only wait for them.
    with ThreadPoolExecutor(args.jobs) as pool:
        ran = pool.map(lambda program: run_forked(program, args.timeout), programs)
        outcomes = dict(zip(programs, ran, strict=True))
    for case in found:
        buggy = outcomes[case / "buggy.py"]
        fixed = outcomes[case / "fixed.py"]
        code = case.name.split("_")[0].upper()
        raised = buggy.exit_code not in (0, None) and not buggy.last_error.startswith(
            "AssertionError"
        )
        if raised:
            raising += 1
            hit = any(line in marks[case] for _, line in buggy.events)
            raising_hit += hit
            with_static += hit or any(line in marks[case] for _, line in buggy.confirmed)
        else:
            silent += 1
            hit = bool(buggy.events)
            silent_hit += hit
        if not hit:
            missed[code] += 1
        fixed_total += 1
        fixed_clean += not fixed.events
        if buggy.faults or fixed.faults:
            faulted.append(f"{case.parent.name}/{case.name}")
        tally = by_set.setdefault(case.parent.name, [0, 0, 0, 0, 0])
        tally[0 if raised else 2] += 1
        tally[1 if raised else 3] += hit
        tally[4] += not fixed.events
        if args.show:
            kind = "raises" if raised else "silent"
            print(
                f"{case.parent.name}/{case.name}: {kind}, {'hit' if hit else 'missed'}; "
                f"buggy {buggy.events} confirmed {buggy.confirmed} exit {buggy.exit_code}; "
                f"fixed {fixed.events}"
                + (f"; FIXED EXIT {fixed.exit_code}" if fixed.exit_code else "")
            )
    if len(by_set) > 1:
        for name, (r, rh, s_, sh, clean) in sorted(by_set.items()):
            print(f"{name:22s} raising {rh}/{r}  silent {sh}/{s_}  fixed clean {clean}/{r + s_}")
    print(f"cases             {raising + silent}")
    print(f"raising, at root  {raising_hit}/{raising} ({_pct(raising_hit, raising)})")
    print(f"  or confirmed    {with_static}/{raising} ({_pct(with_static, raising)})")
    print(f"silent, effect    {silent_hit}/{silent} ({_pct(silent_hit, silent)})")
    print(f"fixed, no event   {fixed_clean}/{fixed_total} ({_pct(fixed_clean, fixed_total)})")
    print(f"tracer faults     {len(faulted)} cases" + "".join(f"\n  {name}" for name in faulted))
    print("missed by code   ", ", ".join(f"{c} {n}" for c, n in sorted(missed.items())))


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


if __name__ == "__main__":
    main()
