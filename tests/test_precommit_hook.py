"""The pre-commit hooks (.pre-commit-hooks.yaml), driven through the real `pre-commit`.

pre-commit installs a hook repository from a git commit, so the tests first commit a
snapshot of this checkout as it is now (the files that make up the package: committed or
not) into a repository of their own. `pre-commit try-repo` builds a fresh environment in a
temporary store every time; the other tests name the snapshot in a
`.pre-commit-config.yaml` and run `pre-commit run` with PRE_COMMIT_HOME shared by the
session, so that the hook's environment (gradlint installed with pip, without torch) is
built once.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    pytest.mark.skipif(
        importlib.util.find_spec("pre_commit") is None and shutil.which("pre-commit") is None,
        reason="needs pre-commit (pip install pre-commit)",
    ),
]

# What `pip install .` needs from the checkout, and the hook manifest.
PACKAGE_PATHS = (
    ".pre-commit-hooks.yaml",
    "pyproject.toml",
    "README.md",
    "gradlint",
    "rules",
    "runtime_check",
)

BUGGY = """\
import torch

model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(10):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    optimizer.step()
"""

CLEAN = BUGGY.replace("    loss = model", "    optimizer.zero_grad()\n    loss = model")

FIXABLE = """\
import torch

weights = torch.ones(3, requires_grad=True)
print(weights.numpy())
"""

FIXED = FIXABLE.replace("weights.numpy()", "weights.detach().numpy()")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "gradlint tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "gradlint tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _env(home: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_ENV)
    env["PRE_COMMIT_COLOR"] = "never"
    env.pop("PRE_COMMIT", None)
    if home is not None:
        env["PRE_COMMIT_HOME"] = str(home)
    return env


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def pre_commit(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("pre_commit") is not None:
        command = [sys.executable, "-m", "pre_commit", *args]
    else:
        command = ["pre-commit", *args]
    return subprocess.run(
        command, cwd=cwd, env=_env(home), capture_output=True, text=True, timeout=600
    )


def _new_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"], cwd=path)
    git("config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"], cwd=path)
    git("config", "commit.gpgsign", "false", cwd=path)
    return path


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository holding this checkout's package as it is now, and its commit."""
    if not (ROOT / ".pre-commit-hooks.yaml").is_file():
        pytest.fail(".pre-commit-hooks.yaml is missing from the checkout")
    repo = _new_repo(tmp_path_factory.mktemp("hook-repo"))
    for name in PACKAGE_PATHS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source,
                repo / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
            )
        else:
            shutil.copy2(source, repo / name)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--no-verify", "-m", "snapshot of the checkout", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit store for the session: the hook's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path, hook_repo: tuple[Path, str]) -> Iterator[Path]:
    """A user's repository: a buggy script, a clean one and a fixable one, committed, and a
    `.pre-commit-config.yaml` with both hooks."""
    repo = _new_repo(tmp_path / "project")
    write(repo / "pyproject.toml", '[tool.gradlint]\nextend-exclude = ["generated"]\n')
    write(repo / "train_buggy.py", BUGGY)
    write(repo / "train_clean.py", CLEAN)
    write(repo / "train_fixable.py", FIXABLE)
    write(repo / "generated" / "train_copy.py", BUGGY)
    source, rev = hook_repo
    write(
        repo / ".pre-commit-config.yaml",
        f"repos:\n"
        f"  - repo: {source}\n"
        f"    rev: {rev}\n"
        f"    hooks:\n"
        f"      - id: gradlint\n"
        f"      - id: gradlint-fix\n",
    )
    git("add", "-A", cwd=repo)
    git("commit", "-q", "--no-verify", "-m", "training scripts", cwd=repo)
    yield repo


def run_hook(hook: str, *files: str, repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return pre_commit("run", hook, "--files", *files, cwd=repo, home=home)


def test_try_repo_fails_on_the_bug_and_names_it(project: Path, hook_repo: tuple[Path, str]) -> None:
    source, _ = hook_repo
    done = pre_commit(
        "try-repo",
        str(source),
        "gradlint",
        "--files",
        "train_buggy.py",
        "train_clean.py",
        cwd=project,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "train_buggy.py:7:5: GL201" in done.stdout
    assert "train_clean.py" not in done.stdout.split("Using config:")[-1].split("=" * 79)[-1]


def test_hook_fails_on_the_bug_and_passes_on_clean_code(
    project: Path, pre_commit_home: Path
) -> None:
    bad = run_hook("gradlint", "train_buggy.py", repo=project, home=pre_commit_home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "train_buggy.py:7:5: GL201" in bad.stdout

    good = run_hook("gradlint", "train_clean.py", repo=project, home=pre_commit_home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout


def test_fix_hook_rewrites_the_file(project: Path, pre_commit_home: Path) -> None:
    first = run_hook("gradlint-fix", "train_fixable.py", repo=project, home=pre_commit_home)
    assert first.returncode == 1, first.stdout + first.stderr  # files were modified
    assert (project / "train_fixable.py").read_text() == FIXED
    assert "files were modified by this hook" in first.stdout

    again = run_hook("gradlint-fix", "train_fixable.py", repo=project, home=pre_commit_home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (project / "train_fixable.py").read_text() == FIXED


def test_configured_excludes_apply_to_the_files_pre_commit_names(
    project: Path, pre_commit_home: Path
) -> None:
    done = run_hook("gradlint", "generated/train_copy.py", repo=project, home=pre_commit_home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout
    # Quiet: pre-commit shows a passing hook's output only with --verbose.
    verbose = pre_commit(
        "run",
        "gradlint",
        "--verbose",
        "--files",
        "generated/train_copy.py",
        cwd=project,
        home=pre_commit_home,
    )
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert "No Python files found" not in verbose.stdout
    assert "GL201" not in verbose.stdout


def test_hook_run_with_no_files_lints_nothing(
    project: Path, hook_repo: tuple[Path, str], pre_commit_home: Path
) -> None:
    """`always_run: true` makes pre-commit run a hook with no file names at all; it must
    not lint the whole folder (which holds a bug)."""
    source, rev = hook_repo
    config = project / ".pre-commit-config.yaml"
    config.write_text(
        f"repos:\n"
        f"  - repo: {source}\n"
        f"    rev: {rev}\n"
        f"    hooks:\n"
        f"      - id: gradlint\n"
        f"        always_run: true\n"
        f"        files: ^nothing-matches$\n"
    )
    git("add", "-A", cwd=project)
    done = pre_commit(
        "run",
        "gradlint",
        "--verbose",
        "--files",
        "train_buggy.py",
        cwd=project,
        home=pre_commit_home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GL201" not in done.stdout
