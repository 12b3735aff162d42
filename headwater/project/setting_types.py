"""A connector setting checked against its declared type, each mismatch reported at its own key.

A connector's settings are the typed parameters of its source function (TypedDicts for nested
settings, see connectors/*/settings.py). pydantic validates a value against that type; this module
turns each of its errors into a Problem whose key path leads to the very key at fault, so the message
carries that key's line: `sources.api.settings.client.paginator.type: unknown type 'pages'; allowed: ...`.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import Tag, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import NotRequired, Required, get_type_hints, is_typeddict  # also typing_extensions' TypedDict

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.project.scalars import quoted_boolean, quoted_boolean_message

# pydantic error types that mean "a value of another kind", and the kind that was expected.
KINDS = {"string_type": "str", "int_type": "int", "int_parsing": "int", "int_from_float": "int",
         "float_type": "number", "float_parsing": "number", "bool_type": "true or false",
         "bool_parsing": "true or false", "dict_type": "a mapping", "list_type": "a list", "model_type": "a mapping",
         "none_required": "null"}
_QUOTED = re.compile(r"'([^']*)'")
_MISSING = object()


def check_setting(annotation: Any, value: Any, resolved: Any, type_name: str, where: KeyPath, strict: bool,
                  unresolved: Callable[[Any], bool], problems: list[Problem]) -> None:
    """Validate ``resolved`` (``value`` with its ${NAME} references replaced) against ``annotation``.

    ``unresolved(raw)`` tells whether a raw value holds a reference that has no value yet (set later by
    the example, or reported as not set): its own errors are left out, its value is checked once known.
    """
    if annotation is None or annotation is Any or isinstance(annotation, str):
        return
    try:
        adapter = TypeAdapter(annotation)
    except Exception:  # a type pydantic cannot describe (an engine, a credentials class): not checked here
        return
    try:
        adapter.validate_python(resolved, strict=strict)
    except ValidationError as error:
        found = [_Located.of(annotation, resolved, entry) for entry in error.errors()]
        seen = set()
        for located in _without_losing_branches(found):
            raw = _value_at(value, located.path)
            if located.entry["type"] not in ("missing", "extra_forbidden") and unresolved(raw):
                continue
            problem = Problem((*where, *located.key_path), located.message(type_name))
            if (problem.key_path, problem.message) not in seen:
                seen.add((problem.key_path, problem.message))
                problems.append(problem)


class _Located:
    """One pydantic error, its location followed through the value and the type side by side."""

    def __init__(self, entry: dict, path: list, branches: list, container: Any, annotation: Any, value: Any,
                 declared: Any = None):
        self.entry = entry
        self.path = path  # keys and indexes into the value
        self.branches = branches  # (length of path, branch label) at each union on the way
        self.container = container  # the TypedDict that holds the last key of path, if any
        self.annotation = annotation  # the type at the end of the location, when known
        self.value = value  # the value at path (_MISSING for a missing key)
        self.declared = declared  # the last key's type as its TypedDict declares it, Field(examples=...) included

    @classmethod
    def of(cls, annotation: Any, value: Any, entry: dict) -> _Located:
        path: list = []
        branches: list = []
        container = declared = None
        for part in entry["loc"]:
            annotation = _bare(annotation)
            if _is_union(annotation):
                branches.append((len(path), part))
                annotation = _member(annotation, part)
                continue
            if is_typeddict(annotation):
                container = annotation
                declared = get_type_hints(annotation, include_extras=True).get(part)
                annotation = _bare(declared)
            elif typing.get_origin(annotation) in (list, tuple, set, frozenset):
                annotation = (typing.get_args(annotation) or (None,))[0]
            elif typing.get_origin(annotation) is dict:
                annotation = (typing.get_args(annotation) or (None, None))[1]
            elif not _has(value, part):  # an unknown type: what the value does not have is a label
                branches.append((len(path), part))
                continue
            else:
                annotation = None
            path.append(part)
            value = _child(value, part)
        return cls(entry, path, branches, container, annotation, value, declared)

    @property
    def key_path(self) -> tuple:
        kind = self.entry["type"]
        if kind == "missing":
            return tuple(self.path[:-1])
        if kind == "union_tag_invalid" and isinstance(self.value, dict):
            key = _tag_key(self.entry, self.value)
            return (*self.path, key) if key else tuple(self.path)
        return tuple(self.path)

    @property
    def is_kind_mismatch(self) -> bool:
        """The value is not even of the branch's kind (a mapping where text was expected, ...)."""
        if not self.branches or self.branches[-1][0] != len(self.path):
            return False
        return self.entry["type"] in KINDS or self.entry["type"] == "literal_error"

    def message(self, type_name: str) -> str:
        kind, ctx = self.entry["type"], self.entry.get("ctx") or {}
        name = str(self.path[-1]) if self.path and isinstance(self.path[-1], str) else None
        if quoted_boolean(self.value) and (kind in ("bool_type", "bool_parsing") or self.entry.get("takes_bool")):
            return quoted_boolean_message(self.value)
        if kind == "missing":
            return f"needs {name!r}; add `{name}: {_example(self.declared)}`"
        if kind == "extra_forbidden":
            allowed = list(get_type_hints(self.container)) if self.container else []
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return f"unknown key; {hint}allowed: {', '.join(sorted(allowed))}" if allowed else "unknown key"
        if kind == "literal_error":
            return f"unknown {name or 'value'} {_shown(self.value)}; allowed: {_listed(ctx.get('expected', ''))}"
        if kind == "union_tag_invalid":
            key = _tag_key(self.entry, self.value) or "type"
            return f"unknown {key} {ctx.get('tag')!r}; allowed: {', '.join(self.tags())}"
        if kind == "union_tag_not_found":
            key = _discriminator_name(ctx)
            if not isinstance(self.value, dict):
                return f"expected a mapping with `{key}:` ({', '.join(self.tags())}), got {_got(self.value)}"
            return f"needs {key!r}; add `{key}: ...` ({', '.join(self.tags())})"
        if kind == "value_error":
            return str(self.entry["msg"]).removeprefix("Value error, ")
        if kind in KINDS:
            if not self.path:  # the setting itself: its whole declared type says most
                return f"expected {type_name}, got {_got(self.value)} ({self.entry['msg'].lower()})"
            return f"expected {KINDS[kind]}, got {_got(self.value)}"
        return f"{self.entry['msg'][:1].lower()}{self.entry['msg'][1:]}, got {_got(self.value)}"

    def tags(self) -> list[str]:
        """The tags of the mapping members of the union at this location (tags of plain values left out)."""
        union = _bare(self.annotation)
        tags = []
        for member in typing.get_args(union) if _is_union(union) else ():
            tag = _tag_of(member)
            if tag is not None and is_typeddict(_bare(member)):
                tags.append(tag)
        return tags or _QUOTED.findall(str((self.entry.get("ctx") or {}).get("expected_tags", "")))


