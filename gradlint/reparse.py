"""Parse successive versions of one document, re-parsing only what an edit touched.

The language server lints a document at every pause in typing, and libcst's parse is
about half of what a lint of a large file costs. An edit changes one place, so the
top-level statements it touched are parsed again (with one unchanged statement on each
side, so that the comments and blank lines between statements fall where a whole parse
would put them) and put between the unchanged statements of the last parse.

Why that gives the tree a whole parse would give: a top-level statement starts on a line
of its own, with no bracket or string open and no indentation, which is how a file
starts; so the text between two statement boundaries is tokenized and parsed the same
alone as inside the file, except at its edges. Parsed alone, the lines before the first
statement are the module's header (here: that statement's leading lines, as the last
parse had them, since neither that text nor what is next to it changed), and the lines
after the last are the module's footer (here there must be none). Nodes that follow the
module's first indentation and first line break (`IndentedBlock.indent`,
`Newline.value`: None where they are the module's) must be read against the same ones:
where that cannot be shown, and wherever the part does not parse alone, the whole text is
parsed, so a syntax error is reported as a whole parse reports it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

import libcst as cst

from gradlint.parsing import parse_module

_WITH_ORELSE = (cst.If, cst.For, cst.While, cst.Try, cst.TryStar)


class Reparser:
    """The last text that parsed, its module, and where its top-level statements are."""

    def __init__(self) -> None:
        self._text = ""
        self._module: cst.Module | None = None
        self._starts: list[int] | None = None  # offset in _text where each statement starts
        self._ends: list[int] | None = None

    def parse(self, text: str) -> cst.Module:
        """The module of ``text``: the same tree that `parse_module` gives. Raises what
        `parse_module` raises (the last text that parsed is kept for the next edit)."""
        module = self._reparse(text) if self._module is not None else None
        if module is None:
            module = parse_module(text)
            self._starts = self._ends = None  # found when the next edit needs them
        self._text, self._module = text, module
        return module

    def _reparse(self, text: str) -> cst.Module | None:
        old, module = self._text, self._module
        assert module is not None
        if text == old:
            return module
        bounds = self._bounds()
        if bounds is None or not module.body:
            return None
        starts, ends = bounds
        last = len(module.body) - 1
        begin, old_end, new_end = _changed(old, text)
        first = _statement_at(starts, begin, last)
        final = _statement_at(starts, max(begin, old_end - 1), last)
        low, high = max(0, first - 1), min(last, final + 1)
        cut = starts[low] if low > 0 else 0
        delta = len(text) - len(old)
        stop = ends[high] + delta if high < last else len(text)
        if stop < new_end:  # pragma: no cover - the edit ends inside the part parsed
            return None
        try:
            part = parse_module(text[cut:stop])
        except Exception:  # a whole parse says what is wrong, and where
            return None
        body = list(part.body)
        if not body or (high < last and (part.footer or not part.has_trailing_newline)):
            return None
        if part.default_newline != module.default_newline:
            return None
        indent = _default_indent(module, low, high, part)
        if indent is None:
            return None
        if low > 0 and part.header:
            lead = body[0]
            body[0] = lead.with_changes(leading_lines=(*part.header, *lead.leading_lines))
        result = cst.Module(
            body=(*module.body[:low], *body, *module.body[high + 1 :]),
            header=module.header if low > 0 else part.header,
            footer=module.footer if high < last else part.footer,
            encoding=module.encoding,
            default_indent=indent,
            default_newline=module.default_newline,
            has_trailing_newline=(
                module.has_trailing_newline if high < last else part.has_trailing_newline
            ),
        )
        lengths = [len(result.code_for_node(statement)) for statement in body]
        # The unchanged statements at the part's edges must come out of it as they went
        # in (an edit that opened a bracket or a string would have merged them).
        if low > 0 and lengths[0] != ends[low] - starts[low]:
            return None
        if high < last and lengths[-1] != ends[high] - starts[high]:
            return None
        self._starts, self._ends = _shifted(starts, ends, result, low, high, lengths, cut, delta)
        return result

    def _bounds(self) -> tuple[list[int], list[int]] | None:
        """Where each top-level statement of the last module starts and ends in its text
        (generating its code once, after a whole parse); None if they do not add up."""
        if self._starts is not None and self._ends is not None:
            return self._starts, self._ends
        module = self._module
        assert module is not None
        at = sum(len(module.code_for_node(line)) for line in module.header)
        starts, ends = [], []
        for statement in module.body:
            starts.append(at)
            at += len(module.code_for_node(statement))
            ends.append(at)
        at += sum(len(module.code_for_node(line)) for line in module.footer)
        # A text without a final line break is parsed with one added, and its code drops it.
        missing = 0 if module.has_trailing_newline else len(module.default_newline)
        if at != len(self._text) + missing:
            return None
        self._starts, self._ends = starts, ends
        return starts, ends


def _changed(old: str, new: str) -> tuple[int, int, int]:
    """Where ``old`` and ``new`` differ: the offset where they start to, and where the
    differing text ends in each (the rest is the same)."""
    shorter = min(len(old), len(new))
    begin = _largest(shorter, lambda k: old[:k] == new[:k])
    tail = _largest(shorter - begin, lambda k: old[len(old) - k :] == new[len(new) - k :])
    return begin, len(old) - tail, len(new) - tail


def _largest(most: int, same: Callable[[int], bool]) -> int:
    """The largest k <= ``most`` with ``same(k)``, for a ``same`` that holds up to some k
    and fails after it: by halving, since string slices compare at C speed where a loop
    over characters would not."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if same(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _statement_at(starts: list[int], offset: int, last: int) -> int:
    """The index of the statement whose text holds ``offset`` (the header counts as the
    first statement's, the footer as the last's)."""
    return min(last, max(0, bisect_right(starts, offset) - 1))


