"""Each endpoint's `data_selector` compiled once per source.

dlt's RESTClient parses a JSONPath given as text again for every page (jsonpath_ng's parser, a few
milliseconds each): a compiled path, which dlt takes wherever it takes the text, is parsed once.
"""

from __future__ import annotations

from typing import Any

from dlt.common.jsonpath import compile_path


def with_compiled_selectors(resources: list, resource_defaults: dict | None) -> tuple[list, dict | None]:
    """Copies of resources and resource_defaults whose endpoints' data selectors are compiled JSONPaths."""
    if resource_defaults is not None:
        resource_defaults = _compiled(resource_defaults)
    return [_compiled(resource) for resource in resources], resource_defaults


def _compiled(resource: Any) -> Any:
    endpoint = resource.get("endpoint") if isinstance(resource, dict) else None
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("data_selector"), str):
        return resource
    return {**resource, "endpoint": {**endpoint, "data_selector": compile_path(endpoint["data_selector"])}}
