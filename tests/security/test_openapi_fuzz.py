"""schemathesis against the OpenAPI document the composed platform publishes: whatever a
client sends (valid and invalid input, generated from the document), with any institution's
token, no call answers 5xx and every answer matches the schema the document declares for it
(problem+json for every refusal). Bounded: 15 examples per operation and mode, derandomized."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.security.conftest import start_platform
from tests.security.world import OWNER_BANK, World, build_world

TOKENS = ("dev-operator", "dev-tax-bureau", "dev-bank-ICBC", "dev-agency-410100")
CHECKS = [not_a_server_error, response_schema_conformance]
EXAMPLES = settings(
    max_examples=15, derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.BaseSchema, World]]:
    with pytest.MonkeyPatch.context() as env:  # the fuzzer is one fast client: no rate limit here
        env.setenv("PENSION_RATE_LIMIT_PER_SECOND", "100000")
        env.setenv("PENSION_RATE_LIMIT_BURST", "100000")
        # Its made-up participant ids are refused as unheard of only after the wait for other
        # services' events (test_idempotency, tests/e2e/test_payouts test the wait): 2 s each.
        env.setenv("PENSION_UNHEARD_WAIT_S", "0.1")
        platform = start_platform(tmp_path_factory.mktemp("fuzz"))
    app = platform.app()
    try:
        with TestClient(app) as client:
            world = build_world(client)
        yield schemathesis.openapi.from_asgi("/openapi.json", app), world
    finally:
        platform.stop()


def _real_path_parameters(world: World) -> dict[str, str]:
    """Path parameters that name real resources, so generated bodies and queries reach the
    code behind the lookups as well."""
    return {
        "participant_id": world.participant_id, "fund_account_id": world.fund_account_id,
        "application_id": world.application_id, "withdrawal_id": world.withdrawal_id,
        "bank_change_id": world.bank_change_id, "voucher_no": world.voucher_no, "year": "2025",
        "id_number": world.id_number, "bank_code": OWNER_BANK,
    }


@pytest.mark.timeout(900)  # about 100 s on two idle cores; room for a busy CI machine
def test_no_request_makes_a_service_fail_or_stray_from_its_published_schema(fuzzed) -> None:
    published, world = fuzzed
    real = _real_path_parameters(world)
    failures: list[str] = []
    operations = [result.ok() for result in published.get_all_operations()]
    assert len(operations) >= 30, "the published document lost operations"
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        passes = [(schemathesis.GenerationMode.POSITIVE, None), (schemathesis.GenerationMode.NEGATIVE, None)]
        if names:
            passes.append((schemathesis.GenerationMode.POSITIVE, {n: real[n] for n in names}))
        for mode, path_parameters in passes:
            try:
                _fuzz(operation, mode, path_parameters)
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except Exception as failure:  # noqa: BLE001 - collect every operation's failure, then report
                causes = getattr(failure, "exceptions", ())  # a flaky failure carries the first one
                failures.append(f"{operation.label} ({mode.value}, {path_parameters}): {failure} {causes}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation, mode, path_parameters) -> None:  # noqa: ANN001
    @EXAMPLES
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: schemathesis.Case) -> None:
        for token in TOKENS:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=CHECKS)

    run()
