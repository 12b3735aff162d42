"""Each page of a rest_api source checked as it arrives: a body that is not JSON, pagination that loops.

dlt's RESTClient trusts every page. A 200 whose body is an HTML error page, empty or cut short
fails later in `response.json()`, naming no request; a next cursor or link the API already gave,
or the same page served again and again, is followed forever. `PageGuard` wraps the paginator dlt
builds from the settings (dlt takes a paginator instance wherever it takes a paginator's settings):

- before the first request of a walk it adds a response hook that parses a 2xx body once (orjson, or
  the standard parser for what orjson refuses: integers beyond 64 bits, NaN) and keeps the result as
  the answer of `response.json()`, which dlt's paginator and data selector then read without parsing
  again; it raises `UnreadablePage` for a body that does not parse as JSON; the source's retry policy retries
  that like a 5xx (`retry_unreadable_page`, used by helpers.py), and the last attempt's error names the request,
  the page, the status and the start of the body;
- after each page it raises `PaginationLoop` when the next request is one the walk already made,
  or when the page holds the same rows as an earlier page: the source stops before asking again;
- dlt's own status check (an `HTTPError` quoting the URL, and the body when dlt is told to) masks
  only query parameters with well-known names: its errors leave with the source's secrets masked too.

A walk is one `RESTClient.paginate` call: one endpoint, or a child endpoint for one parent row.
"""

from __future__ import annotations

import hashlib
import json as stdlib_json
from collections.abc import Callable
from typing import Any

import orjson
from dlt.common import json, logger
from dlt.sources.helpers.rest_client.detector import PaginatorFactory, single_entity_path
from dlt.sources.helpers.rest_client.exceptions import PaginatorNotFound
from dlt.sources.helpers.rest_client.paginators import (
    BaseNextUrlPaginator,
    BasePaginator,
    BaseReferencePaginator,
    RangePaginator,
)
from dlt.sources.rest_api.config_setup import create_paginator
from requests import HTTPError, PreparedRequest, Request, Response
from requests.exceptions import InvalidJSONError

from connectors.rest_api.redaction import Redaction

BODY_START = 120  # characters of a body quoted in an error
CURSOR_START = 80  # characters of a cursor quoted in an error
LOOP_ADVICE = (
    "stopped before asking again; nothing of this extract is loaded, so no page is loaded twice. Check the "
    "endpoint's `paginator` settings against the API's documentation, or report the loop to the API's provider"
)


class UnreadablePage(InvalidJSONError):
    """A 2xx answer whose body does not parse as JSON."""

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message, response=response)
        self.transient = response.status_code != 204  # No Content is what the API means to send


class PaginationLoop(RuntimeError):
    """The API leads a walk back to a page it already served."""


def retry_unreadable_page(response: Response | None, exception: BaseException | None) -> bool:
    """dlt's retry condition: an unreadable page is retried like a 5xx, under the same policy."""
    return isinstance(exception, UnreadablePage) and exception.transient