def _default_indent(module: cst.Module, low: int, high: int, part: cst.Module) -> str | None:
    """The new module's default indentation (that of its first indented line), when the
    part parsed alone read its blocks against the same one; else None."""
    same = part.default_indent == module.default_indent
    if not _any_indented(part.body):
        # The part's blocks are not read against any indentation; the module's first
        # comes before the part or after it, as it did, unless the part held it.
        if _any_indented(module.body[:low]) or not _any_indented(module.body[low : high + 1]):
            return module.default_indent
        return None  # the next indentation is unknown here
    # The module's first indentation is before the part (unchanged) or the part's own
    # first one; either way the part and the statements after it must agree on it.
    return module.default_indent if same else None


def _any_indented(statements: Sequence[cst.CSTNode]) -> bool:
    return any(_indents(statement) for statement in statements)


def _indents(statement: cst.CSTNode) -> bool:
    """Whether a top-level statement has an indented line (an INDENT token): a block on
    lines of its own, in any of its clauses."""
    if isinstance(statement, cst.Match):
        return True
    suites: list[object] = [getattr(statement, "body", None)]
    if isinstance(statement, _WITH_ORELSE):
        orelse = statement.orelse
        if isinstance(orelse, cst.If):
            return _indents(orelse) or isinstance(statement.body, cst.IndentedBlock)
        suites.append(getattr(orelse, "body", None))
    if isinstance(statement, (cst.Try, cst.TryStar)):
        suites.extend(handler.body for handler in statement.handlers)
        suites.append(getattr(statement.finalbody, "body", None))
    return any(isinstance(suite, cst.IndentedBlock) for suite in suites)


def _shifted(
    starts: list[int],
    ends: list[int],
    module: cst.Module,
    low: int,
    high: int,
    lengths: list[int],
    cut: int,
    delta: int,
) -> tuple[list[int], list[int]]:
    """The statement bounds of the new module: those before the part as they were, the
    part's from their lengths, those after it moved by the change in length."""
    new_starts, new_ends = starts[:low], ends[:low]
    at = cut
    if low == 0:
        at = sum(len(module.code_for_node(line)) for line in module.header)
    for length in lengths:
        new_starts.append(at)
        at += length
        new_ends.append(at)
    new_starts.extend(start + delta for start in starts[high + 1 :])
    new_ends.extend(end + delta for end in ends[high + 1 :])
    return new_starts, new_ends
