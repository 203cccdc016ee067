"""Withdrawal applications on the information platform (A-WD-1..11, A-PACC-5) and the
participant's life-cycle status they change.

Since 2025-09-01 the social insurance agency of the participant's insured region verifies
every application (A-WD-8); approval moves the participant to receiving status (A-PACC-5).
Who qualified on a condition other than the basic-pension age may go on contributing (A-CONT-8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from pension_shared.errors import DomainError, Forbidden
from pension_shared.policy import WITHDRAWAL_CONDITIONS, withdrawal_condition_in_force

from pension_account.domain.participant import PARTICIPANT_REGISTERED, ParticipantNotFound

WITHDRAWAL_APPLIED = "WithdrawalApplied"
WITHDRAWAL_MATERIALS_REQUESTED = "WithdrawalMaterialsRequested"
WITHDRAWAL_APPROVED = "WithdrawalApproved"
WITHDRAWAL_REJECTED = "WithdrawalRejected"
PARTICIPANT_RECEIVING = "ParticipantReceiving"
PARTICIPANT_DIED = "ParticipantDied"

DECISIONS = ("approved", "rejected", "materials_requested")


class ConditionNotInForce(DomainError):
    code = "WITHDRAWAL_CONDITION_NOT_IN_FORCE"


class ApplicationNotFound(DomainError):
    code = "NOT_FOUND"


def may_continue_contributing(condition: str) -> bool:
    """A-CONT-8: a participant receiving on a condition other than reaching the age may go on
    contributing."""
    return condition != "retirement_age"


def eligibility(status: str, approved: Sequence[str]) -> dict[str, Any]:
    """What the participant may do now, as the platform records it, from their status and the
    conditions agencies approved (latest first): contribute while active, or while receiving on
    conditions none of which is the age (A-CONT-8); withdraw once in receiving status (A-PACC-5).
    Once the age was approved, contributions have ended for good, whatever was approved after:
    the age is the condition shown; otherwise the latest approved."""
    receiving = status == "receiving"
    ending = next((condition for condition in approved if not may_continue_contributing(condition)), None)
    return {
        "may_contribute": status == "active" or (receiving and bool(approved) and ending is None),
        "may_withdraw": receiving,
        "withdrawal_condition": (ending or approved[0]) if receiving and approved else None,
    }


def application_stream(application_id: str) -> str:
    return f"withdrawal-application-{application_id}"


@dataclass(frozen=True)
class ParticipantLife:
    """The participant's status as the platform's own events tell it."""

    registered: bool = False
    status: str = "active"
    insured_region: str | None = None
    contributions_ended: bool = False
    """Whether an approval ended contributions (the age, A-CONT-8)."""

    @classmethod
    def from_events(cls, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "ParticipantLife":
        life = cls()
        for name, data in events:
            if name == PARTICIPANT_REGISTERED:
                life = cls(True, "active", data["insured_region"])
            elif name == PARTICIPANT_RECEIVING:
                ended = life.contributions_ended or not data.get("may_continue_contributing", True)
                life = cls(True, "receiving", life.insured_region, ended)
            elif name == PARTICIPANT_DIED:
                life = cls(True, "deceased", life.insured_region, True)
        return life

    def may_be_approved(self) -> None:
        """A-INH-1: a deceased participant's account is settled by inheritance; no withdrawal of
        theirs is approved any more, even one applied for before the death."""
        if self.status == "deceased":
            raise DomainError("the participant is deceased: their account is settled by inheritance (A-INH-1)")

    def receives(self, receiving: Mapping[str, Any]) -> bool:
        """Whether an approval's receiving status is news to record on the participant's stream:
        it puts an active participant in receiving status, or, for one already receiving on an
        early condition, it is the age, which ends their contributions (A-CONT-8)."""
        return self.status == "active" or (
            self.status == "receiving" and not self.contributions_ended and not receiving["may_continue_contributing"])

    def apply_for_withdrawal(self, *, application_id: str, participant_id: str, condition: str,
                             evidence: list[str], on: date, applied_at: str, channel: str) -> dict[str, Any]:
        if not self.registered:
            raise ParticipantNotFound(f"no participant {participant_id}")
        if self.status == "deceased":
            raise DomainError("the participant is deceased: their account is settled by inheritance")
        if condition not in WITHDRAWAL_CONDITIONS:
            raise DomainError(f"unknown withdrawal condition {condition!r}", code="VALIDATION_FAILED")
        if not withdrawal_condition_in_force(condition, on):
            raise ConditionNotInForce(f"the withdrawal condition {condition!r} is not in force on {on.isoformat()}")
        return {
            "application_id": application_id, "participant_id": participant_id, "condition": condition,
            "evidence": list(evidence), "insured_region": self.insured_region, "channel": channel,
            "applied_at": applied_at,
        }

    def register_death(self, *, participant_id: str, date_of_death: date, on: date, heirs: list["Heir"],
                       heirs_sealed: str, registered_at: str) -> dict[str, Any]:
        if not self.registered:
            raise ParticipantNotFound(f"no participant {participant_id}")
        if self.status == "deceased":
            raise DomainError("the participant's death is already registered")
        if date_of_death > on:
            raise DomainError("the date of death cannot be after the business date", code="VALIDATION_FAILED")
        validate_shares(heirs)
        return {
            "participant_id": participant_id, "date_of_death": date_of_death.isoformat(),
            "heirs": [
                {"heir_no": i + 1, "share": h.share, "payee_bank_code": h.payee_bank_code,
                 "payee_account_masked": h.payee_account_masked}
                for i, h in enumerate(heirs)
            ],
            "heirs_sealed": heirs_sealed, "registered_at": registered_at,
        }


@dataclass(frozen=True)
class Heir:
    share: str
    payee_bank_code: str
    payee_account_masked: str


def validate_shares(heirs: list[Heir]) -> None:
    if not heirs:
        raise DomainError("at least one heir is required", code="VALIDATION_FAILED")
    try:
        shares = [Fraction(h.share) for h in heirs]
    except (ValueError, ZeroDivisionError) as exc:
        raise DomainError("each share is a decimal such as \"0.5\"", code="VALIDATION_FAILED") from exc
    if any(s <= 0 for s in shares) or sum(shares) != 1:
        raise DomainError("the heirs' shares must be positive and add up to exactly 1", code="VALIDATION_FAILED")


@dataclass(frozen=True)
class WithdrawalApplication:
    application_id: str
    participant_id: str = ""
    condition: str = ""
    insured_region: str | None = None
    status: str = "none"

    @classmethod
    def from_events(cls, application_id: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "WithdrawalApplication":
        app = cls(application_id)
        for name, data in events:
            if name == WITHDRAWAL_APPLIED:
                app = cls(application_id, data["participant_id"], data["condition"], data["insured_region"],
                          "under_verification")
            elif name == WITHDRAWAL_MATERIALS_REQUESTED:
                app = cls(app.application_id, app.participant_id, app.condition, app.insured_region, "materials_requested")
            elif name == WITHDRAWAL_APPROVED:
                app = cls(app.application_id, app.participant_id, app.condition, app.insured_region, "approved")
            elif name == WITHDRAWAL_REJECTED:
                app = cls(app.application_id, app.participant_id, app.condition, app.insured_region, "rejected")
        return app

    def decide(self, *, decision: str, reason: str | None, agency_region: str, decided_at: str) -> list[tuple[str, dict[str, Any]]]:
        """The agency's decision: events for the application stream, and for the participant's
        stream on approval (returned under the name PARTICIPANT_RECEIVING)."""
        if self.status == "none":
            raise ApplicationNotFound(f"no withdrawal application {self.application_id}")
        if agency_region != self.insured_region:
            raise Forbidden("only the social insurance agency of the participant's insured region decides (A-WD-8)")
        if self.status in ("approved", "rejected"):
            raise DomainError(f"the application is already {self.status}")
        if decision not in DECISIONS:
            raise DomainError(f"unknown decision {decision!r}", code="VALIDATION_FAILED")
        if decision in ("rejected", "materials_requested") and not reason:
            raise DomainError("a reason is required when rejecting or requesting materials", code="VALIDATION_FAILED")
        base = {"application_id": self.application_id, "participant_id": self.participant_id,
                "decided_by": f"agency:{agency_region}", "reason": reason, "decided_at": decided_at}
        if decision == "rejected":
            return [(WITHDRAWAL_REJECTED, base)]
        if decision == "materials_requested":
            return [(WITHDRAWAL_MATERIALS_REQUESTED, base)]
        may_continue = may_continue_contributing(self.condition)
        return [
            (WITHDRAWAL_APPROVED, {**base, "condition": self.condition}),
            (PARTICIPANT_RECEIVING, {
                "participant_id": self.participant_id, "application_id": self.application_id,
                "condition": self.condition, "may_continue_contributing": may_continue, "since": decided_at,
            }),
        ]
