"""HTTP API of the tax service (INTERFACES.md §4): deduction vouchers, annual statements and the
itemised withholding return, plus the public voucher check and the operators' view."""

from __future__ import annotations

import re
from typing import Any, Callable

import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlalchemy.engine import Connection

from pension_shared.auth import Principal
from pension_shared.errors import DomainError, Forbidden, NotFound
from pension_shared.money import format_fen
from pension_shared.pii import mask_id_number
from pension_shared.policy import deduction_limit_for_year
from pension_shared.runtime import ServiceContext
from pension_shared.web import MinPosition
from pension_tax.adapters.tables import holding_banks, tax_years, taxpayers, vouchers, withholdings
from pension_tax.domain.vouchers import code_matches

MAX_PAGE = 500
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_CURSOR = re.compile(r"[0-9]{1,18}")
READERS = ("tax-bureau", "bank", "operator")


class ParticipantNotFound(DomainError):
    code = "PARTICIPANT_NOT_FOUND"


def tax_router(ctx: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1/tax", tags=["tax"])

    @router.get("/vouchers")
    def list_vouchers(
        participant_id: str, year: int | None = Query(None, ge=2000, le=2999),
        after: str | None = None, limit: int = Query(100, ge=1, le=MAX_PAGE),
        principal: Principal = ctx.edge.roles(*READERS), min_position: MinPosition = None,
    ) -> dict[str, Any]:
        """Deduction vouchers (A-TAX-2), one per contribution, in the order they were issued.

        The page is read in one statement that also asks whether the principal may read the
        taxpayer, so on PostgreSQL it needs no transaction of its own (nor its BEGIN and
        ROLLBACK): a page with rows was readable when it was read. Only an empty page is told
        apart afterwards, an unknown taxpayer from one without vouchers."""
        ctx.wait_for(min_position, participant_id)
        query = sa.select(vouchers).where(vouchers.c.participant_id == participant_id, _readable(principal, participant_id))
        if year is not None:
            query = query.where(vouchers.c.year == year)
        with _statement_by_statement(ctx) as conn:
            items, next_cursor = _page(conn, query, vouchers.c.position, after, limit)
            if not items:
                _may_read(conn, principal, participant_id)
        show = _identity_view(principal)
        return {"items": [_voucher(row, show) for row in items], "next": next_cursor}

    @router.get("/vouchers/{voucher_no}")
    def check_voucher(voucher_no: str, code: str | None = None, min_position: MinPosition = None) -> dict[str, Any]:
        """Anyone holding a voucher can check it with its verification code; no token needed."""
        ctx.wait_for(min_position)
        with _statement_by_statement(ctx) as conn:
            row = conn.execute(sa.select(vouchers).where(vouchers.c.voucher_no == voucher_no)).one_or_none()
        if row is None or not code_matches(code, row.verification_code):
            raise NotFound("no voucher with this number and verification code")
        return _voucher(row, mask_id_number)

    @router.get("/statements/{participant_id}/{year}")
    def statement(
        participant_id: str, year: int, principal: Principal = ctx.edge.roles(*READERS),
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        """The year's figures as they stand; ``status`` says whether the statement was issued."""
        if not 2000 <= year <= 2999:
            raise DomainError("year must be a calendar year", code="VALIDATION_FAILED")
        ctx.wait_for(min_position, participant_id)
        with ctx.engine.connect() as conn:
            _may_read(conn, principal, participant_id)
            person = conn.execute(sa.select(taxpayers).where(taxpayers.c.participant_id == participant_id)).one()
            figures = conn.execute(sa.select(tax_years).where(
                tax_years.c.participant_id == participant_id, tax_years.c.year == year,
            )).one_or_none()
        issued_at = figures.statement_issued_at if figures is not None else None
        amounts = {name: getattr(figures, name) if figures is not None else 0
                   for name in ("contributed", "deductible", "withdrawn_gross", "tax_withheld")}
        return {
            "participant_id": participant_id, "id_number": _identity_view(principal)(person.id_number),
            "name": person.name, "year": year, **{name: format_fen(value) for name, value in amounts.items()},
            "deduction_limit": format_fen(deduction_limit_for_year(year)),
            "status": "issued" if issued_at else "provisional", "issued_at": issued_at,
        }

    @router.get("/withholdings")
    def list_withholdings(
        bank_code: str | None = None, month: str | None = None, after: str | None = None,
        limit: int = Query(100, ge=1, le=MAX_PAGE), principal: Principal = ctx.edge.roles(*READERS),
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        """The itemised withholding return (A-TAX-12), one item per payout; a bank sees its own only."""
        if principal.role == "bank":
            if bank_code is not None and bank_code != principal.code:
                raise Forbidden("a bank may read only its own withholding return")
            bank_code = principal.code
        if month is not None and not _MONTH.fullmatch(month):
            raise DomainError("month must be YYYY-MM", code="VALIDATION_FAILED")
        ctx.wait_for(min_position)
        query = sa.select(withholdings)
        if bank_code is not None:
            query = query.where(withholdings.c.bank_code == bank_code)
        if month is not None:
            query = query.where(withholdings.c.month == month)
        with _statement_by_statement(ctx) as conn:
            items, next_cursor = _page(conn, query, withholdings.c.position, after, limit)
        show = _identity_view(principal)
        return {"items": [_withholding(row, show) for row in items], "next": next_cursor}

    return router


def ops_router(ctx: ServiceContext) -> APIRouter:
    """What this service knows of a participant, for operators."""
    router = APIRouter(prefix="/v1/ops/tax", tags=["operations"])

    @router.get("/participants/{participant_id}")
    def participant(participant_id: str, _: Principal = ctx.edge.roles("operator", "tax-bureau")) -> dict:
        with ctx.engine.connect() as conn:
            row = conn.execute(sa.select(taxpayers).where(taxpayers.c.participant_id == participant_id)).one_or_none()
        if row is None:
            raise NotFound(f"the tax service knows no participant {participant_id}")
        return {"participant_id": row.participant_id, "id_number": mask_id_number(row.id_number),
                "registered_at": row.registered_at}

    return router


def _readable(principal: Principal, participant_id: str) -> sa.Exists:
    """Whether the principal may read the taxpayer: the tax bureau and operators read every
    taxpayer; a bank only those whose fund account it holds (anyone else's is a 404, never their
    data)."""
    known = sa.select(taxpayers.c.participant_id).where(taxpayers.c.participant_id == participant_id)
    if principal.role == "bank":
        known = known.where(sa.exists().where(
            holding_banks.c.participant_id == participant_id, holding_banks.c.bank_code == principal.code))
    return known.exists()


def _may_read(conn: Connection, principal: Principal, participant_id: str) -> None:
    if not conn.execute(sa.select(_readable(principal, participant_id))).scalar_one():
        raise ParticipantNotFound(f"no taxpayer {participant_id} for this institution")


def _statement_by_statement(ctx: ServiceContext) -> Connection:
    """On PostgreSQL, a connection whose every statement is its own transaction: a read made in a
    single statement takes one round trip rather than three (BEGIN, the statement, ROLLBACK).
    SQLite's connections are left as the engine configures them (SQLAlchemy, not the driver,
    begins their transactions)."""
    conn = ctx.engine.connect()
    return conn.execution_options(isolation_level="AUTOCOMMIT") if conn.dialect.name == "postgresql" else conn


def _identity_view(principal: Principal) -> Callable[[str], str]:
    """ID numbers in clear for the tax bureau and the bank that withholds and declares (A-TAX-12);
    masked in operator views."""
    return mask_id_number if principal.role == "operator" else (lambda id_number: id_number)


def _page(conn: Connection, query: Any, position: sa.Column, after: str | None, limit: int) -> tuple[list, str | None]:
    if after is not None:
        if not _CURSOR.fullmatch(after):
            raise DomainError("after must be a cursor returned as next", code="VALIDATION_FAILED")
        query = query.where(position > int(after))
    rows = conn.execute(query.order_by(position).limit(limit + 1)).all()
    next_cursor = str(rows[limit - 1].position) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _voucher(row: Any, show: Callable[[str], str]) -> dict[str, Any]:
    return {
        "voucher_no": row.voucher_no, "participant_id": row.participant_id, "id_number": show(row.id_number),
        "name": row.name, "year": row.year, "amount": format_fen(row.amount),
        "cumulative_amount": format_fen(row.cumulative_amount), "deductible_amount": format_fen(row.deductible_amount),
        "issued_at": row.issued_at, "verification_code": row.verification_code,
        "contribution_id": row.contribution_id, "fund_account_id": row.fund_account_id,
        "status": row.status, "voided_at": row.voided_at,
    }


def _withholding(row: Any, show: Callable[[str], str]) -> dict[str, Any]:
    return {
        "participant_id": row.participant_id, "id_number": show(row.id_number), "name": row.name,
        "withdrawal_id": row.withdrawal_id, "payout_id": row.payout_id, "kind": row.kind,
        "gross": format_fen(row.gross), "tax": format_fen(row.tax), "net": format_fen(row.net),
        "withholding_city": row.withholding_city, "bank_code": row.bank_code, "paid_at": row.paid_at,
        "month": row.month, "status": row.status, "reversed_at": row.reversed_at,
        "discrepancy": row.discrepancy, "expected_tax": format_fen(row.expected_tax),
    }
