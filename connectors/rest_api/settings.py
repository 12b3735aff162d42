"""The rest_api connector's settings as types, checked when headwater.yaml is read.

They follow dlt's rest_api config (``dlt.sources.rest_api.typing``) for what a YAML file can hold:
plain values, no paginator or auth objects. Unknown keys are rejected, so a misspelt key fails
before a run instead of being ignored or failing half-way through one. The paginator and auth
types are dlt's own, so a type dlt does not know is named with the ones it does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args
from urllib.parse import urlsplit

from dlt.sources.helpers.rest_client.auth import TApiKeyLocation
from dlt.sources.helpers.rest_client.typing import HTTPMethodBasic
from dlt.sources.rest_api.typing import PaginatorType
from pydantic import AfterValidator, ConfigDict, Discriminator, Field, Tag, with_config
from typing_extensions import NotRequired, Required, TypedDict  # pydantic needs typing_extensions' on Python < 3.12

PAGINATOR_TYPES = get_args(PaginatorType)  # dlt's, in dlt's order
Strict = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL; write it whole, e.g. https://api.example.com/v1")
    return value


def _some_resources(value: list) -> list:
    if not value:
        raise ValueError("lists no endpoint; add one, e.g. `- name: orders`")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
JsonPath = str  # e.g. data, meta.next, results[*]


def _e(example: Any) -> Any:
    """What a missing key's message suggests writing."""
    return Field(examples=[example])


def _kind(tag_key: str, default: str | None = None):
    """A union discriminated by ``tag_key`` of a mapping (``default`` when left out); a non-mapping has none."""

    def tag(value: Any) -> str | None:
        return value.get(tag_key, default) if isinstance(value, dict) else None

    tag.__name__ = tag.__qualname__ = tag_key  # how pydantic names the discriminator, so messages name the key
    return Discriminator(tag)


