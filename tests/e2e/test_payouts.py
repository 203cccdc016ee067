"""Withdrawals end to end through the HTTP API of `pension run` (issue 5): eligibility, payouts
with the tax withheld, method changes, compensation, inheritance, and money conserved."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from tests.e2e.test_embedded_platform import RunningPlatform
from tests.support.bank import OPERATOR, Bank, set_clock, yuan
from tests.support.requests import auth, eventually, random_id_number, registration

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    platform = RunningPlatform(tmp_path_factory.mktemp("payouts"))
    platform.start()
    yield platform
    platform.stop()


def _settled(bank: Bank, withdrawal_id: str, count: int, status: str = "paid") -> dict:
    def probe() -> dict | None:
        view = bank.get(f"/v1/withdrawals/{withdrawal_id}")
        done = [p for p in view["payouts"] if p["status"] == status]
        return view if len(done) >= count else None
    return eventually(probe, timeout_s=60)


def _assert_money_conserved(bank: Bank, fund_account_id: str, contributed: str, income: str, withdrawals: list[str]) -> None:
    """contributions + income = payouts (gross) + balance."""
    account = bank.get(f"/v1/fund-accounts/{fund_account_id}")
    balance = yuan(account["cash_balance"]) + sum((yuan(h["cost"]) for h in account["holdings"]), Decimal(0))
    paid = sum((yuan(p["gross"]) for w in withdrawals for p in bank.get(f"/v1/withdrawals/{w}")["payouts"]
                if p["status"] == "paid"), Decimal(0))
    assert yuan(contributed) + yuan(income) == paid + balance


def _contributed(running, amount: str, *, at: str = "2025-10-01T10:00:00+08:00",
                 bank_code: str = "ICBC") -> tuple[Bank, str, str]:
    """On the business date ``at``, a participant registered with a fund account at ``bank_code``
    into which ``amount`` was contributed: the bank, the participant and the fund account."""
    set_clock(running.base, at)
    bank = Bank(running.base, bank_code)
    participant_id, fund_account_id = bank.register_and_open()
    bank.contribute(fund_account_id, amount)
    return bank, participant_id, fund_account_id


def test_a_lump_sum_of_12345_67_withholds_370_37_and_pays_11975_30(running):
    bank, participant_id, fund_account_id = _contributed(running, "12000.00")
    bank.post(f"/v1/fund-accounts/{fund_account_id}/income", {"amount": "345.67", "kind": "interest"}, expect=201)
    assert bank.get(f"/v1/participants/{participant_id}")["eligibility"] == {
        "may_contribute": True, "may_withdraw": False, "withdrawal_condition": None}
    bank.receiving(participant_id)
    assert bank.get(f"/v1/participants/{participant_id}")["eligibility"] == {
        "may_contribute": False, "may_withdraw": True, "withdrawal_condition": "retirement_age"}
    ended = eventually(lambda: (r := bank.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                                               {"amount": "1.00", "channel": "cash", "reference": "late"})).status_code == 409 and r)
    assert ended.json()["code"] == "CONTRIBUTIONS_ENDED", "A-CONT-8: no contributions after receiving by age"
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "receiving")

    withdrawal = bank.withdraw(participant_id, method="lump_sum")
    view = _settled(bank, withdrawal["withdrawal_id"], 1)

    payout = view["payouts"][0]
    assert (payout["gross"], payout["tax"], payout["net"]) == ("12345.67", "370.37", "11975.30")
    assert payout["paid_at"] and payout["payee_account"]["bank_code"] == "ICBC"
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "closed")
    assert eventually(lambda: bank.get(f"/v1/withdrawals/{withdrawal['withdrawal_id']}")["status"] == "completed")
    _assert_money_conserved(bank, fund_account_id, "12000.00", "345.67", [withdrawal["withdrawal_id"]])

    def withholding() -> dict | None:
        items = bank.get("/v1/tax/withholdings?bank_code=ICBC&month=2025-10")["items"]
        return next((i for i in items if i["withdrawal_id"] == withdrawal["withdrawal_id"]), None)

    item = eventually(withholding)
    assert (item["gross"], item["tax"], item["net"], item["withholding_city"]) == ("12345.67", "370.37", "11975.30", "410100")
    assert "*" not in item["id_number"], "the withholding return names the taxpayer for the tax bureau"

    def records() -> list | None:
        items = bank.get(f"/v1/participants/{participant_id}/records?year=2025")["items"]
        kinds = sorted((i["kind"], i["amount"]) for i in items)
        return kinds if ("tax", "370.37") in kinds and ("withdrawal", "12345.67") in kinds else None

    assert eventually(records) == [
        ("contribution", "12000.00"), ("deduction", "12000.00"), ("income", "345.67"), ("tax", "370.37"),
        ("withdrawal", "12345.67"),
    ]


def test_the_age_approved_after_an_early_condition_ends_contributions_on_both_sides(running):
    """A-CONT-8: who withdrew early (unemployment) may go on contributing, until the age is
    approved too; the platform's view and the fund account then agree that contributions ended."""
    bank, participant_id, fund_account_id = _contributed(running, "1000.00", at="2026-02-11T10:00:00+08:00")
    bank.receiving(participant_id, "unemployment")
    eventually(lambda: bank.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                                 {"amount": "10.00", "channel": "cash", "reference": "early"}).status_code == 201)
    assert bank.get(f"/v1/participants/{participant_id}")["eligibility"] == {
        "may_contribute": True, "may_withdraw": True, "withdrawal_condition": "unemployment"}

    bank.receiving(participant_id, "retirement_age")
    assert eventually(lambda: bank.get(f"/v1/participants/{participant_id}")["eligibility"] == {
        "may_contribute": False, "may_withdraw": True, "withdrawal_condition": "retirement_age"})
    ended = eventually(lambda: (r := bank.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                                               {"amount": "10.00", "channel": "cash", "reference": "late"})).status_code == 409 and r)
    assert ended.json()["code"] == "CONTRIBUTIONS_ENDED"

    bank.receiving(participant_id, "medical_expenses")  # an early condition after the age changes nothing
    assert bank.get(f"/v1/participants/{participant_id}")["eligibility"]["withdrawal_condition"] == "retirement_age"
    refused = bank.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                        {"amount": "10.00", "channel": "cash", "reference": "later"})
    assert refused.status_code == 409 and refused.json()["code"] == "CONTRIBUTIONS_ENDED"
    assert bank.get(f"/v1/fund-accounts/{fund_account_id}")["contributed_this_year"] == "1010.00"


