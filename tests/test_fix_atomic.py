"""`gradlint check --fix` killed with SIGKILL at any moment leaves every file whole: exactly
its original text or exactly its fully fixed text, never empty or cut (DESIGN §8).

Each file is written once, through `write_atomic`: a temporary file beside it, then a
rename. A kill can land inside that, and then the temporary file stays behind, named
`.NAME.XXXXXXXX.tmp`. gradlint leaves such files alone rather than deleting them (one may
belong to a gradlint still running on the same tree): their suffix is not `.py`, so
discovery never lints them, and they can be deleted at will.

Two kinds of kill. Timed ones land wherever they land (while Python starts, between two
files, in a write): the assertions hold at any moment, so nothing here depends on timing.
Injected ones kill the process from inside `write_atomic`, at the three moments that
matter (half the text written, all written but not renamed, renamed), every time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradlint.engine import fix_source
from gradlint.registry import all_rules

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGKILL and POSIX rename semantics"
)

# `tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")`, as `write_atomic` names them.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")

# Runs gradlint's command line; with a mode other than "none", kills itself inside the
# `at`-th call of `write_atomic`, at the moment the mode names.
RUNNER = """\
import os, signal, sys

mode, at = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
sys.argv[0] = "gradlint"
calls = 0


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def counted():
    global calls
    calls += 1
    return calls == at


