"""Read one file's source for linting, turning every way it can fail into a `LintError`;
write a file whole or not at all."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
import tokenize

from gradlint.finding import LintError

_UTF8 = frozenset({"utf-8", "utf-8-sig"})


def read_source(path: str | os.PathLike[str], display: str | None = None) -> str:
    """The file's text. An empty file is valid Python (think of empty ``__init__.py``)."""
    return read_source_encoded(path, display)[0]


def read_source_encoded(
    path: str | os.PathLike[str], display: str | None = None
) -> tuple[str, str]:
    """The file's text, and the encoding to write it back in."""
    shown = display if display is not None else os.fspath(path)
    return decode_source(read_bytes(path, shown), shown)


def read_bytes(path: str | os.PathLike[str], display: str) -> bytes:
    """The file's bytes, undecoded (the cache hashes them before any decoding)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise LintError(display, f"cannot read: {exc.strerror or exc}") from None


def decode_source(data: bytes, display: str) -> tuple[str, str]:
    """Decode as Python does (UTF-8, a UTF-8 BOM, or a PEP 263 coding comment): the text
    and its encoding."""
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
        return data.decode(encoding), encoding  # "utf-8-sig" drops the BOM (and writes it)
    except UnicodeDecodeError:
        if encoding in _UTF8:
            raise LintError(display, "not UTF-8 text") from None
        raise LintError(display, f"not valid {encoding} text, as its coding comment says") from None
    except LookupError:  # pragma: no cover - detect_encoding already checked the codec
        raise LintError(display, f"unknown encoding: {encoding}") from None


def write_atomic(path: str, text: str, encoding: str = "utf-8", *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename,
    so that a reader (or a crash, or a kill) never sees half a file. Raises OSError.

    ``durable=False`` skips the fsync: for files that may be lost but must never be torn
    (cache entries, thousands per run, where an fsync each would cost more than the lint)."""
    # Through a symbolic link to the file it names, which a rename would replace.
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target) and not os.path.isdir(target):
        # A device or a pipe (/dev/stdout) cannot be renamed over: write into it.
        with open(target, "w", encoding=encoding, newline="") as stream:
            stream.write(text)
        return
    folder, name = os.path.split(target)
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding=encoding, newline="") as stream:
            stream.write(text)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.chmod(temporary, _mode(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _mode(target: str) -> int:
    """The mode the file gets: the replaced file's, else what a plain open would give
    (mkstemp makes files only their owner can read)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
