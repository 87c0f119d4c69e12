"""Property tests (DESIGN §8, robustness): no program crashes the linter, and `--fix` output
parses and is a fixed point.

Two sources of programs. hypothesmith writes arbitrary valid Python, which stresses the
analysis with syntax no example thinks of but rarely touches torch, so no rule fires. The
torch-flavoured strategy below composes the rules' own VALID and INVALID examples, cut,
nested in loops, blocks, functions and methods, with torch imported under other names, so
that findings and fixes do fire in contexts their authors did not write.

The number of examples is bounded for CI (``derandomize`` keeps it reproducible); set
``GRADLINT_HYPOTHESIS_EXAMPLES`` for a longer, randomised local run.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import libcst as cst
import pytest

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gradlint.engine import fix_source, lint  # noqa: E402
from gradlint.finding import LintError  # noqa: E402
from gradlint.fixes import source_lines  # noqa: E402
from gradlint.registry import all_rules  # noqa: E402

# The CI profile (tests/conftest.py) runs these many examples per test; a long local run
# (`GRADLINT_HYPOTHESIS_EXAMPLES`) runs its own number.
_LONG = int(os.environ.get("GRADLINT_HYPOTHESIS_EXAMPLES", "0"))


def _examples(ci: int) -> settings:
    return settings(max_examples=_LONG or ci)


# What `lint` raises for a file it cannot parse: that is the file's fault, not ours.
_NOT_PYTHON = ("syntax error", "file is too deeply nested")


def _lint_cleanly(source: str) -> bool:
    """Lint `source`, failing on any internal error; False when it is not valid Python."""
    errors: list[LintError] = []
    try:
        lint(source, "generated.py", errors=errors)
    except LintError as exc:
        assert exc.message.startswith(_NOT_PYTHON), exc.message
        return False
    assert not errors, [error.message for error in errors]
    return True


def _parses(source: str) -> None:
    """Both libcst (what gradlint reads) and CPython (what runs it) accept `source`."""
    cst.parse_module(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        compile(source, "fixed.py", "exec", dont_inherit=True)


@dataclass
class _Tally:
    """How many generated programs were linted and fixed: proof that the test tested
    something."""

    programs: int = 0
    linted: int = 0
    fixed: int = 0
    codes: set[str] = field(default_factory=set)


def _check_fixes(source: str, unsafe: bool, tally: _Tally | None = None) -> None:
    fixed = fix_source(source, "generated.py", unsafe=unsafe)
    # A fix whose result would not parse is left out, never written; still a rule's bug.
    assert fixed.dropped == []
    if fixed.applied:
        _parses(fixed.source)
        assert _lint_cleanly(fixed.source)
        if tally is not None:
            tally.fixed += 1
            tally.codes.update(
                f.code for f in lint(source, "generated.py", errors=[]) if f.fix is not None
            )
    # A second `--fix` changes nothing.
    again = fix_source(fixed.source, "generated.py", unsafe=unsafe)
    assert again.source == fixed.source
    assert again.applied == 0


# -- arbitrary Python ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("programs", "examples"),
    [
        # from_node is several times slower per example: fewer of them.
        pytest.param(hypothesmith.from_grammar(), 80, id="from_grammar"),
        pytest.param(hypothesmith.from_node(), 40, id="from_node"),
    ],
)
def test_arbitrary_programs_never_crash(programs: st.SearchStrategy[str], examples: int) -> None:
    tally = _Tally()

    @_examples(examples)
    @given(programs)
    def check(source: str) -> None:
        tally.programs += 1
        if _lint_cleanly(source):
            tally.linted += 1
            _check_fixes(source, unsafe=True)

    with warnings.catch_warnings():
        # hypothesmith compiles what it generates; `1()` warns, and is fine here.
        warnings.simplefilter("ignore", SyntaxWarning)
        check()
    # CPython accepted them all; a libcst that refused most would leave nothing tested.
    assert tally.linted * 2 >= tally.programs, tally


# -- torch-flavoured programs --------------------------------------------------------------


Statement = cst.SimpleStatementLine | cst.BaseCompoundStatement
Snippet = tuple[str, list[Statement]]


def _snippets(fixed_only: bool) -> list[Snippet]:
    """Rule examples' statements, labelled for a readable failure: all of them, or only the
    INVALID examples that `--fix` changes."""
    found: list[Snippet] = []
    for rule in all_rules():
        for kind, sources in (("valid", rule.VALID), ("invalid", rule.INVALID)):
            for index, source in enumerate(sources):
                if fixed_only and (kind == "valid" or index not in rule.FIXED):
                    continue
                found.append((f"{rule.code}-{kind}-{index}", list(cst.parse_module(source).body)))
    return found


# Half the draws from the fixable examples: cut and nested, they still fire often enough.
SNIPPETS = st.one_of(st.sampled_from(_snippets(False)), st.sampled_from(_snippets(True)))


def _is_import(statement: Statement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Import | cst.ImportFrom) for small in statement.body
    )


def _statement(code: str) -> Statement:
    return cst.parse_statement(code)


def _block(header: str, body: list[Statement]) -> cst.BaseCompoundStatement:
    """`header:` over `body`, built as a tree so that libcst indents it (and leaves the
    inside of multi-line strings alone)."""
    shell = cst.parse_statement(f"{header}:\n    pass\n")
    assert isinstance(shell, cst.BaseCompoundStatement)
    return shell.with_changes(body=cst.IndentedBlock(body=body))


def _nest(kind: str, body: list[Statement], depth: int, torch: str) -> list[Statement]:
    """`body` one level deeper, as `kind` places it; what is defined there is also called,
    so that the analysis follows the call into it."""
    name = f"_g{depth}"
    if kind == "for":
        return [_block(f"for {name} in range(2)", body)]
    if kind == "while":
        step = _statement(f"{name} += 1\n")
        return [_statement(f"{name} = 0\n"), _block(f"while {name} < 2", [*body, step])]
    if kind == "with":
        return [_block("with contextlib.suppress(ZeroDivisionError)", body)]
    if kind == "with-grad":
        return [_block(f"with {torch}.enable_grad()", body)]
    if kind == "if":
        return [_block('if __name__ == "__main__"', body)]
    if kind == "try":
        handled = "try:\n    pass\nexcept Exception:\n    pass\n"
        shell = cst.ensure_type(_statement(handled), cst.Try)
        return [shell.with_changes(body=cst.IndentedBlock(body=body))]
    if kind == "def":
        return [_block(f"def {name}()", body), _statement(f"{name}()\n")]
    if kind == "method":
        method = _block("def run(self)", body)
        return [
            _block(f"class {name.upper()}", [method]),
            _statement(f"{name.upper()}().run()\n"),
        ]
    assert kind == "forward"
    forward = [*body, _statement("return x\n")]
    method = _block("def forward(self, x)", forward)
    return [
        _block(f"class {name.upper()}({torch}.nn.Module)", [method]),
        _statement(f"{name.upper()}()({torch}.randn(2))\n"),
    ]


NESTINGS = ("for", "while", "with", "with-grad", "if", "try", "def", "method", "forward")


class _Alias(cst.CSTTransformer):
    """Name torch `torch` (whatever an example called it: `torch` or `T`), and
    `torch.no_grad` by its own name where `no_grad` is given."""

    def __init__(self, torch: str, no_grad: str | None) -> None:
        super().__init__()
        self.torch = torch
        self.no_grad = no_grad

    def visit_Import(self, node: cst.Import) -> bool:
        return False  # dotted names there (`import torch.nn as nn`) stay as written

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import:
        names = []
        for alias in updated.names:
            if isinstance(alias.name, cst.Name) and alias.name.value == "torch":
                asname = None if self.torch == "torch" else cst.AsName(cst.Name(self.torch))
                alias = alias.with_changes(asname=asname)
            names.append(alias)
        return updated.with_changes(names=names)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        if updated.value in ("torch", "T"):
            return updated.with_changes(value=self.torch)
        return updated

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        updated = updated.with_changes(attr=original.attr)  # `w.T` is a transpose
        value = updated.value
        if (
            self.no_grad is not None
            and updated.attr.value == "no_grad"
            and isinstance(value, cst.Name)
            and value.value == self.torch
        ):
            return cst.Name(self.no_grad, lpar=updated.lpar, rpar=updated.rpar)
        return updated


class _Indent(cst.CSTTransformer):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated.with_changes(indent=self.unit)


def _indented(statement: Statement, unit: str) -> Statement:
    """`statement` with each of its blocks indented by `unit`."""
    result = statement.visit(_Indent(unit))
    assert isinstance(result, cst.SimpleStatementLine | cst.BaseCompoundStatement)
    return result


@dataclass(frozen=True)
class Program:
    """A composed program, and what it was made of (shown when a check fails)."""

    source: str
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return f"parts {self.parts}:\n{self.source}"


# What Python reads as whitespace, or as part of a comment, and `str.splitlines` as a line
# break: code that counts lines the other way puts a fix on the wrong line.
ODD = ["\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\t"]


def _odd_text(draw: st.DrawFn, code: str) -> str:
    """The program with Windows line endings, or comment lines holding odd characters."""
    lines = source_lines(code)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, f"# odd{draw(st.sampled_from(ODD))}line\n")
    code = "".join(lines)
    if draw(st.booleans()):
        code = code.replace("\n", "\r\n")
    return code


@st.composite
def torch_programs(draw: st.DrawFn) -> Program:
    torch = draw(st.sampled_from(["torch", "T", "th"]))
    no_grad = draw(st.sampled_from([None, "no_grad", "ng"]))
    header = ["import contextlib\n", "import torch\n"]
    if no_grad == "no_grad":
        header.append("from torch import no_grad\n")
    elif no_grad == "ng":
        header.append("from torch import no_grad as ng\n")
    imports: list[Statement] = [_statement(line) for line in header]
    body: list[Statement] = []
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        label, statements = draw(SNIPPETS)
        if draw(st.booleans()):
            # Imports to the top, so that the cut keeps knowing what `torch` is.
            imports += [s for s in statements if _is_import(s)]
            statements = [s for s in statements if not _is_import(s)]
        cut = bool(statements) and draw(st.booleans())
        if cut:
            start = draw(st.integers(0, len(statements) - 1))
            end = draw(st.integers(start + 1, len(statements)))
            statements = statements[start:end]
            label += f"[{start}:{end}]"
        if not statements:
            continue
        nesting = draw(st.lists(st.sampled_from(NESTINGS), max_size=3))
        for depth, kind in enumerate(nesting):
            statements = _nest(kind, statements, depth, torch)
        # Each part indented its own way, as code pasted together is: Python allows it
        # as long as each block is consistent.
        indent = draw(st.sampled_from([None, "\t", "  "]))
        if indent is not None:
            statements = [_indented(statement, indent) for statement in statements]
            label += f" indented {indent!r}"
        parts.append(label + "".join(f" in {kind}" for kind in reversed(nesting)))
        body += statements
    module = cst.Module(body=[*imports, *body]).visit(_Alias(torch, no_grad))
    assert isinstance(module, cst.Module)
    source = _odd_text(draw, module.code)
    try:
        _parses(source)
    except (cst.ParserSyntaxError, SyntaxError):
        # A cut that CPython refuses where libcst builds it (`break` moved out of its loop).
        assume(False)
    return Program(source, tuple(parts))


def test_torch_programs_never_crash_and_fix_cleanly() -> None:
    tally = _Tally()

    @_examples(80)
    @given(torch_programs(), st.booleans())
    def check(program: Program, unsafe: bool) -> None:
        tally.programs += 1
        assert _lint_cleanly(program.source), str(program)
        _check_fixes(program.source, unsafe, tally)

    check()
    # Hypothesis can silently generate nothing useful (a strategy that fixes nothing tests
    # nothing); a fifth of the programs getting fixed shows the fixes do run.
    assert tally.fixed * 5 >= tally.programs, tally
    assert len(tally.codes) >= 3, tally
