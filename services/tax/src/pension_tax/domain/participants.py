"""A taxpayer known to the tax service: the identity (ID number and name) that vouchers and withholding
returns carry. pension.tax is the one topic that carries it in clear, for the tax bureau."""

from __future__ import annotations

from pension_tax.domain.events import TAXPAYER_REGISTERED, taxpayer_stream

__all__ = ["TAXPAYER_REGISTERED", "taxpayer_stream"]
