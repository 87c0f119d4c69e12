"""The JSON report, the contract for scripts (DESIGN §6)."""

from __future__ import annotations

import json
from typing import Any

from gradlint.run import RunResult

VERSION = 1


def to_json(result: RunResult) -> dict[str, Any]:
    return {
        "version": VERSION,
        "findings": [finding.to_json() for finding in result.findings],
        "errors": [{"path": error.path, "message": error.message} for error in result.errors],
        "summary": {
            "files": result.files,
            "findings": len(result.findings),
            "errors": len(result.errors),
        },
    }


def render_json(result: RunResult) -> str:
    return json.dumps(to_json(result), indent=2)
