"""What the closed loop knows of one participant, on the stream ``participant-{id}``: whether the
platform has recognised them, their one active fund account (A-FACC-1) and the real-time
contribution-quota registry per calendar year, enforced across every bank (A-CONT-5, A-CONT-7).

Pure domain: state is rebuilt from events; commands check invariants and return events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pension_fund_account.domain.errors import ContributionCapExceeded, FundAccountExists, ParticipantNotFound
from pension_fund_account.domain.events import (
    CONTRIBUTION_QUOTA_REGISTERED, FUND_ACCOUNT_ASSIGNED, PARTICIPANT_RECOGNISED, Event,
)
from pension_shared.money import format_fen


@dataclass
class ParticipantFunds:
    participant_id: str
    recognised: bool = False
    active_fund_account_id: str | None = None
    active_bank_code: str | None = None
    contributed_by_year: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_events(cls, participant_id: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "ParticipantFunds":
        funds = cls(participant_id)
        for name, data in events:
            funds.apply(name, data)
        return funds

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        if name == PARTICIPANT_RECOGNISED:
            self.recognised = True
        elif name == FUND_ACCOUNT_ASSIGNED:
            self.active_fund_account_id = data["fund_account_id"]
            self.active_bank_code = data["bank_code"]
        elif name == CONTRIBUTION_QUOTA_REGISTERED:
            self.contributed_by_year[data["year"]] = data["contributed_this_year"]

    def contributed_in(self, year: int) -> int:
        return self.contributed_by_year.get(year, 0)

    def remaining_quota(self, year: int, cap: int) -> int:
        return max(cap - self.contributed_in(year), 0)

    # -- commands -----------------------------------------------------------------------

    def assign_fund_account(self, fund_account_id: str, bank_code: str, *, assigned_at: str) -> Event:
        """A-FACC-1: one active fund account per person, whichever bank holds it."""
        if not self.recognised:
            raise ParticipantNotFound(f"the platform has not registered participant {self.participant_id}")
        if self.active_fund_account_id is not None:
            raise FundAccountExists(
                "this person already has an active fund account",
                fund_account_id=self.active_fund_account_id, bank_code=self.active_bank_code,
            )
        return Event(FUND_ACCOUNT_ASSIGNED, {
            "participant_id": self.participant_id, "fund_account_id": fund_account_id,
            "bank_code": bank_code, "assigned_at": assigned_at,
        })

    def register_contribution(
        self, *, fund_account_id: str, contribution_id: str, amount: int, year: int, cap: int,
    ) -> Event:
        """A-CONT-5: registered in real time; refused when the year's total would pass the cap."""
        contributed = self.contributed_in(year)
        remaining = self.remaining_quota(year, cap)
        if amount > remaining:
            raise ContributionCapExceeded(
                f"the contribution of {format_fen(amount)} yuan exceeds the {format_fen(remaining)} yuan "
                f"left of the {year} annual cap",
                remaining_quota=format_fen(remaining), year=year,
            )
        return Event(CONTRIBUTION_QUOTA_REGISTERED, {
            "participant_id": self.participant_id, "fund_account_id": fund_account_id,
            "contribution_id": contribution_id, "year": year, "amount": amount,
            "contributed_this_year": contributed + amount, "remaining_quota": remaining - amount,
        })
