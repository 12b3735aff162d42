"""A landing file's bytes as UTF-8 text with LF line breaks, read in chunks, whatever it was written in.

The CSV parsers, the block cutter and the line numbers all work on UTF-8 bytes with "\\n" line breaks.
A UTF-8 file passes through untouched (the common, fast case). Another encoding (UTF-16, CP-1252,
Latin-1, ...) is decoded and re-encoded as UTF-8 chunk by chunk; a byte-order mark is dropped. A
line break written as a lone CR (old Mac and some Excel exports) becomes LF, so a CR-only file has
as many lines as it shows, and CRLF stays as it is (the parsers take it as one break).

A file sniffed as UTF-8 from an ASCII-only sample may turn out later to hold CP-1252 bytes (names
with accents far down a list): while every byte so far was ASCII the reader switches to CP-1252,
which reads ASCII the same, so nothing read earlier changes. Once real UTF-8 has been seen, a bad
byte stays in place and the line holding it is quarantined by the parser.
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

from connectors.filesystem.dialect import CP1252, UTF8

LONE_CR = re.compile(rb"\r(?!\n)")
CHUNK_BYTES = 1 << 20


class Utf8Stream:
    """``read(n)`` returns UTF-8 bytes with LF or CRLF line breaks; see the module docstring."""

    def __init__(self, raw: BinaryIO, encoding: str, bom: bool):
        self._raw = raw
        self._encoding = codecs.lookup(encoding).name
        self._passthrough = self._encoding == UTF8
        self._decoder = None if self._passthrough else codecs.getincrementaldecoder(self._encoding)(errors="replace")
        self._skip_bom = bom
        self._ascii_so_far = True
        self._held_cr = b""  # a CR at the end of a chunk: its LF may start the next one
        self.switched_to: str | None = None  # set when a UTF-8 file turned out to be CP-1252

    @property
    def encoding(self) -> str:
        return self.switched_to or self._encoding

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size if size and size > 0 else CHUNK_BYTES * 64)
        final = not chunk
        data = self._text_bytes(chunk, final)
        if self._held_cr:
            data, self._held_cr = self._held_cr + data, b""
        if not final and data.endswith(b"\r"):
            data, self._held_cr = data[:-1], b"\r"
        if b"\r" in data:
            data = LONE_CR.sub(b"\n", data)
        if not data and not final:
            return self.read(size)
        return data

    def _text_bytes(self, chunk: bytes, final: bool) -> bytes:
        if self._skip_bom and chunk:
            chunk = _without_bom(chunk, self._encoding)
            self._skip_bom = False
        if self._passthrough:
            if self._ascii_so_far and not chunk.isascii():
                self._ascii_so_far = False
                try:
                    chunk.decode(UTF8)
                except UnicodeDecodeError as error:
                    if error.start < len(chunk) - 3 and chunk[: error.start].isascii():
                        # Nothing but ASCII before this byte: read the whole file as CP-1252 from here.
                        self._passthrough = False
                        self.switched_to = CP1252
                        self._decoder = codecs.getincrementaldecoder(CP1252)(errors="replace")
                        return self._decoder.decode(chunk, final).encode(UTF8)
            return chunk
        text = self._decoder.decode(chunk, final)
        return text.encode(UTF8, errors="surrogateescape")


def _without_bom(chunk: bytes, encoding: str) -> bytes:
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if chunk.startswith(bom):
            return chunk[len(bom):]
    return chunk
