"""The README stays true: its rule table matches the registry, its commands match CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradlint import readme

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEST_COMMAND = 'pip install -c constraints.txt -e ".[test]" && pytest'


def test_rule_table_matches_registry() -> None:
    text = README.read_text(encoding="utf-8")
    assert readme.current_table(text) == readme.rules_table(), (
        "The README's rule table is stale: run `python -m gradlint.readme`."
    )


def test_regenerating_is_idempotent(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    copy.write_text("# x\n\n<!-- rules:start -->\nold\n<!-- rules:end -->\n\nafter\n")
    assert readme.main(["--readme", str(copy), "--check"]) == 1
    assert readme.main(["--readme", str(copy)]) == 0
    text = copy.read_text()
    assert readme.current_table(text) == readme.rules_table()
    assert text.endswith("<!-- rules:end -->\n\nafter\n")
    assert readme.main(["--readme", str(copy), "--check"]) == 0


def test_missing_markers(tmp_path: Path) -> None:
    copy = tmp_path / "README.md"
    copy.write_text("# no table\n")
    assert readme.main(["--readme", str(copy)]) == 2


def test_table_escapes_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    from fake_rules import FakeNumpy, install

    class Piped(FakeNumpy):
        """Finds `a | b`."""

    install(monkeypatch, [Piped])
    assert readme.rules_table().splitlines()[-1] == (
        "| GL901 | fake-numpy-call | Finds `a \\| b`. |"
    )


def test_quick_start_and_ci_use_the_same_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    assert TEST_COMMAND in text
    assert "pip install -e . && gradlint check examples/" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()


def test_torch_is_pinned() -> None:
    lines = (ROOT / "constraints.txt").read_text().split()
    assert "torch==2.13.0" in lines


def test_configuration_example_is_valid() -> None:
    import re

    from gradlint.config import build_config, parse_settings

    tomllib = pytest.importorskip("tomllib")

    text = README.read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    table = tomllib.loads(block.group(1))["tool"]["gradlint"]
    config = build_config(parse_settings(table, "README.md"))
    assert config.is_enabled("GL101", "train.py")
    assert not config.is_enabled("GL210", "train.py")


def test_sample_output_is_what_gradlint_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from gradlint.cli import main

    text = README.read_text(encoding="utf-8")
    start = text.index("$ gradlint check examples/\n") + len("$ gradlint check examples/\n")
    shown = text[start : text.index("```", start)]
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", "--no-color", "examples/"])
    assert result.output == shown


def test_rules_page_is_current() -> None:
    """docs/rules.md, where the language server's diagnostics link, matches the registry."""
    from gradlint import rule_docs

    assert rule_docs.main(["--check"]) == 0, (
        "docs/rules.md is stale: run `python -m gradlint.rule_docs`."
    )
    page = rule_docs.DEFAULT_PAGE.read_text(encoding="utf-8")
    for rule in readme.registry.all_rules():
        assert f'<a id="{rule.code.lower()}"></a>' in page
        assert rule_docs.doc_url(rule.code).endswith(f"docs/rules.md#{rule.code.lower()}")


def _blocks(language: str) -> list[str]:
    import re

    text = README.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_pre_commit_snippet_names_the_shipped_hooks() -> None:
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    shipped = {hook["id"] for hook in hooks}
    assert shipped == {"gradlint", "gradlint-fix"}
    for hook in hooks:
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "jupyter"]
        assert "--force-exclude" in hook["entry"].split()
    configs = [yaml.safe_load(block) for block in _blocks("yaml")]
    pre_commit = [c for c in configs if isinstance(c, dict) and "repos" in c]
    assert len(pre_commit) == 1
    (repo,) = pre_commit[0]["repos"]
    assert repo["rev"] == "v0.1.0"
    assert {hook["id"] for hook in repo["hooks"]} <= shipped


def test_editor_snippets_parse_and_run_the_server() -> None:
    import json

    tomllib = pytest.importorskip("tomllib")
    (vscode,) = [json.loads(block) for block in _blocks("json") if "glspc" in block]
    assert vscode["glspc.server.command"] == "gradlint"
    assert vscode["glspc.server.commandArguments"] == ["server"]
    (helix,) = [tomllib.loads(block) for block in _blocks("toml") if "language-server" in block]
    assert helix["language-server"]["gradlint"] == {"command": "gradlint", "args": ["server"]}
    assert "gradlint" in helix["language"][0]["language-servers"]
    lua = _blocks("lua")
    assert len(lua) == 2 and all('{ "gradlint", "server" }' in block for block in lua)
    (elisp,) = _blocks("elisp")
    assert '("gradlint" "server")' in elisp