def _by_shape(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "text"


# Paginators: `paginator: single_page`, or a mapping with `type` and that type's options.

@with_config(Strict)
class CursorPaginator(TypedDict, total=False):
    type: Required[Literal["cursor"]]
    cursor_path: JsonPath
    cursor_param: str
    cursor_body_path: str
    stop_after_empty_page: bool
    has_more_path: JsonPath


@with_config(Strict)
class JsonLinkPaginator(TypedDict, total=False):
    type: Required[Literal["json_link", "json_response"]]
    next_url_path: JsonPath


@with_config(Strict)
class HeaderLinkPaginator(TypedDict, total=False):
    type: Required[Literal["header_link"]]
    links_next_key: str


@with_config(Strict)
class HeaderCursorPaginator(TypedDict, total=False):
    type: Required[Literal["header_cursor"]]
    cursor_key: str
    cursor_param: str


@with_config(Strict)
class OffsetPaginator(TypedDict, total=False):
    type: Required[Literal["offset"]]
    limit: Required[Annotated[int, _e(100)]]
    offset: int
    offset_param: str
    offset_body_path: str
    limit_param: str
    limit_body_path: str
    total_path: JsonPath | None
    maximum_offset: int
    stop_after_empty_page: bool
    has_more_path: JsonPath


@with_config(Strict)
class PageNumberPaginator(TypedDict, total=False):
    type: Required[Literal["page_number"]]
    base_page: int
    page: int
    page_param: str
    page_body_path: str
    total_path: JsonPath | None
    maximum_page: int
    stop_after_empty_page: bool
    has_more_path: JsonPath


@with_config(Strict)
class PlainPaginator(TypedDict):
    type: Literal["single_page", "auto"]


# A mapping without `type` is refused: dlt would take it for `auto` and silently ignore its options.
_OPTIONS = {"cursor": CursorPaginator, "json_link": JsonLinkPaginator, "json_response": JsonLinkPaginator,
            "header_link": HeaderLinkPaginator, "header_cursor": HeaderCursorPaginator, "offset": OffsetPaginator,
            "page_number": PageNumberPaginator, "single_page": PlainPaginator, "auto": PlainPaginator}
PAGINATOR_OPTIONS = {name: _OPTIONS[name] for name in PAGINATOR_TYPES}
PaginatorName = Literal[PAGINATOR_TYPES]
PaginatorOptions = Annotated[
    Union[tuple(Annotated[options, Tag(name)] for name, options in PAGINATOR_OPTIONS.items())],
    _kind("type"),
]
Paginator = Annotated[
    Annotated[PaginatorName, Tag("text")] | Annotated[PaginatorOptions, Tag("mapping")], Discriminator(_by_shape)
]


# Auth: a mapping with `type` (bearer when left out) and that type's keys; secrets are ${NAME} references.

@with_config(Strict)
class BearerAuth(TypedDict):
    type: NotRequired[Literal["bearer"]]
    token: Annotated[str, _e("${API_TOKEN}")]


@with_config(Strict)
class ApiKeyAuth(TypedDict, total=False):
    type: Required[Literal["api_key"]]
    api_key: Required[Annotated[str, _e("${API_KEY}")]]
    name: str
    location: Literal[get_args(TApiKeyLocation)]


@with_config(Strict)
class HttpBasicAuth(TypedDict):
    type: Literal["http_basic"]
    username: str
    password: Annotated[str, _e("${API_PASSWORD}")]


@with_config(Strict)
class OAuth2ClientCredentials(TypedDict, total=False):
    type: Required[Literal["oauth2_client_credentials"]]
    access_token_url: Required[Annotated[HttpUrl, _e("https://auth.example.com/oauth/token")]]
    client_id: Required[str]
    client_secret: Required[Annotated[str, _e("${API_CLIENT_SECRET}")]]
    access_token: str
    access_token_request_data: dict[str, Any]
    default_token_expiration: int


Auth = Annotated[
    Annotated[BearerAuth, Tag("bearer")] | Annotated[ApiKeyAuth, Tag("api_key")]
    | Annotated[HttpBasicAuth, Tag("http_basic")]
    | Annotated[OAuth2ClientCredentials, Tag("oauth2_client_credentials")],
    _kind("type", "bearer"),
]


# Endpoint params: plain values, or `{type: incremental, ...}` / `{type: resolve, ...}`.

@with_config(Strict)
class _CursorOptions(TypedDict, total=False):
    """What dlt's incremental takes, however the cursor is sent (as a param, or as an `incremental:` block)."""

    initial_value: Any
    end_value: Any
    row_order: Literal["asc", "desc"]
    allow_external_schedulers: bool
    lag: float
    on_cursor_value_missing: Literal["raise", "include", "exclude"]
    range_start: Literal["open", "closed"]
    range_end: Literal["open", "closed"]
    last_value_func: str
    primary_key: str | list[str]


@with_config(Strict)
class IncrementalParam(_CursorOptions, total=False):
    type: Required[Literal["incremental"]]
    cursor_path: Required[Annotated[JsonPath, _e("updated_at")]]


@with_config(Strict)
class ResolveParam(TypedDict):
    type: Literal["resolve"]
    resource: Annotated[str, _e("customers")]
    field: Annotated[JsonPath, _e("id")]


def _param_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type")  # a mapping without a known `type` is neither: dlt refuses it too
    return "value"


_param_kind.__name__ = _param_kind.__qualname__ = "type"
Param = Annotated[
    Annotated[IncrementalParam, Tag("incremental")] | Annotated[ResolveParam, Tag("resolve")]
    | Annotated[Any, Tag("value")],
    Discriminator(_param_kind),
]


@with_config(Strict)
class Incremental(_CursorOptions, total=False):
    """An endpoint's `incremental:` block: the cursor sent as start_param (and end_param)."""

    start_param: str
    end_param: str
    cursor_path: JsonPath


@with_config(Strict)
class ResponseAction(TypedDict, total=False):
    status_code: int | str
    content: str
    action: str


@with_config(Strict)
class Endpoint(TypedDict, total=False):
    path: str
    method: Literal[get_args(HTTPMethodBasic)]
    params: dict[str, Param]
    json: dict[str, Any]
    data: Any
    paginator: Paginator
    data_selector: JsonPath
    response_actions: list[ResponseAction]
    incremental: Incremental
    auth: Auth
    headers: dict[str, Any]


@with_config(Strict)
class ResourceDefaults(TypedDict, total=False):
    """Settings shared by every resource: dlt's resource hints, and endpoint options."""

    endpoint: Annotated[Annotated[str, Tag("text")] | Annotated[Endpoint, Tag("mapping")], Discriminator(_by_shape)]
    include_from_parent: list[str]
    write_disposition: Any
    primary_key: str | list[str]
    merge_key: str | list[str]
    columns: Any
    schema_contract: Any
    table_format: Any
    file_format: Any
    references: Any
    table_name: str
    parent_table_name: str
    nested_hints: Any
    max_table_nesting: int
    selected: bool
    parallelized: bool


@with_config(Strict)
class Resource(ResourceDefaults, total=False):
    """One endpoint; its path is `name` unless `endpoint` says otherwise."""

    name: Required[Annotated[str, _e("orders")]]


@with_config(Strict)
class Client(TypedDict, total=False):
    base_url: Required[Annotated[HttpUrl, _e("https://api.example.com/v1")]]
    headers: dict[str, str]
    auth: Auth
    paginator: Paginator


Resources = Annotated[
    list[Annotated[Annotated[str, Tag("text")] | Annotated[Resource, Tag("mapping")], Discriminator(_by_shape)]],
    AfterValidator(_some_resources),
]
