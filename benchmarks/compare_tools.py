"""Side by side: gradlint beside torch-preflight, TorchFix and dslinter on the same code.

Each other tool is installed, pinned, in its own virtual environment under a cache folder
outside the repository (``~/.cache/gradlint-compare/<tool>``, ``--tools-dir``), only when
missing. All four tools then run over the same files, many files per process, with a
timeout; a file a tool cannot handle is counted, never fatal. Their findings become
``(tool, file, line, code)`` records, and ``MAPPING`` below says which gradlint pattern
each of their codes addresses. Only those overlapping patterns are scored; every other
code is listed as "not covered by gradlint" or "not autograd" with its count.

Two measurements per overlapping pattern and tool:

* reported bugs: every case of ``tests/fixtures/real_bugs*`` and ``training_bugs*`` whose
  marked code (``# bug: GLxxx``) is an overlapping pattern: found at the marked line,
  found elsewhere in ``buggy.py``, or missed; and alarms of that pattern on every
  ``fixed.py`` and near miss (false alarms; those a set's ``_accepted.txt`` judged true for
  that code and file are counted apart);
* real code: findings per tool and pattern on the corpus (``benchmarks/corpus.py``), and
  the verdicts read by hand in ``benchmarks/compare_verdicts.txt``
  (``tool code path:line true|false short-reason``, paths relative to the corpus root).
  A tool-pattern with more than ``SAMPLE_OVER`` findings is judged on a random sample of
  ``SAMPLE_SIZE`` (fixed seed); findings to judge that have no verdict are printed.

    python benchmarks/compare_tools.py --skip-corpus          # fixtures only (~3 min)
    python benchmarks/compare_tools.py --json /tmp/cmp.json   # + corpus (~30-40 min)
    python benchmarks/compare_tools.py --load /tmp/cmp.json   # re-score saved records
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CORPUS_ROOT, iter_py_files  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
VERDICTS = Path(__file__).resolve().parent / "compare_verdicts.txt"
TOOLS_DIR = Path.home() / ".cache" / "gradlint-compare"
MARK = re.compile(r"#\s*bug:\s*(GL\d{3})")

SAMPLE_OVER = 100  # a tool-pattern with more corpus findings than this is sampled
SAMPLE_SIZE = 50
SEED = 20261101

NOT_COVERED = "not covered by gradlint"
NOT_AUTOGRAD = "not autograd"

GRADLINT = "gradlint"
PREFLIGHT = "torch-preflight"
TORCHFIX = "torchfix"
DSLINTER = "dslinter"


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    # pip install steps, run in order in the tool's own venv; every version pinned
    steps: tuple[tuple[str, ...], ...]
    executable: str
    batch_size: int


OTHER_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(PREFLIGHT, "0.5.0", (("torch-preflight==0.5.0",),), "torch-preflight", 100),
    ToolSpec(TORCHFIX, "0.7.0", (("TorchFix==0.7.0",),), "torchfix", 400),
    # dslinter 2.0.9 declares pylint 2.12 / astroid 2.9, whose wrapt (<1.14) does not build on
    # Python 3.11. pylint 2.17.7 (the last 2.x; 3.0 removed the IAstroidChecker interface the
    # plugin imports) loads it, with the same findings as pylint 2.12.2 under Python 3.10 on
    # the fixtures (all but two of 881, both a DataLoader-seed check). mypy is imported by
    # its type-inference helper.
    ToolSpec(
        DSLINTER,
        "2.0.9",
        (
            ("pylint==2.17.7", "astroid==2.15.8", "mypy==0.931", "toml==0.10.2"),
            ("--no-deps", "dslinter==2.0.9"),
        ),
        "pylint",
        200,
    ),
)

# dslinter's PyTorch checks. `missing-mask-pytorch` is left out: it runs mypy on every
# module (minutes per hundred files) and concerns log() of zero, not autograd.
DSLINTER_MESSAGES = (
    "gradient-clear-pytorch",
    "mode-toggling-pytorch",
    "forward-pytorch",
    "deterministic-pytorch",
    "randomness-control-pytorch",
    "randomness-control-dataloader-pytorch",
    "dependent-threshold-pytorch",
    "hyperparameters-pytorch",
)
PYLINT_CRASH = {"syntax-error", "astroid-error", "fatal", "parse-error"}

# What each other tool's code addresses: the gradlint pattern it overlaps, or why it is
# not scored. Read from the tools' own rule modules (torch_preflight/rules/, torchfix
# visitors, dslinter checkers).
MAPPING: dict[str, dict[str, tuple[str, str]]] = {
    PREFLIGHT: {
        "TG001": ("GL302", "tensor kept with its graph in a container that outlives the step"),
        "TG002": ("GL301", "evaluation code run without no_grad/inference_mode"),
        "TG003": ("GL201", "backward() in a loop with no zero_grad() in it"),
        "TG004": (NOT_AUTOGRAD, "DataLoader workers / pin_memory settings"),
        "TG005": (NOT_AUTOGRAD, "softmax before a loss that applies it"),
        "TG006": (NOT_AUTOGRAD, "binary cross-entropy with the wrong activation"),
        "TG007": (NOT_AUTOGRAD, "GPU sync (.item(), .cpu()) in an inner loop"),
        "TG008": (NOT_AUTOGRAD, "unseeded randomness"),
        "TG010": (NOT_AUTOGRAD, "projected out-of-memory on a target GPU"),
        "TG011": ("GL203", "eval() in an epoch loop with no matching train()"),
        "TG012": (NOT_AUTOGRAD, "DataLoader under DDP without DistributedSampler"),
        "TG013": (NOT_AUTOGRAD, "host-to-device copy repeated each iteration"),
        "TG014": (NOT_COVERED, "gradient accumulation without dividing the loss"),
    },
    TORCHFIX: {
        "TOR001": (NOT_AUTOGRAD, "use of a removed function"),
        "TOR002": ("GL209", "`require_grad` typo in an assignment"),
        "TOR003": (NOT_COVERED, "checkpoint() without an explicit use_reentrant"),
        "TOR004": (NOT_AUTOGRAD, "import of a removed function"),
        "TOR101": (NOT_AUTOGRAD, "use of a deprecated function"),
        "TOR102": (NOT_AUTOGRAD, "torch.load without weights_only"),
        "TOR103": (NOT_AUTOGRAD, "import of a deprecated function"),
        "TOR104": (NOT_AUTOGRAD, "use of a non-public function"),
        "TOR105": (NOT_AUTOGRAD, "import of a non-public function"),
        "TOR106": (NOT_AUTOGRAD, "log(1 + x) instead of log1p"),
        "TOR107": (NOT_AUTOGRAD, "exp(x) - 1 instead of expm1"),
        "TOR201": (NOT_AUTOGRAD, "torchvision `pretrained` argument deprecated"),
        "TOR202": (NOT_AUTOGRAD, "torchvision v2 ToTensor deprecated"),
        "TOR203": (NOT_AUTOGRAD, "torchvision singleton import"),
        "TOR401": (NOT_AUTOGRAD, "DataLoader with synchronous loading"),
        "TOR901": (NOT_AUTOGRAD, "torch.library internal API"),
    },
    DSLINTER: {
        "W5517": (
            "GL201",
            "gradient-clear-pytorch: loop body with backward and step, no zero_grad",
        ),
        "W9998": ("GL203", "mode-toggling-pytorch: eval() in a loop body with no train()"),
        "W5516": (NOT_AUTOGRAD, "forward-pytorch: .forward() called directly"),
        "W5507": (NOT_AUTOGRAD, "deterministic-pytorch: deterministic algorithms not set"),
        "W5511": (NOT_AUTOGRAD, "randomness-control-pytorch: no manual_seed"),
        "W5512": (NOT_AUTOGRAD, "randomness-control-dataloader-pytorch: no worker seed"),
        "W5521": (NOT_AUTOGRAD, "dependent-threshold-pytorch: F1 without AUC"),
        "R5508": (NOT_AUTOGRAD, "hyperparameters-pytorch: optimizer defaults not set"),
    },
}


def pattern_of(tool: str, code: str) -> str:
    """The gradlint code a finding addresses (gradlint's own code for gradlint)."""
    if tool == GRADLINT:
        return code
    return MAPPING[tool].get(code, ("unmapped", ""))[0]


def overlapping_patterns() -> list[str]:
    return sorted(
        {gl for table in MAPPING.values() for gl, _ in table.values() if gl.startswith("GL")}
    )


def tools_for(pattern: str) -> list[str]:
    others = [t for t, table in MAPPING.items() if any(gl == pattern for gl, _ in table.values())]
    return [GRADLINT, *others]


# -- records and runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    tool: str
    path: str  # absolute
    line: int
    code: str


@dataclass
class Run:
    tool: str
    records: list[Record] = field(default_factory=list)
    crashes: Counter[str] = field(default_factory=Counter)  # reason -> files
    seconds: float = 0.0


class BatchFailed(Exception):
    """A whole batch produced no usable output (timeout, crash of the process)."""


@dataclass
class Batch:
    records: list[Record]
    crashed: list[str]  # one reason per file the tool could not handle


def _abs(path: str, cwd: Path) -> str:
    return str((cwd / path).resolve())


def _run(cmd: Sequence[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BatchFailed("timeout") from exc


def _gradlint_batch(files: Sequence[str], work: Path, timeout: float) -> Batch:
    cmd = [sys.executable, "-c", "import sys; from gradlint.cli import main; sys.exit(main())"]
    cmd += ["check", "--format", "json", "--exit-zero", "--no-color", *files]
    proc = _run(cmd, work, timeout)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BatchFailed(f"exit {proc.returncode}") from exc
    records = [
        Record(GRADLINT, _abs(f["path"], work), int(f["line"]), f["code"]) for f in data["findings"]
    ]
    return Batch(records, ["error" for _ in data.get("errors", [])])


def _preflight_batch(exe: Path) -> Callable[[Sequence[str], Path, float], Batch]:
    def run(files: Sequence[str], work: Path, timeout: float) -> Batch:
        cmd = [str(exe), "check", "-f", "json", "-j", "1", "--no-color", *files]
        proc = _run(cmd, work, timeout)
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise BatchFailed(f"exit {proc.returncode}") from exc
        records = [
            Record(PREFLIGHT, _abs(d["path"], work), int(d["line"]), d["code"])
            for d in data["diagnostics"]
        ]
        crashed = [
            "syntax error" if "syntax error" in f.get("error", "") else "error"
            for f in data.get("failures", [])
        ]
        return Batch(records, crashed)

    return run


_TORCHFIX_LINE = re.compile(r"^(?P<path>.+?\.py):(?P<line>\d+):(?P<col>\d+): (?P<code>TOR\d+) ")


def _torchfix_batch(exe: Path) -> Callable[[Sequence[str], Path, float], Batch]:
    def run(files: Sequence[str], work: Path, timeout: float) -> Batch:
        cmd = [str(exe), "--select", "ALL", "-j", "1", "--show-stderr", *files]
        proc = _run(cmd, work, timeout)
        if "Finished checking" not in proc.stderr and proc.stdout.strip() == "":
            # no summary: it stopped early (it also prints nothing for files without torch)
            if any("torch" in Path(f).read_text(errors="replace") for f in files):
                raise BatchFailed(f"exit {proc.returncode}")
        records = []
        for line in proc.stdout.splitlines():
            if m := _TORCHFIX_LINE.match(line):
                records.append(Record(TORCHFIX, _abs(m["path"], work), int(m["line"]), m["code"]))
        crashed = [
            "syntax error" if "ParserSyntaxError" in proc.stderr else "error"
            for line in proc.stderr.splitlines()
            if line.startswith("Failed to codemod ")
        ]
        return Batch(records, crashed)

    return run


def _dslinter_batch(exe: Path) -> Callable[[Sequence[str], Path, float], Batch]:
    def run(files: Sequence[str], work: Path, timeout: float) -> Batch:
        rcfile = work / "empty-pylintrc"
        rcfile.touch()
        with tempfile.NamedTemporaryFile("r", suffix=".json", dir=work) as out:
            cmd = [
                str(exe),
                f"--rcfile={rcfile}",
                "--load-plugins=dslinter",
                "--disable=all",
                f"--enable={','.join(DSLINTER_MESSAGES + tuple(sorted(PYLINT_CRASH)))}",
                "--output-format=json",
                f"--output={out.name}",
                "--persistent=n",
                "--jobs=1",
                *files,
            ]
            proc = _run(cmd, work, timeout)
            text = Path(out.name).read_text()
        if proc.returncode & 32 or not text.strip():  # 32: usage error
            raise BatchFailed(f"exit {proc.returncode}")
        records, crashed = [], []
        for msg in json.loads(text):
            if msg["symbol"] in PYLINT_CRASH:
                crashed.append("syntax error" if msg["symbol"] == "syntax-error" else "error")
            else:
                records.append(
                    Record(DSLINTER, _abs(msg["path"], work), int(msg["line"]), msg["message-id"])
                )
        # the plugin prints, not raises, when one of its checkers fails on a module
        crashed += [
            "checker error"
            for line in proc.stdout.splitlines()
            if line.startswith("ERROR: Could not finish processing the checker")
        ]
        return Batch(records, crashed)

    return run


def run_tool(
    tool: str,
    batch: Callable[[Sequence[str], Path, float], Batch],
    files: Sequence[str],
    batch_size: int,
    per_file: float,
    work: Path,
    single: float,
) -> Run:
    """Runs `batch` over `files` in chunks; a chunk that fails is split until one file.

    A chunk may take 60 s plus `per_file` seconds per file; a file alone may take `single`.
    """
    result = Run(tool)
    start = time.monotonic()
    todo = [list(files[i : i + batch_size]) for i in range(0, len(files), batch_size)]
    while todo:
        chunk = todo.pop()
        try:
            limit = 60 + per_file * len(chunk) if len(chunk) > 1 else max(single, 60 + per_file)
            got = batch(chunk, work, limit)
        except BatchFailed as exc:
            if len(chunk) == 1:
                result.crashes[str(exc)] += 1
            else:
                half = len(chunk) // 2
                todo += [chunk[:half], chunk[half:]]
            continue
        result.records += got.records
        result.crashes.update(got.crashed)
    result.seconds = time.monotonic() - start
    return result


# -- installing the other tools -----------------------------------------------------------


def ensure_tool(spec: ToolSpec, tools_dir: Path) -> Path:
    """The tool's executable, installing its venv first when missing (or pinned otherwise)."""
    venv = tools_dir / spec.name
    exe = venv / "bin" / spec.executable
    stamp = venv / "gradlint-compare.json"
    wanted = json.dumps([list(step) for step in spec.steps])
    if exe.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return exe
    print(f"installing {spec.name} {spec.version} into {venv}", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # None of the tools needs torch; should a dependency ask for it, it gets the pinned one.
    constraints = venv / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(constraints)]
    for step in spec.steps:
        subprocess.run([*pip, *step], check=True)
    stamp.write_text(wanted)
    return exe


def tool_batches(
    tools_dir: Path,
) -> list[tuple[str, Callable[[Sequence[str], Path, float], Batch], int]]:
    makers = {PREFLIGHT: _preflight_batch, TORCHFIX: _torchfix_batch, DSLINTER: _dslinter_batch}
    out: list[tuple[str, Callable[[Sequence[str], Path, float], Batch], int]] = [
        (GRADLINT, _gradlint_batch, 400)
    ]
    for spec in OTHER_TOOLS:
        out.append((spec.name, makers[spec.name](ensure_tool(spec, tools_dir)), spec.batch_size))
    return out


def run_all(
    files: Sequence[str], tools_dir: Path, per_file: float, single: float, jobs: int
) -> list[Run]:
    work = tools_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    batches = tool_batches(tools_dir)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(run_tool, name, batch, files, size, per_file, work, single)
            for name, batch, size in batches
        ]
        return [f.result() for f in futures]


# -- reported bugs ------------------------------------------------------------------------


@dataclass
class CaseScore:
    at_line: int = 0
    elsewhere: int = 0
    missed: int = 0
    false_alarms: int = 0
    accepted: int = 0  # alarms on fixes that the set's _accepted.txt judged true
    details: list[str] = field(default_factory=list)


def fixture_roots(given: list[Path] | None) -> list[Path]:
    if given:
        return given
    return sorted(
        p
        for p in FIXTURES.iterdir()
        if p.is_dir() and (p.name.startswith("real_bugs") or p.name.startswith("training_bugs"))
    )


def fixture_files(roots: Iterable[Path]) -> list[str]:
    files: list[str] = []
    for root in roots:
        for case in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "_near_misses"):
            files += [str((case / n).resolve()) for n in ("buggy.py", "fixed.py")]
        files += [str(p.resolve()) for p in sorted((root / "_near_misses").glob("*.py"))]
    return [f for f in files if Path(f).is_file()]


def _accepted(root: Path) -> set[tuple[str, str]]:
    """(absolute file, code) pairs a set's _accepted.txt judged true."""
    listed = root / "_accepted.txt"
    if not listed.is_file():
        return set()
    out = set()
    for line in listed.read_text().splitlines():
        first = line.split("#")[0].split()
        if first:
            rel, _, code = first[0].rsplit(":", 2)
            out.add((str((root / rel).resolve()), code))
    return out


def score_fixtures(roots: list[Path], records: list[Record]) -> dict[tuple[str, str], CaseScore]:
    by_file: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_file[r.path].append(r)
    patterns = overlapping_patterns()
    scores: dict[tuple[str, str], CaseScore] = {
        (p, t): CaseScore() for p in patterns for t in tools_for(p)
    }
    for root in roots:
        accepted = _accepted(root)
        cases = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "_near_misses")
        silent = [c / "fixed.py" for c in cases] + sorted((root / "_near_misses").glob("*.py"))
        for case in cases:
            buggy = case / "buggy.py"
            if not buggy.is_file():
                continue
            marks = [
                (n, m.group(1))
                for n, text in enumerate(buggy.read_text().splitlines(), start=1)
                if (m := MARK.search(text))
            ]
            got = by_file[str(buggy.resolve())]
            for line, code in marks:
                if code not in patterns:
                    continue
                for tool in tools_for(code):
                    lines = {
                        r.line for r in got if r.tool == tool and pattern_of(tool, r.code) == code
                    }
                    s = scores[(code, tool)]
                    where = f"{root.name}/{case.name}:{line}"
                    if line in lines:
                        s.at_line += 1
                    elif lines:
                        s.elsewhere += 1
                        s.details.append(f"elsewhere {where} (at {sorted(lines)})")
                    else:
                        s.missed += 1
                        s.details.append(f"missed    {where}")
        for path in silent:
            if not path.is_file():
                continue
            absolute = str(path.resolve())
            for r in by_file[absolute]:
                pattern = pattern_of(r.tool, r.code)
                if (pattern, r.tool) not in scores:
                    continue
                s = scores[(pattern, r.tool)]
                if (absolute, pattern) in accepted:
                    s.accepted += 1
                else:
                    s.false_alarms += 1
                    s.details.append(f"alarm     {path.relative_to(root.parent)}:{r.line} {r.code}")
    return scores