def test_only_a_participant_in_receiving_status_may_withdraw(running):
    bank, participant_id, fund_account_id = _contributed(running, "100.00")
    # The payout service hears of the participant and their fund account through Kafka; until then
    # it answers 404 PARTICIPANT_NOT_FOUND. A refused command changes nothing: asking again is safe.
    refused = eventually(lambda: (r := bank.post("/v1/withdrawals", {"participant_id": participant_id,
                                                                     "method": "lump_sum"})).status_code != 404 and r)
    assert refused.status_code == 409 and refused.json()["code"] == "NOT_ELIGIBLE_FOR_WITHDRAWAL"


def _ten_months_first_paid(running, at: str, contributed: str) -> tuple[Bank, str, str]:
    """A participant receiving since ``at``, withdrawing ``contributed`` over ten months, the
    first month paid: the bank, the fund account and the withdrawal."""
    bank, participant_id, fund_account_id = _contributed(running, contributed, at=at)
    bank.receiving(participant_id)
    withdrawal_id = bank.withdraw(participant_id, method="monthly", months=10)["withdrawal_id"]
    _settled(bank, withdrawal_id, 1)
    return bank, fund_account_id, withdrawal_id


def test_ten_monthly_payouts_with_a_method_change_refused_in_august_and_accepted_in_october(running):
    bank, fund_account_id, withdrawal_id = _ten_months_first_paid(running, "2025-08-15T10:00:00+08:00", "12000.00")

    locked = httpx.put(f"{running.base}/v1/withdrawals/{withdrawal_id}/method", headers=bank.headers,
                       json={"method": "lump_sum"})
    assert locked.status_code == 409 and locked.json()["code"] == "WITHDRAWAL_METHOD_LOCKED"

    for month, paid in (("09", 2), ("10", 3)):
        set_clock(running.base, f"2025-{month}-15T10:00:00+08:00")
        _settled(bank, withdrawal_id, paid)
    changed = httpx.put(f"{running.base}/v1/withdrawals/{withdrawal_id}/method", headers=bank.headers,
                        json={"method": "installments", "installments": 7})
    assert changed.status_code == 200, changed.text
    assert changed.json()["applies_from_instalment"] == 4 and changed.json()["method"] == "installments"

    for paid, date in enumerate(["2025-11-15", "2025-12-15", "2026-01-15", "2026-02-15", "2026-03-15",
                                 "2026-04-15", "2026-05-15"], start=4):
        set_clock(running.base, f"{date}T10:00:00+08:00")
        view = _settled(bank, withdrawal_id, paid)

    assert [(p["gross"], p["tax"], p["net"]) for p in view["payouts"]] == [("1200.00", "36.00", "1164.00")] * 10
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "closed")
    _assert_money_conserved(bank, fund_account_id, "12000.00", "0.00", [withdrawal_id])


