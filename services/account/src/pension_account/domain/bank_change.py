"""The platform's part of a bank change (A-CHG-1/2/4, RULES.md §10.6): it confirms the change the
old bank reported, giving the new bank the year's remaining quota, or refuses it when the person
can no longer change bank; it records the change once the closed loop has completed it.

Pure domain: the caller reads the participant's status and quota; no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

BANK_CHANGE_CONFIRMED = "BankChangeConfirmed"
BANK_CHANGE_REJECTED = "BankChangeRejected"
BANK_CHANGE_COMPLETED = "BankChangeCompleted"

MAY_CHANGE_BANK = frozenset({"active", "receiving"})
"""A deceased person's or a closed account's assets are settled, not moved to another bank."""


@dataclass(frozen=True)
class BankChangeAnswers:
    """The bank changes of one participant the platform has already answered or recorded."""

    answered: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()

    @classmethod
    def from_events(cls, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "BankChangeAnswers":
        answered: set[str] = set()
        completed: set[str] = set()
        for name, data in events:
            if name in (BANK_CHANGE_CONFIRMED, BANK_CHANGE_REJECTED):
                answered.add(data["bank_change_id"])
            elif name == BANK_CHANGE_COMPLETED:
                completed.add(data["bank_change_id"])
        return cls(frozenset(answered), frozenset(completed))

    def answer(
        self, request: Mapping[str, Any], *, status: str, year: int, remaining_quota: int,
    ) -> tuple[str, dict[str, Any]] | None:
        """Confirm with the remaining quota of the year, or refuse; None if already answered."""
        bank_change_id = request["bank_change_id"]
        if bank_change_id in self.answered:
            return None
        if status not in MAY_CHANGE_BANK:
            return BANK_CHANGE_REJECTED, {
                "bank_change_id": bank_change_id, "participant_id": request["participant_id"],
                "reason": f"the participant's personal pension account is {status}",
            }
        return BANK_CHANGE_CONFIRMED, {
            "bank_change_id": bank_change_id, "participant_id": request["participant_id"],
            "old_fund_account_id": request["old_fund_account_id"], "old_bank_code": request["old_bank_code"],
            "new_bank_code": request["new_bank_code"], "new_branch_city": request["new_branch_city"],
            "year": year, "remaining_quota": remaining_quota,
        }

    def record_completion(self, completed: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """A-CHG-4: the platform rebinds to the new account; the old one is closed."""
        if completed["bank_change_id"] in self.completed:
            return None
        holdings_cost = sum(h["cost"] for h in completed.get("holdings_transferred", ()))
        return BANK_CHANGE_COMPLETED, {
            **{k: completed[k] for k in (
                "bank_change_id", "participant_id", "old_fund_account_id", "old_bank_code", "new_fund_account_id",
                "new_bank_code", "new_branch_city", "completed_at",
            )},
            "amount": completed["cash_transferred"] + holdings_cost,
            "cash_transferred": completed["cash_transferred"],
            "holdings_transferred": list(completed.get("holdings_transferred", ())),
        }
