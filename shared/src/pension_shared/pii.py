"""Personal data on the wire: ID numbers are masked everywhere (``4101**********1234``) except
where a rule needs them; uniqueness is checked on a keyed digest; and the few services that
need an identity in clear (the tax service for vouchers, the payout service for the payee's
account) receive it sealed, so every topic but ``pension.tax`` stays pseudonymous."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken


def mask_id_number(id_number: str) -> str:
    """``410105199001011234`` → ``4101**********1234``."""
    if len(id_number) < 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def mask_id_numbers(text: str) -> str:
    """Mask anything shaped like an 18-character ID number (``1101**********002X``)."""
    return _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)


class MaskIdNumbers(logging.Filter):
    """Masks ID numbers in a log record's message and arguments: a request line names one where a
    path holds it (``PUT /v1/ops/insurance-registry/{id_number}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_id_numbers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_id_numbers(a) if isinstance(a, str) else a for a in record.args)
        return True


def mask_account_number(account_number: str) -> str:
    return "*" * max(len(account_number) - 4, 0) + account_number[-4:]


class PersonalDataKey:
    """Derives a digest key and a sealing key from one platform secret."""

    def __init__(self, secret: str) -> None:
        material = secret.encode()
        self._digest_key = hmac.new(material, b"pension/digest", hashlib.sha256).digest()
        seal_key = hmac.new(material, b"pension/seal", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(seal_key))

    def digest(self, value: str) -> str:
        """A stable pseudonym for a personal value (not reversible without the secret)."""
        return hmac.new(self._digest_key, value.encode(), hashlib.sha256).hexdigest()

    def seal(self, document: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(document)).decode()

    def unseal(self, token: str) -> dict[str, Any]:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("the sealed personal data cannot be opened with this key") from exc