def test_a_change_to_a_lump_sum_is_paid_at_once_and_empties_the_account(running):
    bank, fund_account_id, withdrawal_id = _ten_months_first_paid(running, "2025-09-02T10:00:00+08:00", "10000.00")

    # The next scheduled date is 2025-10-02; INTERFACES §5: "a lump sum ... is paid at once".
    set_clock(running.base, "2025-09-05T10:00:00+08:00")
    changed = httpx.put(f"{running.base}/v1/withdrawals/{withdrawal_id}/method", headers=bank.headers,
                        json={"method": "lump_sum"})
    assert changed.status_code == 200, changed.text
    view = _settled(bank, withdrawal_id, 2)
    assert [(p["gross"], p["tax"], p["net"]) for p in view["payouts"]] == [
        ("1000.00", "30.00", "970.00"), ("9000.00", "270.00", "8730.00")]
    assert eventually(lambda: bank.get(f"/v1/withdrawals/{withdrawal_id}")["status"] == "completed")
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "closed")
    _assert_money_conserved(bank, fund_account_id, "10000.00", "0.00", [withdrawal_id])


def test_a_bank_may_send_each_step_once_without_waiting_for_the_services_to_hear_of_the_last(running):
    """Each command is refused at first only for what its service has not heard yet (the
    registration, the account opened, the approval): it is decided again until it has, within
    the runner's wait, so none of these is a 404 or a 409 that a moment later would be a 201."""
    set_clock(running.base, "2025-10-01T10:00:00+08:00")
    bank = Bank(running.base)
    agency = auth("dev-agency-410100")
    def once(path: str, body: dict, headers: dict = bank.headers) -> dict:
        response = httpx.post(f"{running.base}{path}", json=body, headers=headers, timeout=10)
        assert response.status_code in (200, 201), (path, response.text)
        return response.json()

    participant_id = once("/v1/participants", registration(region="410100", bank="ICBC"))["participant_id"]
    fund_account_id = once("/v1/fund-accounts", {"participant_id": participant_id, "branch_city": "410100"})["fund_account_id"]
    once(f"/v1/fund-accounts/{fund_account_id}/contributions", {"amount": "500.00", "channel": "cash", "reference": "r1"})
    application = once("/v1/withdrawal-applications", {"participant_id": participant_id, "condition": "retirement_age",
                                                        "evidence": ["doc"]})
    once(f"/v1/withdrawal-applications/{application['application_id']}/decision", {"decision": "approved"}, agency)
    withdrawal = once("/v1/withdrawals", {"participant_id": participant_id, "method": "lump_sum"})
    view = _settled(bank, withdrawal["withdrawal_id"], 1)
    assert [(p["gross"], p["tax"], p["net"]) for p in view["payouts"]] == [("500.00", "15.00", "485.00")]


def test_a_participant_never_registered_is_still_404_after_the_wait(running):
    started = time.monotonic()
    response = httpx.post(f"{running.base}/v1/fund-accounts", json={"participant_id": "PNEVER0000000000000001",
                                                                   "branch_city": "410100"},
                          headers=Bank(running.base).headers, timeout=10)
    assert (response.status_code, response.json()["code"]) == (404, "PARTICIPANT_NOT_FOUND")
    assert time.monotonic() - started < 5


