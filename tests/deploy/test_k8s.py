"""Static checks of the Kubernetes manifests in deploy/k8s/ (issue 9).

The manifests are plain YAML listed by deploy/k8s/kustomization.yaml (no patches, no generators),
so "rendering" them is reading the listed files. They are validated with kubeconform against the
Kubernetes JSON schemas, offline: `scripts/ensure-tools.sh` builds kubeconform from the Go module
proxy and takes the schemas from the PyPI wheel kubernetes-validate. Then the production shape is
asserted: probes, resources, replicas, disruption budgets, security contexts, routes, topics.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
INFRA = Path(os.environ.get("PENSION_INFRA_DIR", REPO / ".infra"))
KUBECONFORM = INFRA / "bin" / "kubeconform"
K8S_VERSION = os.environ.get("PENSION_K8S_SCHEMA_VERSION", "1.32.0")
SCHEMAS = INFRA / "kubernetes-json-schema"
SCHEMA_LOCATION = str(SCHEMAS) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
HINT = "run scripts/ensure-tools.sh (it builds kubeconform and installs the Kubernetes JSON schemas)"

SERVICES = {"account": "pension_account", "fund-account": "pension_fund_account", "tax": "pension_tax",
            "payout": "pension_payout"}
WITH_JOBS = {"tax", "payout"}
REPLICAS = {"api": 2, "relay": 2, "consumer": 3, "jobs": 1}
TOPICS = ["pension.account", "pension.fund-account", "pension.tax", "pension.payout"]


def _listed_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unsupported, f"the test renders only plain resources; kustomization.yaml uses {unsupported}"
    return [K8S / name for name in kustomization["resources"]]


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    rendered = []
    for path in _listed_files():
        rendered += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return rendered


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _kubeconform(*files: Path) -> subprocess.CompletedProcess:
    if not (KUBECONFORM.is_file() and os.access(KUBECONFORM, os.X_OK)):
        pytest.fail(f"kubeconform is missing at {KUBECONFORM}: {HINT}", pytrace=False)
    schema_dir = SCHEMAS / f"v{K8S_VERSION}-standalone-strict"
    if not (schema_dir / "deployment-apps-v1.json").is_file():
        pytest.fail(f"the Kubernetes {K8S_VERSION} JSON schemas are missing in {schema_dir}: {HINT}", pytrace=False)
    cmd = [str(KUBECONFORM), "-strict", "-summary", "-kubernetes-version", K8S_VERSION,
           "-schema-location", SCHEMA_LOCATION, *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------- schema validation


def test_every_file_in_the_directory_is_listed_or_is_the_secrets_example() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert on_disk == {p.name for p in _listed_files()}


def test_the_manifests_and_the_example_secrets_validate_with_kubeconform(docs: list[dict]) -> None:
    result = _kubeconform(*_listed_files(), K8S / "secrets.example.yaml")
    assert result.returncode == 0, f"kubeconform failed:\n{result.stdout}\n{result.stderr}"
    summary = re.search(r"(\d+) resources found .* Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)", result.stdout)
    assert summary, result.stdout
    found, valid, invalid, errors, skipped = map(int, summary.groups())
    assert (invalid, errors, skipped) == (0, 0, 0), result.stdout
    assert valid == found == len(docs) + len(list(yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())))


def test_kubeconform_really_rejects_a_broken_manifest(tmp_path: Path) -> None:
    """Guards against a validation that passes because it found no schema."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n"
        "spec: {minAvailable: 1, selector: {matchLabels: {a: b}}, maxUnavalable: 1}\n"
    )
    result = _kubeconform(broken)
    assert result.returncode != 0 and "maxUnavalable" in result.stdout, result.stdout


