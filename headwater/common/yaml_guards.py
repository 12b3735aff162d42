"""What a YAML file must be before it becomes Python values: text, and of a size a config can have.

A config file is small and flat. A file that is not text (an archive, an image, a database) gets
a message that says so instead of a decoding error, and the limits below keep a hostile or mistaken
file from taking the machine: an alias that repeats an alias that repeats another (the "billion
laughs") is refused while it is read, long before it is expanded, as is nesting deep enough to
exhaust Python's stack.
"""

from __future__ import annotations

import yaml

# The largest config file read (1 MiB: thousands of sources); reading one this size takes seconds.
MAX_BYTES = 1024 * 1024
# Values in the file, every *alias counted as all the values it repeats, and the deepest nesting.
MAX_VALUES = 100_000
MAX_DEPTH = 50

# Leading bytes of formats a config path may point at by mistake, and what to call them.
SIGNATURES = (
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
)
# Of the first SAMPLE bytes, the share of control characters above which a file counts as binary.
BINARY_SHARE = 0.05
SAMPLE = 8192


class YamlLimitError(Exception):
    """The file is beyond a limit above; ``mark`` (PyYAML's, 0-based) says where, when known."""

    def __init__(self, message: str, mark: yaml.Mark | None = None):
        super().__init__(message)
        self.message, self.mark = message, mark


def binary_kind(raw: bytes) -> str | None:
    """What the bytes look like when they are not text (``a PNG image``, ``binary data``), else None."""
    for signature, kind in SIGNATURES:
        if raw.startswith(signature):
            return kind
    sample = raw[:SAMPLE]
    if _utf16_or_32(sample):
        return None
    if b"\x00" in sample:
        return "binary data (it holds NUL bytes)"
    # Text in any 8-bit encoding has next to no control characters; random or compressed bytes have one in ten.
    controls = sum(1 for byte in sample if (byte < 0x20 and byte not in b"\t\n\r\f") or byte == 0x7F)
    if sample and controls / len(sample) > BINARY_SHARE:
        return "binary data"
    return None


def _utf16_or_32(sample: bytes) -> bool:
    """Text in UTF-16 or UTF-32 has NUL bytes too; it is text in the wrong encoding, not binary."""
    return sample.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"))


def check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise YamlLimitError(f"the file is {size / 1024 / 1024:.1f} MiB; a config file may be at most "
                             f"{MAX_BYTES // 1024 // 1024} MiB. Is this the file you meant?")


class GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than MAX_DEPTH and more than MAX_VALUES values.

    Composing keeps one node per anchor however often it is aliased, so counting there costs nothing:
    each node records how many values it stands for, aliases expanded, and an alias adds that count.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values it stands for, once composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # the anchored node (an undefined alias raises here)
            size = self._sizes.get(id(node))
            if size is None:
                raise YamlLimitError(f"*{event.anchor} is used inside the very value &{event.anchor} names, so it "
                                     "would repeat itself forever; remove the alias", event.start_mark)
            self._count(size, event.start_mark, alias=event.anchor)
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep; a config file needs far fewer, "
                                     "check the indentation and brackets here", event.start_mark)
            before = self._values
            self._count(1, event.start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._values - before
        return node

    def _count(self, values: int, mark: yaml.Mark, alias: str | None = None) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            how = (f"*{alias} repeats {values:,} values, which makes the file hold more than {MAX_VALUES:,} (aliases "
                   "that repeat aliases grow it exponentially); write the repeated parts out, or repeat less"
                   if alias else f"the file holds more than {MAX_VALUES:,} values; a config file needs far fewer")
            raise YamlLimitError(how, mark)