# -- real code ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    verdict: bool
    reason: str


def read_verdicts(path: Path) -> dict[tuple[str, str, str, int], Verdict]:
    out: dict[tuple[str, str, str, int], Verdict] = {}
    if not path.is_file():
        return out
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=4)
        if len(parts) < 4 or parts[3] not in ("true", "false"):
            raise SystemExit(f"{path}:{number}: expected `tool code path:line true|false why`")
        tool, code, where, verdict = parts[:4]
        rel, _, lineno = where.rpartition(":")
        reason = parts[4] if len(parts) > 4 else ""
        out[(tool, code, rel, int(lineno))] = Verdict(verdict == "true", reason)
    return out


def to_judge(findings: list[Record]) -> list[Record]:
    """All findings of one tool-pattern, or a seeded sample when there are many."""
    ordered = sorted(findings, key=lambda r: (r.path, r.line, r.code))
    if len(ordered) <= SAMPLE_OVER:
        return ordered
    tool, pattern = ordered[0].tool, pattern_of(ordered[0].tool, ordered[0].code)
    sample = random.Random(f"{SEED}:{tool}:{pattern}").sample(ordered, SAMPLE_SIZE)
    return sorted(sample, key=lambda r: (r.path, r.line, r.code))


@dataclass
class CorpusScore:
    findings: int = 0
    judged: int = 0
    true: int = 0
    sampled: bool = False
    unjudged: list[str] = field(default_factory=list)


