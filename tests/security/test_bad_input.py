"""Bad input at the edge (issue 8): whatever a client sends, the answer is a 4xx
application/problem+json with a stable ``code``, never a 5xx.

Media type: a request body whose declared Content-Type is not JSON is refused with 415
UNSUPPORTED_MEDIA_TYPE before any route reads it (a body without a Content-Type is read as JSON).
Size: a body over ``PENSION_MAX_BODY_BYTES`` (64 KiB), declared or chunked, is 413 PAYLOAD_TOO_LARGE.
Rate: each institution has a token bucket (``PENSION_RATE_LIMIT_PER_SECOND``/``_BURST``); past it, 429
RATE_LIMITED with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import start_platform
from tests.security.world import OWNER, World, build_world
from tests.support.requests import auth, registration

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def world(client: TestClient) -> World:
    return build_world(client)


def assert_problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["title"] and body["type"]


def contribution(world: World) -> str:
    return f"/v1/fund-accounts/{world.fund_account_id}/contributions"


def test_a_body_over_64_kib_is_413_whether_declared_or_chunked(client: TestClient, world: World) -> None:
    big = b'{"amount": "1.00", "channel": "cash", "reference": "' + b"x" * 70_000 + b'"}'
    declared = client.post(contribution(world), content=big, headers={**OWNER, "Content-Type": "application/json"})
    assert_problem(declared, 413, "PAYLOAD_TOO_LARGE")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start:start + 4096]

    chunked = client.post(contribution(world), content=chunks(), headers={**OWNER, "Content-Type": "application/json"})
    assert_problem(chunked, 413, "PAYLOAD_TOO_LARGE")
    lying = client.post(contribution(world), content=b"{}", headers={**OWNER, "Content-Length": "12abc"})
    assert lying.status_code in (400, 413) and lying.status_code < 500


@pytest.mark.parametrize(("content", "content_type"), [
    (b"amount=1.00&channel=cash", "application/x-www-form-urlencoded"),
    (b'{"amount": "1.00"}', "text/plain"),
    (b"--b\r\nContent-Disposition: form-data; name=amount\r\n\r\n1.00\r\n--b--", "multipart/form-data; boundary=b"),
    (b"<amount>1.00</amount>", "application/xml"),
])
def test_a_body_that_is_not_json_is_415(client: TestClient, world: World, content: bytes, content_type: str) -> None:
    response = client.post(contribution(world), content=content, headers={**OWNER, "Content-Type": content_type})
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_malformed_json_is_400_and_unknown_members_are_422(client: TestClient, world: World) -> None:
    malformed = client.post(contribution(world), content=b'{"amount": ', headers={**OWNER, "Content-Type": "application/json"})
    assert_problem(malformed, 400, "VALIDATION_FAILED")
    unknown = client.post(contribution(world), headers=OWNER,
                          json={"amount": "1.00", "channel": "cash", "reference": "r", "bonus": "1000000.00"})
    assert_problem(unknown, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("amount", [
    "-1.00", "0", "0.00", "1.005", "1e3", "1.2.3", " ", "", "１００.00", "+1.00", "0x10", "NaN", "Infinity",
    "1000000000000.01", "9" * 5000, "1" * 60_000, 1.5, 100, None, True, ["1.00"], {"yuan": "1.00"},
    "100", "100.5", " 100.00", "100.00 ", "100.00\n", "\t100.00", "0100.00",
])
def test_an_amount_that_is_not_positive_yuan_with_two_decimals_is_422(client: TestClient, world: World, amount: Any) -> None:
    response = client.post(contribution(world), headers=OWNER,
                           json={"amount": amount, "channel": "bank_transfer", "reference": "bad-amount"})
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/withdrawals", {"participant_id": "P1", "method": "monthly", "months": 10**40}),
    ("/v1/withdrawals", {"participant_id": "P1", "method": "monthly", "monthly_amount": "1" * 5000}),
    ("/v1/withdrawals", {"participant_id": "x" * 50_000, "method": "lump_sum"}),
    ("/v1/participants", {**registration(), "name": "张" * 10_000}),
    ("/v1/participants", {**registration(), "id_number": "11010519491231002" + "\u0000"}),
    ("/v1/participants", {**registration(), "id_number": "110105194902300021"}),
    ("/v1/participants", {**registration(), "insured_region": "４１０１００"}),
])
def test_huge_numbers_long_strings_and_odd_values_are_refused(client: TestClient, path: str, body: dict) -> None:
    response = client.post(path, headers=OWNER, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM and response.json()["code"]


@pytest.mark.parametrize("moment", ["2025-02-30T10:00:00+08:00", "2025-10-01T10:00:00", "yesterday", "9999-99-99", 20251001])
def test_invalid_dates_are_422(client: TestClient, moment: Any) -> None:
    response = client.put("/v1/ops/clock", headers=auth("dev-operator"), json={"now": moment})
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("moment", [
    "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "3000-01-01T00:00:00+08:00", "1999-12-31T15:59:59Z",
])
def test_a_business_time_outside_the_years_the_platform_holds_is_422_and_the_clock_stays(client: TestClient,
                                                                                         moment: str) -> None:
    """Once set, such a time would overflow the calendar arithmetic of every service reading it."""
    before = client.get("/v1/ops/clock", headers=auth("dev-operator")).json()["now"]
    response = client.put("/v1/ops/clock", headers=auth("dev-operator"), json={"now": moment})
    assert_problem(response, 422, "VALIDATION_FAILED")
    after = client.get("/v1/ops/clock", headers=auth("dev-operator"))
    assert after.status_code == 200 and after.json()["now"][:16] == before[:16]


@pytest.mark.parametrize(("moment", "shown"), [
    ("2000-01-01T00:00:00+08:00", "2000-01-01T00:00"), ("2999-12-31T23:59:59+08:00", "2999-12-31T23:59"),
])
def test_the_first_and_the_last_business_times_the_platform_holds_can_be_set(client: TestClient, moment: str,
                                                                             shown: str) -> None:
    before = client.get("/v1/ops/clock", headers=auth("dev-operator")).json()["now"]
    try:
        response = client.put("/v1/ops/clock", headers=auth("dev-operator"), json={"now": moment})
        assert response.status_code == 200 and response.json()["now"].startswith(shown)
        assert response.json()["now"].endswith("+08:00")
    finally:  # the module's other tests keep the time they had
        client.put("/v1/ops/clock", headers=auth("dev-operator"), json={"now": before})


@pytest.mark.parametrize("plan", [
    {"method": "monthly", "months": "3"}, {"method": "monthly", "months": 3.0}, {"method": "monthly", "months": True},
    {"method": "installments", "installments": True}, {"method": "installments", "installments": "7"},
    {"method": "monthly", "monthly_amount": "100"}, {"method": "monthly", "monthly_amount": " 100.00"},
    {"method": "monthly", "monthly_amount": 100},
])
def test_a_member_of_another_json_type_than_the_openapi_gives_is_422_not_coerced(client: TestClient, world: World,
                                                                               plan: dict) -> None:
    response = client.post("/v1/withdrawals", headers=OWNER, json={"participant_id": world.participant_id, **plan})
    assert_problem(response, 422, "VALIDATION_FAILED")
    assert next(k for k in plan if k != "method") in response.text, "the problem names the member"


@pytest.mark.parametrize("bad", [20251009, 1760000000, "2025-10-09T00:00:00+08:00", None])
def test_a_date_of_death_that_is_not_a_date_string_is_422(client: TestClient, world: World, bad: Any) -> None:
    response = client.post(f"/v1/participants/{world.participant_id}/death", headers=auth("dev-operator"),
                           json={"date_of_death": bad, "heirs": [{"name": "李四", "id_number": "11010519491231002X",
                                                                  "share": "1", "payee_account": {
                                                                      "bank_code": "ICBC", "account_number": "6222020000000001"}}]})
    assert_problem(response, 422, "VALIDATION_FAILED")


def test_an_invalid_date_of_death_is_422(client: TestClient, world: World) -> None:
    response = client.post(f"/v1/participants/{world.participant_id}/death", headers=auth("dev-operator"),
                           json={"date_of_death": "2025-13-01", "heirs": []})
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("odd", [
    "%00", "..%2F..%2Fetc%2Fpasswd", "%E2%80%AE", "%FF%FE", "'%20OR%201=1--", "%0D%0ASet-Cookie:x", "P" * 4000,
    "%F0%9F%92%A5", "%25", "a%20b", "%3Cscript%3E",
])
@pytest.mark.parametrize("template", [
    "/v1/participants/{}", "/v1/fund-accounts/{}", "/v1/fund-accounts/{}/ledger", "/v1/withdrawals/{}",
    "/v1/withdrawal-applications/{}", "/v1/tax/statements/{}/2025", "/v1/tax/vouchers/{}",
])
def test_path_parameters_with_odd_characters_are_4xx(client: TestClient, template: str, odd: str) -> None:
    response = client.get(template.format(odd), headers=auth("dev-operator"))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM and response.json()["code"]


@pytest.mark.parametrize("query", [
    "year=99999999999999999999999", "year=-1", "year=２０２５", "after=99999999999999999999999", "after=-5",
    "limit=0", "limit=100000000000000000000", "after=²",
])
def test_odd_query_parameters_are_4xx(client: TestClient, world: World, query: str) -> None:
    for path in (f"/v1/participants/{world.participant_id}/records", f"/v1/fund-accounts/{world.fund_account_id}/ledger",
                 f"/v1/tax/vouchers?participant_id={world.participant_id}", "/v1/tax/withholdings", "/v1/products"):
        response = client.get(path + ("&" if "?" in path else "?") + query, headers=auth("dev-operator"))
        assert response.status_code < 500, (path, query, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == PROBLEM and response.json()["code"]


def test_a_bad_idempotency_key_is_422(client: TestClient, world: World) -> None:
    response = client.post(contribution(world), headers={**OWNER, "Idempotency-Key": "k" * 300},
                           json={"amount": "1.00", "channel": "cash", "reference": "idem"})
    assert_problem(response, 422, "VALIDATION_FAILED")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PENSION_RATE_LIMIT_PER_SECOND", "0.5")
        env.setenv("PENSION_RATE_LIMIT_BURST", "3")
        platform = start_platform(tmp_path_factory.mktemp("limited"))
    try:
        with TestClient(platform.app()) as client:
            yield client
    finally:
        platform.stop()


def test_an_institution_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(limited: TestClient) -> None:
    icbc = [limited.get("/v1/products", headers=auth("dev-bank-ICBC")) for _ in range(4)]
    assert [r.status_code for r in icbc] == [200, 200, 200, 429]
    assert_problem(icbc[-1], 429, "RATE_LIMITED")
    assert 1 <= int(icbc[-1].headers["Retry-After"]) <= 2
    assert limited.get("/v1/products", headers=auth("dev-bank-CCB")).status_code == 200
    assert limited.get("/health").status_code == 200
