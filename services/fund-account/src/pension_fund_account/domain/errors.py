"""Refusals of the closed loop, each with its promised code (INTERFACES.md §1)."""

from __future__ import annotations

from pension_shared.errors import DomainError


class ParticipantNotFound(DomainError):
    """The platform's registration of the person has not been heard (it may be on its way)."""

    code = "PARTICIPANT_NOT_FOUND"
    rests_on_others = True


class FundAccountExists(DomainError):
    code = "FUND_ACCOUNT_EXISTS"


class FundAccountNotFound(DomainError):
    code = "FUND_ACCOUNT_NOT_FOUND"


class AccountFrozen(DomainError):
    code = "ACCOUNT_FROZEN"


class AccountClosed(DomainError):
    code = "CONFLICT"


class ContributionCapExceeded(DomainError):
    code = "CONTRIBUTION_CAP_EXCEEDED"


class InsufficientFunds(DomainError):
    code = "INSUFFICIENT_FUNDS"


class ProductNotEligible(DomainError):
    code = "PRODUCT_NOT_ELIGIBLE"


class ProductExists(DomainError):
    code = "CONFLICT"


class InvalidRequest(DomainError):
    code = "VALIDATION_FAILED"


class BankChangeNotAllowed(DomainError):
    code = "BANK_CHANGE_NOT_ALLOWED"


class ContributionsEnded(DomainError):
    """A-CONT-8: who qualified for withdrawal by reaching the basic-pension age contributes no more."""

    code = "CONTRIBUTIONS_ENDED"
