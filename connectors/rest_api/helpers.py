"""Per-source HTTP retry policy for the rest_api connector.

dlt retries 429, 5xx, connection errors and timeouts with exponential backoff and honours
`Retry-After`; the policy comes from dlt's runtime settings (`RUNTIME__REQUEST_MAX_ATTEMPTS`,
`RUNTIME__REQUEST_BACKOFF_FACTOR`, `RUNTIME__REQUEST_MAX_RETRY_DELAY`, `RUNTIME__REQUEST_TIMEOUT`),
which apply to every source of a run. Each source gets a session of its own here, which also
retries a page whose body is not JSON (page_guard.py), and follows the source's own `retries`
where it sets them; other sources, and dlt's shared client, are never changed.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, with_config
from requests import Session
from typing_extensions import TypedDict  # pydantic validates only typing_extensions' TypedDict on Python < 3.12

from connectors.rest_api.page_guard import retry_unreadable_page

# Auth types whose token request goes out through a session of their own.
TOKEN_AUTH_TYPES = frozenset({"oauth2_client_credentials"})


# Unknown keys are rejected when headwater.yaml is validated, so a misspelt key is not silently ignored.
@with_config(ConfigDict(extra="forbid"))
class Retries(TypedDict, total=False):
    """A source's retry policy; a key left out keeps dlt's runtime setting for it."""

    max_attempts: Annotated[int, Field(ge=1)]  # attempts in all, the first request included
    backoff_factor: Annotated[float, Field(ge=0)]  # wait after failed attempt n: backoff_factor * 2**(n-1) s
    max_delay: Annotated[float, Field(ge=0)]  # cap on any single wait, Retry-After included
    timeout: Annotated[float, Field(gt=0)]  # seconds per request


# Retries key -> the dlt Client argument it sets.
CLIENT_ARGUMENTS = {
    "max_attempts": "request_max_attempts",
    "backoff_factor": "request_backoff_factor",
    "max_delay": "request_max_retry_delay",
    "timeout": "request_timeout",
}


def retrying_session(retries: Retries) -> Session:
    """A requests session that retries as `retries` says, falling back to dlt's runtime settings per key.

    Besides dlt's conditions (429, 5xx, connection errors, timeouts), a page that is not JSON is retried.
    """
    from dlt.sources.helpers.requests import Client

    arguments = {CLIENT_ARGUMENTS[key]: value for key, value in retries.items()}
    # raise_for_status=False: dlt's RESTClient raises itself, after its response actions had their say.
    return Client(raise_for_status=False, retry_condition=retry_unreadable_page, **arguments).session


def with_session(client: dict, resources: list, session: Session) -> tuple[dict, list]:
    """Copies of client and resources whose requests, token requests included, all go through session."""
    client = {**client, "session": session}
    if isinstance(client.get("auth"), dict):
        client["auth"] = _auth_with_session(client["auth"], session)
    resources = [_resource_with_session(resource, session) for resource in resources]
    return client, resources


def _resource_with_session(resource: Any, session: Session) -> Any:
    endpoint = resource.get("endpoint") if isinstance(resource, dict) else None
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("auth"), dict):
        return resource
    return {**resource, "endpoint": {**endpoint, "auth": _auth_with_session(endpoint["auth"], session)}}


def _auth_with_session(auth: dict, session: Session) -> dict:
    # An OAuth2 token endpoint otherwise goes through dlt's process-wide client and its retry policy.
    if auth.get("type") in TOKEN_AUTH_TYPES and "session" not in auth:
        return {**auth, "session": session}
    return auth
