"""Deduction voucher numbers and verification codes (A-TAX-2, B-7, C-TAX-3).

A voucher number is derived from the contribution it covers with a keyed digest, so it is unique
and the same on every replay; it is recorded in the event, so a replay never recomputes it. The
verification code (what the voucher's QR code carries) lets anyone holding the voucher check it
with the platform without learning anything else."""

from __future__ import annotations

import hashlib
import hmac

VOUCHER_NO_HEX = 16
VERIFICATION_CODE_HEX = 12


class VoucherSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, secret: str) -> "VoucherSigner":
        """A key of its own, derived from the platform's personal-data secret."""
        return cls(hmac.new(secret.encode(), b"pension/tax/voucher", hashlib.sha256).digest())

    def voucher_no(self, contribution_id: str, year: int) -> str:
        digest = self._mac(f"voucher-no|{contribution_id}")
        return f"V{year}{digest[:VOUCHER_NO_HEX].upper()}"

    def verification_code(self, voucher_no: str, participant_id: str, year: int, amount: int) -> str:
        return self._mac(f"verification|{voucher_no}|{participant_id}|{year}|{amount}")[:VERIFICATION_CODE_HEX].upper()

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def code_matches(presented: str | None, recorded: str) -> bool:
    """Constant-time comparison of a presented verification code with the recorded one."""
    if not presented:
        return False
    return hmac.compare_digest(presented.strip().upper().encode(), recorded.encode())
