"""The participant's personal pension account on the information platform.

Pure domain: commands are methods that check invariants and return the events that record
the decision; state is rebuilt by applying events. No I/O, no clock, no framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from pension_shared.errors import DomainError

PARTICIPANT_REGISTERED = "ParticipantRegistered"
ID_NUMBER_CLAIMED = "IdNumberClaimed"


class ParticipantExists(DomainError):
    code = "PARTICIPANT_EXISTS"


class ParticipantNotFound(DomainError):
    code = "PARTICIPANT_NOT_FOUND"


class NotHeardAtThisBank(ParticipantNotFound):
    """A participant whose fund account the platform has not heard to be at the asking bank: the
    fund-account service's news of an account just opened may be on its way."""

    rests_on_others = True


@dataclass(frozen=True)
class Registration:
    participant_id: str
    id_number_digest: str
    id_number_masked: str
    identity_sealed: str
    payee_sealed: str
    insurance_type: str
    insured_region: str
    channel: str
    ss_card_bank_code: str
    ss_card_account_masked: str
    registered_at: str
    registered_by: str


def participant_stream(participant_id: str) -> str:
    return f"participant-{participant_id}"


def id_number_stream(digest: str) -> str:
    return f"id-number-{digest}"


@dataclass(frozen=True)
class IdNumberClaim:
    """Who holds an ID number on the platform: one personal pension account per person."""

    holder: str | None = None

    @classmethod
    def from_events(cls, events: Iterable[tuple[str, Mapping[str, Any]]]) -> "IdNumberClaim":
        claim = cls()
        for name, data in events:
            if name == ID_NUMBER_CLAIMED:
                claim = cls(holder=data["participant_id"])
        return claim

    def claim(self, participant_id: str, digest: str) -> dict[str, Any]:
        if self.holder is not None:
            raise ParticipantExists(
                "this person already has a personal pension account", participant_id=self.holder,
            )
        return {"participant_id": participant_id, "id_number_digest": digest}


def register(registration: Registration) -> dict[str, Any]:
    """The data of ``ParticipantRegistered``: pseudonymous, the identity sealed."""
    return {
        "participant_id": registration.participant_id,
        "id_number_digest": registration.id_number_digest,
        "id_number_masked": registration.id_number_masked,
        "identity_sealed": registration.identity_sealed,
        "payee_sealed": registration.payee_sealed,
        "insurance_type": registration.insurance_type,
        "insured_region": registration.insured_region,
        "channel": registration.channel,
        "ss_card_account": {
            "bank_code": registration.ss_card_bank_code,
            "account_number_masked": registration.ss_card_account_masked,
        },
        "registered_at": registration.registered_at,
        "registered_by": registration.registered_by,
    }
