"""Lint many files on several processes; each file's outcome comes back in its own slot,
so the report is the same whatever the scheduling.

Files go to workers in chunks, several per worker, so that start-up and pickling are paid
per chunk and one slow file does not leave the other workers idle at the end. A worker
that dies (a crash in native code, the OOM killer) takes its pool down with it: the files
it may have held are then linted again one at a time, each in a process of its own, so
that the file that kills a process is that file's error and the rest are still linted.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.context import BaseContext

from gradlint import engine, registry
from gradlint.cells import lint_notebook
from gradlint.config import Config
from gradlint.discovery import SourceFile
from gradlint.files import decode_source, read_bytes
from gradlint.finding import Finding, LintError
from gradlint.notebook import is_notebook

# Below this many files a pool costs more to start than it saves.
MIN_FILES = 8
MAX_CHUNK = 32
CHUNKS_PER_WORKER = 4

CRASHED = "internal error: the process linting this file stopped abruptly"

Outcome = tuple[list[Finding], list[LintError]]


@dataclass(frozen=True)
class Task:
    file: SourceFile
    config: Config
    data: bytes | None = None  # the file's bytes, when the cache has read them already


def default_jobs() -> int:
    """The CPUs this process may use."""
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


def lint_task(task: Task) -> Outcome:
    """One file's findings and errors; never raises for a bad file."""
    display = task.file.display
    errors: list[LintError] = []
    try:
        data = task.data if task.data is not None else read_bytes(task.file.path, display)
        if is_notebook(display):
            findings = lint_notebook(data, display, task.config, errors)
        else:
            source, _ = decode_source(data, display)
            findings = engine.lint(source, display, task.config, errors)
    except LintError as exc:
        return [], [*errors, exc]
    except Exception as exc:  # a bug of ours in one file must not stop the others
        return [], [*errors, LintError(display, f"internal error: {exc!r}")]
    return findings, errors


def lint_all(tasks: list[Task], jobs: int) -> list[Outcome]:
    """Each task's outcome, in the tasks' order."""
    if jobs <= 1 or len(tasks) < MIN_FILES:
        return lint_each(tasks)
    registry.all_rules()  # imported once here, so that forked workers start with them
    try:
        return _in_pools(tasks, jobs)
    except (OSError, NotImplementedError):  # no processes or semaphores to be had here
        return lint_each(tasks)


def lint_each(tasks: Sequence[Task]) -> list[Outcome]:
    """Each task's outcome, one after another, collecting garbage once per file."""
    outcomes = []
    with _collected_per_file():
        for task in tasks:
            outcomes.append(lint_task(task))
            gc.collect()
    return outcomes


@contextmanager
def _collected_per_file() -> Iterator[None]:
    """The collector off, and what exists so far kept out of its sight.

    Parsing a file makes hundreds of thousands of objects, and Python's collector runs every
    700 allocations, from time to time over everything alive: the whole tree, again and
    again while it grows. Nothing of a file outlives its lint but the findings, so one
    collection after each file frees the same garbage (the analysis holds some cycles) at
    a fraction of the cost: linting is about a tenth faster.
    """
    if not gc.isenabled():  # a worker, set up once; or a program with its own policy
        yield
        return
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _lint_chunk(chunk: list[Task]) -> list[Outcome]:
    return lint_each(chunk)


def _chunks(count: int, jobs: int) -> list[range]:
    size = max(1, min(MAX_CHUNK, math.ceil(count / (jobs * CHUNKS_PER_WORKER))))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def _in_pools(tasks: list[Task], jobs: int) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(tasks)
    pending = deque(_chunks(len(tasks), jobs))
    workers = min(jobs, len(pending))
    suspects: list[int] = []  # files in a chunk whose pool broke
    while pending:  # a fresh pool after each break
        pool = _pool(workers)
        try:
            # Only a few chunks are handed over at a time, so that a break loses few.
            running: dict[Future[list[Outcome]], range] = {}
            broken = False
            while running or (pending and not broken):
                while pending and not broken and len(running) < 2 * workers:
                    chunk = pending.popleft()
                    try:
                        running[pool.submit(_lint_chunk, [tasks[i] for i in chunk])] = chunk
                    except BrokenProcessPool:
                        broken = True
                        suspects.extend(chunk)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = running.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool:
                        broken = True
                        suspects.extend(chunk)
                    except Exception:  # e.g. a result that would not pickle
                        suspects.extend(chunk)
                    else:
                        for index, outcome in zip(chunk, results, strict=True):
                            outcomes[index] = outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for index, outcome in zip(suspects, _isolated([tasks[i] for i in suspects]), strict=True):
        outcomes[index] = outcome
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _isolated(tasks: list[Task]) -> list[Outcome]:
    """Each task alone in a worker, the worker replaced whenever a file kills it."""
    outcomes: list[Outcome] = []
    pool: ProcessPoolExecutor | None = None
    try:
        for task in tasks:
            pool = pool or _pool(1)
            try:
                outcomes.append(pool.submit(lint_task, task).result())
            except BrokenProcessPool:
                outcomes.append(([], [LintError(task.file.display, CRASHED)]))
                pool.shutdown(wait=True)
                pool = None
            except Exception as exc:
                failure = LintError(task.file.display, f"internal error: {exc!r}")
                outcomes.append(([], [failure]))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return outcomes


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start_worker)


def _context() -> BaseContext:
    # Forked workers start with libcst and the rules already imported (and, in tests, the
    # registry as the test set it), in milliseconds; the command has no threads to lose.
    # Elsewhere fork is unsafe (macOS) or missing (Windows): the platform's default.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    registry.all_rules()  # a spawned worker imports the rules once, not once per chunk
    # A worker only lints: see _collected_per_file.
    gc.collect()
    gc.freeze()
    gc.disable()
