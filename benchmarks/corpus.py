"""The benchmark corpus: real public PyTorch repositories, checked out under /work/corpus.

The corpus itself is not committed; this file records which repositories (and commits)
make it up, and lists its Python files for the benchmark and for ad-hoc lint runs.

    python benchmarks/corpus.py fetch-list          # the repositories, commits, .py counts
    python benchmarks/corpus.py files [ROOT]        # every .py file under ROOT (/work/corpus)
    python benchmarks/corpus.py checkout GIT_DIR... # write a bare snapshot's HEAD as a tree
    python benchmarks/corpus.py count [ROOT]        # .py files (and lines) per checkout

Each checkout lives at ``/work/corpus/<owner>__<name>/``: a plain tree (no ``.git``) of
the commit below. Snapshots may lack large blobs (data, images); ``checkout`` skips
those and writes everything else.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CORPUS_ROOT = Path(os.environ.get("GRADLINT_CORPUS", "/work/corpus"))


@dataclass(frozen=True)
class Repo:
    repo: str  # owner/name on GitHub
    commit: str
    py_files: int  # .py files in the checkout, as `files` counts them
    kind: str

    @property
    def dirname(self) -> str:
        return self.repo.replace("/", "__")


# Checked out 2026-11 from the stored snapshots; py_files as counted by `files`.
REPOS: tuple[Repo, ...] = (
    Repo("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8", 93, "training scripts"),
    Repo("yunjey/pytorch-tutorial", "0500d3df5a2a8080ccfccbc00aca0eacc21818db", 21, "tutorials"),
    Repo("eriklindernoren/PyTorch-GAN", "36d3c77e5ff20ebe0aeefd322326a134a279b93e", 60, "GANs"),
    Repo("DLR-RM/stable-baselines3", "e05d2dbe6eda0acd0ef2e316e3e4065677add3eb", 97, "RL"),
    Repo("openai/spinningup", "038665d62d569055401d91856abb287263096178", 68, "RL"),
    Repo("vwxyzjn/cleanrl", "fe8d8a03c41a7ef5b523e2e354bd01c363e786bb", 80, "RL"),
    Repo("sfujim/TD3", "34770ccdcb51df6f6c7d85c1ba7e40d71b940d16", 5, "RL"),
    Repo(
        "facebookresearch/detectron2", "02b5c4e295e990042a714712c21dc79b731e8833", 497, "detection"
    ),
    Repo("ultralytics/yolov5", "5081342f04fb287fc2e5f2b5a4e06752b7937b1c", 52, "detection"),
    Repo("huggingface/diffusers", "58eb52c0803ea9af3abec60841c2a093bdf1f951", 2089, "diffusion"),
    Repo(
        "lucidrains/denoising-diffusion-pytorch",
        "faed4db28e724735323fa91c70aa9b28a6e1cbac",
        19,
        "diffusion",
    ),
    Repo(
        "Lightning-AI/pytorch-lightning",
        "7f0c3436cd3f6ad3753125672024fc415cbcb414",
        645,
        "Lightning",
    ),
    Repo("karpathy/nanoGPT", "3adf61e154c3fe3fca428ad6bc3818b27a3b8291", 15, "NLP"),
    Repo("karpathy/minGPT", "37baab71b9abea1b76ab957409a1cc2fbfba8a26", 9, "NLP"),
    Repo("openai/CLIP", "d05afc436d78f1c48dc0dbf8e5980a9d471f35f6", 7, "vision-language"),
    Repo(
        "huggingface/pytorch-image-models",
        "aa4b5850c1543fa488abf260f18390eda46cf85d",
        315,
        "vision",
    ),
    Repo("lucidrains/vit-pytorch", "69d24fe9e3024c0d4b02761123b8583a24ebed1e", 79, "vision"),
    Repo("facebookresearch/mae", "efb2a8062c206524e35e47d04501ed4f544c0ae8", 17, "vision"),
    Repo("pytorch/ignite", "de08e799cfb55a6cf4aa778575d6bad725385453", 361, "training library"),
)

# Directory names never descended into: virtual environments, build output, caches.
SKIP_DIRS = frozenset(
    {
        "venv",
        "site-packages",
        "node_modules",
        "build",
        "dist",
        "__pycache__",
        "_build",
    }
)


def _skip_dir(path: Path) -> bool:
    name = path.name
    return (
        name.startswith(".")
        or name in SKIP_DIRS
        or name.endswith(".egg-info")
        or (path / "pyvenv.cfg").exists()
    )


def iter_py_files(root: Path = CORPUS_ROOT) -> Iterator[Path]:
    """Every regular ``.py`` file under root, sorted, skipping hidden/venv/build dirs."""
    if root.is_file():
        if root.suffix == ".py":
            yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not _skip_dir(here / d))
        for name in sorted(filenames):
            path = here / name
            if name.endswith(".py") and not name.startswith(".") and path.is_file():
                if not path.is_symlink():
                    yield path


def checkout(git_dir: Path, dest: Path, rev: str = "HEAD") -> tuple[int, int]:
    """Write the tree of rev in a bare git dir to dest; blobs the snapshot lacks are skipped.

    Returns (files written, files missing). ``git archive`` stops at the first missing
    blob, so this walks the tree and reads the blobs through one ``cat-file --batch``.
    """
    git = ["git", f"--git-dir={git_dir}"]
    listing = subprocess.run(
        [*git, "ls-tree", "-r", "-z", rev], check=True, capture_output=True
    ).stdout
    entries = []
    for item in listing.split(b"\0"):
        if not item:
            continue
        meta, _, name = item.partition(b"\t")
        mode, kind, sha = meta.split()
        if kind == b"blob":
            entries.append((mode, sha, os.fsdecode(name)))
    proc = subprocess.Popen(
        [*git, "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    written = missing = 0
    for mode, sha, name in entries:
        proc.stdin.write(sha + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) < 3 or header[1] == b"missing":
            missing += 1
            continue
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)  # the newline after the content
        target = dest / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == b"120000":
            if not target.exists() and not target.is_symlink():
                os.symlink(os.fsdecode(data), target)
        else:
            target.write_bytes(data)
        written += 1
    proc.stdin.close()
    proc.wait()
    return written, missing


def _recorded_commit(git_dir: Path, dirname: str) -> str:
    """The commit REPOS records for this checkout when the git dir has it, else HEAD."""
    for repo in REPOS:
        if dirname in (repo.dirname, repo.repo.split("/")[1]):
            found = subprocess.run(
                ["git", f"--git-dir={git_dir}", "cat-file", "-e", f"{repo.commit}^{{commit}}"],
                capture_output=True,
            )
            if found.returncode == 0:
                return repo.commit
            print(f"{git_dir}: recorded commit {repo.commit[:12]} absent; using HEAD")
    return "HEAD"


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-list", help="print the corpus repositories")
    files = sub.add_parser("files", help="print the .py files of the corpus")
    files.add_argument("root", nargs="?", type=Path, default=CORPUS_ROOT)
    count = sub.add_parser("count", help="print .py files and lines per checkout")
    count.add_argument("root", nargs="?", type=Path, default=CORPUS_ROOT)
    co = sub.add_parser("checkout", help="write bare snapshots (owner+name/repo) as trees")
    co.add_argument("git_dirs", nargs="+", type=Path)
    co.add_argument("--dest", type=Path, default=CORPUS_ROOT)
    args = parser.parse_args(argv)

    if args.command == "fetch-list":
        for repo in REPOS:
            print(f"{repo.repo:42} {repo.commit}  {repo.py_files:5}  {repo.kind}")
        print(f"{'total':42} {'':40}  {sum(r.py_files for r in REPOS):5}")
    elif args.command == "files":
        for path in iter_py_files(args.root):
            print(path)
    elif args.command == "count":
        total_files = total_lines = 0
        for sub_root in sorted(p for p in args.root.iterdir() if p.is_dir()):
            paths = list(iter_py_files(sub_root))
            lines = sum(_count_lines(p) for p in paths)
            total_files += len(paths)
            total_lines += lines
            print(f"{sub_root.name:45} {len(paths):6} {lines:9}")
        print(f"{'total':45} {total_files:6} {total_lines:9}")
    elif args.command == "checkout":
        for git_dir in args.git_dirs:
            # /work/.mirror/<owner>+<name>/repo -> <owner>__<name>
            # (a bare clone <name>.git is matched by name alone).
            owner_name = (git_dir.parent if git_dir.name == "repo" else git_dir).name
            dirname = owner_name.removesuffix(".git").replace("+", "__", 1)
            rev = _recorded_commit(git_dir, dirname)
            dest = args.dest / dirname
            dest.mkdir(parents=True, exist_ok=True)
            written, missing = checkout(git_dir, dest, rev)
            print(f"{dest} @ {rev[:12]}: {written} files written, {missing} missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