def test_a_payout_redeems_holdings_when_cash_is_short(running):
    bank, participant_id, fund_account_id = _contributed(running, "10000.00")
    product = next(p for p in bank.get("/v1/products")["items"] if p["product_type"] == "public_fund")
    bank.post(f"/v1/fund-accounts/{fund_account_id}/purchases",
              {"product_code": product["product_code"], "amount": "9000.00"}, expect=201)
    bank.receiving(participant_id, "incapacity")
    assert bank.get(f"/v1/participants/{participant_id}")["eligibility"] == {
        "may_contribute": True, "may_withdraw": True, "withdrawal_condition": "incapacity"}
    eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "receiving")
    bank.contribute(fund_account_id, "0.01")  # A-CONT-8: a condition other than age lets contributions go on
    bank.post(f"/v1/fund-accounts/{fund_account_id}/income", {"amount": "0.01", "kind": "interest"}, expect=201)

    withdrawal_id = bank.withdraw(participant_id, method="installments", installments=2)["withdrawal_id"]
    view = _settled(bank, withdrawal_id, 1)

    assert view["payouts"][0]["gross"] == "5000.01"
    account = bank.get(f"/v1/fund-accounts/{fund_account_id}")
    assert account["holdings"] == [] and account["cash_balance"] == "5000.01"
    ledger = bank.get(f"/v1/fund-accounts/{fund_account_id}/ledger")["items"]
    assert any(e["type"] == "ProductRedeemed" for e in ledger)
    assert any(e["type"] == "PayoutDebited" and e["amounts"] == {"gross": "5000.01"} for e in ledger)
    _assert_money_conserved(bank, fund_account_id, "10000.01", "0.01", [withdrawal_id])


def test_a_payment_that_keeps_failing_is_compensated(running):
    bank, participant_id, fund_account_id = _contributed(running, "3000.00", bank_code="CCB")
    bank.receiving(participant_id)
    failing = httpx.put(f"{running.base}/v1/ops/payout/failing-banks/CCB", json={"failing": True}, headers=OPERATOR)
    assert failing.status_code == 200

    withdrawal_id = bank.withdraw(participant_id, method="lump_sum")["withdrawal_id"]
    view = _settled(bank, withdrawal_id, 1, status="compensated")

    assert view["payouts"][0]["attempts"] == 3
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["cash_balance"] == "3000.00")
    httpx.put(f"{running.base}/v1/ops/payout/failing-banks/CCB", json={"failing": False}, headers=OPERATOR)
    _assert_money_conserved(bank, fund_account_id, "3000.00", "0.00", [withdrawal_id])


def test_an_inheritance_split_three_ways_leaves_no_fen_behind(running):
    bank, participant_id, fund_account_id = _contributed(running, "10000.01")
    eventually(lambda: bank.get(f"/v1/participants/{participant_id}").get("fund_account"))
    pending = bank.post("/v1/withdrawal-applications", {"participant_id": participant_id, "condition": "incapacity",
                                                        "evidence": ["doc"]}, expect=201).json()["application_id"]
    heirs = [{"name": f"继承人{n}", "id_number": random_id_number("19900101"), "share": share,
              "payee_account": {"bank_code": "BOC", "account_number": f"62170000000{n}"}}
             for n, share in ((1, "0.333333"), (2, "0.333333"), (3, "0.333334"))]
    died = httpx.post(f"{running.base}/v1/participants/{participant_id}/death",
                      json={"date_of_death": "2025-09-28", "heirs": heirs}, headers=auth("dev-agency-410100"))
    assert died.status_code == 201, died.text
    # An application made before the death is not approved after it (A-INH-1).
    approved = httpx.post(f"{running.base}/v1/withdrawal-applications/{pending}/decision",
                          json={"decision": "approved"}, headers=auth("dev-agency-410100"))
    assert (approved.status_code, approved.json()["code"]) == (409, "CONFLICT")
    assert bank.get(f"/v1/withdrawal-applications/{pending}")["status"] == "under_verification"
    # Once the closed loop has the death (a read given its position waits for it), nothing more
    # comes in: the account is settled by inheritance (A-INH-1).
    httpx.get(f"{running.base}/v1/fund-accounts/{fund_account_id}", params={"min_position": died.json()["position"]},
              headers=auth("dev-bank-ICBC"))
    late = bank.post(f"/v1/fund-accounts/{fund_account_id}/contributions",
                     {"amount": "50.00", "channel": "cash", "reference": "after-death"})
    assert late.status_code == 409 and late.json()["code"] == "CONTRIBUTIONS_ENDED", late.text

    account = eventually(lambda: (a := bank.get(f"/v1/fund-accounts/{fund_account_id}"))["status"] == "closed" and a)
    assert account["cash_balance"] == "0.00"
    inheritance = bank.get(f"/v1/withdrawals?participant_id={participant_id}")["items"][0]
    assert inheritance["kind"] == "inheritance" and inheritance["status"] == "completed"
    parts = [(p["heir_no"], p["gross"], p["tax"], p["net"], p["status"]) for p in inheritance["payouts"]]
    assert parts == [
        (1, "3333.34", "100.00", "3233.34", "paid"),
        (2, "3333.33", "100.00", "3233.33", "paid"),
        (3, "3333.34", "100.00", "3233.34", "paid"),
    ]
    payments = httpx.get(f"{running.base}/v1/ops/payout/payments", headers=OPERATOR).json()["items"]
    paid_to_heirs = {p["payment_id"]: p for p in payments if p["payment_id"].startswith(inheritance["withdrawal_id"])}
    assert sorted(p["amount"] for p in paid_to_heirs.values()) == ["3233.33", "3233.34", "3233.34"]
    _assert_money_conserved(bank, fund_account_id, "10000.01", "0.00", [inheritance["withdrawal_id"]])


