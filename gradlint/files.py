"""Read one file's source for linting, turning every way it can fail into a `LintError`."""

from __future__ import annotations

import io
import os
import tokenize

from gradlint.finding import LintError

_UTF8 = frozenset({"utf-8", "utf-8-sig"})


def read_source(path: str | os.PathLike[str], display: str | None = None) -> str:
    """The file's text. An empty file is valid Python (think of empty ``__init__.py``)."""
    shown = display if display is not None else os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise LintError(shown, f"cannot read: {exc.strerror or exc}") from None
    return decode_source(data, shown)


def decode_source(data: bytes, display: str) -> str:
    """Decode as Python does: UTF-8, a UTF-8 BOM, or a PEP 263 coding comment."""
    # Python refuses NUL bytes in source, and they are the surest sign of a binary file.
    if b"\0" in data:
        raise LintError(display, "binary file")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        reason = str(exc.msg)
        if reason.startswith("unknown encoding"):
            raise LintError(display, f"{reason} (in its coding comment)") from None
        raise LintError(display, "not UTF-8 text") from None  # undecodable first lines
    try:
        return data.decode(encoding)  # "utf-8-sig" drops the BOM
    except UnicodeDecodeError:
        if encoding in _UTF8:
            raise LintError(display, "not UTF-8 text") from None
        raise LintError(display, f"not valid {encoding} text, as its coding comment says") from None
    except LookupError:  # pragma: no cover - detect_encoding already checked the codec
        raise LintError(display, f"unknown encoding: {encoding}") from None
