"""The platform told us this participant has a personal pension account: a fund account may be opened for them (A-FACC-7)."""

from __future__ import annotations

PARTICIPANT_RECOGNISED = "ParticipantRecognised"


def participant_stream(participant_id: str) -> str:
    return f"participant-{participant_id}"