def test_after_an_early_lump_sum_a_new_account_opens_at_another_bank_within_the_year_s_cap(running):
    """A-CONT-8: who withdrew on a condition other than age may go on contributing. The lump sum
    empties and closes the account (B-5), which is then no longer their active fund account: another
    bank opens a new one (A-FACC-1), the year's contributions still count against the cap (A-CONT-7),
    and the platform, the tax service and the payout service follow the new account."""
    set_clock(running.base, "2025-10-01T10:00:00+08:00")
    icbc, ccb = Bank(running.base), Bank(running.base, "CCB")
    participant_id, old = icbc.register_and_open()
    icbc.contribute(old, "3000.00")
    icbc.receiving(participant_id, "unemployment")
    withdrawal_id = icbc.withdraw(participant_id, method="lump_sum")["withdrawal_id"]
    _settled(icbc, withdrawal_id, 1)
    assert eventually(lambda: icbc.get(f"/v1/fund-accounts/{old}")["status"] == "closed")
    closed = icbc.post(f"/v1/fund-accounts/{old}/contributions", {"amount": "100.00", "channel": "cash", "reference": "x"})
    assert closed.status_code == 409 and closed.json()["code"] == "CONFLICT", closed.text

    new = ccb.post("/v1/fund-accounts", {"participant_id": participant_id, "branch_city": "310000"},
                   expect=201).json()["fund_account_id"]
    over = ccb.post(f"/v1/fund-accounts/{new}/contributions", {"amount": "9000.01", "channel": "cash", "reference": "x"})
    assert over.status_code == 422 and over.json()["remaining_quota"] == "9000.00", over.text
    ccb.contribute(new, "9000.00")
    again = icbc.post("/v1/fund-accounts", {"participant_id": participant_id, "branch_city": "410100"})
    assert again.status_code == 409 and again.json()["fund_account_id"] == new, again.text

    participant = eventually(lambda: (p := ccb.get(f"/v1/participants/{participant_id}"))["contributed_this_year"]
                             == "12000.00" and p)
    assert participant["fund_account"] == {"bank_code": "CCB", "fund_account_id": new}
    assert (participant["remaining_quota"], participant["eligibility"]["may_contribute"]) == ("0.00", True)
    vouchers = eventually(lambda: len(v := ccb.get(f"/v1/tax/vouchers?participant_id={participant_id}&year=2025")
                                      ["items"]) == 2 and v)
    assert [(v["amount"], v["cumulative_amount"]) for v in vouchers] == [("3000.00", "3000.00"), ("9000.00", "12000.00")]
    # The payout service pays from the new account: a second lump sum empties and closes it too.
    second = ccb.withdraw(participant_id, method="lump_sum")["withdrawal_id"]
    assert _settled(ccb, second, 1)["payouts"][0]["gross"] == "9000.00"
    assert eventually(lambda: ccb.get(f"/v1/fund-accounts/{new}")["status"] == "closed")


def _heirs(*banks_and_shares: tuple[str, str]) -> list[dict]:
    return [{"name": f"继承人{n}", "id_number": random_id_number("19900101"), "share": share,
             "payee_account": {"bank_code": bank, "account_number": f"62280000000{n}"}}
            for n, (bank, share) in enumerate(banks_and_shares, start=1)]


def _inheritance(bank: Bank, participant_id: str) -> dict:
    def probe() -> dict | None:
        items = bank.get(f"/v1/withdrawals?participant_id={participant_id}")["items"]
        return next((w for w in items if w["kind"] == "inheritance"), None)
    return eventually(probe, timeout_s=60)


