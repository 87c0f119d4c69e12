"""The SARIF 2.1.0 report, for code-scanning services (GitHub's among them).

One run: the driver lists every registered rule (so a result's ``ruleIndex`` is stable
whatever was selected), each finding is a result, and files that could not be linted
are tool execution notifications.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
from typing import Any
from urllib.parse import quote

from gradlint import __version__, registry
from gradlint.finding import Finding, LintError, severity_of
from gradlint.reports.paths import absolute_uri, relative_to_cwd
from gradlint.rule import Rule
from gradlint.run import RunResult

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
VERSION = "2.1.0"
SRCROOT = "%SRCROOT%"
DISTRIBUTION = "torch-gradlint"

JSONObject = dict[str, Any]


def render_sarif(result: RunResult) -> str:
    return json.dumps(sarif_log(result), indent=2)


def sarif_log(result: RunResult) -> JSONObject:
    rules = registry.all_rules()
    index = {rule.code: position for position, rule in enumerate(rules)}
    run: JSONObject = {
        "tool": {"driver": _driver(rules)},
        "invocations": [_invocation(result.errors)],
        "originalUriBaseIds": {SRCROOT: {"uri": _cwd_uri()}},
        # Columns count characters as Python strings do, not UTF-16 code units (the
        # reader's guess when columnKind is absent).
        "columnKind": "unicodeCodePoints",
        "results": [_result(finding, index.get(finding.code)) for finding in result.findings],
    }
    return {"$schema": SCHEMA, "version": VERSION, "runs": [run]}


# -- the driver and its rules ------------------------------------------------------------


def _driver(rules: tuple[type[Rule], ...]) -> JSONObject:
    driver: JSONObject = {"name": "gradlint"}
    uri = _information_uri()
    if uri:
        driver["informationUri"] = uri
    driver["version"] = __version__
    driver["semanticVersion"] = __version__
    driver["rules"] = [_rule(rule) for rule in rules]
    return driver


def _information_uri() -> str | None:
    """The project's home page, as the installed distribution's metadata gives it."""
    try:
        metadata = importlib.metadata.metadata(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() in {"homepage", "home", "repository", "source"} and url:
            return url.strip()
    homes = [home.strip() for home in metadata.get_all("Home-page") or []]
    return next((home for home in homes if home and home != "UNKNOWN"), None)


def _rule(rule: type[Rule]) -> JSONObject:
    doc = rule.doc()
    description = _before_example(doc)
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.message},
        "fullDescription": {"text": plain_text(description), "markdown": description},
        "help": {"text": plain_text(doc), "markdown": doc},
        "defaultConfiguration": {"level": severity_of(rule.code)},
        "properties": {"tags": ["pytorch", "autograd"]},
    }


_EXAMPLE = re.compile(r"^\*\*Example\*\*", re.MULTILINE)
_FENCE = re.compile(r"^\s*```")
_STRONG = re.compile(r"\*\*(.+?)\*\*")


def _before_example(doc: str) -> str:
    """What the rule finds and why it matters: the docs up to their example."""
    match = _EXAMPLE.search(doc)
    return (doc[: match.start()] if match else doc).strip()


def plain_text(markdown: str) -> str:
    """A rule's Markdown docs for readers that show text only: no fences, no bold; code
    blocks stay readable by indentation."""
    lines: list[str] = []
    in_code = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        lines.append(f"    {line}" if in_code and line else _STRONG.sub(r"\1", line))
    return "\n".join(lines).strip()


# -- results -----------------------------------------------------------------------------


def _result(finding: Finding, rule_index: int | None) -> JSONObject:
    result: JSONObject = {"ruleId": finding.code}
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    result["level"] = finding.severity
    result["message"] = {"text": finding.message}
    if finding.cell is None:
        where = region(finding.line, finding.column, finding.end_line, finding.end_column)
    else:
        # A notebook is a JSON file to a SARIF viewer: point at the line of the JSON
        # where the finding's source line is written (line 1 where that is unknown),
        # and say where in the cell it is in the properties.
        where = {"startLine": finding.file_line or 1}
    result["locations"] = [
        {
            "physicalLocation": {
                "artifactLocation": artifact_location(finding.path),
                "region": where,
            }
        }
    ]
    fixes = sarif_fixes(finding)
    if fixes:
        result["fixes"] = fixes
    properties: JSONObject = {}
    if finding.runtime is not None:
        properties["runtime"] = finding.runtime
    if finding.cell is not None:
        properties.update(cell=finding.cell, cellLine=finding.line, cellColumn=finding.column)
    if properties:
        result["properties"] = properties
    return result


def sarif_fixes(finding: Finding) -> list[JSONObject]:
    """The finding's safe fix, as SARIF replacements in its file (an unsafe one is left
    to `--unsafe-fixes`, as in the text report). A notebook's fixes are in its cells'
    lines, which are no place in the JSON file: `gradlint check --fix` makes them."""
    fix = finding.fix
    if fix is None or not fix.safe or finding.cell is not None:
        return []
    replacements = [
        {
            "deletedRegion": region(edit.line, edit.column, edit.end_line, edit.end_column),
            "insertedContent": {"text": edit.text},
        }
        for edit in fix.edits
    ]
    change = {"artifactLocation": artifact_location(finding.path), "replacements": replacements}
    return [{"description": {"text": fix.title}, "artifactChanges": [change]}]


def artifact_location(path: str) -> JSONObject:
    """A path relative to the current folder is based on %SRCROOT% (the checkout, to a
    code-scanning service); one outside it can only be an absolute file URI."""
    relative = relative_to_cwd(path)
    if relative is None:
        return {"uri": absolute_uri(path)}
    return {"uri": quote(relative, safe="/"), "uriBaseId": SRCROOT}


def region(start_line: int, start_column: int, end_line: int, end_column: int) -> JSONObject:
    """1-based lines and columns; the end column is the one just past the region, as in
    gradlint's findings and in SARIF."""
    return {
        "startLine": start_line,
        "startColumn": start_column,
        "endLine": end_line,
        "endColumn": end_column,
    }


def _cwd_uri() -> str:
    uri = absolute_uri(os.getcwd())
    return uri if uri.endswith("/") else uri + "/"


# -- files that could not be linted ------------------------------------------------------


def _invocation(errors: list[LintError]) -> JSONObject:
    return {
        # A file that was not linted makes the run incomplete (exit code 2), not a clean
        # analysis with results.
        "executionSuccessful": not errors,
        "toolExecutionNotifications": [
            {
                "level": "error",
                "message": {"text": error.message},
                "locations": [
                    {"physicalLocation": {"artifactLocation": artifact_location(error.path)}}
                ],
            }
            for error in errors
        ],
    }
