"""Tokens (INTERFACES.md §1): kept as SHA-256 digests, revocable without a restart, and the
development tokens neither work nor may be configured in production."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from pension_shared.auth import Principal, TokenRegistry, digest
from pension_shared.errors import Unauthenticated
from pension_shared.settings import ServiceSettings

BANK_TOKEN = "s3cr3t-token-of-the-icbc-integration"


def _write(path: Path, *, tokens: list[tuple[str, str, str | None]], revoked: list[str] = ()) -> None:  # type: ignore[assignment]
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(orjson.dumps({
        "tokens": [{"sha256": digest(t), "role": role, "code": code} for t, role, code in tokens],
        "revoked": [digest(t) for t in revoked],
    }))
    os.utime(path, ns=(stamp + 1_000_000_000, stamp + 1_000_000_000))  # a later mtime, however coarse the clock


def _bearer(token: str) -> str:
    return f"Bearer {token}"


@pytest.mark.parametrize("token", ["dev-operator", "dev-tax-bureau", "dev-bank-ICBC", "dev-agency-410100"])
def test_development_tokens_are_not_accepted_in_production(tmp_path: Path, token: str) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    with pytest.raises(Unauthenticated):
        registry.authenticate(_bearer(token))
    assert registry.authenticate(_bearer(BANK_TOKEN)) == Principal("bank", "ICBC")


@pytest.mark.parametrize("token", [
    "dev-operator", "dev-tax-bureau", "dev-bank-ICBC", "dev-bank-PSBC", "dev-bank-Z9", "dev-bank-WEBANK",
    "dev-agency-410100", "dev-agency-110105", "dev-agency-659999",
])
def test_a_production_tokens_file_holding_a_development_token_is_refused_at_start(tmp_path: Path, token: str) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC"), (token, "operator", None)])
    with pytest.raises(ValueError, match="development tokens"):
        TokenRegistry.from_file(tokens_file, development=False)
    assert TokenRegistry.from_file(tokens_file, development=True).authenticate(_bearer(token))


def test_tokens_are_compared_as_digests_only(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    assert BANK_TOKEN not in tokens_file.read_text()
    registry = TokenRegistry.from_file(tokens_file, development=False)
    with pytest.raises(Unauthenticated):  # the digest itself is not a token
        registry.authenticate(_bearer(hashlib.sha256(BANK_TOKEN.encode()).hexdigest()))


def test_a_token_revoked_in_the_file_is_refused_without_a_restart(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    assert registry.authenticate(_bearer(BANK_TOKEN)).code == "ICBC"

    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC"), ("the-new-ccb-token", "bank", "CCB")], revoked=[BANK_TOKEN])

    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate(_bearer(BANK_TOKEN))
    assert registry.authenticate(_bearer("the-new-ccb-token")) == Principal("bank", "CCB")


def test_a_broken_or_refused_rewrite_of_the_file_leaves_the_tokens_as_they_were(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    tokens_file.write_text('{"tokens": [')
    assert registry.authenticate(_bearer(BANK_TOKEN)).code == "ICBC"
    _write(tokens_file, tokens=[("dev-operator", "operator", None)])
    assert registry.authenticate(_bearer(BANK_TOKEN)).code == "ICBC"
    with pytest.raises(Unauthenticated):
        registry.authenticate(_bearer("dev-operator"))


def test_a_token_revoked_through_the_registry_stays_revoked_across_reloads(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    registry.revoke(digest(BANK_TOKEN))
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC"), ("another", "operator", None)])
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate(_bearer(BANK_TOKEN))


def _production(tmp_path: Path, **overrides: object) -> ServiceSettings:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    values: dict[str, object] = {
        "env": "production", "database_url": "postgresql+psycopg://pension@db/account", "transport": "kafka",
        "kafka_bootstrap": "kafka:9092", "tokens_file": tokens_file, "pii_key": "a-real-secret-from-the-vault",
    }
    return ServiceSettings(**{**values, **overrides})  # type: ignore[arg-type]


def test_production_settings_with_real_values_are_accepted(tmp_path: Path) -> None:
    assert _production(tmp_path).production


@pytest.mark.parametrize("development_default", [
    {"pii_key": ServiceSettings.model_fields["pii_key"].default},
    {"tokens_file": None},
    {"tokens_file": Path("/nonexistent/tokens.json")},
    {"transport": "embedded", "embedded_log_path": Path("var/eventlog.db")},
    {"database_url": "sqlite:///var/account.db"},
    {"kafka_bootstrap": "changeme:9092"},
])
def test_production_settings_with_a_development_default_refuse_to_start(tmp_path: Path, development_default) -> None:  # noqa: ANN001
    with pytest.raises(ValidationError):
        _production(tmp_path, **development_default)


def test_a_production_service_refuses_to_start_with_a_development_token_in_its_file(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    _write(settings.tokens_file, tokens=[("dev-bank-ICBC", "bank", "ICBC")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="development tokens"):
        TokenRegistry.from_file(settings.tokens_file, development=not settings.production)


@pytest.mark.parametrize(("name", "value"), [("rate_limit_per_second", 0), ("rate_limit_burst", 0), ("max_body_bytes", 10)])
def test_limits_must_be_sensible(name: str, value: int) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(database_url="sqlite:///x.db", transport="kafka", kafka_bootstrap="k:9092", **{name: value})


def test_a_production_app_answers_a_development_token_with_401(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from pension_fund_account.bootstrap import DEFINITION
    from pension_shared.runtime import EmbeddedTransport, build_app, build_context

    ctx = build_context(DEFINITION, _production(tmp_path), transport=EmbeddedTransport(tmp_path / "log.db"))
    client = TestClient(build_app([ctx], title="production"))
    refused = client.get("/v1/ops/clock", headers={"Authorization": "Bearer dev-operator"})
    assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHENTICATED"
    assert client.get("/v1/ops/clock", headers={"Authorization": _bearer(BANK_TOKEN)}).status_code == 200


@pytest.mark.parametrize("header", ["Bearer {}", "bearer {}", "BEARER {}", "Bearer   {}  "])
def test_the_scheme_is_read_in_any_case(tmp_path: Path, header: str) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    assert registry.authenticate(header.format(BANK_TOKEN)) == Principal("bank", "ICBC")


@pytest.mark.parametrize("header", ["Basic {}", "Bearer", "Bearer ", "Bearer{}", "{}", "Token {}", ""])
def test_anything_but_a_bearer_token_is_unauthenticated(tmp_path: Path, header: str) -> None:
    tokens_file = tmp_path / "tokens.json"
    _write(tokens_file, tokens=[(BANK_TOKEN, "bank", "ICBC")])
    registry = TokenRegistry.from_file(tokens_file, development=False)
    with pytest.raises(Unauthenticated):
        registry.authenticate(header.format(BANK_TOKEN))
