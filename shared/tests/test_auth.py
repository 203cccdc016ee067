from pathlib import Path

import orjson
import pytest

from pension_shared.auth import Principal, TokenRegistry, digest, require_role
from pension_shared.errors import Forbidden, Unauthenticated


@pytest.mark.parametrize(
    ("token", "principal"),
    [("dev-operator", Principal("operator")), ("dev-tax-bureau", Principal("tax-bureau")),
     ("dev-bank-ICBC", Principal("bank", "ICBC")), ("dev-bank-B0C1", Principal("bank", "B0C1")),
     ("dev-agency-410100", Principal("agency", "410100"))],
)
def test_development_tokens_are_recognised_outside_production(token: str, principal: Principal) -> None:
    assert TokenRegistry({}, development=True).authenticate(f"Bearer {token}") == principal


@pytest.mark.parametrize("token", ["dev-operator", "dev-tax-bureau", "dev-bank-ICBC", "dev-agency-410100"])
def test_development_tokens_are_refused_in_production(token: str) -> None:
    with pytest.raises(Unauthenticated):
        TokenRegistry({}, development=False).authenticate(f"Bearer {token}")


@pytest.mark.parametrize(
    "token", ["dev-bank-icbc", "dev-bank-", "dev-bank-A", "dev-agency-4101", "dev-agency-ABCDEF", "dev-admin",
              "operator", "dev-operator-x"],
)
def test_malformed_development_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthenticated):
        TokenRegistry({}, development=True).authenticate(f"Bearer {token}")


@pytest.mark.parametrize("header", [None, "", "dev-operator", "Basic ZGV2", "Bearer ", "Bearerdev-operator"])
def test_a_bearer_token_is_required(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        TokenRegistry({}, development=True).authenticate(header)


def test_principal_institution_and_bank_check() -> None:
    assert Principal("bank", "ICBC").institution == "bank:ICBC"
    assert Principal("operator").institution == "operator"
    assert Principal("bank", "ICBC").is_bank("ICBC")
    assert not Principal("bank", "ICBC").is_bank("BOC")
    assert not Principal("agency", "ICBC").is_bank("ICBC")


def write_tokens(path: Path, tokens: list[dict], revoked: list[str] = ()) -> Path:  # type: ignore[assignment]
    path.write_bytes(orjson.dumps({"tokens": tokens, "revoked": list(revoked)}))
    return path


def test_tokens_from_the_hashed_tokens_file_are_recognised_in_production(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "tokens.json", [
        {"sha256": digest("s3cret-icbc"), "role": "bank", "code": "ICBC"},
        {"sha256": digest("s3cret-op").upper(), "role": "operator"},
        {"sha256": digest("s3cret-tax"), "role": "tax-bureau"},
        {"sha256": digest("s3cret-zz"), "role": "agency", "code": "410100"},
    ])
    registry = TokenRegistry.from_file(path, development=False)
    assert registry.authenticate("Bearer s3cret-icbc") == Principal("bank", "ICBC")
    assert registry.authenticate("Bearer s3cret-op") == Principal("operator")
    assert registry.authenticate("Bearer s3cret-tax") == Principal("tax-bureau")
    assert registry.authenticate("Bearer s3cret-zz") == Principal("agency", "410100")
    for wrong in ("s3cret", "S3CRET-ICBC", digest("s3cret-icbc"), "dev-operator"):
        with pytest.raises(Unauthenticated):
            registry.authenticate(f"Bearer {wrong}")


def test_the_tokens_file_holds_only_digests_never_the_tokens(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "tokens.json", [{"sha256": digest("s3cret"), "role": "operator"}])
    assert b"s3cret" not in path.read_bytes()


def test_a_revoked_token_is_refused_even_though_it_is_listed(tmp_path: Path) -> None:
    path = write_tokens(
        tmp_path / "tokens.json",
        [{"sha256": digest("old"), "role": "bank", "code": "ICBC"}, {"sha256": digest("new"), "role": "bank", "code": "ICBC"}],
        revoked=[digest("old")],
    )
    registry = TokenRegistry.from_file(path, development=False)
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate("Bearer old")
    assert registry.authenticate("Bearer new") == Principal("bank", "ICBC")


def test_revoking_at_run_time_refuses_the_token_from_then_on() -> None:
    registry = TokenRegistry({digest("t1"): Principal("operator")}, development=True)
    assert registry.authenticate("Bearer t1") == Principal("operator")
    registry.revoke(digest("t1").upper())
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate("Bearer t1")
    registry.revoke(digest("dev-operator"))
    with pytest.raises(Unauthenticated, match="revoked"):
        registry.authenticate("Bearer dev-operator")


def test_an_unknown_role_in_the_tokens_file_is_refused_at_start(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "tokens.json", [{"sha256": digest("x"), "role": "admin"}])
    with pytest.raises(ValueError, match="admin"):
        TokenRegistry.from_file(path, development=False)


def test_no_tokens_file_means_only_development_tokens() -> None:
    assert TokenRegistry.from_file(None, development=True).authenticate("Bearer dev-operator") == Principal("operator")
    with pytest.raises(Unauthenticated):
        TokenRegistry.from_file(None, development=False).authenticate("Bearer dev-operator")


def test_require_role_admits_listed_roles_and_forbids_the_others() -> None:
    bank = Principal("bank", "ICBC")
    assert require_role(bank, "bank", "operator") is bank
    with pytest.raises(Forbidden, match="bank"):
        require_role(bank, "operator")
    with pytest.raises(Forbidden):
        require_role(Principal("tax-bureau"), "bank", "agency")
    assert Forbidden("x").code == "FORBIDDEN" and Unauthenticated("x").code == "UNAUTHENTICATED"
