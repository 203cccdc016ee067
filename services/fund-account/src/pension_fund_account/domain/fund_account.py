"""The fund account at a bank: the closed loop (A-FACC-1..5, A-CONT-4/5, A-INV-1..5, A-CHG-1..7).

A double-entry ledger: every money-moving event carries the amounts it moved and the cash after
it, so that at every point

    cash + cost of holdings == contributions + income + realised gains of redemptions
                               + transferred in - transferred out   (cash and holdings at cost)

Money in integer fen, units in integer micro-units. Pure domain: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Iterable, Mapping

from pension_fund_account.domain.errors import (
    AccountClosed, AccountFrozen, BankChangeNotAllowed, FundAccountNotFound, InsufficientFunds,
)
from pension_fund_account.domain.events import (
    CASH_TRANSFERRED_OUT, CONTRIBUTION_RECEIVED, FUND_ACCOUNT_CLOSED, FUND_ACCOUNT_FROZEN, FUND_ACCOUNT_OPENED,
    FUND_ACCOUNT_UNFROZEN, HOLDING_TRANSFERRED_IN, HOLDING_TRANSFERRED_OUT, INCOME_CREDITED, PRODUCT_PURCHASED,
    FUND_ACCOUNT_RECEIVING, PAYOUT_DEBITED, PAYOUT_REFUNDED, PRODUCT_REDEEMED, TRANSFER_IN_RECEIVED, Event,
)
from pension_fund_account.domain.participant_funds import ParticipantFunds
from pension_shared.policy import policy_on
from pension_fund_account.domain.products import Product
from pension_fund_account.domain.units import format_units
from pension_shared.money import format_fen

ACTIVE, FROZEN, RECEIVING, CLOSED = "active", "frozen", "receiving", "closed"
CHANNELS = ("bank_transfer", "payment_institution", "cash")
INCOME_KINDS = ("interest", "dividend", "maturity_gain")


@dataclass
class Holding:
    units: int
    """Micro-units."""
    cost: int
    """Fen paid for the units still held."""


@dataclass
class FundAccount:
    fund_account_id: str
    participant_id: str | None = None
    bank_code: str | None = None
    branch_city: str | None = None
    status: str | None = None
    cash: int = 0
    holdings: dict[str, Holding] = field(default_factory=dict)
    contribution_days: set[str] = field(default_factory=set)
    """Business dates (ISO) with a contribution: no bank change on those days (A-CHG-6)."""
    frozen_for: str | None = None
    """The bank change this account is frozen for."""
    status_before_freeze: str | None = None

    SNAPSHOT: ClassVar[str] = "FundAccount.v1"
    """The kind of its snapshots: a new one whenever ``apply`` or the state changes."""

    @classmethod
    def from_events(
        cls, fund_account_id: str, events: Iterable[tuple[str, Mapping[str, Any]]],
        snapshot: Mapping[str, Any] | None = None,
    ) -> "FundAccount":
        """The account folded from its events, or from the events after ``snapshot``
        (a ``snapshot_state``)."""
        account = cls(fund_account_id) if snapshot is None else cls._restored(fund_account_id, snapshot)
        for name, data in events:
            account.apply(name, data)
        return account

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id, "bank_code": self.bank_code, "branch_city": self.branch_city,
            "status": self.status, "cash": self.cash,
            "holdings": {code: [held.units, held.cost] for code, held in self.holdings.items()},
            "contribution_days": sorted(self.contribution_days), "frozen_for": self.frozen_for,
            "status_before_freeze": self.status_before_freeze,
        }

    @classmethod
    def _restored(cls, fund_account_id: str, state: Mapping[str, Any]) -> "FundAccount":
        return cls(
            fund_account_id, participant_id=state["participant_id"], bank_code=state["bank_code"],
            branch_city=state["branch_city"], status=state["status"], cash=state["cash"],
            holdings={code: Holding(units, cost) for code, (units, cost) in state["holdings"].items()},
            contribution_days=set(state["contribution_days"]), frozen_for=state["frozen_for"],
            status_before_freeze=state["status_before_freeze"],
        )

    @property
    def opened(self) -> bool:
        return self.status is not None

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        if name == FUND_ACCOUNT_OPENED:
            self.participant_id = data["participant_id"]
            self.bank_code = data["bank_code"]
            self.branch_city = data["branch_city"]
            self.status = ACTIVE
        elif name == CONTRIBUTION_RECEIVED:
            self.cash += data["amount"]
            if data.get("booked_on"):
                self.contribution_days.add(data["booked_on"])
        elif name == INCOME_CREDITED or name == TRANSFER_IN_RECEIVED:
            self.cash += data["amount"]
        elif name == CASH_TRANSFERRED_OUT:
            self.cash -= data["amount"]
        elif name == PAYOUT_DEBITED:
            self.cash -= data["gross"]
        elif name == PAYOUT_REFUNDED:
            self.cash += data["amount"]
        elif name == HOLDING_TRANSFERRED_IN:
            held = self.holdings.setdefault(data["product_code"], Holding(0, 0))
            held.units += data["units"]
            held.cost += data["cost"]
        elif name == HOLDING_TRANSFERRED_OUT:
            del self.holdings[data["product_code"]]
        elif name == FUND_ACCOUNT_FROZEN:
            self.status_before_freeze = self.status
            self.status, self.frozen_for = FROZEN, data["bank_change_id"]
        elif name == FUND_ACCOUNT_UNFROZEN:
            self.status, self.frozen_for = data.get("status_after", ACTIVE), None
        elif name == FUND_ACCOUNT_RECEIVING:
            self.status = RECEIVING
        elif name == FUND_ACCOUNT_CLOSED:
            self.status, self.frozen_for = CLOSED, None
        elif name == PRODUCT_PURCHASED:
            self.cash -= data["amount"]
            held = self.holdings.setdefault(data["product_code"], Holding(0, 0))
            held.units += data["units"]
            held.cost += data["amount"]
        elif name == PRODUCT_REDEEMED:
            self.cash += data["proceeds"]
            held = self.holdings[data["product_code"]]
            held.units -= data["units"]
            held.cost -= data["cost_released"]
            if held.units == 0:
                del self.holdings[data["product_code"]]

    # -- commands -----------------------------------------------------------------------

    def held_by(self, bank_code: str | None) -> "FundAccount":
        """The account as the bank asking for it sees it: another bank learns nothing."""
        if not self.opened or bank_code != self.bank_code:
            raise FundAccountNotFound(f"no fund account {self.fund_account_id} at this bank")
        return self

    def open(
        self, *, participant_id: str, bank_code: str, branch_city: str, opened_at: str,
        transferred_from: str | None = None, bank_change_id: str | None = None,
    ) -> Event:
        """A new fund account; ``transferred_from`` names the old account of a bank change (A-CHG-1)."""
        data = {
            "fund_account_id": self.fund_account_id, "participant_id": participant_id,
            "bank_code": bank_code, "branch_city": branch_city, "opened_at": opened_at,
        }
        if transferred_from is not None:
            data.update(transferred_from=transferred_from, bank_change_id=bank_change_id)
        return Event(FUND_ACCOUNT_OPENED, data)

    def receive_contribution(
        self, funds: ParticipantFunds, *, contribution_id: str, amount: int, channel: str, reference: str,
        on: date,
    ) -> tuple[Event, Event]:
        """The contribution on this account and its registration in the participant's quota for the
        calendar year of ``on`` (the Asia/Shanghai business date), decided together: both or neither."""
        self._ensure_open_for("contributions")
        year, policy = on.year, policy_on(on)
        if channel not in CHANNELS:
            raise ValueError(f"unknown contribution channel {channel!r}")
        registered = funds.register_contribution(
            fund_account_id=self.fund_account_id, contribution_id=contribution_id, amount=amount,
            year=year, cap=policy.annual_contribution_cap,
        )
        received = Event(CONTRIBUTION_RECEIVED, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "contribution_id": contribution_id, "amount": amount, "channel": channel, "reference": reference,
            "year": year, "contributed_this_year": registered.data["contributed_this_year"],
            "remaining_quota": registered.data["remaining_quota"], "cash_after": self.cash + amount,
            "booked_on": on.isoformat(),
        })
        return received, registered

    def purchase(self, product: Product, *, amount: int, units: int) -> Event:
        """A-INV-1, A-INV-5: eligible products only (the caller checks the list), never above cash."""
        self._ensure_open_for("investments")
        if amount > self.cash:
            raise InsufficientFunds(
                f"the purchase of {format_fen(amount)} yuan exceeds the cash balance of {format_fen(self.cash)} yuan",
                cash_balance=format_fen(self.cash),
            )
        return Event(PRODUCT_PURCHASED, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "product_code": product.product_code, "product_type": product.product_type,
            "amount": amount, "units": units, "cash_after": self.cash - amount,
        })

    def redeem(self, product_code: str, *, units: int, proceeds: int) -> Event:
        """A-FACC-5: the proceeds come back into this account only. The cost of the units sold
        leaves the holding pro rata (rounded down; all of it when the holding is emptied)."""
        self._ensure_open_for("investments")
        held = self.holdings.get(product_code)
        if held is None or units > held.units:
            have = format_units(held.units) if held else format_units(0)
            raise InsufficientFunds(
                f"cannot redeem {format_units(units)} units of {product_code}: {have} held", units_held=have,
            )
        cost_released = held.cost * units // held.units
        return Event(PRODUCT_REDEEMED, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "product_code": product_code, "units": units, "proceeds": proceeds, "cost_released": cost_released,
            "realised_gain": proceeds - cost_released, "cash_after": self.cash + proceeds,
        })

    def credit_income(self, *, amount: int, kind: str, product_code: str | None) -> Event:
        """A-FACC-4: returns are collected into the fund account; not taxed (A-TAX-7)."""
        if self.status == CLOSED:
            raise AccountClosed(f"fund account {self.fund_account_id} is closed")
        if kind not in INCOME_KINDS:
            raise ValueError(f"unknown income kind {kind!r}")
        return Event(INCOME_CREDITED, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "amount": amount, "kind": kind, "product_code": product_code, "taxed": False,
            "cash_after": self.cash + amount,
        })

    # -- bank change (A-CHG-1..7) -------------------------------------------------------

    def freeze_for_bank_change(self, *, bank_change_id: str, new_bank_code: str, on: date) -> Event:
        """The request to the holding bank freezes the account until the change completes or is
        abandoned; never on a day the account received a contribution (A-CHG-6)."""
        if self.status not in (ACTIVE, RECEIVING):
            raise BankChangeNotAllowed(
                f"fund account {self.fund_account_id} is {self.status}: only an active account can change bank",
                account_status=self.status,
            )
        if new_bank_code == self.bank_code:
            raise BankChangeNotAllowed(f"the fund account is already held by {new_bank_code}")
        if on.isoformat() in self.contribution_days:
            raise BankChangeNotAllowed(
                f"fund account {self.fund_account_id} received a contribution on {on.isoformat()}: "
                "a bank change cannot be processed on that day (A-CHG-6)",
            )
        return Event(FUND_ACCOUNT_FROZEN, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "reason": "bank_change", "bank_change_id": bank_change_id,
        })

    def unfreeze(self, *, bank_change_id: str, reason: str) -> list[Event]:
        """The compensation of a bank change the platform did not confirm; nothing if already done."""
        if self.status != FROZEN or self.frozen_for != bank_change_id:
            return []
        return [Event(FUND_ACCOUNT_UNFROZEN, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "bank_change_id": bank_change_id, "reason": reason,
            "status_after": self.status_before_freeze or ACTIVE,
        })]

    def transfer_out(self, *, bank_change_id: str, to_fund_account_id: str, closed_at: str) -> list[Event]:
        """Everything leaves for the new account, in kind (A-CHG-3, B-4: cash first, then each
        holding with its units and cost), and the account is closed (A-CHG-7)."""
        if self.status != FROZEN or self.frozen_for != bank_change_id:
            raise BankChangeNotAllowed(f"fund account {self.fund_account_id} is not frozen for bank change {bank_change_id}")
        moved = {"fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
                 "bank_change_id": bank_change_id, "to_fund_account_id": to_fund_account_id}
        events = []
        if self.cash:
            events.append(Event(CASH_TRANSFERRED_OUT, {**moved, "amount": self.cash, "cash_after": 0}))
        for product_code, held in sorted(self.holdings.items()):
            events.append(Event(HOLDING_TRANSFERRED_OUT, {
                **moved, "product_code": product_code, "units": held.units, "cost": held.cost, "cash_after": 0,
            }))
        events.append(Event(FUND_ACCOUNT_CLOSED, {
            "fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
            "reason": "bank_change", "bank_change_id": bank_change_id, "transferred_to": to_fund_account_id,
            "closed_at": closed_at,
        }))
        return events

    def transfer_in(self, transferred_out: list[Event]) -> list[Event]:
        """The other side of ``transfer_out`` on the new account: not contributions, so nothing is
        registered against the year's quota (A-CHG-5, A-CONT-7)."""
        cash = self.cash
        events = []
        for out in transferred_out:
            received = {"fund_account_id": self.fund_account_id, "participant_id": self.participant_id,
                        "bank_change_id": out.data["bank_change_id"],
                        "from_fund_account_id": out.data["fund_account_id"]}
            if out.name == CASH_TRANSFERRED_OUT:
                cash += out.data["amount"]
                events.append(Event(TRANSFER_IN_RECEIVED, {
                    **received, "amount": out.data["amount"], "contribution": False, "cash_after": cash,
                }))
            elif out.name == HOLDING_TRANSFERRED_OUT:
                events.append(Event(HOLDING_TRANSFERRED_IN, {
                    **received, "product_code": out.data["product_code"], "units": out.data["units"],
                    "cost": out.data["cost"], "cash_after": cash,
                }))
        return events

    def enter_receiving(self, *, since: str) -> Event | None:
        """A-PACC-5: the account pays benefits from now on; None when closed or already receiving."""
        if self.status in (CLOSED, RECEIVING, None):
            return None
        return Event(FUND_ACCOUNT_RECEIVING, {"fund_account_id": self.fund_account_id,
                                              "participant_id": self.participant_id, "since": since})

    def _ensure_open_for(self, what: str) -> None:
        if self.status == FROZEN:
            raise AccountFrozen(f"fund account {self.fund_account_id} is frozen: it accepts no {what} (A-CHG-6)")
        if self.status == CLOSED:
            raise AccountClosed(f"fund account {self.fund_account_id} is closed")
