"""What each process of the production shape imports before it can start.

Every service runs as separate processes (api, relay, consumer, jobs, migrate), and a machine
starts them all at once: on two cores, each library a role imports without needing it adds
seconds to the system's start-up and recovery. Only the API imports the web framework, and only
``migrate`` imports alembic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVICES = ("pension_account", "pension_fund_account", "pension_tax", "pension_payout")
HEAVY = ("fastapi", "starlette", "uvicorn", "alembic")


def _imported_after(code: str) -> set[str]:
    """The heavy top-level packages in ``sys.modules`` once ``code`` has run in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(result.stdout.splitlines()[-1])) & set(HEAVY)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_definition_and_its_background_roles_import_no_web_framework_and_no_alembic(service: str) -> None:
    # What `python -m <service> relay|consumer|jobs` loads: the definition (its module imports
    # the service's policies, projections and jobs) and the shared mechanics they run on.
    code = (
        f"from {service}.bootstrap import DEFINITION\n"
        "DEFINITION.projections()\n"
        "import pension_shared.runtime, pension_shared.consumer, pension_shared.relay"
    )
    assert _imported_after(code) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_the_api_imports_the_web_framework_but_not_alembic(service: str) -> None:
    code = (
        "import importlib, pkgutil\n"
        f"import {service}.entrypoints as edge\n"
        "for module in pkgutil.iter_modules(edge.__path__):\n"
        "    importlib.import_module(f'{edge.__name__}.{module.name}')\n"
        "import pension_shared.runtime, pension_shared.web"
    )
    assert _imported_after(code) == {"fastapi", "starlette"}
