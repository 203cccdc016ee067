"""Static checks of the production docker-compose.yml.

Needs a `docker compose` CLI (no Docker engine): `scripts/ensure-tools.sh` installs one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {
    "account": "pension_account",
    "fund-account": "pension_fund_account",
    "tax": "pension_tax",
    "payout": "pension_payout",
}
ROLES = ("api", "relay", "consumer", "migrate")
TOPICS = ["pension.account", "pension.fund-account", "pension.tax", "pension.payout"]
ENSURE_TOOLS_HINT = "docker compose is not available: run scripts/ensure-tools.sh (it installs the compose CLI plugin)"


def _compose_cmd() -> list[str]:
    """The compose CLI to use; fails (never skips) when there is none."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    infra = Path(os.environ.get("PENSION_INFRA_DIR", REPO / ".infra"))
    for candidate in (shutil.which("docker-compose"), infra / "bin" / "docker-compose"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            probe = subprocess.run([str(candidate), "version"], capture_output=True, text=True)
            if probe.returncode == 0 and "v2." in probe.stdout + probe.stderr:
                return [str(candidate)]
    pytest.fail(ENSURE_TOOLS_HINT, pytrace=False)


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    secret = tmp_path_factory.mktemp("secrets") / "tokens.json"
    secret.write_text('{"tokens": []}\n')
    env = dict(os.environ)
    env["PENSION_DB_PASSWORD"] = "dummy-password-for-config-check"
    env["PENSION_PII_KEY"] = "dummy-pii-key-for-config-check"
    env["PENSION_INSURANCE_REGISTRY_URL"] = "http://registry.example"
    env["PENSION_PAYMENT_ENDPOINT_URL"] = "http://payments.example"
    env["PENSION_TOKENS_SECRET_FILE"] = str(secret)
    env.pop("COMPOSE_FILE", None)
    env.pop("COMPOSE_PROFILES", None)
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    with COMPOSE_FILE.open() as fh:
        return yaml.safe_load(fh)


def test_compose_config_is_valid(compose_env: dict[str, str]) -> None:
    cmd = _compose_cmd() + ["-f", str(COMPOSE_FILE), "config", "--quiet"]
    result = subprocess.run(cmd, cwd=REPO, env=compose_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"


def test_compose_config_requires_db_password(compose_env: dict[str, str]) -> None:
    env = dict(compose_env)
    env.pop("PENSION_DB_PASSWORD")
    cmd = _compose_cmd() + ["-f", str(COMPOSE_FILE), "config", "--quiet"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PENSION_DB_PASSWORD" in result.stderr


def test_every_service_has_api_relay_consumer_migrate(compose: dict) -> None:
    services = compose["services"]
    for svc, module in SERVICES.items():
        for role in ROLES:
            name = f"{svc}-{role}"
            assert name in services, f"missing compose service {name}"
            container = services[name]
            command = container["command"]
            assert command[:4] == ["python", "-m", module, role], f"{name}: unexpected command {command}"
            build = container["build"]
            assert build["dockerfile"] == "deploy/Dockerfile"
            assert build["args"]["SERVICE"] == svc
            env = container["environment"]
            assert env["PENSION_ENV"] == "production"
            assert env["PENSION_KAFKA_BOOTSTRAP"] == "kafka:9092"
            assert env["PENSION_TOKENS_FILE"] == "/run/secrets/tokens.json"
            assert env["PENSION_DATABASE_URL"].endswith("@postgres:5432/" + svc.replace("-", "_"))
            if role != "migrate":
                deps = container["depends_on"]
                assert deps[f"{svc}-migrate"]["condition"] == "service_completed_successfully", name


def test_every_api_has_ready_healthcheck(compose: dict) -> None:
    for svc in SERVICES:
        api = compose["services"][f"{svc}-api"]
        assert "--port" in api["command"] and "8000" in api["command"]
        healthcheck = api.get("healthcheck")
        assert healthcheck, f"{svc}-api has no healthcheck"
        assert "/ready" in " ".join(healthcheck["test"]), f"{svc}-api healthcheck does not probe /ready"


def test_topics_job_creates_all_topics_and_dlqs(compose: dict) -> None:
    script = " ".join(compose["services"]["topics"]["command"])
    for topic in TOPICS:
        assert topic in script
    assert '"$$t.dlq"' in script
    assert "--partitions 12" in script
    assert "retention.ms=-1" in script


def test_one_database_per_service() -> None:
    sql = (REPO / "deploy" / "postgres" / "init-databases.sql").read_text()
    for svc in SERVICES:
        assert f"CREATE DATABASE {svc.replace('-', '_')} TEMPLATE template0 LC_COLLATE 'C';" in sql
