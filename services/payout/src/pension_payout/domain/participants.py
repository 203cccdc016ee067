"""Where a participant's payouts go: the social security card account (A-PAY-6), kept sealed in
events so pension.payout stays pseudonymous."""

from __future__ import annotations

PAYEE_REGISTERED = "PayeeRegistered"


def payee_stream(participant_id: str) -> str:
    return f"payee-{participant_id}"