class PageGuard(BasePaginator):
    """A paginator from the settings (None or `auto`: detected from the first page, as dlt does), guarded."""

    def __init__(self, paginator: Any, redaction: Redaction) -> None:
        super().__init__()
        self.inner: BasePaginator | None = create_paginator(paginator)
        self.redaction = redaction
        self._start_walk()

    def _start_walk(self) -> None:
        self._page = 1  # the page being fetched, or just fetched
        self._position = ""  # its cursor, offset or page number, as the paginator sent it
        self._url: str | None = None  # its URL, as answered
        self._requests: dict[tuple, int] = {}  # request -> the page it fetched
        self._rows: dict[bytes, int] = {}  # digest of a page's rows -> the page
        self._unreadable = 0  # answers to this page that were not JSON

    @property
    def has_next_page(self) -> bool:
        return self.inner.has_next_page if self.inner else True

    def init_request(self, request: Request) -> None:
        # A paginator given per endpoint serves every walk of it (each parent row's, too): state is per walk.
        self._start_walk()
        if self.inner:
            self.inner.init_request(request)
        # The request's own hook list (requests copies it), after dlt's status check and response actions.
        request.hooks["response"] = [self._masking_secrets(hook) for hook in request.hooks["response"]]
        request.hooks["response"].append(self._check_body)
        self._requests[_request_key(request)] = self._page

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        if self.inner is None:
            self.inner = self._detect(response)
        self.inner.update_state(response, data)
        self._url = response.url
        if data:  # empty pages are alike by nature
            digest = hashlib.blake2b(json.dumpb(data), digest_size=16).digest()
            first = self._rows.setdefault(digest, self._page)
            if first != self._page:
                raise PaginationLoop(f"{self._where(response.request.method)} holds the same {len(data)} rows as "
                                     f"page {first}{self._ignored_param()}; {LOOP_ADVICE}")

    def update_request(self, request: Request) -> None:
        self.inner.update_request(request)
        if not self.inner.has_next_page:  # dlt updates the request after the last page too; it is not sent
            return
        first = self._requests.setdefault(_request_key(request), self._page + 1)
        if first != self._page + 1:
            raise PaginationLoop(f"{self._where(request.method)} {self._points_back(request, first)}; {LOOP_ADVICE}")
        self._page += 1
        self._position = self._sent_position()
        self._unreadable = 0

    def _masking_secrets(self, hook: Callable) -> Callable:
        """hook, raising its HTTPError again with the source's secrets masked in the message."""
        if getattr(hook, "masks_secrets", False):
            return hook

        def masked(response: Response, *args: Any, **kwargs: Any) -> Any:
            try:
                return hook(response, *args, **kwargs)
            except HTTPError as error:
                failed = error
            # Raised outside the handler: the original, which quotes the secret, is not even its context
            # (dlt's run trace keeps every exception of a chain, suppressed or not).
            raise type(failed)(self.redaction.message(str(failed), response.url), response=failed.response,
                               request=failed.request)

        masked.masks_secrets = True  # type: ignore[attr-defined]
        return masked

    def _check_body(self, response: Response, *args: Any, **kwargs: Any) -> None:
        if not 200 <= response.status_code < 300:
            return
        try:
            parse_once(response)
        except ValueError as error:
            self._unreadable += 1
            raise UnreadablePage(self._unreadable_message(response, error), response) from None

    def _unreadable_message(self, response: Response, error: ValueError) -> str:
        kind = response.headers.get("Content-Type") or "no Content-Type"
        message = (f"{self._where(response.request.method, response.url)} answered {response.status_code} "
                   f"{response.reason} ({kind}, {len(response.content)} bytes) with a body that is not JSON "
                   f"({error}): {self._body_start(response.content)}; nothing of this extract is loaded. ")
        if response.status_code == 204:
            return message + ("No Content is not asked for again; if the endpoint has nothing to send, "
                              "add the response action `{status_code: 204, action: ignore}`")
        return message + (f"{self._unreadable} answer(s) to this page were not JSON, asked for again as the "
                          "source's `retries` (or dlt's RUNTIME__REQUEST_* settings) allow. If the API sends such "
                          "pages now and then, allow more attempts; if always, check the endpoint's path and auth")

    def _detect(self, response: Response) -> BasePaginator:
        paginator, score = PaginatorFactory().create_paginator(response)
        if paginator is None:
            raise PaginatorNotFound(f"no paginator fits the answer of {self.redaction.url(response.url)}; "
                                    "set the endpoint's `paginator`")
        logger.info(f"Detected paginator {paginator} (score {score}) at {self.redaction.url(response.url)}")
        return paginator

    def _where(self, method: str | None, url: str | None = None) -> str:
        """Which page of which request, e.g. `page 2 (cursor '3') of GET https://api.example.com/orders?cursor=3`."""
        return f"page {self._page}{self._position} of {method or 'GET'} {self.redaction.url(url or self._url)}"

    def _sent_position(self) -> str:
        inner = self.inner
        if isinstance(inner, BaseNextUrlPaginator):  # a link is its own position
            return ""
        if isinstance(inner, BaseReferencePaginator):
            return f" (cursor {self._cursor(inner._next_reference)})"
        if isinstance(inner, RangePaginator):
            return f" (`{inner.param_name or inner.param_body_path}`={inner.current_value})"
        return ""

    def _points_back(self, request: Request, first: int) -> str:
        inner = self.inner
        if isinstance(inner, BaseNextUrlPaginator):
            return f"links to {self.redaction.url(request.url)} as the next page: that is page {first}"
        if isinstance(inner, BaseReferencePaginator):
            return (f"gives the next cursor {self._cursor(inner._next_reference)}, "
                    f"which page {first} was already fetched with")
        return f"leads to {self.redaction.url(_prepared_url(request))} next: that is page {first}"

    def _ignored_param(self) -> str:
        if isinstance(self.inner, RangePaginator):
            param = self.inner.param_name or self.inner.param_body_path
            return f": the API seems to ignore `{param}`, or to repeat its last page past the end"
        return ""

    def _cursor(self, cursor: Any) -> str:
        text = str(cursor)
        text = text if len(text) <= CURSOR_START else text[:CURSOR_START] + "…"
        return repr(self.redaction.text(text))

    def _body_start(self, body: bytes) -> str:
        if not body.strip():
            return "the body is empty"
        text = " ".join(body[: BODY_START * 4].decode("utf-8", "replace").split())[:BODY_START]
        ellipsis = "…" if len(body) > len(text) else ""
        return f"it starts {self.redaction.text(text)!r}{ellipsis}"

    def __str__(self) -> str:
        return f"{self.inner or 'auto'} (guarded)"


