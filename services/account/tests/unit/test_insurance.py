import httpx
import pytest

from pension_account.adapters.registry import HttpInsuranceRegistry, RegistryUnavailable
from pension_account.domain.insurance import InsuranceRecord, NotInsured, require_insured


def test_an_insured_worker_may_join():
    record = InsuranceRecord("insured", "employee", "410100")
    assert require_insured(record) is record


def test_a_person_not_insured_in_basic_pension_insurance_is_refused():
    with pytest.raises(NotInsured) as refused:
        require_insured(InsuranceRecord("not_insured"))
    assert refused.value.code == "NOT_INSURED"


def test_a_retiree_already_drawing_a_basic_pension_does_not_join():
    with pytest.raises(NotInsured) as refused:
        require_insured(InsuranceRecord("receiving_basic_pension", "employee", "410100"))
    assert "B-1" in refused.value.detail


def _registry(handler) -> HttpInsuranceRegistry:
    return HttpInsuranceRegistry("http://registry.test", transport=httpx.MockTransport(handler))


def test_the_http_registry_reads_the_record_of_an_insured_person():
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/insured-persons/11010519491231002X"
        return httpx.Response(200, json={"status": "insured", "insurance_type": "resident", "insured_region": "110105"})

    assert _registry(answer).lookup("11010519491231002X") == InsuranceRecord("insured", "resident", "110105")


def test_the_http_registry_knowing_nobody_means_no_record():
    assert _registry(lambda _: httpx.Response(404)).lookup("11010519491231002X") is None


def test_a_registry_outage_is_reported_as_unavailable_not_as_not_insured():
    def fail(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(RegistryUnavailable):
        _registry(fail).lookup("11010519491231002X")
