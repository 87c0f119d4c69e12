"""The `gradlint` command.

Exit codes: 0 clean, 1 findings, 2 usage, configuration or internal error, or a file that
could not be linted. Bad input never shows a Python traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from gradlint import __version__
from gradlint.files import write_atomic
from gradlint.reports import FORMATS, REPORTS_ERRORS, render
from gradlint.reports.output import output_problem

if TYPE_CHECKING:
    from gradlint.runtime_check.report import RuntimeReport

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    click.echo(f"gradlint: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def use_color(*, no_color: bool, output_file: str | None) -> bool:
    """Colour only for a person at a terminal: never into a file or a pipe."""
    return (
        output_file is None
        and not no_color
        and "NO_COLOR" not in os.environ
        and sys.stdout.isatty()
    )


class _Group(click.Group):
    """Turns an unexpected exception into one line and exit 2, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away; stop quietly, and keep Python from
            # complaining again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(1)
        except Exception as exc:
            click.echo(f"gradlint: internal error: {exc!r}", err=True)
            sys.exit(EXIT_USAGE)


def _selectors(values: Iterable[str]) -> tuple[str, ...]:
    """`--select A,B --select C` -> (A, B, C)."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="gradlint", message="%(prog)s %(version)s"
)
def main() -> None:
    """Find PyTorch autograd misuse before you train."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--select",
    multiple=True,
    metavar="RULES",
    help="Rules to check (codes, prefixes such as GL1, names, ALL); replaces the configured ones.",
)
@click.option("--ignore", multiple=True, metavar="RULES", help="Rules to skip, on top of config.")
@click.option(
    "--extend-select", multiple=True, metavar="RULES", help="Rules to add to the selection."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output-file",
    "-o",
    metavar="PATH",
    help="Write the report to PATH (replaced whole) instead of stdout.",
)
@click.option("--fix", is_flag=True, help="Apply the safe fixes, then report what is left.")
@click.option(
    "--diff",
    is_flag=True,
    help="Print the fixes as a unified diff instead of writing them (exit 1 if any).",
)
@click.option(
    "--unsafe-fixes", is_flag=True, help="Also apply (or show) fixes that may change behaviour."
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add a `# noqa: CODE` comment on every line with findings (to adopt gradlint now).",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option(
    "--statistics", is_flag=True, help="Show counts per rule instead of each finding (text)."
)
@click.option("--no-color", is_flag=True, help="Never colour the text report.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Lint on N processes at once (default: the number of CPUs).",
)
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With `-` as the path: the file that standard input stands for.",
)
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Apply the configured excludes to the paths given too (for pre-commit and "
    "editors, which pass every file); then no paths means no files.",
)
@click.option(
    "--runtime",
    "runtime_report",
    metavar="REPORT",
    help="A runtime report (`gradlint run --report`): mark each finding confirmed, refuted "
    "or not-reached.",
)
def check(
    paths: tuple[str, ...],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    extend_select: tuple[str, ...],
    output_format: str,
    output_file: str | None,
    fix: bool,
    diff: bool,
    unsafe_fixes: bool,
    add_noqa: bool,
    exit_zero: bool,
    statistics: bool,
    no_color: bool,
    no_cache: bool,
    jobs: int | None,
    stdin_filename: str | None,
    force_exclude: bool,
    runtime_report: str | None,
) -> None:
    """Lint PATHS (files or folders; default: the current folder; `-`: standard input)."""
    from gradlint.config import ConfigError, Selection
    from gradlint.parallel import default_jobs
    from gradlint.reports.text import format_error
    from gradlint.run import Fixing, run
    from gradlint.stdin import run_stdin

    from_stdin = "-" in paths or (stdin_filename is not None and not paths)
    if from_stdin and len(paths) > 1:
        fail("`-` (standard input) cannot be combined with other paths")
    if stdin_filename is not None and not from_stdin:
        fail("--stdin-filename goes with `-` as the path")
    if from_stdin and add_noqa:
        fail("--add-noqa cannot be used on standard input")

    chosen = _selectors(select)
    selection = Selection(
        select=chosen if select else None,
        extend_select=_selectors(extend_select),
        ignore=_selectors(ignore),
    )
    if output_file is not None:
        # Found before linting: a long run should not end in "cannot write".
        problem = output_problem(output_file)
        if problem:
            fail(f"cannot write the report to {output_file}: {problem}")
    if add_noqa and (fix or diff):
        fail("--add-noqa cannot be combined with --fix or --diff")
    fixing = Fixing(write=not diff, unsafe=unsafe_fixes) if fix or diff else None
    runtime = _read_runtime_report(runtime_report) if runtime_report is not None else None
    fixed_source: bytes | None = None
    if force_exclude and not paths and not from_stdin:
        # pre-commit can run a hook with no file names (`always_run`): nothing to lint,
        # not the whole folder.
        sys.exit(0)
    try:
        if from_stdin and force_exclude and stdin_filename and _force_excluded(stdin_filename):
            # An editor formatting an excluded file: hand its text back untouched.
            if fixing is not None and fixing.write:
                sys.stdout.buffer.write(sys.stdin.buffer.read())
            sys.exit(0)
        if from_stdin:
            stdin = run_stdin(sys.stdin.buffer.read(), stdin_filename, selection, fixing=fixing)
            result, fixed_source = stdin.result, stdin.output
        else:
            result = run(
                paths or (".",),
                selection,
                fixing=fixing,
                add_noqa=add_noqa,
                jobs=jobs or default_jobs(),
                cache=not no_cache,
                force_exclude=force_exclude,
            )
    except ConfigError as exc:
        fail(str(exc))
    if runtime is not None:
        from gradlint.verdicts import judge

        result.findings = judge(result.findings, runtime)
    if fixed_source is not None:
        # `--fix -`, as editors use it: the fixed text is the output, the report goes aside.
        sys.stdout.flush()
        sys.stdout.buffer.write(fixed_source)
        sys.stdout.buffer.flush()
    if add_noqa:
        noun = "comment" if result.noqa_added == 1 else "comments"
        click.echo(f"Added {result.noqa_added} noqa {noun}.", err=True)
    for dropped in result.dropped:
        click.echo(dropped, err=True)
    if diff:
        for error in result.errors:
            click.echo(format_error(error), err=True)
        click.echo("".join(result.diffs), nl=False)
        noun = "fix" if result.fixed == 1 else "fixes"
        click.echo(f"Would make {result.fixed} {noun}.", err=True)
        sys.exit(2 if result.errors else 1 if result.fixed else 0)
    if fix and result.fixed:
        noun = "fix" if result.fixed == 1 else "fixes"
        click.echo(f"Made {result.fixed} {noun}.", err=True)

    if force_exclude and not result.files and not result.errors and output_format == "text":
        sys.exit(0)  # every file named was excluded: nothing to say
    report_aside = fixed_source is not None
    color = use_color(no_color=no_color or report_aside, output_file=output_file)
    report = render(result, output_format, color=color, statistics=statistics)
    if output_format not in REPORTS_ERRORS:
        for error in result.errors:
            click.echo(format_error(error), err=True)
    if output_file is None:
        click.echo(report, nl=False, color=color, err=report_aside)
    else:
        try:
            write_atomic(output_file, report)
        except OSError as exc:
            fail(f"cannot write the report to {output_file}: {exc.strerror or exc}")
    sys.exit(result.exit_code(exit_zero))


