"""The operators' console in a real browser: Debian's Chromium, headless, against `pension run`.
The page loads, an operator signs in with the operator token, and a contribution made through
the API appears in the live view within two seconds."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.e2e.test_embedded_platform import RunningPlatform
from tests.support.browser import chromium
from tests.support.requests import auth, eventually, registration

pytestmark = pytest.mark.e2e
BANK = auth("dev-bank-ICBC")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    platform = RunningPlatform(tmp_path_factory.mktemp("console"))
    platform.start()
    yield platform
    platform.stop()


@pytest.fixture
def page(running):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        # script errors and Content-Security-Policy violations; not the 401 of the first look before
        # signing in, nor the favicon's 404
        page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
        page.problems = problems
        yield page


def _participant_with_fund_account(base: str) -> tuple[str, str, str]:
    body = registration()
    created = httpx.post(f"{base}/v1/participants", json=body, headers=BANK)
    assert created.status_code == 201, created.text
    participant_id = created.json()["participant_id"]
    eventually(lambda: httpx.get(f"{base}/v1/ops/fund-account/participants/{participant_id}",
                                 headers=auth("dev-operator")).status_code == 200)
    opened = httpx.post(f"{base}/v1/fund-accounts", json={"participant_id": participant_id, "branch_city": "410100"},
                        headers=BANK)
    assert opened.status_code == 201, opened.text
    return participant_id, opened.json()["fund_account_id"], body["id_number"]


def _sign_in(page, base: str, token: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/console")
    page.wait_for_selector("#sign-in-form", state="visible")
    page.fill("#token", token)
    page.click("#sign-in-form button[type=submit]")


def test_a_contribution_made_through_the_api_appears_in_the_live_view_within_two_seconds(running, page):
    base = running.base
    assert httpx.put(f"{base}/v1/ops/clock", json={"now": "2025-10-01T10:00:00+08:00"},
                     headers=auth("dev-operator")).status_code == 200
    participant_id, fund_account_id, id_number = _participant_with_fund_account(base)

    _sign_in(page, base, "dev-operator")
    page.wait_for_selector("#dashboard", state="visible")
    page.wait_for_selector("#live-state.live", timeout=10_000)  # the EventSource is open

    made = httpx.post(f"{base}/v1/fund-accounts/{fund_account_id}/contributions",
                      json={"amount": "1200.00", "channel": "bank_transfer", "reference": uuid.uuid4().hex}, headers=BANK)
    made_at = time.monotonic()  # the contribution is made once the API has acknowledged it
    assert made.status_code == 201, made.text
    row = f'#live-rows tr[data-name="ContributionReceived"][data-subject="{participant_id}"]'
    page.wait_for_selector(row, timeout=10_000)
    elapsed = time.monotonic() - made_at
    print(f"contribution acknowledged -> shown in the live view: {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0, f"shown {elapsed:.2f} s after it was made"
    assert "pension.fund-account" in page.inner_text(row)

    page.wait_for_selector("#monthly-chart svg rect.contributed", state="attached")  # computed on the first visit
    assert page.locator("#monthly-chart svg > rect.contributed").count() == 12  # a bar a month
    page.wait_for_selector("#lag-rows tr")
    assert id_number not in page.content()
    assert page.problems == []


def test_a_token_that_is_not_an_operators_is_refused_and_the_console_stays_closed(running, page):
    _sign_in(page, running.base, "dev-bank-ICBC")
    page.wait_for_selector("#sign-in-error:has-text('not open to the bank role')")
    assert page.is_hidden("#dashboard")
    assert page.context.cookies() == []
