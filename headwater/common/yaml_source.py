"""Read YAML into plain Python values while remembering the line each key came from.

Config errors must point at a line, so the loader keeps a map from key path
(e.g. ("sources", "shop_db", "settings")) to the 1-based line of that key. Only text of a sane
size is read (headwater.common.yaml_guards): anything else is refused with a message saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from headwater.common.yaml_errors import SyntaxProblem, explain
from headwater.common.yaml_guards import GuardedLoader, YamlLimitError, binary_kind, check_size

KeyPath = tuple[str | int, ...]


@dataclass
class YamlDocument:
    path: Path
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of the key, or of its nearest enclosing key that has one."""
        for end in range(len(key_path), 0, -1):
            line = self.lines.get(tuple(key_path[:end]))
            if line is not None:
                return line
        return None


class YamlSyntaxError(ValueError):
    """The file cannot be read as YAML; ``line`` and ``column`` (1-based, when known) say where to look."""

    def __init__(self, path: Path, problem: SyntaxProblem):
        self.path, self.line, self.column, self.reason = path, problem.line, problem.column, problem.message
        where = ":".join(str(part) for part in (path, problem.line, problem.column) if part is not None)
        super().__init__(f"{where}: {problem.message}")


def read_yaml(path: Path) -> YamlDocument:
    """The file's values and the line of every key; YamlSyntaxError says what keeps it from being read."""
    text = _text(path)
    document = YamlDocument(path=path, data=None)
    try:
        node = yaml.compose(text, Loader=GuardedLoader)
        # Scalars are constructed from their nodes; the loader's own stream is never read.
        constructor = yaml.SafeLoader("")
        document.data = _build(node, (), document.lines, constructor) if node is not None else {}
    except YamlLimitError as error:
        mark = error.mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise YamlSyntaxError(path, SyntaxProblem(line, column, error.message)) from None
    except yaml.YAMLError as error:
        raise YamlSyntaxError(path, explain(error, text)) from None
    return document


def _text(path: Path) -> str:
    """The file as text: a folder, an unreadable, oversized or binary file, or bytes that are not UTF-8 are refused."""
    try:
        check_size(path.stat().st_size)
        raw = path.read_bytes()
    except YamlLimitError as error:
        raise YamlSyntaxError(path, SyntaxProblem(None, None, error.message)) from None
    except IsADirectoryError:
        raise YamlSyntaxError(path, SyntaxProblem(None, None, "is a folder, not a file; name the YAML file "
                                                              "itself")) from None
    except OSError as error:
        raise YamlSyntaxError(path, SyntaxProblem(None, None, f"cannot be read: {error.strerror or error}")) from None
    kind = binary_kind(raw)
    if kind is not None:
        raise YamlSyntaxError(path, SyntaxProblem(None, None, f"not a text YAML file: it looks like {kind}. "
                                                              "Is this the file you meant?"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line, column = before.count(b"\n") + 1, error.start - (before.rfind(b"\n") + 1) + 1
        encoding = "UTF-16 text" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "not UTF-8 text"
        message = f"{encoding} (byte 0x{raw[error.start]:02x}); save the file with the UTF-8 encoding"
        raise YamlSyntaxError(path, SyntaxProblem(line, column, message)) from None


def _build(node: yaml.Node, key_path: KeyPath, lines: dict[KeyPath, int], constructor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        _refuse_duplicate_keys(node, constructor)
        # `<<: *anchor` merge keys become the keys they stand for, placed first: a key written in the
        # mapping itself then overrides the merged one, as YAML defines.
        constructor.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            child = (*key_path, key)
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*key_path, index)
            lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, lines, constructor))
        return items
    return constructor.construct_object(node, deep=True)


def _refuse_duplicate_keys(node: yaml.MappingNode, constructor: yaml.SafeLoader) -> None:
    """A key written twice in one mapping: PyYAML keeps the last silently, ignoring all under the first."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = constructor.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"found duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
