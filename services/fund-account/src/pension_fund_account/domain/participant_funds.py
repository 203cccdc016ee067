"""What the closed loop knows of one participant, on the stream ``participant-{id}``: whether the
platform has recognised them, their one active fund account (A-FACC-1; none once it is closed
with its benefits fully paid, B-5), their bank changes
(A-CHG-1..7) and the real-time contribution-quota registry per calendar year, enforced across
every bank (A-CONT-5, A-CONT-7): it stays here when the person changes bank, so the new bank sees
exactly the year's remaining quota.

Pure domain: state is rebuilt from events; commands check invariants and return events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from pension_fund_account.domain.errors import (
    ContributionsEnded,
    BankChangeNotAllowed, ContributionCapExceeded, FundAccountExists, ParticipantNotFound,
)
from pension_fund_account.domain.events import (
    DEATH_RECORDED, RECEIVING_STATUS_RECORDED,
    BANK_CHANGE_ABORTED, BANK_CHANGE_COMPLETED, BANK_CHANGE_REQUESTED, CONTRIBUTION_QUOTA_REGISTERED,
    FUND_ACCOUNT_ASSIGNED, FUND_ACCOUNT_UNASSIGNED, PARTICIPANT_RECOGNISED, Event,
)
from pension_shared.money import format_fen

REQUESTED, COMPLETED, ABORTED = "requested", "completed", "aborted"


@dataclass
class BankChange:
    bank_change_id: str
    old_fund_account_id: str
    old_bank_code: str
    new_bank_code: str
    new_branch_city: str
    status: str = REQUESTED
    new_fund_account_id: str | None = None


@dataclass
class ParticipantFunds:
    participant_id: str
    recognised: bool = False
    active_fund_account_id: str | None = None
    active_bank_code: str | None = None
    contributed_by_year: dict[int, int] = field(default_factory=dict)
    bank_changes: dict[str, BankChange] = field(default_factory=dict)
    receiving: bool = False
    receiving_since: str | None = None
    contributions_ended: bool = False
    deceased: bool = False

    SNAPSHOT: ClassVar[str] = "ParticipantFunds.v4"
    """The kind of its snapshots: a new one whenever ``apply`` or the state changes."""

    @classmethod
    def from_events(
        cls, participant_id: str, events: Iterable[tuple[str, Mapping[str, Any]]],
        snapshot: Mapping[str, Any] | None = None,
    ) -> "ParticipantFunds":
        """The participant's funds folded from their events, or from the events after
        ``snapshot`` (a ``snapshot_state``)."""
        funds = cls(participant_id) if snapshot is None else cls._restored(participant_id, snapshot)
        for name, data in events:
            funds.apply(name, data)
        return funds

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "recognised": self.recognised, "active_fund_account_id": self.active_fund_account_id,
            "active_bank_code": self.active_bank_code,
            "contributed_by_year": {str(year): total for year, total in self.contributed_by_year.items()},
            "bank_changes": {change_id: asdict(change) for change_id, change in self.bank_changes.items()},
            "receiving": self.receiving, "receiving_since": self.receiving_since,
            "contributions_ended": self.contributions_ended, "deceased": self.deceased,
        }

    @classmethod
    def _restored(cls, participant_id: str, state: Mapping[str, Any]) -> "ParticipantFunds":
        return cls(
            participant_id, recognised=state["recognised"], active_fund_account_id=state["active_fund_account_id"],
            active_bank_code=state["active_bank_code"],
            contributed_by_year={int(year): total for year, total in state["contributed_by_year"].items()},
            bank_changes={change_id: BankChange(**change) for change_id, change in state["bank_changes"].items()},
            receiving=state["receiving"], receiving_since=state["receiving_since"],
            contributions_ended=state["contributions_ended"], deceased=state["deceased"],
        )

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        if name == PARTICIPANT_RECOGNISED:
            self.recognised = True
        elif name == FUND_ACCOUNT_ASSIGNED:
            self.active_fund_account_id = data["fund_account_id"]
            self.active_bank_code = data["bank_code"]
        elif name == FUND_ACCOUNT_UNASSIGNED:
            self.active_fund_account_id = self.active_bank_code = None
        elif name == CONTRIBUTION_QUOTA_REGISTERED:
            self.contributed_by_year[data["year"]] = data["contributed_this_year"]
        elif name == BANK_CHANGE_REQUESTED:
            self.bank_changes[data["bank_change_id"]] = BankChange(
                data["bank_change_id"], data["old_fund_account_id"], data["old_bank_code"],
                data["new_bank_code"], data["new_branch_city"],
            )
        elif name == BANK_CHANGE_COMPLETED:
            change = self.bank_changes[data["bank_change_id"]]
            change.status, change.new_fund_account_id = COMPLETED, data["new_fund_account_id"]
            self.active_fund_account_id, self.active_bank_code = data["new_fund_account_id"], data["new_bank_code"]
        elif name == BANK_CHANGE_ABORTED:
            self.bank_changes[data["bank_change_id"]].status = ABORTED
        elif name == RECEIVING_STATUS_RECORDED:
            if not self.receiving:  # a later approval (the age after an early condition) keeps the first date
                self.receiving, self.receiving_since = True, data.get("since")
            self.contributions_ended = self.contributions_ended or not data["may_continue_contributing"]
        elif name == DEATH_RECORDED:
            self.deceased = self.contributions_ended = True

    @property
    def pending_bank_change(self) -> BankChange | None:
        return next((c for c in self.bank_changes.values() if c.status == REQUESTED), None)

    def bank_change_in_progress(self, bank_change_id: str) -> BankChange | None:
        """The change, if it is still waiting for the platform; None once completed or aborted
        (a redelivered answer of the platform then does nothing)."""
        change = self.bank_changes.get(bank_change_id)
        return change if change is not None and change.status == REQUESTED else None

    def contributed_in(self, year: int) -> int:
        return self.contributed_by_year.get(year, 0)

    def remaining_quota(self, year: int, cap: int) -> int:
        return max(cap - self.contributed_in(year), 0)

    # -- commands -----------------------------------------------------------------------

    def record_receiving(self, *, condition: str, may_continue_contributing: bool, since: str) -> Event | None:
        """A-PACC-5: the platform put the participant in receiving status. None if that changes
        nothing: already receiving, and either contributions have ended already or this condition
        lets them go on. The age approved after an early condition ends them (A-CONT-8)."""
        if self.receiving and (self.contributions_ended or may_continue_contributing):
            return None
        return Event(RECEIVING_STATUS_RECORDED, {
            "participant_id": self.participant_id, "condition": condition,
            "may_continue_contributing": may_continue_contributing, "since": since,
        })

    def record_death(self, *, date_of_death: str, recorded_at: str) -> Event | None:
        """A-INH-1: the platform registered the participant's death; None if already known.
        Nothing more comes in: the account is settled by inheritance."""
        if self.deceased:
            return None
        return Event(DEATH_RECORDED, {
            "participant_id": self.participant_id, "date_of_death": date_of_death, "recorded_at": recorded_at,
        })

    def assign_fund_account(self, fund_account_id: str, bank_code: str, *, assigned_at: str) -> Event:
        """A-FACC-1: one active fund account per person, whichever bank holds it; another once the
        last one was closed, for one who may still contribute (A-CONT-8)."""
        if not self.recognised:
            raise ParticipantNotFound(f"the platform has not registered participant {self.participant_id}")
        if self.active_fund_account_id is not None:
            raise FundAccountExists(
                "this person already has an active fund account",
                fund_account_id=self.active_fund_account_id, bank_code=self.active_bank_code,
            )
        if self.contributions_ended:  # nothing could ever come into a new one
            raise ContributionsEnded(
                "the participant has died or receives by reason of the basic-pension age: "
                "no new fund account is opened for them (A-CONT-8, A-INH-1)"
            )
        return Event(FUND_ACCOUNT_ASSIGNED, {
            "participant_id": self.participant_id, "fund_account_id": fund_account_id,
            "bank_code": bank_code, "assigned_at": assigned_at,
        })

    def unassign_fund_account(self, fund_account_id: str, *, reason: str, unassigned_at: str) -> Event | None:
        """B-5: the account was closed, so it is no longer the person's active fund account; one who
        may go on contributing (A-CONT-8) can then open another, at any bank, and the year's
        contributions still count against its cap (the registry stays here, A-CONT-7). None when
        ``fund_account_id`` is not the active one (already unassigned, or replaced by a bank change)."""
        if fund_account_id != self.active_fund_account_id:
            return None
        return Event(FUND_ACCOUNT_UNASSIGNED, {
            "participant_id": self.participant_id, "fund_account_id": fund_account_id,
            "bank_code": self.active_bank_code, "reason": reason, "unassigned_at": unassigned_at,
        })

    def register_contribution(
        self, *, fund_account_id: str, contribution_id: str, amount: int, year: int, cap: int,
    ) -> Event:
        """A-CONT-5: registered in real time; refused when the year's total would pass the cap.
        A-CONT-8: refused altogether once the participant receives by reason of age."""
        if self.deceased:
            raise ContributionsEnded("the participant has died: the account is settled by inheritance (A-INH-1)")
        if self.contributions_ended:
            raise ContributionsEnded(
                "the participant receives the personal pension by reason of the basic-pension age and "
                "contributes no more (A-CONT-8)"
            )
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

    def request_bank_change(
        self, *, bank_change_id: str, fund_account_id: str, new_bank_code: str, new_branch_city: str,
        requested_at: str,
    ) -> Event:
        """A-CHG-1: asked of the bank holding the person's active fund account, one change at a time."""
        if fund_account_id != self.active_fund_account_id or self.active_bank_code is None:
            raise BankChangeNotAllowed(f"fund account {fund_account_id} is not the person's active fund account")
        pending = self.pending_bank_change
        if pending is not None:
            raise BankChangeNotAllowed(
                f"bank change {pending.bank_change_id} is already in progress", bank_change_id=pending.bank_change_id,
            )
        return Event(BANK_CHANGE_REQUESTED, {
            "bank_change_id": bank_change_id, "participant_id": self.participant_id,
            "old_fund_account_id": fund_account_id, "old_bank_code": self.active_bank_code,
            "new_bank_code": new_bank_code, "new_branch_city": new_branch_city, "requested_at": requested_at,
        })

    def complete_bank_change(
        self, change: BankChange, *, new_fund_account_id: str, transferred: Mapping[str, Any],
        confirmed_remaining_quota: int, completed_at: str,
    ) -> Event:
        """A-CHG-4/7: the new account is the person's one active fund account from now on."""
        return Event(BANK_CHANGE_COMPLETED, {
            "bank_change_id": change.bank_change_id, "participant_id": self.participant_id,
            "old_fund_account_id": change.old_fund_account_id, "old_bank_code": change.old_bank_code,
            "new_fund_account_id": new_fund_account_id, "new_bank_code": change.new_bank_code,
            "new_branch_city": change.new_branch_city, **transferred,
            "confirmed_remaining_quota": confirmed_remaining_quota, "completed_at": completed_at,
        })

    def abort_bank_change(self, change: BankChange, *, reason: str, aborted_at: str) -> Event:
        return Event(BANK_CHANGE_ABORTED, {
            "bank_change_id": change.bank_change_id, "participant_id": self.participant_id,
            "old_fund_account_id": change.old_fund_account_id, "reason": reason, "aborted_at": aborted_at,
        })
