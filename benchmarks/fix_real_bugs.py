"""`gradlint check --fix` on the reproductions of reported bugs: does the fixed file parse,
does a second `--fix` change nothing, and does the fixed program stop misbehaving?

    python benchmarks/fix_real_bugs.py [--root tests/fixtures/real_bugs ...] [--timeout 60]

Each case's `buggy.py` (see benchmarks/README.md) is copied to a temporary folder, fixed
there, and run with the current interpreter (torch needed). Cases show the bug one of two
ways: the program raises or fails an assert that a correct program passes (it then exits 0
once fixed), or, in the older sets' silent cases, it asserts the damage itself (then that
assert fails once fixed). Either way, a fix that reaches the root cause flips the exit status.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import libcst as cst

from gradlint.engine import fix_source

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def run(path: Path, timeout: float) -> int:
    try:
        done = subprocess.run(
            [sys.executable, path.name], cwd=path.parent, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return -1
    return done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", type=Path, help="case folders (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    roots = args.root or sorted(p for p in FIXTURES.iterdir() if p.is_dir())
    cases = sorted(buggy for root in roots for buggy in root.glob("*/buggy.py"))
    fixed_files = parses = stable = healed = 0
    for buggy in cases:
        source = buggy.read_text(encoding="utf-8")
        applied = fix_source(source, str(buggy))
        if not applied.applied:
            continue
        fixed_files += 1
        try:
            cst.parse_module(applied.source)
            parses += 1
        except cst.ParserSyntaxError:
            print(f"does not parse: {buggy}")
            continue
        if fix_source(applied.source, str(buggy)).applied == 0:
            stable += 1
        else:
            print(f"a second --fix changes it: {buggy}")
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / "buggy.py"
            for sibling in buggy.parent.iterdir():  # data files a case may read
                if sibling.is_file() and sibling.suffix != ".py":
                    shutil.copy(sibling, Path(folder) / sibling.name)
            copy.write_text(source, encoding="utf-8")
            before = run(copy, args.timeout)
            copy.write_text(applied.source, encoding="utf-8")
            after = run(copy, args.timeout)
        verdict = "healed" if (before == 0) != (after == 0) and after != -1 else "unchanged"
        healed += verdict == "healed"
        rel = buggy.relative_to(FIXTURES) if buggy.is_relative_to(FIXTURES) else buggy
        print(f"{verdict:16} {applied.applied} fix(es)  {rel}")
    print(
        f"\n{len(cases)} cases; --fix changed {fixed_files}: {parses} parse, {stable} unchanged "
        f"by a second --fix, {healed} no longer show the bug"
    )


if __name__ == "__main__":
    main()
