"""The published event contracts hold for the events the services really produce.

A scenario runs on the embedded platform (register, open a fund account, contribute, invest, a
payout and its reversal as the payout service's contract describes them, a reversed contribution;
then, through the HTTP API, the life-cycle flows of tests/support/contract_scenario.py: bank
changes confirmed and refused, withdrawal applications and their decisions, a monthly withdrawal
whose method changes, an instalment refused by a frozen account, a payment compensated, deaths with
heirs; the year closed); then every event in every service's store and every record of the
embedded log is validated against its JSON Schema, every event type the services can produce
(found in their source) must have been produced, and the AsyncAPI document is checked by the
official parser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from pension_cli.platform import embedded_platform
from pension_shared.contracts import (
    ASYNCAPI_DOCUMENT, DEAD_LETTER_SCHEMA, SCHEMAS_DIR, event_schema, event_types, schema_path,
)
from pension_shared.runtime import ALL_TOPICS, all_topics_with_dlq
from pension_tax.application.policies import CONSUMED as CONSUMED_BY_TAX
from pension_tax.domain.events import EVENT_NAMES as TAX_EVENT_NAMES
from tests.contracts.event_catalogue import catalogue
from tests.support.contract_scenario import Workers, drive_every_flow

REPO = Path(__file__).resolve().parents[2]
VALIDATOR_SCRIPT = Path(__file__).with_name("validate_asyncapi.cjs")


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """Every event of the scenario: (where it was found, the CloudEvent document)."""
    platform = embedded_platform(tmp_path_factory.mktemp("contracts"))
    platform.migrate()
    platform.seed()
    workers = Workers(platform)
    workers.start()
    try:
        drive_every_flow(platform, TestClient(platform.app()), workers)

        found: list[tuple[str, dict]] = []
        for ctx in platform.contexts:
            with ctx.engine.connect() as conn:
                found += [(f"store:{ctx.definition.name}", e.to_cloudevent()) for e in ctx.store.read_all(conn, upcast=False)]
        log = platform.transport.log
        for topic in all_topics_with_dlq():
            for partition in range(log.partitions):
                found += [(f"log:{topic}", orjson.loads(r.value)) for r in log.read(topic, partition, 0, 1_000_000)]
        yield found
    finally:
        try:
            workers.stop()
        finally:
            platform.stop()


def _validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_every_event_really_produced_validates_against_its_schema(produced):
    failures = []
    for where, document in produced:
        if where.endswith(".dlq"):
            schema = orjson.loads(DEAD_LETTER_SCHEMA.read_bytes())
        else:
            if not schema_path(document["type"]).exists():
                continue  # reported by the next test
            schema = event_schema(document["type"])
        failures += [f"{where} {document.get('type', 'dead letter')}: {error.message} at {list(error.absolute_path)}"
                     for error in _validator(schema).iter_errors(document)]
    assert not failures, "\n".join(failures[:30])
    kinds = {document["type"] for where, document in produced if where.startswith("log:pension.tax")}
    assert {f"cn.pension.tax.{name}.v1" for name in TAX_EVENT_NAMES} <= kinds


def test_the_scenario_produces_every_event_type_the_services_can_produce(produced):
    """The validation above is worth what the scenario covers: every type found in the services'
    source must have been produced (and so validated) at least once."""
    produced_types = {document["type"] for where, document in produced if not where.endswith(".dlq")}
    producible = set().union(*(events.types() for events in catalogue().values()))
    missing = sorted(producible - produced_types)
    assert not missing, f"event types the scenario never produced, so never validated: {missing}"


def test_no_event_type_lacks_a_schema(produced):
    produced_types = {document["type"] for where, document in produced if not where.endswith(".dlq")}
    declared_by_tax = {f"cn.pension.tax.{name}.v1" for name in TAX_EVENT_NAMES}
    missing = sorted((produced_types | set(CONSUMED_BY_TAX) | declared_by_tax) - set(event_types()))
    assert not missing, f"event types without a schema in {SCHEMAS_DIR}: {missing}"


def test_every_schema_is_a_draft_2020_12_schema_of_a_full_envelope():
    for path in sorted(SCHEMAS_DIR.glob("*.json")):
        schema = orjson.loads(path.read_bytes())
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        if path != DEAD_LETTER_SCHEMA:
            assert schema["properties"]["type"]["const"] == path.name.removesuffix(".json")
            assert {"specversion", "id", "source", "type", "time", "subject", "data", "streamid", "sequence",
                    "prevhash", "hash"} <= set(schema["required"])


def test_the_asyncapi_document_describes_the_four_topics_their_dead_letters_and_every_schema():
    document = yaml.safe_load(ASYNCAPI_DOCUMENT.read_text())
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(all_topics_with_dlq())
    referenced = {message["payload"]["schema"]["$ref"].removeprefix("./schemas/")
                  for message in document["components"]["messages"].values()}
    assert referenced == {path.name for path in SCHEMAS_DIR.glob("*.json")}
    for topic in ALL_TOPICS:
        service = topic.removeprefix("pension.")
        channel = next(c for c in document["channels"].values() if c["address"] == topic)
        assert set(channel["messages"]) == {t for t in event_types() if t.startswith(f"cn.pension.{service}.")}


def test_the_asyncapi_document_is_valid_for_the_official_parser():
    node = shutil.which("node")
    modules = _parser_modules()
    assert node, "node is not installed: run scripts/ensure-tools.sh"
    assert (modules / "@asyncapi" / "parser" / "package.json").exists(), (
        f"@asyncapi/parser is not installed in {modules}: run scripts/ensure-tools.sh")
    result = subprocess.run([node, str(VALIDATOR_SCRIPT), str(modules), str(ASYNCAPI_DOCUMENT)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = orjson.loads(result.stdout)
    assert report["valid"] and report["version"].startswith("3.")
    assert set(report["channels"]) == set(all_topics_with_dlq())
    assert set(report["messages"]) == set(event_types()) | {"deadLetter"}


def _parser_modules() -> Path:
    infra = Path(os.environ.get("PENSION_INFRA_DIR") or REPO / ".infra")
    return infra / "asyncapi" / "node_modules"
