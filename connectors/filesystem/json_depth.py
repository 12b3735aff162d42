"""Which lines of a JSONL block nest objects and arrays deeper than a limit, found without parsing them.

A JSON parser's work grows steeply with nesting: a line a thousand levels deep makes Polars' schema
inference take minutes and gigabytes, or overflow its stack. Such lines are found on the bytes, before
any parser sees them, in steps that each run in C over the whole block:

1. A line nests deeper than the limit only if it holds more than ``limit`` opening brackets. Keeping
   only ``{``, ``[`` and line breaks leaves a short string in which such a line is a long run; most
   blocks stop here.
2. Otherwise the block's structure is taken apart: escaped quotes and backslashes removed, then every
   byte but brackets, quotes and line breaks, then the strings (brackets inside a string are not
   structure). A line that opens more brackets in a row than the limit (the usual shape of deep
   nesting) is deeper than it. Removing the empty pairs ``[]`` and ``{}`` again and again peels one
   or two levels off every other line per round; a line left over after ``limit / 2`` rounds may be
   deeper than the limit.
3. Only those lines are measured exactly, one level per round.

A line whose brackets do not match is not JSON: it is left to the parser, which says why, unless
it holds more unmatched brackets than the limit (the parser would have to descend into them).
"""

from __future__ import annotations

import re
from functools import lru_cache

OPENERS = b"{["
ONLY_OPENERS = bytes(byte for byte in range(256) if byte not in b"{[\n")
ONLY_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'{[]}"\n')
# After ONLY_STRUCTURE a string is its quotes around the brackets it holds (a quote never ends a line).
STRING = re.compile(rb'"[^"\n]*"')
EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
LEFT_OVER = re.compile(rb"[^\n]+")


def too_deep(data: bytes, limit: int) -> dict[int, str]:
    """0-based index of each line of ``data`` nested deeper than ``limit`` -> the reason it is set aside."""
    if not _long_run(limit).search(data.translate(None, ONLY_OPENERS)):
        return {}
    reason = f"objects and arrays nest deeper than max_nesting_depth ({limit})"
    structure = _structure(data)
    deep = {}
    if _opening_run(limit).search(structure):  # the usual shape of deep nesting: found at once, taken out
        lines = structure.split(b"\n")
        for index, line in enumerate(lines):
            if _opening_run(limit).search(line):
                deep[index] = reason
                lines[index] = b""
        structure = b"\n".join(lines)
    # bytes.replace removes every empty pair of one kind in one scan: a round peels one or two levels, so a
    # line emptied in limit // 2 rounds is no deeper than the limit.
    for _ in range(limit // 2):
        peeled = structure.replace(b"[]", b"").replace(b"{}", b"")
        if len(peeled) == len(structure):
            break
        structure = peeled
    suspects, line, counted = [], 0, 0
    for match in LEFT_OVER.finditer(structure):  # in order: each line break is counted once
        line += structure.count(b"\n", counted, match.start())
        counted = match.start()
        suspects.append(line)
    if not suspects:
        return deep
    lines = data.split(b"\n")
    for index in suspects:
        depth = exact_depth(lines[index], limit)
        if depth is None or depth > limit:
            deep[index] = reason
    return deep


def exact_depth(line: bytes, limit: int) -> int | None:
    """How deep ``line`` nests, counted up to ``limit + 1`` (or a number no larger than the depth, when that
    already tells the depth is past the limit, or within it); None when its brackets do not match and more
    than ``limit`` of them are left unmatched."""
    structure = _structure(line)
    if _opening_run(limit).search(structure):  # more brackets opened in a row than the limit
        return limit + 1
    # Fast rounds first: each peels one or two levels, so more than ``limit`` of them settle it.
    rounds, peeled = 0, structure
    while peeled and rounds <= limit:
        shorter = peeled.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(peeled):
            break
        peeled, rounds = shorter, rounds + 1
    if rounds > limit or (not peeled and 2 * rounds <= limit):
        return rounds
    depth = 0
    while structure and depth <= limit:
        peeled = EMPTY_PAIR.sub(b"", structure)  # one scan: each empty pair of this round, one level
        if len(peeled) == len(structure):
            break
        structure, depth = peeled, depth + 1
    if structure and depth <= limit:  # not JSON: the parser says why, unless it would descend too far first
        return None if sum(structure.count(opener) for opener in (b"{", b"[")) > limit else depth
    return depth


def _structure(data: bytes) -> bytes:
    if b"\\" in data:  # an escaped backslash, then an escaped quote: neither ends or starts a string
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, ONLY_STRUCTURE)
    # Two quotes side by side are an empty string, or the end of one string and the start of the next with
    # nothing structural between them: removing them leaves the structure as it is.
    structure = structure.replace(b'""', b"")
    return STRING.sub(b"", structure) if b'"' in structure else structure


@lru_cache(maxsize=8)
def _long_run(limit: int) -> re.Pattern:
    return re.compile(rb"[^\n]{%d}" % (limit + 1))


@lru_cache(maxsize=8)
def _opening_run(limit: int) -> re.Pattern:
    return re.compile(rb"[\[{]{%d}" % (limit + 1))
