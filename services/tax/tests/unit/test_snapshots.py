"""Snapshots of the taxpayer: restored from a snapshot taken anywhere in a history (and kept as
JSON), then given the rest of it, the taxpayer is exactly the one folded from every event, and
decides the same."""

from __future__ import annotations

import random
import uuid

import orjson
import pytest

from pension_shared.envelope import canonical_json
from pension_tax.domain.taxpayer import Contribution, ContributionReversal, Payout, PayoutReversal, TaxRules, Taxpayer
from pension_tax.domain.vouchers import VoucherSigner

RULES = TaxRules(VoucherSigner.from_secret("unit-test-secret"))
AT = "2025-03-10T10:00:00.000000+08:00"


def a_history(seed: int, reports: int = 150) -> tuple[Taxpayer, list[tuple[str, dict]]]:
    """Reports before and after the registration (some awaiting it), contributions over years,
    voidings, payouts, reversals, a fund account noted and statements: every event the taxpayer
    decided, in order."""
    rng = random.Random(seed)
    taxpayer = Taxpayer(f"P{uuid.uuid4().hex[:12].upper()}")
    events: list[tuple[str, dict]] = []

    def decided(new) -> None:  # noqa: ANN001
        events.extend((e.name, e.data) for e in new)

    contributions: list[str] = []
    payouts: list[tuple[str, str]] = []
    register_at = rng.randint(3, 10)
    for n in range(reports):
        year = 2024 + n * 4 // reports
        if n == register_at:
            decided(taxpayer.register(id_number="11010519491231002X", name="张三", registered_at=AT, rules=RULES, at=AT))
        action = rng.random()
        if action < 0.6 or not contributions:
            contributions.append(f"C{n}")
            decided(taxpayer.take(Contribution(contributions[-1], "FA1", year, rng.randint(1, 100_000)), RULES, at=AT))
        elif action < 0.68:
            decided(taxpayer.take(ContributionReversal(rng.choice(contributions), "bank error"), RULES, at=AT))
        elif action < 0.85:
            payouts.append((f"W{n % 3}", f"PO{n}"))
            gross = rng.randint(100, 500_000)
            decided(taxpayer.take(Payout(
                withdrawal_id=payouts[-1][0], payout_id=payouts[-1][1], fund_account_id="FA1", bank_code="ICBC",
                withholding_city="410100", gross=gross, tax=gross * 3 // 100, net=gross - gross * 3 // 100,
                paid_at=f"{year}-10-15T10:00:00+08:00", payout_kind="withdrawal"), RULES, at=AT))
        elif action < 0.9 and payouts:
            withdrawal_id, payout_id = rng.choice(payouts)
            decided(taxpayer.take(PayoutReversal(withdrawal_id, payout_id, "returned", AT), RULES, at=AT))
        elif action < 0.95:
            decided(taxpayer.note_fund_account(fund_account_id=f"FA{n}", bank_code=rng.choice(("ICBC", "CCB")),
                                               branch_city="Zhengzhou", opened_at=AT))
        elif taxpayer.registered:
            decided(taxpayer.issue_statement(year - 1, rules=RULES, at=AT))
    return taxpayer, events


def kept(state: dict) -> dict:
    """A snapshot's state as the store keeps it and gives it back."""
    return orjson.loads(canonical_json(state))


@pytest.mark.parametrize("seed", range(6))
def test_a_taxpayer_restored_from_a_snapshot_anywhere_in_their_history_is_the_one_folded_from_every_event(seed):
    taxpayer, events = a_history(seed)
    folded = Taxpayer.from_events(taxpayer.participant_id, events)
    assert folded == taxpayer and len(events) > 100
    assert folded.vouchers and folded.withholdings and len(folded.years) >= 3 and folded.statements
    assert any(v.voided for v in folded.vouchers.values()) and any(w.reversed for w in folded.withholdings.values())
    for split in range(len(events) + 1):
        state = kept(Taxpayer.from_events(taxpayer.participant_id, events[:split]).snapshot_state())
        assert Taxpayer.from_events(taxpayer.participant_id, events[split:], state) == folded, split


def test_a_taxpayer_restored_while_reports_await_the_registration_decides_them_as_the_folded_one():
    taxpayer, events = Taxpayer("P1"), []
    for n in range(3):
        events += [(e.name, e.data) for e in taxpayer.take(Contribution(f"C{n}", "FA1", 2025, 1_000), RULES, at=AT)]
    restored = Taxpayer.from_events("P1", [], kept(taxpayer.snapshot_state()))
    assert restored.awaiting and restored == Taxpayer.from_events("P1", events)
    register = dict(id_number="11010519491231002X", name="张三", registered_at=AT, rules=RULES, at=AT)
    assert restored.register(**register) == Taxpayer.from_events("P1", events).register(**register)


@pytest.mark.parametrize("seed", range(6))
def test_a_restored_taxpayer_decides_as_the_folded_one(seed):
    taxpayer, events = a_history(seed)
    restored = Taxpayer.from_events(taxpayer.participant_id, [], kept(taxpayer.snapshot_state()))
    folded = Taxpayer.from_events(taxpayer.participant_id, events)
    for report in (Contribution("C-new", "FA1", 2027, 5_000), Contribution("C0", "FA1", 2024, 5_000),
                   ContributionReversal(sorted(folded.vouchers)[0], "bank error")):
        assert restored.take(report, RULES, at=AT) == folded.take(report, RULES, at=AT)
    assert restored.issue_statement(2027, rules=RULES, at=AT) == folded.issue_statement(2027, rules=RULES, at=AT)