def test_a_heir_whose_bank_fails_is_paid_their_own_share_later_and_the_other_heir_nothing_more(running):
    bank, participant_id, fund_account_id = _contributed(running, "1000.00")
    eventually(lambda: bank.get(f"/v1/participants/{participant_id}").get("fund_account"))
    assert httpx.put(f"{running.base}/v1/ops/payout/failing-banks/ABC", json={"failing": True},
                     headers=OPERATOR).status_code == 200
    try:
        died = httpx.post(f"{running.base}/v1/participants/{participant_id}/death", headers=auth("dev-agency-410100"),
                          json={"date_of_death": "2025-09-28", "heirs": _heirs(("ABC", "0.5"), ("BOC", "0.5"))})
        assert died.status_code == 201, died.text
        withdrawal_id = _inheritance(bank, participant_id)["withdrawal_id"]
        _settled(bank, withdrawal_id, 1, status="compensated")
        assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["cash_balance"] == "500.00")
        for _ in range(3):  # several ticks of the jobs: the refund waits for the next business date
            view = _settled(bank, withdrawal_id, 1)
            assert view["schedule"]["instalments_instructed"] == 1 and view["schedule"]["next_due"] == "2025-10-02"
            time.sleep(1)
    finally:
        httpx.put(f"{running.base}/v1/ops/payout/failing-banks/ABC", json={"failing": False}, headers=OPERATOR)

    set_clock(running.base, "2025-10-02T10:00:00+08:00")
    account = eventually(lambda: (a := bank.get(f"/v1/fund-accounts/{fund_account_id}"))["status"] == "closed" and a,
                         timeout_s=60)
    assert account["cash_balance"] == "0.00"
    view = eventually(lambda: (v := bank.get(f"/v1/withdrawals/{withdrawal_id}"))["status"] == "completed" and v)
    parts = [(p["instalment_no"], p["heir_no"], p["gross"], p["tax"], p["net"], p["status"]) for p in view["payouts"]]
    assert parts == [
        (1, 1, "500.00", "15.00", "485.00", "compensated"),
        (1, 2, "500.00", "15.00", "485.00", "paid"),
        (2, 1, "500.00", "15.00", "485.00", "paid"),
    ]
    _assert_money_conserved(bank, fund_account_id, "1000.00", "0.00", [withdrawal_id])


def _inherited_by_one_heir(running, bank: Bank, participant_id: str) -> tuple[str, dict]:
    """The participant's death registered with one heir; the inheritance, once completed: its id
    and its view."""
    died = httpx.post(f"{running.base}/v1/participants/{participant_id}/death", headers=auth("dev-agency-410100"),
                      json={"date_of_death": "2025-09-28", "heirs": _heirs(("BOC", "1"))})
    assert died.status_code == 201, died.text
    withdrawal_id = _inheritance(bank, participant_id)["withdrawal_id"]
    view = eventually(lambda: (v := bank.get(f"/v1/withdrawals/{withdrawal_id}"))["status"] == "completed" and v,
                      timeout_s=60)
    return withdrawal_id, view


def test_an_inheritance_after_a_lump_sum_closed_the_account_completes_with_nothing_to_pay(running):
    bank, participant_id, fund_account_id = _contributed(running, "100.00")
    bank.receiving(participant_id)
    lump_sum = bank.withdraw(participant_id, method="lump_sum")["withdrawal_id"]
    _settled(bank, lump_sum, 1)
    assert eventually(lambda: bank.get(f"/v1/fund-accounts/{fund_account_id}")["status"] == "closed")

    withdrawal_id, _ = _inherited_by_one_heir(running, bank, participant_id)
    time.sleep(3)  # several ticks of the jobs: nothing more is instructed
    view = bank.get(f"/v1/withdrawals/{withdrawal_id}")
    assert view["schedule"]["instalments_instructed"] == 1 and view["payouts"] == []


def test_an_inheritance_of_an_account_that_never_held_money_closes_it(running):
    """The inheritance takes nothing (a zero debit) and completes; the emptied account is closed
    as any whose benefits are fully paid (B-5), not left active for good."""
    set_clock(running.base, "2025-10-01T10:00:00+08:00")
    bank = Bank(running.base)
    participant_id, fund_account_id = bank.register_and_open()
    eventually(lambda: bank.get(f"/v1/participants/{participant_id}").get("fund_account"))
    _, view = _inherited_by_one_heir(running, bank, participant_id)
    assert [p for p in view["payouts"] if p["status"] == "paid"] == []
    account = eventually(lambda: (a := bank.get(f"/v1/fund-accounts/{fund_account_id}"))["status"] == "closed" and a,
                         timeout_s=60)
    assert account["cash_balance"] == "0.00" and account["holdings"] == []
