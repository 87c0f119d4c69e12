"""`# noqa` comments: bare, by code, by name, by prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_rules import install

from gradlint.cli import main
from gradlint.noqa import add_noqa, is_suppressed, noqa_by_line


@pytest.fixture(autouse=True)
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


def test_noqa_by_line() -> None:
    source = (
        "a = 1\n"
        "b = 2  # noqa\n"
        "c = 3  # noqa: GL101\n"
        "d = 4  # NOQA:GL101,numpy-on-graph-tensor\n"
        "e = '#'  # noqa: GL1 GL2\n"
    )
    lines = noqa_by_line(source)
    assert 1 not in lines
    assert lines[2] == frozenset({"*"})
    assert lines[3] == frozenset({"gl101"})
    assert lines[4] == frozenset({"gl101", "numpy-on-graph-tensor"})
    assert lines[5] == frozenset({"gl1", "gl2"})


@pytest.mark.parametrize(
    ("names", "suppressed"),
    [
        (None, False),
        (frozenset({"*"}), True),
        (frozenset({"gl101"}), True),
        (frozenset({"gl1"}), True),
        (frozenset({"gl2"}), False),
        (frozenset({"gl102"}), False),
        (frozenset({"numpy-on-graph-tensor"}), True),
        (frozenset({"inplace-on-grad-leaf"}), False),
    ],
)
def test_is_suppressed(names: frozenset[str] | None, suppressed: bool) -> None:
    assert is_suppressed(names, "GL101", "numpy-on-graph-tensor") is suppressed


@pytest.mark.parametrize(
    ("comment", "left"),
    [
        ("", ["GL901", "GL902"]),
        ("# noqa", []),
        ("#noqa", []),
        ("# noqa: GL901", ["GL902"]),
        ("# noqa: gl901", ["GL902"]),
        ("# noqa: fake-item-call", ["GL901"]),
        ("# noqa: GL9", []),
        ("# noqa: GL90", []),
        ("# noqa: GL3", ["GL901", "GL902"]),
        ("# noqa: GL901, fake-item-call", []),
        ("# noqa: GL901 -- legacy code", ["GL902"]),
    ],
)
def test_noqa_in_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, comment: str, left: list[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.gradlint]\n")
    (tmp_path / "a.py").write_text(f"a = (y.numpy(), y.item())  {comment}\nb = y.item()\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check"])
    first_line = [
        line.split()[1] for line in result.stdout.splitlines() if line.startswith("a.py:1:")
    ]
    assert first_line == left
    # noqa acts on its own line only.
    assert any(line.startswith("a.py:2:5: GL902") for line in result.stdout.splitlines())


def test_add_noqa_appends_merges_and_skips_string_lines() -> None:
    source = 'x = 1\ny = 2  # keep\nz = 3  # noqa: GL101\ns = """a\nb"""\nw = 4  # noqa\n'
    marked, changed, skipped = add_noqa(
        source, {1: ["GL102"], 2: ["GL101"], 3: ["GL104", "GL101"], 4: ["GL1"], 6: ["GL2"]}
    )
    assert marked == (
        "x = 1  # noqa: GL102\ny = 2  # keep  # noqa: GL101\nz = 3  # noqa: GL101, GL104\n"
        's = """a\nb"""\nw = 4  # noqa\n'
    )
    assert (changed, skipped) == (3, [4])
    # What was added is read back as suppressing exactly those codes.
    names = noqa_by_line(marked)
    assert names[1] == {"gl102"} and names[2] == {"gl101"} and names[3] == {"gl101", "gl104"}


def test_add_noqa_keeps_line_endings() -> None:
    marked, changed, _ = add_noqa("a = 1\r\nb = 2\r\n", {2: ["GL101"]})
    assert marked == "a = 1\r\nb = 2  # noqa: GL101\r\n" and changed == 1


def test_noqa_lines_are_counted_as_python_does() -> None:
    # `str.splitlines` also breaks at a form feed: the comment was read one line late (so
    # it silenced nothing), and `--add-noqa` wrote its comment one line early.
    source = "s = 'a\x0cb'\nx.numpy()  # noqa: GL101\ny.numpy()\n"
    assert noqa_by_line(source) == {2: frozenset({"gl101"})}
    marked, changed, skipped = add_noqa(source, {3: ["GL101"]})
    assert marked == source.replace("y.numpy()\n", "y.numpy()  # noqa: GL101\n")
    assert (changed, skipped) == (1, [])
