"""How the information platform reacts to the fund-account service's reports: each becomes a
fact in the platform's own ledger (so the platform replays from zero on its own), citing the
event it came from."""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy.engine import Connection

from pension_account.domain.participant import participant_stream
from pension_account.domain.records import CONTRIBUTION_RECORDED, FUND_ACCOUNT_BOUND, INVESTMENT_KINDS, INVESTMENT_RECORDED
from pension_shared.clock import business_year, parse_rfc3339
from pension_shared.envelope import Envelope
from pension_shared.ledger import EventStore, Metadata, NewEvent

Policy = Callable[[Connection, Envelope], None]

FUND_ACCOUNT = "cn.pension.fund-account"


def _record(store: EventStore, conn: Connection, source: Envelope, name: str, data: dict[str, Any]) -> None:
    stream = store.load(conn, participant_stream(source.subject))
    if not stream.version:
        raise LookupError(f"participant {source.subject} is not registered on the platform")
    meta = Metadata(time=source.time, correlation_id=source.correlationid, causation_id=source.id)
    cited = {**data, "source_event": {"id": source.id, "type": source.type, "source": source.source}}
    store.append(conn, stream.stream_id, stream.version, [NewEvent(name, cited, subject=source.subject)], meta)


def policies(store: EventStore) -> dict[str, Policy]:
    def fund_account_opened(conn: Connection, source: Envelope) -> None:
        data = source.data
        _record(store, conn, source, FUND_ACCOUNT_BOUND, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "bank_code": data["bank_code"], "branch_city": data["branch_city"], "bound_at": data["opened_at"],
        })

    def contribution_received(conn: Connection, source: Envelope) -> None:
        data = source.data
        _record(store, conn, source, CONTRIBUTION_RECORDED, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "contribution_id": data["contribution_id"], "year": data["year"], "amount": data["amount"],
            "channel": data["channel"], "contributed_this_year": data["contributed_this_year"],
            "remaining_quota": data["remaining_quota"],
        })

    def investment(conn: Connection, source: Envelope) -> None:
        data = source.data
        kind = INVESTMENT_KINDS[source.event_type.name]
        amount = data.get("amount", data.get("proceeds"))
        _record(store, conn, source, INVESTMENT_RECORDED, {
            "participant_id": data["participant_id"], "fund_account_id": data["fund_account_id"],
            "kind": kind, "product_code": data.get("product_code"), "amount": amount,
            "year": business_year(parse_rfc3339(source.time)),
        })

    handlers: dict[str, Policy] = {
        f"{FUND_ACCOUNT}.FundAccountOpened.v1": fund_account_opened,
        f"{FUND_ACCOUNT}.ContributionReceived.v1": contribution_received,
    }
    for name in INVESTMENT_KINDS:
        handlers[f"{FUND_ACCOUNT}.{name}.v1"] = investment
    return handlers