if mode == "mid-write":
    real_fdopen = os.fdopen

    def fdopen(*args, **kwargs):
        stream = real_fdopen(*args, **kwargs)
        if counted():
            def write(text):
                stream.buffer.write(text[: len(text) // 2].encode(stream.encoding))
                stream.buffer.flush()
                die()
            stream.write = write
        return stream

    os.fdopen = fdopen
elif mode in ("before-rename", "after-rename"):
    real_replace = os.replace

    def replace(source, target):
        last = counted()
        if last and mode == "before-rename":
            die()
        real_replace(source, target)
        if last:
            die()

    os.replace = replace

from gradlint.cli import main

main()
"""


def _fixable_sources() -> list[str]:
    """The short examples that `--fix` changes: a kill's moment matters, not the lint, and
    each run lints again the files that earlier, killed runs fixed."""
    sources = [rule.INVALID[index] for rule in all_rules() for index in sorted(rule.FIXED)]
    return [source for source in sources if len(source) < 300]


def _large(source: str) -> str:
    # About 1 MB: a write long enough that timed kills can land inside it, yet cheap to
    # lint (one string token, where as many lines of code or comments would cost seconds).
    filler = "".join(f"{index:06} {'filler ' * 20}\n" for index in range(7000))
    return f'{source}DATA = """\\\n{filler}"""\n'


class Corpus:
    """Files to fix, with the two texts each may hold."""

    def __init__(self, folder: Path, count: int, large_every: int = 0) -> None:
        folder.mkdir()
        self.folder = folder
        sources = _fixable_sources()
        # The expected result, from the engine in this process: what `--fix` must write.
        fixed_of: dict[str, str] = {}
        self.texts: dict[Path, tuple[str, str]] = {}
        for index in range(count):
            source = sources[index % len(sources)]
            if large_every and index % large_every == large_every - 1:
                source = _large(source)
            if source not in fixed_of:
                fixed_of[source] = fix_source(source, "example.py").source
                assert fixed_of[source] != source
            path = folder / f"m{index:03}.py"
            path.write_bytes(source.encode())
            self.texts[path] = (source, fixed_of[source])
        self.start = self.inodes()

    def inodes(self) -> dict[Path, int]:
        return {path: path.stat().st_ino for path in self.texts}

    def written(self) -> int:
        """Files replaced since the corpus was made: a rename gives the path a new inode."""
        return sum(path.stat().st_ino != inode for path, inode in self.start.items())

    def fixed(self) -> int:
        """How many files hold their fixed text; fails on any file that holds neither."""
        count = 0
        for path, (original, fixed) in self.texts.items():
            text = path.read_bytes().decode()
            assert text in (original, fixed), (
                f"{path.name} is neither its original nor its fixed text "
                f"({len(text)} characters; original {len(original)}, fixed {len(fixed)})"
            )
            count += text == fixed
        return count

    def temporaries(self) -> list[str]:
        """Files left in the folder that are not the corpus's: only `write_atomic`'s
        temporaries, each beside its file."""
        names = sorted(set(os.listdir(self.folder)) - {path.name for path in self.texts})
        for name in names:
            match = TEMPORARY.match(name)
            assert match is not None, f"unexpected file {name}"
            assert (self.folder / match["name"]).exists(), name
        return names


def _fix(mode: str = "none", at: int = 0) -> subprocess.CompletedProcess[bytes]:
    """`gradlint check --fix src`, in the current folder."""
    return subprocess.run(
        [sys.executable, "-c", RUNNER, mode, str(at), "check", "--fix", "--no-cache", "src"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
    )


def _assert_ignored(corpus: Corpus) -> None:
    """A plain check of the folder lints the corpus's files and nothing else."""
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, "none", "0", "check", "--format", "json", "--no-cache"]
        + ["--exit-zero", "src"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    report = json.loads(completed.stdout)
    assert report["errors"] == []
    assert report["summary"]["files"] == len(corpus.texts)
    assert all(finding["path"].endswith(".py") for finding in report["findings"])


def _kill_when(
    process: subprocess.Popen[bytes], corpus: Corpus, delay: float, written: int
) -> None:
    """SIGKILL once `delay` seconds have passed and this run replaced `written` files (or
    when it ends by itself first)."""
    start = time.monotonic()
    written += corpus.written()
    while process.poll() is None:
        if time.monotonic() - start >= delay and corpus.written() >= written:
            process.kill()
            break
        time.sleep(0.002)
    process.wait(timeout=300)


# (seconds after its start, files it wrote): kills while Python starts, while gradlint
# imports and lints the first files, then spread over the writes; the last run is never
# killed (more files than there are), and finishes the job.
NEVER = 10_000
SCHEDULES = [
    [(0.0, 0), (0.15, 0), (0.0, 1), (0.0, 60), (0.0, 80), (0.0, NEVER)],
    [(0.4, 0), (0.0, 5), (0.05, 90), (0.0, 100), (0.0, NEVER)],
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["early-and-spread", "late-and-spread"])
def test_sigkill_at_any_moment_leaves_every_file_whole(
    project: Path, schedule: list[tuple[float, int]]
) -> None:
    corpus = Corpus(project / "src", 200, large_every=40)
    fixed = 0
    # Each run takes up where the killed one stopped: the files already fixed are only
    # linted, so the kills move on through the corpus.
    log = project / "stderr.txt"
    for delay, written in schedule:
        # Into a file, not a pipe that nobody reads while the process runs.
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", RUNNER, "none", "0", "check", "--fix", "--no-cache", "src"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            _kill_when(process, corpus, delay, written)
        now = corpus.fixed()
        assert now >= fixed  # a fixed file stays fixed
        fixed = now
        corpus.temporaries()  # only write_atomic's, if the kill landed inside one
    # The run that was not killed finished the job, whatever temporaries were left.
    assert process.returncode in (0, 1), log.read_text()
    assert fixed == len(corpus.texts)


@pytest.mark.parametrize(
    ("mode", "renamed"),
    [("mid-write", False), ("before-rename", False), ("after-rename", True)],
)
def test_sigkill_inside_the_write(project: Path, mode: str, renamed: bool) -> None:
    corpus = Corpus(project / "src", 8)
    completed = _fix(mode, 3)
    assert completed.returncode == -signal.SIGKILL, completed.stderr.decode()
    # Files are fixed in order: two before the kill, the third as the mode says.
    assert corpus.fixed() == (3 if renamed else 2)
    left = corpus.temporaries()
    if renamed:
        assert left == []
    else:
        (name,) = left
        match = TEMPORARY.match(name)
        assert match is not None and match["name"] == "m002.py"
        text = (corpus.folder / name).read_bytes().decode()
        full = corpus.texts[corpus.folder / "m002.py"][1]
        assert text == (full[: len(full) // 2] if mode == "mid-write" else full)
    # Later runs never lint the temporary file, fix the rest, and leave it alone.
    _assert_ignored(corpus)
    assert _fix().returncode in (0, 1)
    assert corpus.fixed() == len(corpus.texts)
    assert corpus.temporaries() == left
    # And a second `--fix` changes nothing.
    before = corpus.inodes()
    assert _fix().returncode in (0, 1)
    assert corpus.inodes() == before
