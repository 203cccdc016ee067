"""Real data, made through the API, that the security tests probe: bank A (ICBC) holds the
fund accounts, bank B (CCB) holds nothing of theirs, and the participants are insured in
region 410100 (the agency of 310100 is another region's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient

from tests.support.requests import auth, eventually, random_id_number, registration

OWNER_BANK, OTHER_BANK, NEW_BANK = "ICBC", "CCB", "BOC"
OWN_REGION, OTHER_REGION = "410100", "310100"
OPERATOR = auth("dev-operator")
OWNER = auth(f"dev-bank-{OWNER_BANK}")


@dataclass
class World:
    participant_id: str
    """Registered and holding fund account ``fund_account_id`` at the owner bank, with a
    contribution (so a voucher) and a withdrawal application awaiting the agency."""
    id_number: str
    fund_account_id: str
    application_id: str
    voucher_no: str
    verification_code: str
    unopened_participant_id: str
    """Registered by the owner bank, no fund account yet."""
    bank_change_id: str
    withdrawal_id: str
    """A lump sum paid to a third participant, so a withholding exists for the owner bank."""
    withdrawn_participant_id: str
    id_numbers: tuple[str, ...]


def _ok(response, status: int = 201) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    return response.json()


def register(client: TestClient, id_number: str | None = None, *, bank: str = OWNER_BANK) -> tuple[str, str]:
    body = registration(id_number or random_id_number(), region=OWN_REGION, bank=bank)
    participant_id = _ok(client.post("/v1/participants", json=body, headers=auth(f"dev-bank-{bank}")))["participant_id"]
    eventually(lambda: client.get(f"/v1/ops/fund-account/participants/{participant_id}", headers=OPERATOR).status_code == 200)
    return participant_id, body["id_number"]


def open_account(client: TestClient, participant_id: str) -> str:
    body = {"participant_id": participant_id, "branch_city": OWN_REGION}
    return _ok(client.post("/v1/fund-accounts", json=body, headers=OWNER))["fund_account_id"]


def contribute(client: TestClient, fund_account_id: str, amount: str) -> None:
    body = {"amount": amount, "channel": "bank_transfer", "reference": uuid.uuid4().hex}
    _ok(client.post(f"/v1/fund-accounts/{fund_account_id}/contributions", json=body, headers=OWNER))


def apply(client: TestClient, participant_id: str) -> str:
    eventually(lambda: client.get(f"/v1/participants/{participant_id}", headers=OWNER).json().get("fund_account"))
    body = {"participant_id": participant_id, "condition": "retirement_age", "evidence": ["certificate-1"]}
    return _ok(client.post("/v1/withdrawal-applications", json=body, headers=OWNER))["application_id"]


def build_world(client: TestClient) -> World:
    _ok(client.put("/v1/ops/clock", json={"now": "2025-10-01T10:00:00+08:00"}, headers=OPERATOR), 200)
    participant_id, id_number = register(client)
    fund_account_id = open_account(client, participant_id)
    contribute(client, fund_account_id, "1000.00")
    application_id = apply(client, participant_id)
    voucher = eventually(lambda: (items := client.get(
        f"/v1/tax/vouchers?participant_id={participant_id}", headers=auth("dev-tax-bureau")).json().get("items")) and items[0])

    unopened_participant_id, unopened_id_number = register(client)

    changing, changing_id_number = register(client)
    changing_account = open_account(client, changing)
    body = {"new_bank_code": NEW_BANK, "new_branch_city": OWN_REGION}
    bank_change_id = _ok(client.post(f"/v1/fund-accounts/{changing_account}/bank-change", json=body, headers=OWNER),
                         202)["bank_change_id"]

    withdrawn, withdrawn_id_number = register(client)
    withdrawn_account = open_account(client, withdrawn)
    contribute(client, withdrawn_account, "2000.00")
    decided = client.post(f"/v1/withdrawal-applications/{apply(client, withdrawn)}/decision",
                          json={"decision": "approved"}, headers=auth(f"dev-agency-{OWN_REGION}"))
    _ok(decided, 200)
    eventually(lambda: client.get(f"/v1/participants/{withdrawn}", headers=OWNER).json()["status"] == "receiving")

    def withdraw() -> str | None:
        response = client.post("/v1/withdrawals", json={"participant_id": withdrawn, "method": "lump_sum"}, headers=OWNER)
        return response.json()["withdrawal_id"] if response.status_code == 201 else None

    withdrawal_id = eventually(withdraw)
    eventually(lambda: client.get(f"/v1/tax/withholdings?bank_code={OWNER_BANK}", headers=auth("dev-tax-bureau")).json()["items"],
               timeout_s=60)
    return World(
        participant_id=participant_id, id_number=id_number, fund_account_id=fund_account_id,
        application_id=application_id, voucher_no=voucher["voucher_no"], verification_code=voucher["verification_code"],
        unopened_participant_id=unopened_participant_id, bank_change_id=bank_change_id, withdrawal_id=withdrawal_id,
        withdrawn_participant_id=withdrawn,
        id_numbers=(id_number, unopened_id_number, changing_id_number, withdrawn_id_number),
    )
