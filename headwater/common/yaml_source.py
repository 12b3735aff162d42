"""Read YAML into plain Python values while remembering the line each key came from.

Config errors must point at a line, so the loader keeps a map from key path
(e.g. ("sources", "shop_db", "settings")) to the 1-based line of that key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    pass


def read_yaml(path: Path) -> YamlDocument:
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise YamlSyntaxError(f"{where}: not valid YAML ({getattr(error, 'problem', error)}).") from None
    document = YamlDocument(path=path, data=None)
    # Scalars are constructed from their nodes; the loader's own stream is never read.
    constructor = yaml.SafeLoader("")
    document.data = _build(node, (), document.lines, constructor) if node is not None else {}
    return document


def _build(node: yaml.Node, key_path: KeyPath, lines: dict[KeyPath, int], constructor: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # `<<: *anchor` merge keys become the keys they stand for
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
