"""Recall and silence on real reported bugs: tests/fixtures/real_bugs/.

Each case folder holds `buggy.py`, whose root-cause line ends with `# bug: GLxxx`, and
`fixed.py`, the fix its thread recommends. `_near_misses/` holds correct idioms that look
like the bugs. A case is found when gradlint reports that code on that line; a fixed
version or near miss is silent when gradlint reports nothing at all, except findings listed
in the set's `_accepted.txt`: misuses other than the reported bug that the fix left in place
(waste, mostly), each read and judged true, with a comment saying why
(`case/fixed.py:LINE:CODE  # why`).

    python benchmarks/real_bugs.py [--verbose] [--root tests/fixtures/real_bugs_holdout]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from gradlint.engine import lint
from gradlint.finding import Finding

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_bugs"
MARK = re.compile(r"#\s*bug:\s*(GL\d{3})")


@dataclass
class Score:
    found: dict[str, list[bool]]  # code -> one entry per marked line
    missed: list[str]
    noisy: list[str]  # fixed versions and near misses with findings
    silent_checked: int
    accepted: int = 0  # findings there judged true (`_accepted.txt`)


def expected(source: str) -> list[tuple[int, str]]:
    return [
        (number, match.group(1))
        for number, line in enumerate(source.splitlines(), start=1)
        if (match := MARK.search(line))
    ]


def findings(path: Path) -> list[Finding]:
    return lint(path.read_text(), str(path))


def accepted_findings(root: Path) -> set[str]:
    listed = root / "_accepted.txt"
    if not listed.is_file():
        return set()
    lines = (line.split("#")[0].split()[:1] for line in listed.read_text().splitlines())
    return {first[0] for first in lines if first}


def score(root: Path = ROOT) -> Score:
    result = Score(found=defaultdict(list), missed=[], noisy=[], silent_checked=0)
    accepted = accepted_findings(root)

    def noise_of(path: Path, name: str) -> list[Finding]:
        noise = [f for f in findings(path) if f"{name}:{f.line}:{f.code}" not in accepted]
        result.accepted += len(findings(path)) - len(noise)
        return noise

    cases = (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    for case in sorted(cases):
        buggy = case / "buggy.py"
        got = {(f.line, f.code) for f in findings(buggy)}
        for line, code in expected(buggy.read_text()):
            hit = (line, code) in got
            result.found[code].append(hit)
            if not hit:
                result.missed.append(f"{case.name}:{line} {code} (got {sorted(got)})")
        fixed = case / "fixed.py"
        if fixed.exists():
            result.silent_checked += 1
            noise = noise_of(fixed, f"{case.name}/fixed.py")
            if noise:
                result.noisy.append(f"{case.name}/fixed.py: {[(f.line, f.code) for f in noise]}")
    near = root / "_near_misses"
    if near.is_dir():
        for path in sorted(near.glob("*.py")):
            result.silent_checked += 1
            noise = noise_of(path, f"_near_misses/{path.name}")
            if noise:
                result.noisy.append(
                    f"_near_misses/{path.name}: {[(f.line, f.code) for f in noise]}"
                )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="a folder of cases (default: %(default)s)"
    )
    args = parser.parse_args()
    result = score(args.root)
    total = sum(len(hits) for hits in result.found.values())
    hits = sum(sum(h) for h in result.found.values())
    print(f"{'code':<8}{'found':>7}{'cases':>7}")
    for code in sorted(result.found):
        print(f"{code:<8}{sum(result.found[code]):>7}{len(result.found[code]):>7}")
    print(f"recall at the root-cause line: {hits}/{total} = {hits / max(total, 1):.0%}")
    silent = result.silent_checked - len(result.noisy)
    print(
        f"silent on fixed versions and near misses: {silent}/{result.silent_checked} = "
        f"{silent / max(result.silent_checked, 1):.0%}"
    )
    if result.accepted:
        print(f"warnings there read and judged true (_accepted.txt): {result.accepted}")
    if args.verbose:
        for line in result.missed:
            print("missed", line)
        for line in result.noisy:
            print("noisy ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
