"""The connector registry: what register() accepts, what it refuses, and how each refusal reads."""

from __future__ import annotations

from typing import Literal

import dlt
import pytest

from headwater.plugins.connectors import ConnectorRegistry, Plugin

ACME = Plugin(name="acme", package="headwater-acme", version="1.2.0")
OTHER = Plugin(name="other", package="headwater-other", version="0.1.0")


@dlt.source
def tickets(base_url: str, api_key: str = dlt.secrets.value, page_size: int = 100,
            region: Literal["eu", "us"] = "eu"):
    """Support tickets from the Acme helpdesk.

    Longer text that is not part of the one-line description.
    """
    yield dlt.resource([{"id": 1}], name="tickets")


@dlt.resource(primary_key="id")
def events(since: str = dlt.config.value):
    yield {"id": 1}


def plain_function(base_url: str):
    return []


def test_register_describes_a_connector_from_its_signature_and_docstring():
    registry = ConnectorRegistry()
    registry.registrar(ACME)(
        "acme_tickets", tickets, docs_url="https://example.org/acme", primary_keys={"tickets": "id"},
        cursors={"tickets": "updated_at"}, pii={"tickets": ["email"]}, secrets=["base_url"],
    )
    connector = registry.get("acme_tickets")
    assert registry.problems == []
    assert connector.description == "Support tickets from the Acme helpdesk."
    assert (connector.plugin.package, connector.plugin.version) == ("headwater-acme", "1.2.0")
    assert (connector.primary_keys, connector.cursors, connector.pii) == (
        {"tickets": "id"}, {"tickets": "updated_at"}, {"tickets": ["email"]},
    )
    settings = [(s.name, s.type_name, s.required, s.secret, s.default) for s in connector.settings()]
    assert settings == [
        ("base_url", "str", True, True, None),  # declared secret through metadata
        ("api_key", "str", True, True, None),  # secret through dlt.secrets.value
        ("page_size", "int", False, False, 100),
        ("region", "Literal['eu', 'us']", False, False, "eu"),
    ]


def test_a_dlt_resource_is_a_connector_too():
    registry = ConnectorRegistry()
    registry.registrar(ACME)("acme_events", events)
    assert registry.problems == []
    assert [(s.name, s.required) for s in registry.get("acme_events").settings()] == [("since", True)]


@pytest.mark.parametrize(
    "name, source, metadata, message",
    [
        ("Acme-Tickets", tickets, {}, "connector name 'Acme-Tickets' is invalid"),
        ("acme_plain", plain_function, {}, "source must be a @dlt.source or @dlt.resource function, got function"),
        ("acme_tickets", tickets, {"descripton": "x"},
         "unknown metadata descripton; allowed: acknowledge, change_feed, cursor_in_settings, cursors, description"),
        ("acme_tickets", tickets, {"list_keys": "select id from tickets"},
         "connector 'acme_tickets': list_keys must be a function (settings, table, columns)"),
        ("acme_tickets", tickets, {"preflight": ["tickets"]},
         "connector 'acme_tickets': preflight must be a function (settings, tables)"),
    ],
    ids=["bad-name", "not-a-dlt-source", "misspelt-metadata", "list-keys-not-a-function", "preflight-not-a-function"],
)
def test_a_bad_registration_is_reported_by_plugin_and_skipped(name, source, metadata, message):
    registry = ConnectorRegistry()
    registry.registrar(ACME)(name, source, **metadata)
    registry.registrar(ACME)("acme_events", events)  # the plugin's other connectors still register
    assert registry.names() == ["acme_events"]
    assert len(registry.problems) == 1
    assert registry.problems[0].startswith("plugin 'acme' (headwater-acme): ")
    assert message in registry.problems[0]


def test_a_duplicate_name_keeps_the_first_and_names_both_plugins():
    registry = ConnectorRegistry()
    registry.registrar(ACME)("tickets", tickets)
    registry.registrar(OTHER)("tickets", events)
    assert registry.get("tickets").plugin == ACME
    assert registry.problems == [
        "plugin 'other' (headwater-other) registers connector 'tickets', already registered by plugin 'acme' "
        "(headwater-acme); the first registration is kept"
    ]
