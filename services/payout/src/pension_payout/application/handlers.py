"""Starting a withdrawal and changing its method: one handler each, in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection

from pension_payout.application.policies import load_payee, load_withdrawal, start_withdrawal
from pension_payout.domain.schedule import Plan
from pension_payout.domain.withdrawal import WITHDRAWAL_METHOD_CHANGED, NotEligibleForWithdrawal
from pension_shared.auth import Principal
from pension_shared.clock import business_date, parse_rfc3339
from pension_shared.errors import DomainError, NotFound
from pension_shared.ledger import EventStore, Metadata, NewEvent


class ParticipantNotFound(DomainError):
    """Not heard of as registered with a fund account at this bank (it may be on its way)."""

    code = "PARTICIPANT_NOT_FOUND"
    rests_on_others = True


def create_withdrawal(conn: Connection, store: EventStore, principal: Principal, participant_id: str,
                      plan: Plan, meta: Metadata) -> dict[str, Any]:
    stream, payee = load_payee(store, conn, participant_id)
    if not payee.registered or (principal.role == "bank" and not principal.is_bank(payee.fund_bank_code or "")):
        raise ParticipantNotFound(f"no participant {participant_id} with a fund account at this bank")
    if payee.deceased:
        raise NotEligibleForWithdrawal("the participant is deceased: the account is settled by inheritance")
    if not payee.receiving:
        raise NotEligibleForWithdrawal("the participant is not in receiving status (A-PACC-5)")
    for withdrawal_id in payee.withdrawal_ids:
        if load_withdrawal(store, conn, withdrawal_id)[1].status == "active":
            raise DomainError(f"withdrawal {withdrawal_id} is already running; change its method instead")
    plan.validate()
    withdrawal_id = f"W{uuid.uuid4().hex[:20].upper()}"
    return start_withdrawal(store, conn, payee, stream.version, withdrawal_id=withdrawal_id, kind="withdrawal",
                            plan_data=plan.as_data(), first_due=business_date(parse_rfc3339(meta.time)).isoformat(),
                            meta=meta)


def change_method(conn: Connection, store: EventStore, principal: Principal, withdrawal_id: str, plan: Plan,
                  meta: Metadata) -> dict[str, Any]:
    stream, withdrawal = load_withdrawal(store, conn, withdrawal_id)
    if not withdrawal.started or (principal.role == "bank" and not principal.is_bank(withdrawal.bank_code)):
        raise NotFound(f"no withdrawal {withdrawal_id}")
    changed = withdrawal.change_method(plan, on=business_date(parse_rfc3339(meta.time)), changed_at=meta.time)
    store.append(conn, stream.stream_id, stream.version,
                 [NewEvent(WITHDRAWAL_METHOD_CHANGED, changed, subject=withdrawal.participant_id)], meta)
    return changed
