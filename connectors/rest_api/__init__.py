"""Any JSON HTTP API, described declaratively in dlt's rest_api format (client, resources, defaults)."""

from __future__ import annotations

import dlt
from dlt.sources.rest_api import rest_api_resources


@dlt.source(name="rest_api")
def rest_api(client: dict, resources: list, resource_defaults: dict | None = None):
    """Load the endpoints of a REST API: pagination, auth and incremental parameters as dlt's rest_api declares them.

    Args:
        client: base_url, auth (bearer, api_key, http_basic, oauth2_client_credentials) and paginator.
        resources: One entry per endpoint: name, endpoint path, params (with an `incremental` param), primary_key.
        resource_defaults: Settings shared by every resource (e.g. write_disposition, primary_key).
    """
    config = {"client": client, "resources": resources}
    if resource_defaults:
        config["resource_defaults"] = resource_defaults
    return rest_api_resources(config)
