"""Dead letters as an operator sees them: every letter parked in the four ``<topic>.dlq``
topics, whether an operator has handled it yet, and the two ways to handle one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from pension_cli.log_access import LogAccess
from pension_cli.operations import (
    DEAD_LETTER_RETRIED, DEAD_LETTER_SKIPPED, handled_letters, letter_id, record_operation,
)
from pension_shared.envelope import Envelope
from pension_shared.messaging import OutgoingRecord
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class Letter:
    id: str
    dlq_topic: str
    document: dict[str, Any]
    handled_by: Envelope | None = None

    @property
    def summary(self) -> dict[str, Any]:
        d = self.document
        return {
            "letter": self.id, "consumer": d.get("consumer"), "topic": d.get("topic"), "partition": d.get("partition"),
            "offset": d.get("offset"), "key": d.get("key"), "event_id": d.get("event_id"),
            "event_type": d.get("event_type"), "attempts": d.get("attempts"), "failed_at": d.get("failed_at"),
            "error": d.get("error"),
            "handled": None if self.handled_by is None else {
                "action": self.handled_by.event_type.name, "by": self.handled_by.data.get("operator"),
                "at": self.handled_by.time, "event_id": self.handled_by.id,
            },
        }


def letters(log: LogAccess, operations: Engine | None, dlq_topics: Sequence[str]) -> list[Letter]:
    handled = handled_letters(operations) if operations is not None else {}
    found = []
    for record in log.records(dlq_topics, from_beginning=True, follow=False):
        ident = letter_id(record.topic, record.partition, record.offset)
        try:
            document = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            document = {"error": "the dead letter itself is not JSON", "value": record.value.decode("utf-8", "replace")}
        found.append(Letter(ident, record.topic, document, handled.get(ident)))
    return found


class LetterNotFound(LookupError):
    pass


def _waiting(all_letters: list[Letter], ident: str) -> Letter:
    letter = next((letter for letter in all_letters if letter.id == ident), None)
    if letter is None:
        raise LetterNotFound(f"no dead letter {ident}")
    if letter.handled_by is not None:
        raise LetterNotFound(f"dead letter {ident} was already handled ({letter.handled_by.event_type.name} "
                             f"by {letter.handled_by.data.get('operator')} at {letter.handled_by.time})")
    return letter


def retry(log: LogAccess, operations: Engine, dlq_topics: Sequence[str], ident: str, *, operator: str) -> Envelope:
    """Publish the letter's original value to its original topic again (consumers deduplicate
    by event id, so the ones that applied it already skip it), then record that it was retried."""
    letter = _waiting(letters(log, operations, dlq_topics), ident)
    d = letter.document
    if not d.get("topic") or d.get("value") is None:
        raise LetterNotFound(f"dead letter {ident} does not say what to publish (no topic or value)")
    log.publish([OutgoingRecord(d["topic"], d.get("key"), str(d["value"]).encode())])
    return record_operation(operations, DEAD_LETTER_RETRIED, _operation(letter, operator))


def skip(log: LogAccess, operations: Engine, dlq_topics: Sequence[str], ident: str, *, operator: str, reason: str) -> Envelope:
    letter = _waiting(letters(log, operations, dlq_topics), ident)
    return record_operation(operations, DEAD_LETTER_SKIPPED, {**_operation(letter, operator), "reason": reason})


def _operation(letter: Letter, operator: str) -> dict[str, Any]:
    d = letter.document
    return {
        "letter": letter.id, "dlq_topic": letter.dlq_topic, "consumer": d.get("consumer"), "topic": d.get("topic"),
        "partition": d.get("partition"), "offset": d.get("offset"), "event_id": d.get("event_id"),
        "event_type": d.get("event_type"), "operator": operator,
    }
