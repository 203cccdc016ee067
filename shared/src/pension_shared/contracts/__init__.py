"""The public event contracts (INTERFACES.md §6): a JSON Schema (draft 2020-12) per event type for
the full CloudEvents envelope with its typed ``data``, in ``schemas/<type>.json``, and the AsyncAPI
3.0 document describing the four topics and their dead-letter topics (``asyncapi.yaml``), whose
messages reference those schemas. They are data files, published as they are; the contract tests
check them against the events the services really produce."""

from __future__ import annotations

from pathlib import Path

import orjson

CONTRACTS_DIR = Path(__file__).parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"
ASYNCAPI_DOCUMENT = CONTRACTS_DIR / "asyncapi.yaml"
DEAD_LETTER_SCHEMA = SCHEMAS_DIR / "dead-letter.json"


def schema_path(event_type: str) -> Path:
    return SCHEMAS_DIR / f"{event_type}.json"


def event_schema(event_type: str) -> dict:
    """The JSON Schema of one event type; ``FileNotFoundError`` when the type has none."""
    return orjson.loads(schema_path(event_type).read_bytes())


def event_types() -> list[str]:
    """Every event type with a published schema."""
    return sorted(p.name.removesuffix(".json") for p in SCHEMAS_DIR.glob("cn.pension.*.json"))
