"""The one entry point that every front end calls: ``lint(source, path, config)``."""

from __future__ import annotations

import ast
import re

import libcst as cst

from gradlint.analysis import analyze
from gradlint.analysis.facts import Facts
from gradlint.cancel import checkpoint
from gradlint.config import Config
from gradlint.finding import Finding, LintError
from gradlint.fixes import Applied, Edit, Fix, apply_all
from gradlint.noqa import is_suppressed, noqa_by_line
from gradlint.parsing import parse_module
from gradlint.registry import all_rules
from gradlint.reparse import Reparser
from gradlint.rule import Report


def parse(source: str, path: str, reparser: Reparser | None = None) -> cst.Module:
    """The module of ``source``; with a ``reparser`` (one per document that is linted
    again and again, as in the language server), only what changed since its last parse
    is parsed again. A syntax error raises `LintError`."""
    try:
        return reparser.parse(source) if reparser is not None else parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise LintError(path, _syntax_error(source, path, exc)) from None
    except (RecursionError, MemoryError):
        raise LintError(path, "file is too deeply nested or too large to parse") from None


def _syntax_error(source: str, path: str, exc: cst.ParserSyntaxError) -> str:
    """Python's own parser places a syntax error exactly; libcst's positions can be off."""
    try:
        compile(source, path, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        where = f"line {error.lineno}, column {error.offset}" if error.lineno else "unknown place"
        return f"syntax error at {where}: {error.msg}"
    except (ValueError, RecursionError, MemoryError):
        pass
    first = str(exc.message).splitlines()[0] if exc.message else "invalid syntax"
    first = re.sub(r"^(parser error|tokenizer error): (error at \d+:\d+: )?", "", first)
    if len(first) > 100:
        first = first[:97] + "..."
    return f"syntax error at line {exc.raw_line}, column {exc.raw_column + 1}: {first}"


def lint(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    errors: list[LintError] | None = None,
    reparser: Reparser | None = None,
) -> list[Finding]:
    """Lint one file's source and return its findings, sorted by position.

    A file that cannot be parsed raises `LintError`. A fault inside the analysis or one
    rule is an internal error for this file: appended to ``errors`` when given (the other
    rules still run), raised otherwise. A ``reparser`` parses only what changed since the
    source it parsed last (see `parse`).
    """
    return lint_module(parse(source, path, reparser), source, path, config, errors)


def lint_module(
    module: cst.Module,
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    errors: list[LintError] | None = None,
) -> list[Finding]:
    """`lint` of a module already parsed from ``source`` (a notebook's cells are parsed
    by the notebook code, which places syntax errors in their cells)."""
    config = config or Config()
    rules = [rule() for rule in all_rules() if config.is_enabled(rule.code, path)]
    if not rules:
        return []
    checkpoint()
    try:
        facts = analyze(module)
        facts.parsed_from(source)
    except Exception as exc:  # a bug of ours must not stop the run
        failure = LintError(path, f"internal error in the analysis: {_describe(exc)}")
        if errors is None:
            raise failure from exc
        errors.append(failure)
        return []
    noqa = noqa_by_line(source)
    # One finding per rule and place: a misuse reached by several paths is one misuse.
    findings: dict[tuple[str, int, int], Finding] = {}
    for rule in rules:
        checkpoint()
        try:
            for report in rule.check(facts):
                line, column, end_line, end_column = facts.position(report.node)
                if is_suppressed(noqa.get(line), rule.code, rule.name):
                    continue
                fix = _fix_of(report, facts)
                findings.setdefault(
                    (rule.code, line, column),
                    Finding(
                        path=path,
                        line=line,
                        column=column,
                        code=rule.code,
                        name=rule.name,
                        message=report.message or rule.message,
                        end_line=end_line,
                        end_column=end_column,
                        fixable=fix is not None and fix.safe,
                        fix=fix,
                    ),
                )
        except Exception as exc:  # one broken rule must not hide the others
            failure = LintError(path, f"internal error in rule {rule.code}: {_describe(exc)}")
            if errors is None:
                raise failure from exc
            errors.append(failure)
    return sorted(findings.values())


def fix_source(
    source: str, path: str = "<string>", config: Config | None = None, unsafe: bool = False
) -> Applied:
    """The source with every safe fix made (and the unsafe ones too, if asked), re-linted
    until nothing more is fixable. A file that cannot be parsed raises `LintError`."""

    def fixes_of(text: str) -> list[Fix]:
        found = lint(text, path, config, errors=[])
        return [f.fix for f in found if f.fix is not None and (f.fix.safe or unsafe)]

    return apply_all(source, fixes_of)


def _fix_of(report: Report, facts: Facts) -> Fix | None:
    """A rule's proposed replacement, as text edits at the replaced node's place."""
    proposal = report.fix
    if proposal is None:
        return None
    new = proposal.new
    text = new if isinstance(new, str) else facts.module.code_for_node(new)
    if proposal.lines is not None:
        first, last = proposal.lines
        edit = Edit(first, 1, last + 1, 1, text)
    else:
        line, column, end_line, end_column = facts.position(proposal.old)
        edit = Edit(line, column, end_line, end_column, text)
    return Fix((edit,), proposal.title, proposal.safe)


def _describe(exc: BaseException) -> str:
    """One short line, whatever the exception holds (libcst nodes print as pages)."""
    text = " ".join(str(exc).split())
    if len(text) > 120:
        text = text[:117] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