def score_corpus(
    root: Path, records: list[Record], verdicts: dict[tuple[str, str, str, int], Verdict]
) -> tuple[dict[tuple[str, str], CorpusScore], int]:
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[(pattern_of(r.tool, r.code), r.tool)].append(r)
    scores: dict[tuple[str, str], CorpusScore] = {}
    used = set()
    for pattern in overlapping_patterns():
        for tool in tools_for(pattern):
            found = groups.get((pattern, tool), [])
            s = scores[(pattern, tool)] = CorpusScore(len(found), sampled=len(found) > SAMPLE_OVER)
            for r in to_judge(found):
                rel = os.path.relpath(r.path, root)
                key = (r.tool, r.code, rel, r.line)
                if key in verdicts:
                    used.add(key)
                    s.judged += 1
                    s.true += verdicts[key].verdict
                else:
                    s.unjudged.append(f"{r.tool} {r.code} {rel}:{r.line}")
    return scores, len(set(verdicts) - used)


# -- report -------------------------------------------------------------------------------


def print_table(
    fixtures: dict[tuple[str, str], CaseScore] | None,
    corpus: dict[tuple[str, str], CorpusScore] | None,
) -> None:
    head = (
        f"{'pattern':<8}{'tool':<17}{'at line/cases':>14}{'elsewhere':>10}"
        f"{'false alarms':>13}{'corpus':>8}{'true/judged':>13}"
    )
    print(head)
    print("-" * len(head))
    for pattern in overlapping_patterns():
        for tool in tools_for(pattern):
            row = f"{pattern:<8}{tool:<17}"
            if fixtures is not None:
                f = fixtures[(pattern, tool)]
                cases = f.at_line + f.elsewhere + f.missed
                fa = f"{f.false_alarms}" + (f" (+{f.accepted} ok)" if f.accepted else "")
                row += f"{f'{f.at_line}/{cases}':>14}{f.elsewhere:>10}{fa:>13}"
            else:
                row += f"{'-':>14}{'-':>10}{'-':>13}"
            if corpus is not None:
                c = corpus[(pattern, tool)]
                judged = f"{c.true}/{c.judged}" + ("*" if c.sampled else "")
                row += f"{c.findings:>8}{judged:>13}"
            else:
                row += f"{'-':>8}{'-':>13}"
            print(row)
    print(
        "at line: found at the marked root-cause line; elsewhere: the same pattern reported"
        " elsewhere in buggy.py;\nfalse alarms: on fixed.py and near misses (ok: judged true"
        f" in _accepted.txt); *: a seeded sample of {SAMPLE_SIZE} judged"
    )


