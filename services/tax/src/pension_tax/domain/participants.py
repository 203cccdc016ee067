"""A taxpayer known to the tax service: the identity (ID number and name) that vouchers and withholding
returns carry. pension.tax is the one topic that carries it in clear, for the tax bureau."""

from __future__ import annotations

TAXPAYER_REGISTERED = "TaxpayerRegistered"


def taxpayer_stream(participant_id: str) -> str:
    return f"taxpayer-{participant_id}"