# ---------------------------------------------------------------------------- the production shape


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_each_service_has_its_deployments_with_the_designed_replicas(docs: list[dict]) -> None:
    deployments = _by_kind(docs, "Deployment")
    expected = {f"{s}-{r}" for s in SERVICES for r in ("api", "relay", "consumer")} | {f"{s}-jobs" for s in WITH_JOBS}
    assert set(deployments) == expected
    for name, deployment in deployments.items():
        service, role = name.rsplit("-", 1)
        assert deployment["spec"]["replicas"] == REPLICAS[role], name
        container = _container(deployment)
        assert container["command"][:4] == ["python", "-m", SERVICES[service], role], name
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["PENSION_SERVICE"]["value"] == service
        assert env["PENSION_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"pension-{service}-database", "key": "url"}
        assert env["PENSION_PII_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "pension-pii-key"
        assert {"configMapRef": {"name": "pension-config"}} in container["envFrom"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    assert deployments["tax-jobs"]["spec"]["strategy"] == {"type": "Recreate"}, "never two jobs pods at once"
    assert deployments["payout-jobs"]["spec"]["strategy"] == {"type": "Recreate"}


def test_apis_listen_on_8000_with_readiness_on_ready_and_liveness_on_health(docs: list[dict]) -> None:
    services = _by_kind(docs, "Service")
    for name, deployment in _by_kind(docs, "Deployment").items():
        container = _container(deployment)
        if not name.endswith("-api"):
            assert "ports" not in container and "readinessProbe" not in container, name
            continue
        assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert container["command"][-4:] == ["--host", "0.0.0.0", "--port", "8000"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}, name
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}, name
        service = services[name]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_every_container_has_resource_requests_and_limits(docs: list[dict]) -> None:
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{doc['metadata']['name']}: {kind}"


def test_every_pod_runs_non_root_with_a_read_only_root_filesystem(docs: list[dict]) -> None:
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name


def test_every_deployment_has_a_disruption_budget_that_selects_it(docs: list[dict]) -> None:
    budgets = list(_by_kind(docs, "PodDisruptionBudget").values())
    for name, deployment in _by_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{name} needs exactly one PodDisruptionBudget, has {len(matching)}"
        spec = matching[0]["spec"]
        replicas = deployment["spec"]["replicas"]
        if replicas > 1:
            # A voluntary disruption never takes every replica at once.
            assert spec.get("minAvailable", 0) >= 1 or spec.get("maxUnavailable", replicas) < replicas, name


def test_migrations_and_setup_run_as_jobs(docs: list[dict]) -> None:
    jobs = _by_kind(docs, "Job")
    for service, module in SERVICES.items():
        container = jobs[f"{service}-migrate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", module, "migrate"]
    setup = jobs["pension-database-setup"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '-c "CREATE DATABASE $db TEMPLATE template0 LC_COLLATE \'C\'"' in setup  # as init-databases.sql
    script = jobs["pension-kafka-topics"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for topic in TOPICS:
        assert topic in script
    assert '"$t.dlq"' in script and "retention.ms=-1" in script and "--if-not-exists" in script
    config = _by_kind(docs, "ConfigMap")["pension-config"]["data"]
    assert config["PENSION_TOPIC_PARTITIONS"] == "12" and config["PENSION_TOPIC_REPLICATION_FACTOR"] == "3"
    assert config["PENSION_ENV"] == "production"


def test_the_ingress_routes_exactly_like_the_compose_gateway(docs: list[dict]) -> None:
    nginx = (REPO / "deploy" / "gateway" / "nginx.conf").read_text()
    upstreams = {"account": "account", "fund_account": "fund-account", "tax": "tax", "payout": "payout"}
    expected = {path: f"{upstreams[up]}-api"
                for path, up in re.findall(r"location \^~ (\S+)\s+\{ proxy_pass http://(\w+); \}", nginx)}
    assert expected, "no routes found in nginx.conf"
    (ingress,) = _by_kind(docs, "Ingress").values()
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix"
            routes[path["path"]] = path["backend"]["service"]["name"]
    assert routes == expected


def test_the_secrets_are_referenced_by_name_and_the_example_is_obviously_fake(docs: list[dict]) -> None:
    assert not _by_kind(docs, "Secret"), "real Secrets do not belong in the manifests"
    example = [d for d in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()) if d]
    names = {d["metadata"]["name"] for d in example}
    referenced = set()
    for doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        referenced |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in pod["containers"]:
            referenced |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                           if "secretKeyRef" in e.get("valueFrom", {})}
    assert referenced == names
    for secret in example:
        for key, value in secret["stringData"].items():
            if key != "tokens.json":
                assert "changeme" in value, f"{secret['metadata']['name']}.{key} must be an obvious placeholder"
