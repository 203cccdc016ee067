"""What the payout service knows of a participant (stream ``payee-{participant_id}``): where
payouts go, the social security card account (A-PAY-6), kept sealed so pension.payout stays
pseudonymous; whether the platform put them in receiving status (A-PACC-5); their fund account
and its city of opening, which is the withholding city (A-PAY-8); their death and heirs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

PAYEE_REGISTERED = "PayeeRegistered"
RECEIVING_NOTED = "ReceivingStatusNoted"
FUND_ACCOUNT_NOTED = "FundAccountNoted"
DEATH_NOTED = "DeathNoted"
WITHDRAWAL_ASSIGNED = "WithdrawalAssigned"


def payee_stream(participant_id: str) -> str:
    return f"payee-{participant_id}"


@dataclass
class Payee:
    participant_id: str
    registered: bool = False
    bank_code: str = ""
    account_number_masked: str = ""
    payee_sealed: str = ""
    receiving: bool = False
    deceased: bool = False
    heirs: list[dict[str, Any]] = field(default_factory=list)
    heirs_sealed: str = ""
    fund_account_id: str | None = None
    fund_bank_code: str | None = None
    withholding_city: str | None = None
    withdrawal_ids: list[str] = field(default_factory=list)
    inheritance_started: bool = False

    @property
    def inheritance_due(self) -> bool:
        """Deceased, their fund account known, and no inheritance started yet (A-INH-1)."""
        return self.deceased and self.fund_account_id is not None and not self.inheritance_started

    @classmethod
    def from_events(cls, participant_id: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "Payee":
        payee = cls(participant_id)
        for name, data in events:
            if name == PAYEE_REGISTERED:
                payee.registered = True
                payee.bank_code, payee.account_number_masked = data["bank_code"], data["account_number_masked"]
                payee.payee_sealed = data["payee_sealed"]
            elif name == RECEIVING_NOTED:
                payee.receiving = True
            elif name == FUND_ACCOUNT_NOTED:
                payee.fund_account_id, payee.fund_bank_code = data["fund_account_id"], data["bank_code"]
                payee.withholding_city = data["branch_city"]
            elif name == DEATH_NOTED:
                payee.deceased, payee.heirs, payee.heirs_sealed = True, list(data["heirs"]), data["heirs_sealed"]
            elif name == WITHDRAWAL_ASSIGNED:
                payee.withdrawal_ids.append(data["withdrawal_id"])
                payee.inheritance_started |= data.get("kind") == "inheritance"
        return payee
