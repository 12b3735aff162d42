"""Any JSON HTTP API, described declaratively in dlt's rest_api format (client, resources, defaults)."""

from __future__ import annotations

import dlt
from dlt.sources.rest_api import rest_api_resources

from connectors.rest_api.arrow_pages import with_arrow_pages
from connectors.rest_api.helpers import Retries, retrying_session, with_session
from connectors.rest_api.page_guard import with_page_guards
from connectors.rest_api.redaction import Redaction
from connectors.rest_api.selectors import with_compiled_selectors
from connectors.rest_api.settings import Client, ResourceDefaults, Resources


@dlt.source(name="rest_api")
def rest_api(
    client: Client,
    resources: Resources,
    resource_defaults: ResourceDefaults | None = None,
    retries: Retries | None = None,
    arrow_pages: bool = True,
):
    """Load the endpoints of a REST API: pagination, auth and incremental parameters as dlt's rest_api declares them.

    Args:
        client: base_url, headers, auth (bearer, api_key, http_basic, oauth2_client_credentials) and paginator
            (cursor, json_link, header_link, offset, page_number, single_page).
        resources: One entry per endpoint: name, endpoint (path, params, data_selector, paginator), primary_key.
            A param `{type: incremental, cursor_path, initial_value}` asks only for data newer than the last
            run; a param `{type: resolve, resource, field}` calls the endpoint once per row of a parent resource.
        resource_defaults: Settings shared by every resource (e.g. write_disposition, primary_key).
        retries: This source's retry policy for 429, 5xx, pages that are not JSON and connection errors:
            max_attempts, backoff_factor, max_delay, timeout (seconds). Keys left out, or no `retries` at all,
            follow dlt's runtime settings (RUNTIME__REQUEST_MAX_ATTEMPTS, ...), which apply to every source.
        arrow_pages: Each page of flat records (no nested object or array) becomes one Arrow table typed as dlt
            types those records, which dlt writes without normalizing them row by row. Pages with nested values
            stay rows, as do the records of an endpoint other endpoints resolve from. false: every page as rows.

    A page that is still not JSON after the last attempt, or pagination that leads back to a page
    already fetched, fails the source with an error naming the request and the page.
    """
    redaction = Redaction.of_settings(client, resources, resource_defaults)
    client, resources = with_session(client, resources, retrying_session(retries or {}))
    client, resources = with_page_guards(client, resources, resource_defaults, redaction)
    resources, resource_defaults = with_compiled_selectors(resources, resource_defaults)
    config = {"client": client, "resources": resources}
    if resource_defaults:
        config["resource_defaults"] = resource_defaults
    resources = rest_api_resources(config)
    return with_arrow_pages(resources) if arrow_pages else resources
