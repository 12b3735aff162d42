"""What a rest_api source's errors must never show: its secrets, in URLs and in text quoted from the API.

dlt masks query parameters with well-known names (api_key, token, ...) in the URLs it reports. A
source's own secrets are known from its settings, so they are masked wherever they appear (an API
may echo a key back in an error page or a next link), and the query parameter its API key travels
in is masked whatever it is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from dlt.sources.helpers.rest_client.redaction import SENSITIVE_PARAMS, sanitize_url

from headwater.project.config import SECRET_KEYS

MASK = "***"
SHORTEST_SECRET = 4  # shorter values would mask ordinary words


@dataclass(frozen=True)
class Redaction:
    secrets: frozenset[str] = frozenset()
    query_params: frozenset[str] = frozenset()  # names a secret travels under in a query string

    @classmethod
    def of_settings(cls, *settings: Any) -> Redaction:
        """The secrets of a source's settings (values of secret-named keys) and its API key's query parameter."""
        secrets: set[str] = set()
        params: set[str] = set()

        def collect(value: Any, secret: bool) -> None:
            if isinstance(value, dict):
                if value.get("type") == "api_key" and value.get("location") == "query":
                    params.add(str(value.get("name", "Authorization")))  # dlt's default name for an API key
                for key, item in value.items():
                    collect(item, secret or str(key).lower() in SECRET_KEYS)
            elif isinstance(value, list):
                for item in value:
                    collect(item, secret)
            elif secret and isinstance(value, str) and len(value) >= SHORTEST_SECRET:
                secrets.add(value)

        for value in settings:
            collect(value, False)
        return cls(frozenset(secrets), frozenset(params))

    def url(self, url: str | None) -> str:
        if not url:
            return "(no URL)"
        return self.text(sanitize_url(url, SENSITIVE_PARAMS | self.query_params))

    def message(self, text: str, url: str | None) -> str:
        """An error message quoting url as dlt sanitised it (well-known parameter names only), fully masked."""
        if url:
            text = text.replace(sanitize_url(url), self.url(url))
        return self.text(text)

    def text(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):  # a secret inside another goes last
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, MASK)
        return text
