"""Read-your-writes across services (INTERFACES.md §1): the position a write returns, and how far
a service that reads another's events has applied them.

Every service keeps its own ledger, numbered from 1, so a position alone does not say whose it is.
The ``position`` a write's response carries therefore names its ledger as well: the ledger's
number times ``PER_LEDGER`` plus the position in it (``2000000000000136`` is position 136 of the
fund-account ledger). Those are what a read's ``?min_position=`` takes back, from any service.

A service reading another's events records, as its consumer applies them, the highest position of
that ledger it has applied for each participant (``read_positions``; the relay sends each record
with its event's position, in the ``position`` header). A read given a position of an upstream
ledger waits, briefly, until the reader has applied that ledger's events of the participant it
reads up to that position; for a read not about one participant, up to that position in any of
them. A position of the reader's own ledger needs no wait (its read models are written in the
command's transaction), nor does one of a ledger it does not read.

What it promises: once a write's response is in hand, a read given its position shows the write's
effect, unless the wait ran out (the reader then answers with what it has). A participant's events
reach a reader in the order their ledger published them, which is the order their transactions
committed: a read given a position may also find the effect of a later write to the same
participant before that of an earlier one made at the same time."""

from __future__ import annotations

from dataclasses import dataclass

LEDGERS = ("account", "fund-account", "tax", "payout")
"""The ledgers, numbered from 1 in this order."""

PER_LEDGER = 10**15
"""Positions of one ledger, as returned to clients: room for a thousand million million events,
and every returned position is below 2**53, exact in any JSON reader."""

ANY_PARTICIPANT = ""
"""The ``participant_id`` of the row holding the highest position applied of a ledger, whoever
it was about."""


@dataclass(frozen=True)
class LedgerPosition:
    ledger: str
    position: int


def returned(ledger: str, position: int) -> int:
    """The position a write's response carries: ``position`` of ``ledger``, named."""
    if not 0 <= position < PER_LEDGER:
        raise ValueError(f"position {position} out of range")
    return (LEDGERS.index(ledger) + 1) * PER_LEDGER + position


def of(returned_position: int) -> LedgerPosition | None:
    """Whose ledger, and where in it, a returned position is; None for a number that names no
    ledger (below ``PER_LEDGER``, or past the last ledger's range)."""
    number, position = divmod(returned_position, PER_LEDGER)
    if not 1 <= number <= len(LEDGERS):
        return None
    return LedgerPosition(LEDGERS[number - 1], position)