def print_unscored(runs: dict[str, list[Record]], title: str) -> None:
    print(f"\nNot scored ({title}):")
    for tool, table in MAPPING.items():
        counts = Counter(r.code for r in runs.get(tool, []))
        for code, n in sorted(counts.items()):
            kind, what = table.get(code, ("unmapped", "?"))
            if not kind.startswith("GL"):
                print(f"  {tool:<16}{code:<8}{n:>6}  {kind}: {what}")


def print_runs(runs: list[Run], label: str) -> None:
    for run in runs:
        crashes = ", ".join(f"{n} {why}" for why, n in sorted(run.crashes.items())) or "none"
        print(
            f"  {run.tool:<16}{len(run.records):>6} findings  {run.seconds:>7.1f} s"
            f"  files it could not handle ({label}): {crashes}"
        )


def _load_runs(items: list[dict[str, Any]]) -> list[Run]:
    return [
        Run(d["tool"], [Record(**r) for r in d["records"]], Counter(d["crashes"]), d["seconds"])
        for d in items
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS_ROOT, help="default: %(default)s")
    parser.add_argument("--skip-corpus", action="store_true", help="reported bugs only")
    parser.add_argument(
        "--fixtures",
        type=Path,
        action="append",
        help="a set of cases (repeatable); default: tests/fixtures/real_bugs*, training_bugs*",
    )
    parser.add_argument("--tools-dir", type=Path, default=TOOLS_DIR, help="default: %(default)s")
    parser.add_argument("--json", type=Path, help="write every record and run to this file")
    parser.add_argument("--load", type=Path, help="score the records of an earlier --json")
    parser.add_argument("--verdicts", type=Path, default=VERDICTS, help="default: %(default)s")
    parser.add_argument("--jobs", type=int, default=2, help="tools run at once (default 2)")
    parser.add_argument(
        "--timeout-per-file", type=float, default=3.0, help="seconds per file of a batch"
    )
    parser.add_argument(
        "--timeout-single",
        type=float,
        default=300.0,
        help="seconds for a file retried alone after its batch failed (default 300;"
        " torch-preflight takes minutes on some 2,000-line training scripts)",
    )
    parser.add_argument("--verbose", action="store_true", help="list misses and alarms")
    args = parser.parse_args(argv)

    roots = fixture_roots(args.fixtures)
    if args.load:
        saved = json.loads(args.load.read_text())
        fixture_runs = _load_runs(saved["fixtures"])
        corpus_runs = _load_runs(saved.get("corpus", [])) or None
    else:
        files = fixture_files(roots)
        print(f"reported bugs: {len(files)} files in {len(roots)} sets", file=sys.stderr)
        fixture_runs = run_all(
            files, args.tools_dir, args.timeout_per_file, args.timeout_single, args.jobs
        )
        corpus_runs = None
        if not args.skip_corpus:
            corpus_files = [str(p.resolve()) for p in iter_py_files(args.corpus)]
            print(f"corpus: {len(corpus_files)} files", file=sys.stderr)
            corpus_runs = run_all(
                corpus_files,
                args.tools_dir,
                args.timeout_per_file,
                args.timeout_single,
                args.jobs,
            )

    versions = ", ".join(f"{s.name} {s.version}" for s in OTHER_TOOLS)
    print(f"gradlint (this checkout) beside {versions} (dslinter on pylint 2.17.7)\n")
    fixtures = score_fixtures(roots, [r for run in fixture_runs for r in run.records])
    corpus = None
    stale = 0
    if corpus_runs is not None:
        verdicts = read_verdicts(args.verdicts)
        corpus, stale = score_corpus(
            args.corpus.resolve(), [r for run in corpus_runs for r in run.records], verdicts
        )
    print_table(fixtures, corpus)
    print("\nRuns:")
    print_runs(fixture_runs, "fixtures")
    if corpus_runs is not None:
        print_runs(corpus_runs, "corpus")
    print_unscored({run.tool: run.records for run in fixture_runs}, "reported bugs")
    if corpus_runs is not None:
        print_unscored({run.tool: run.records for run in corpus_runs}, "corpus")
    if args.verbose:
        print("\nMisses and alarms on the reported bugs:")
        for (pattern, tool), f in fixtures.items():
            for line in f.details:
                print(f"  {pattern} {tool:<16}{line}")
    if corpus is not None:
        unjudged = [u for c in corpus.values() for u in c.unjudged]
        if unjudged:
            print(
                f"\nUnjudged corpus findings ({len(unjudged)}; add them to {args.verdicts.name}):"
            )
            for line in unjudged:
                print(f"  {line}")
        if stale:
            print(f"\n{stale} verdicts match no finding of this run")
    if args.json:
        dump = {
            "fixtures": [asdict(run) for run in fixture_runs],
            "corpus": [asdict(run) for run in corpus_runs or []],
        }
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