def _without_losing_branches(found: list[_Located]) -> list[_Located]:
    """At each union, the errors of the branches that fit the value's kind; pydantic reports every branch.

    A mapping given for `str | FileTable` fails `str` only by its kind and `FileTable` by what is inside:
    the second says what to fix. When every branch fails by kind, one message names them all.
    """
    deeper = {tuple(item.path[: item.branches[-1][0]])
              for item in found if item.branches and not item.is_kind_mismatch}
    kept, merged = [], {}
    for item in found:
        if not item.is_kind_mismatch:
            kept.append(item)
        elif tuple(item.path) not in deeper:
            merged.setdefault(tuple(item.path), []).append(item)
    for items in merged.values():
        first = items[0]
        if len(items) == 1:  # the only branch tried (a discriminated union): its own message says most
            kept.append(first)
            continue
        labels = " or ".join(dict.fromkeys(str(item.branches[-1][1]) for item in items))
        entry = {"type": "union", "msg": f"Expected {labels}", "loc": first.entry["loc"],
                 "takes_bool": any(item.entry["type"] in ("bool_type", "bool_parsing") for item in items)}
        kept.append(_Located(entry, first.path, first.branches, first.container, first.annotation, first.value))
    return kept


def _example(declared: Any) -> str:
    """The first of a key's Field(examples=[...]), as YAML would show it; `...` when it has none."""
    while typing.get_origin(declared) in (typing.Annotated, Required, NotRequired):
        for extra in getattr(declared, "__metadata__", ()):
            if isinstance(extra, FieldInfo) and extra.examples:
                return str(extra.examples[0])
        declared = typing.get_args(declared)[0]
    return "..."


def _bare(annotation: Any) -> Any:
    """The type without Annotated, Required/NotRequired and a None member."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated or origin in (Required, NotRequired):
            annotation = typing.get_args(annotation)[0]
            continue
        if _is_union(annotation):
            members = [member for member in typing.get_args(annotation) if member is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _member(union: Any, label: Any) -> Any:
    """The member of a union that pydantic names ``label`` in an error's location: by its Tag, or its name."""
    for member in typing.get_args(union):
        if _tag_of(member) == label or getattr(_bare(member), "__name__", None) == label:
            return member
        if str(_bare(member)).replace("typing.", "") == label:
            return member
    return None


def _tag_of(member: Any) -> str | None:
    if typing.get_origin(member) is typing.Annotated:
        for extra in member.__metadata__:
            if isinstance(extra, Tag):
                return extra.tag
    return None


def _tag_key(entry: dict, value: Any) -> str | None:
    """The key of a mapping whose value chose (or failed to choose) the union member."""
    tag = (entry.get("ctx") or {}).get("tag")
    if isinstance(value, dict):
        for key, item in value.items():
            if item == tag:
                return str(key)
    return None


def _discriminator_name(ctx: dict) -> str:
    # pydantic quotes a field discriminator ('type') and calls a function one by its name (type()): the
    # discriminator functions of connector settings are named after the key they read.
    return str(ctx.get("discriminator", "type")).strip("'").removesuffix("()")


def _has(value: Any, part: Any) -> bool:
    if isinstance(value, dict):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def _child(value: Any, part: Any) -> Any:
    return value[part] if _has(value, part) else _MISSING


def _value_at(value: Any, path: list) -> Any:
    for part in path:
        value = _child(value, part)
    return value


def _listed(expected: str) -> str:
    return ", ".join(_QUOTED.findall(expected)) or expected


def _got(value: Any) -> str:
    return "nothing" if value is _MISSING else f"{type(value).__name__} {_shown(value)}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

