"""Driving the platform through a year of a participant's pension as the tax service sees it: a
bank registers the person, opens the fund account and contributes; the payout service's events
(whose producer is being written) are built here exactly as its contract promises."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient

from pension_shared.envelope import Envelope
from pension_shared.messaging import OutgoingRecord
from tests.support.requests import auth, eventually, registration

OPERATOR = auth("dev-operator")
TAX_BUREAU = auth("dev-tax-bureau")


@dataclass
class Participant:
    participant_id: str
    id_number: str
    fund_account_id: str | None = None


def register(client: TestClient, bank_code: str = "ICBC") -> Participant:
    body = registration(bank=bank_code)
    created = client.post("/v1/participants", json=body, headers=auth(f"dev-bank-{bank_code}"))
    assert created.status_code == 201, created.text
    participant = Participant(created.json()["participant_id"], body["id_number"])
    eventually(lambda: client.get(f"/v1/ops/fund-account/participants/{participant.participant_id}",
                                  headers=OPERATOR).status_code == 200, timeout_s=60)
    return participant


def open_fund_account(client: TestClient, participant: Participant, bank_code: str = "ICBC") -> str:
    opened = client.post("/v1/fund-accounts", headers=auth(f"dev-bank-{bank_code}"),
                         json={"participant_id": participant.participant_id, "branch_city": "410100"})
    assert opened.status_code == 201, opened.text
    participant.fund_account_id = opened.json()["fund_account_id"]
    return participant.fund_account_id


def contribute(client: TestClient, participant: Participant, amount: str, bank_code: str = "ICBC") -> str:
    response = client.post(f"/v1/fund-accounts/{participant.fund_account_id}/contributions",
                           headers=auth(f"dev-bank-{bank_code}"),
                           json={"amount": amount, "channel": "bank_transfer", "reference": uuid.uuid4().hex})
    assert response.status_code == 201, response.text
    return response.json()["contribution_id"]


def vouchers(client: TestClient, participant_id: str, year: int | None = None, headers: dict = TAX_BUREAU) -> list[dict]:
    query = f"participant_id={participant_id}" + (f"&year={year}" if year else "")
    response = client.get(f"/v1/tax/vouchers?{query}", headers=headers)
    return response.json()["items"] if response.status_code == 200 else []


def wait_for_vouchers(client: TestClient, participant_id: str, count: int, timeout_s: float = 60) -> list[dict]:
    return eventually(lambda: (found := vouchers(client, participant_id)) and len(found) >= count and found,
                      timeout_s=timeout_s)


def payout_event(name: str, participant_id: str, data: dict[str, Any], *, time: str) -> bytes:
    """A CloudEvent of pension.payout, hashed as the ledger hashes it (one event per stream)."""
    unsigned = Envelope(
        id=str(uuid.uuid4()), source="/pension/payout", type=f"cn.pension.payout.{name}.v1", time=time,
        subject=participant_id, streamid=f"withdrawal-{data['withdrawal_id']}-{data['payout_id']}-{name}", sequence=1,
        data={"participant_id": participant_id, **data}, prevhash=None, hash="",
    )
    return replace(unsigned, hash=unsigned.computed_hash()).to_json()


def payout_made(participant: Participant, *, gross: int, tax: int, paid_at: str, bank_code: str = "ICBC",
                payout_id: str | None = None, withdrawal_id: str = "W-TEST") -> tuple[str, OutgoingRecord]:
    payout_id = payout_id or f"PO{uuid.uuid4().hex[:18].upper()}"
    value = payout_event("PayoutMade", participant.participant_id, {
        "withdrawal_id": withdrawal_id, "payout_id": payout_id, "fund_account_id": participant.fund_account_id,
        "bank_code": bank_code, "withholding_city": "410100", "gross": gross, "tax": tax, "net": gross - tax,
        "paid_at": paid_at, "kind": "withdrawal",
    }, time=paid_at)
    return payout_id, OutgoingRecord("pension.payout", participant.participant_id, value)


def payout_reversed(participant: Participant, payout_id: str, *, gross: int, tax: int, reversed_at: str,
                    withdrawal_id: str = "W-TEST") -> OutgoingRecord:
    value = payout_event("PayoutReversed", participant.participant_id, {
        "withdrawal_id": withdrawal_id, "payout_id": payout_id, "gross": gross, "tax": tax, "net": gross - tax,
        "reason": "payee account closed", "reversed_at": reversed_at,
    }, time=reversed_at)
    return OutgoingRecord("pension.payout", participant.participant_id, value)


REFERENCE_CONSUMER = Path(__file__).resolve().parents[2] / "tax-bureau" / "consumer.py"


def reference_consumer() -> ModuleType:
    """The tax bureau's reference consumer (a standalone program, not a package) as a module."""
    name = "tax_bureau_reference_consumer"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REFERENCE_CONSUMER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
