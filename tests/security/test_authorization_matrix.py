"""Every route of the composed platform against every kind of institution (INTERFACES.md §1).

The table below classifies each route explicitly; a route that is not in it (a new one) fails
``test_every_route_is_classified`` until someone decides who may call it. For each route:
no token is a 401; a principal that the route refuses by role gets 403 FORBIDDEN; a bank (or
agency) asking about what another holds gets the same answer as for something that does not
exist (404, nothing of the other's data); an admitted principal gets through (a read answers 200,
a write reaches validation: it is sent an invalid body, so nothing changes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.security.world import NEW_BANK, OTHER_BANK, OTHER_REGION, OWN_REGION, OWNER_BANK, World, build_world
from tests.support.requests import auth, registration

TOKENS = {
    "operator": "dev-operator",
    "tax-bureau": "dev-tax-bureau",
    "owner-bank": f"dev-bank-{OWNER_BANK}",
    "other-bank": f"dev-bank-{OTHER_BANK}",
    "own-agency": f"dev-agency-{OWN_REGION}",
    "other-agency": f"dev-agency-{OTHER_REGION}",
}
EVERYONE = frozenset(TOKENS)
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Rule:
    allow: frozenset[str] = frozenset()
    """Admitted: a read answers 200; a write reaches body validation."""
    hide: frozenset[str] = frozenset()
    """Asks about what another institution holds: answered exactly as for something that does not exist."""
    public: bool = False
    params: Callable[[World], dict[str, str]] = lambda w: {}
    query: Callable[[World], dict[str, str]] = lambda w: {}
    body: Callable[[World], dict[str, Any]] | None = None
    """A valid body, sent to the principals that must be refused."""

    @property
    def forbid(self) -> frozenset[str]:
        """Refused by role: 403 FORBIDDEN."""
        return EVERYONE - self.allow - self.hide


def rule(allow: set[str], hide: set[str] = frozenset(), **kwargs: Any) -> Rule:  # type: ignore[assignment]
    return Rule(allow=frozenset(allow), hide=frozenset(hide), **kwargs)


OWNER_READS = {"owner-bank", "operator"}
TAX_READERS = {"tax-bureau", "owner-bank", "operator"}
HOLDING_BANK = {"owner-bank"}
OTHER = {"other-bank"}

participant = lambda w: {"participant_id": w.participant_id}  # noqa: E731
fund_account = lambda w: {"fund_account_id": w.fund_account_id}  # noqa: E731
application = lambda w: {"application_id": w.application_id}  # noqa: E731
withdrawal = lambda w: {"withdrawal_id": w.withdrawal_id}  # noqa: E731
heir = {"name": "李四", "id_number": "11010519491231002X", "share": "1",
        "payee_account": {"bank_code": OWNER_BANK, "account_number": "6222020200112233"}}

ROUTES: dict[tuple[str, str], Rule] = {
    # the edge
    ("GET", "/health"): rule(EVERYONE, public=True),
    ("GET", "/ready"): rule(EVERYONE, public=True),
    ("GET", "/openapi.json"): rule(EVERYONE, public=True),
    ("GET", "/docs"): rule(EVERYONE, public=True),
    ("GET", "/docs/oauth2-redirect"): rule(EVERYONE, public=True),
    ("GET", "/redoc"): rule(EVERYONE, public=True),
    # scraped by Prometheus without a token: counts by route template, no personal data (test_pii_scan)
    ("GET", "/metrics"): rule(EVERYONE, public=True),
    ("GET", "/v1/ops/clock"): rule(EVERYONE),
    ("PUT", "/v1/ops/clock"): rule({"operator"}, body=lambda w: {"now": "2025-10-01T10:00:00+08:00"}),
    # account service
    ("POST", "/v1/participants"): rule({"owner-bank", "other-bank", "operator"}, body=lambda w: registration()),
    ("GET", "/v1/participants/{participant_id}"): rule(OWNER_READS, OTHER, params=participant),
    ("GET", "/v1/participants/{participant_id}/records"): rule(OWNER_READS, OTHER, params=participant),
    ("PUT", "/v1/ops/insurance-registry/{id_number}"): rule(
        {"operator"}, params=lambda w: {"id_number": w.id_number},
        body=lambda w: {"status": "insured", "insurance_type": "employee", "insured_region": OWN_REGION}),
    ("POST", "/v1/withdrawal-applications"): rule(
        OWNER_READS, OTHER,
        body=lambda w: {"participant_id": w.participant_id, "condition": "retirement_age", "evidence": ["x"]}),
    ("GET", "/v1/withdrawal-applications/{application_id}"): rule(
        OWNER_READS | {"own-agency"}, {"other-bank", "other-agency"}, params=application),
    ("POST", "/v1/withdrawal-applications/{application_id}/decision"): rule(
        {"own-agency"}, params=application, body=lambda w: {"decision": "rejected", "reason": "probe"}),
    ("POST", "/v1/participants/{participant_id}/death"): rule(
        {"own-agency", "operator"}, params=participant,
        body=lambda w: {"date_of_death": "2025-09-30", "heirs": [heir]}),
    # fund-account service
    ("POST", "/v1/fund-accounts"): rule(
        {"owner-bank", "other-bank"},
        body=lambda w: {"participant_id": w.unopened_participant_id, "branch_city": OWN_REGION}),
    ("GET", "/v1/fund-accounts/bank-changes/{bank_change_id}"): rule(
        OWNER_READS, OTHER, params=lambda w: {"bank_change_id": w.bank_change_id}),
    ("GET", "/v1/fund-accounts/{fund_account_id}"): rule(OWNER_READS, OTHER, params=fund_account),
    ("GET", "/v1/fund-accounts/{fund_account_id}/ledger"): rule(OWNER_READS, OTHER, params=fund_account),
    ("POST", "/v1/fund-accounts/{fund_account_id}/contributions"): rule(
        HOLDING_BANK, OTHER, params=fund_account,
        body=lambda w: {"amount": "100.00", "channel": "bank_transfer", "reference": "probe"}),
    ("POST", "/v1/fund-accounts/{fund_account_id}/purchases"): rule(
        HOLDING_BANK, OTHER, params=fund_account, body=lambda w: {"product_code": "SAVINGS-1", "amount": "1.00"}),
    ("POST", "/v1/fund-accounts/{fund_account_id}/redemptions"): rule(
        HOLDING_BANK, OTHER, params=fund_account,
        body=lambda w: {"product_code": "SAVINGS-1", "units": "1", "proceeds": "1.00"}),
    ("POST", "/v1/fund-accounts/{fund_account_id}/income"): rule(
        HOLDING_BANK, OTHER, params=fund_account, body=lambda w: {"amount": "1.00", "kind": "interest"}),
    ("POST", "/v1/fund-accounts/{fund_account_id}/bank-change"): rule(
        HOLDING_BANK, OTHER, params=fund_account,
        body=lambda w: {"new_bank_code": OTHER_BANK, "new_branch_city": OWN_REGION}),
    ("GET", "/v1/products"): rule(EVERYONE),
    ("POST", "/v1/products"): rule(
        {"operator"},
        body=lambda w: {"product_code": "PROBE-1", "name": "probe", "product_type": "savings_deposit",
                        "eligible_from": "2025-01-01"}),
    ("GET", "/v1/ops/fund-account/participants/{participant_id}"): rule({"operator"}, params=participant),
    # tax service
    ("GET", "/v1/tax/vouchers"): rule(TAX_READERS, OTHER, query=lambda w: {"participant_id": w.participant_id}),
    ("GET", "/v1/tax/vouchers/{voucher_no}"): rule(
        EVERYONE, public=True, params=lambda w: {"voucher_no": w.voucher_no},
        query=lambda w: {"code": w.verification_code}),
    ("GET", "/v1/tax/statements/{participant_id}/{year}"): rule(
        TAX_READERS, OTHER, params=lambda w: {"participant_id": w.participant_id, "year": "2025"}),
    ("GET", "/v1/tax/withholdings"): rule(TAX_READERS, query=lambda w: {"bank_code": OWNER_BANK}),
    ("GET", "/v1/ops/tax/participants/{participant_id}"): rule({"operator", "tax-bureau"}, params=participant),
    # payout service
    ("POST", "/v1/withdrawals"): rule(
        HOLDING_BANK, OTHER, body=lambda w: {"participant_id": w.withdrawn_participant_id, "method": "lump_sum"}),
    ("GET", "/v1/withdrawals"): rule(OWNER_READS, OTHER, query=lambda w: {"participant_id": w.withdrawn_participant_id}),
    ("GET", "/v1/withdrawals/{withdrawal_id}"): rule(OWNER_READS, OTHER, params=withdrawal),
    ("PUT", "/v1/withdrawals/{withdrawal_id}/method"): rule(
        HOLDING_BANK, OTHER, params=withdrawal, body=lambda w: {"method": "monthly", "months": 3}),
    ("GET", "/v1/ops/payout/participants/{participant_id}"): rule({"operator"}, params=participant),
    ("GET", "/v1/ops/payout/payments"): rule({"operator"}),
    ("PUT", "/v1/ops/payout/failing-banks/{bank_code}"): rule(
        {"operator"}, params=lambda w: {"bank_code": NEW_BANK}, body=lambda w: {"failing": False}),
    # the operators' console: the page holds no data; every data route takes the bearer token or
    # the session cookie that only an operator token opens (the matrix sends tokens, never cookies)
    ("GET", "/console"): rule(EVERYONE, public=True),
    ("GET", "/console/console.js"): rule(EVERYONE, public=True),
    ("GET", "/console/console.css"): rule(EVERYONE, public=True),
    ("POST", "/console/session"): rule({"operator"}, body=lambda w: {}),
    ("DELETE", "/console/session"): rule({"operator"}, body=lambda w: {}),
    ("GET", "/console/api/consumers"): rule({"operator"}),
    ("GET", "/console/api/verification"): rule({"operator"}),
    ("POST", "/console/api/verification"): rule({"operator"}, body=lambda w: {"services": ["tax"]}),
    ("GET", "/console/api/reconciliation"): rule({"operator"}),
    ("POST", "/console/api/reconciliation"): rule({"operator"}, body=lambda w: {"as_of": "2025-09-30"}),
    ("GET", "/console/api/monthly"): rule({"operator"}),
    ("POST", "/console/api/monthly"): rule({"operator"}, body=lambda w: {"months": 1}),
    # without follow the stream answers the events kept and ends (a following one never ends)
    ("GET", "/console/api/events"): rule({"operator"}, query=lambda w: {"follow": "false"}),
}


@pytest.fixture(scope="module")
def world(client: TestClient) -> World:
    return build_world(client)


def _routes(client: TestClient) -> set[tuple[str, str]]:
    return {
        (method, route.path_format) for route in iter_route_contexts(client.app.routes)
        for method in (route.methods or ()) if method != "HEAD"
    }


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None


def _call(key: tuple[str, str], r: Rule, world: World, *, valid_body: bool = True, fake: bool = False) -> Call:
    method, template = key
    params, query = r.params(world), r.query(world)
    body = (r.body(world) if valid_body else {"unexpected_member": True}) if r.body else None
    if fake:  # the same request about things that do not exist
        params = {k: _fake(v) if k.endswith("_id") else v for k, v in params.items()}
        query = {k: _fake(v) if k.endswith("_id") else v for k, v in query.items()}
        if isinstance(body, dict) and "participant_id" in body:
            body = {**body, "participant_id": _fake(body["participant_id"])}
    return Call(method, template.format(**params), query, body)


def _fake(value: str) -> str:
    return value[:-4] + "0000"


def _send(client: TestClient, call: Call, headers: dict[str, str]) -> Any:
    return client.request(call.method, call.path, params=call.query, json=call.body, headers=headers)


def _cases(kind: str) -> list[tuple[tuple[str, str], str]]:
    return [(key, who) for key, r in ROUTES.items() for who in sorted(getattr(r, kind))
            if not (kind == "allow" and r.public)]


def test_every_route_is_classified_and_every_classification_is_a_route(client: TestClient) -> None:
    served = _routes(client)
    assert served - ROUTES.keys() == set(), "classify these routes in ROUTES (who may call them)"
    assert ROUTES.keys() - served == set(), "these classified routes are no longer served"


def test_the_tax_bureau_reads_but_never_writes() -> None:
    assert not [key for key, r in ROUTES.items() if key[0] in WRITES and "tax-bureau" in r.allow | r.hide]


def test_banks_never_reach_operator_only_routes() -> None:
    operator_only = [key for key, r in ROUTES.items() if r.allow == {"operator"}]
    assert len(operator_only) >= 6
    assert all({"owner-bank", "other-bank"} <= ROUTES[key].forbid for key in operator_only)


@pytest.mark.parametrize("key", [k for k, r in ROUTES.items() if not r.public], ids=" ".join)
def test_a_call_without_a_valid_token_is_401(client: TestClient, world: World, key: tuple[str, str]) -> None:
    call = _call(key, ROUTES[key], world)
    for headers in ({}, auth("not-a-token"), {"Authorization": "Basic ZGV2LW9wZXJhdG9yOg=="}):
        response = _send(client, call, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == PROBLEM and response.json()["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("key", "who"), _cases("forbid"), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_a_role_the_route_is_not_open_to_gets_403(client: TestClient, world: World, key, who) -> None:  # noqa: ANN001
    response = _send(client, _call(key, ROUTES[key], world), auth(TOKENS[who]))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM and response.json()["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("key", "who"), _cases("hide"), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_another_institutions_resource_is_answered_as_if_it_did_not_exist(
    client: TestClient, world: World, key, who,  # noqa: ANN001
) -> None:
    r, headers = ROUTES[key], auth(TOKENS[who])
    real, fake = _call(key, r, world), _call(key, r, world, fake=True)
    about_real, about_nothing = _send(client, real, headers), _send(client, fake, headers)
    assert about_real.status_code == about_nothing.status_code, about_real.text
    assert about_real.status_code in (200, 404), about_real.text
    if about_real.status_code == 200:  # a list: empty, as for someone unknown
        assert about_real.json()["items"] == []
    else:
        assert about_real.headers["content-type"] == PROBLEM
    assert _anonymised(about_real.text, real, fake) == about_nothing.text
    for secret in world.id_numbers + (world.fund_account_id, world.withdrawal_id, world.voucher_no):
        assert secret not in about_real.text or secret in real.path + str(real.query) + str(real.body)


def _anonymised(text: str, real: Call, fake: Call) -> str:
    for mine, theirs in zip((real.path, *real.query.values()), (fake.path, *fake.query.values())):
        for a, b in zip(mine.split("/"), theirs.split("/")):
            text = text.replace(a, b) if a != b else text
    if isinstance(real.body, dict) and real.body.get("participant_id"):
        text = text.replace(real.body["participant_id"], fake.body["participant_id"])
    return text


@pytest.mark.parametrize(("key", "who"), _cases("allow"), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_an_admitted_institution_gets_through(client: TestClient, world: World, key, who) -> None:  # noqa: ANN001
    r = ROUTES[key]
    response = _send(client, _call(key, r, world, valid_body=False), auth(TOKENS[who]))
    if key[0] in WRITES:  # the invalid body is refused after the role was admitted: nothing changes
        assert response.status_code == 422 and response.json()["code"] == "VALIDATION_FAILED", response.text
    else:
        assert response.status_code == 200, response.text


def test_the_public_voucher_check_needs_the_verification_code(client: TestClient, world: World) -> None:
    path = f"/v1/tax/vouchers/{world.voucher_no}"
    shown = client.get(path, params={"code": world.verification_code})
    assert shown.status_code == 200 and shown.json()["id_number"] != world.id_number
    for code in (None, "", "WRONG", world.verification_code.lower() + "0"):
        refused = client.get(path, params={"code": code} if code is not None else {})
        assert refused.status_code == 404 and world.participant_id not in refused.text


def test_a_bank_reading_withholdings_sees_only_its_own(client: TestClient, world: World) -> None:
    own = client.get("/v1/tax/withholdings", headers=auth(TOKENS["owner-bank"])).json()["items"]
    other = client.get("/v1/tax/withholdings", headers=auth(TOKENS["other-bank"])).json()["items"]
    assert own and all(item["bank_code"] == OWNER_BANK for item in own)
    assert all(item["bank_code"] == OTHER_BANK for item in other)


def test_an_agency_decides_only_for_its_own_region(client: TestClient, world: World) -> None:
    path = f"/v1/withdrawal-applications/{world.application_id}"
    refused = client.post(f"{path}/decision", json={"decision": "approved"}, headers=auth(TOKENS["other-agency"]))
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    assert client.get(path, headers=auth(TOKENS["own-agency"])).json()["status"] == "under_verification"