def _force_excluded(path: str) -> bool:
    from gradlint.config import ConfigResolver
    from gradlint.discovery import is_force_excluded

    return is_force_excluded(path, ConfigResolver())


def _read_runtime_report(path: str) -> RuntimeReport:
    from gradlint.runtime_check.report import ReportError, read_report

    try:
        return read_report(path)
    except ReportError as exc:
        fail(str(exc))


@main.command("rules")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
def rules_command(output_format: str) -> None:
    """List every rule."""
    from gradlint import registry
    from gradlint.finding import severity_of

    rules = registry.all_rules()
    if output_format == "json":
        listing = [
            {
                "code": rule.code,
                "name": rule.name,
                "severity": severity_of(rule.code),
                "summary": rule.summary(),
                "message": rule.message,
            }
            for rule in rules
        ]
        click.echo(json.dumps(listing, indent=2))
        return
    rows = [("code", "name", "summary")] + [(r.code, r.name, r.summary()) for r in rules]
    code_width = max(len(row[0]) for row in rows)
    name_width = max(len(row[1]) for row in rows)
    for code, name, summary in rows:
        click.echo(f"{code:<{code_width}}  {name:<{name_width}}  {summary}".rstrip())


@main.command("rule")
@click.argument("selector", metavar="CODE|NAME")
def rule_command(selector: str) -> None:
    """Show one rule's documentation."""
    from gradlint import registry
    from gradlint.rule_docs import describe

    try:
        rule = registry.find_rule(selector)
    except registry.UnknownRuleError:
        fail(f"unknown rule code or name '{selector}'")
    click.echo(describe(rule))


@main.command("server")
@click.option(
    "--debounce",
    type=click.IntRange(min=0, max=10_000),
    default=150,
    show_default=True,
    metavar="MS",
    help="Milliseconds of quiet after a change before the document is linted.",
)
def server_command(debounce: int) -> None:
    """Run the language server on standard input and output (for editors)."""
    try:
        from gradlint.server.app import serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("pygls", "lsprotocol", "cattrs", "attrs"):
            fail('the language server needs pygls: pip install "torch-gradlint[server]"')
        raise
    serve(debounce / 1000)


@main.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the runtime report (JSON) to FILE.",
)
@click.option("-m", "module", is_flag=True, help="Run TARGET as a module, as `python -m` does.")
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(report_path: str | None, module: bool, target: str, args: tuple[str, ...]) -> None:
    """Run a script (or, with -m, a module) as Python would, with its arguments, while the
    tracer watches its autograd; then print the misuses seen. Exits with the program's
    exit code."""
    try:
        from gradlint.runtime_check.runner import run_program
    except ImportError as exc:
        fail(f"`gradlint run` needs PyTorch: pip install 'torch-gradlint[runtime]' ({exc})")
    if not module and not os.path.isfile(target):
        fail(f"cannot run {target}: no such file")
    from gradlint.runtime_check.text import runtime_text

    report = run_program(target, list(args), module=module)
    if report_path is not None:
        try:
            report.write(report_path)
        except OSError as exc:
            click.echo(f"gradlint: cannot write the runtime report: {exc}", err=True)
    click.echo(runtime_text(report), err=True, nl=False)
    _show_verdicts(report)
    sys.exit(report.exit_code or 0)


def _show_verdicts(report: RuntimeReport) -> None:
    """The static findings in the files that ran, each judged by the run."""
    from gradlint.config import ConfigError
    from gradlint.reports.text import format_finding
    from gradlint.run import run
    from gradlint.runtime_check.text import shown_path
    from gradlint.verdicts import judge

    files = [shown_path(p) for p in sorted(report.lines) if p.endswith(".py") and os.path.isfile(p)]
    if not files:
        return
    try:
        result = run(files)
    except ConfigError as exc:
        click.echo(f"gradlint: static findings left out: {exc}", err=True)
        return
    findings = judge(result.findings, report)
    for finding in findings:
        click.echo(format_finding(finding), err=True)
    noun = "finding" if len(findings) == 1 else "findings"
    click.echo(f"gradlint: {len(findings)} static {noun} in the files that ran", err=True)
