"""Every event type the services can produce has a published contract, whether or not a scenario
produces it: a JSON Schema in contracts/schemas and a message of its service's channel in the
AsyncAPI document, sent by the service's publish operation. The types are found statically in the
services' source (tests/contracts/event_catalogue.py); every full type a service names (the events
it consumes) has a schema too. Static: no platform runs, so these fail fast and say which type
lacks what."""

from __future__ import annotations

import pytest
import yaml

from pension_fund_account.domain.events import MONEY_MOVED
from pension_shared.contracts import ASYNCAPI_DOCUMENT, SCHEMAS_DIR, event_types
from pension_tax.domain.events import EVENT_NAMES as TAX_EVENT_NAMES
from tests.contracts.event_catalogue import SERVICES, ServiceEvents, catalogue


@pytest.fixture(scope="module")
def found() -> dict[str, ServiceEvents]:
    return catalogue()


@pytest.fixture(scope="module")
def asyncapi() -> dict:
    return yaml.safe_load(ASYNCAPI_DOCUMENT.read_text())


def _channel(document: dict, service: str) -> tuple[str, dict]:
    return next((key, channel) for key, channel in document["channels"].items()
                if channel["address"] == f"pension.{service}")


def test_the_discovery_finds_what_the_services_declare(found):
    """The static discovery is checked against the lists the services keep themselves, and it
    sees every place an event is built (a computed name is allowed: its values are the
    constants in use, which count too)."""
    assert {f"cn.pension.tax.{name}.v1" for name in TAX_EVENT_NAMES} <= found["tax"].types()
    assert {f"cn.pension.fund-account.{name}.v1" for name in MONEY_MOVED} <= found["fund-account"].types()
    for service in SERVICES:
        events = found[service]
        assert len(events.types()) >= 5, f"{service}: only {sorted(events.types())}"
        assert events.built, f"{service}: no NewEvent(...) found"
        assert all(t.startswith(f"cn.pension.{service}.") for t in events.types())


@pytest.mark.parametrize("service", SERVICES)
def test_every_event_type_a_service_can_produce_has_a_schema(found, service):
    missing = sorted(found[service].types() - set(event_types()))
    assert not missing, (f"{len(missing)} event types of the {service} service have no schema in {SCHEMAS_DIR}: "
                         f"{missing}")


@pytest.mark.parametrize("service", SERVICES)
def test_every_event_type_a_service_can_produce_is_a_message_of_its_channel(found, asyncapi, service):
    key, channel = _channel(asyncapi, service)
    messages = asyncapi["components"]["messages"]
    produced = found[service].types()
    missing_messages = sorted(produced - set(messages))
    missing_in_channel = sorted(produced - set(channel.get("messages", {})))
    publish = [op for op in asyncapi["operations"].values()
               if op["action"] == "send" and op["channel"]["$ref"] == f"#/channels/{key}"]
    assert len(publish) == 1, f"pension.{service} has no single send operation"
    sent = {ref["$ref"].rsplit("/", 1)[-1] for ref in publish[0]["messages"]}
    missing_in_operation = sorted(produced - sent)
    assert not (missing_messages or missing_in_channel or missing_in_operation), (
        f"{service}: not in components.messages: {missing_messages}; not in channel {key}: {missing_in_channel}; "
        f"not sent by its publish operation: {missing_in_operation}")
    for event_type in produced:
        message = messages[event_type]
        assert message["payload"]["schema"]["$ref"] == f"./schemas/{event_type}.json"
        assert message["name"] == event_type.split(".")[-2] and message["title"] == event_type


def test_every_event_type_a_service_consumes_has_a_schema(found):
    mentioned = {t: sorted(where) for events in found.values() for t, where in events.mentioned_types.items()}
    missing = {t: where for t, where in mentioned.items() if t not in set(event_types())}
    assert not missing, f"event types named in the services' code without a schema: {missing}"


def test_every_schema_names_an_event_type_some_service_produces_or_consumes(found):
    """No stale contract: a schema without a producer is at least consumed by someone."""
    known = set().union(*(events.types() | set(events.mentioned_types) for events in found.values()))
    stale = sorted(set(event_types()) - known)
    assert not stale, f"schemas of event types no service produces or consumes: {stale}"