def parse_once(response: Response) -> Any:
    """The body as JSON, parsed now and given back by every later `response.json()` call."""
    try:
        parsed = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        parsed = response.json()  # requests' parser: what orjson refuses, or the ValueError of a body that is not JSON
    response.json = lambda **kwargs: parsed  # type: ignore[method-assign]
    return parsed


def _prepared_url(request: Request) -> str:
    prepared = PreparedRequest()
    prepared.prepare_url(request.url, request.params)
    return prepared.url


def _request_key(request: Request) -> tuple:
    """What makes two requests of a walk the same request: method, URL with query, body."""
    body = stdlib_json.dumps([request.json, request.data], sort_keys=True, default=str)
    return (str(request.method).upper(), _prepared_url(request), body)


def with_page_guards(client: dict, resources: list, resource_defaults: dict | None,
                     redaction: Redaction) -> tuple[dict, list]:
    """Copies of client and resources where every paginator is guarded, each endpoint's an instance of its own.

    The client's paginator (detected when not set) serves the endpoints that set none; dlt copies it
    for each walk. One set in `resource_defaults` is guarded per resource: an instance shared by
    endpoints would mix their walks.
    """
    client = {**client, "paginator": PageGuard(client.get("paginator"), redaction)}
    defaults = (resource_defaults or {}).get("endpoint")
    default = defaults.get("paginator") if isinstance(defaults, dict) else None
    return client, [_guarded_resource(resource, default, redaction) for resource in resources]


def _guarded_resource(resource: Any, default: Any, redaction: Redaction) -> Any:
    if isinstance(resource, str):
        resource = {"name": resource}
    endpoint = resource.get("endpoint") or {}
    endpoint = {"path": endpoint} if isinstance(endpoint, str) else endpoint
    paginator = endpoint.get("paginator", default)
    if paginator is None and single_entity_path(endpoint.get("path") or resource["name"]):
        paginator = "single_page"  # what dlt gives an endpoint like `customers/{id}` that sets no paginator
    if paginator is None or create_paginator(paginator) is None:  # `auto`: the client's paginator serves it
        return resource
    return {**resource, "endpoint": {**endpoint, "paginator": PageGuard(paginator, redaction)}}
