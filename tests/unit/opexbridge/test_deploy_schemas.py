"""The deployment files against their real schemas, offline: docker-compose.yml against
the Compose Specification, every Kubernetes resource of deploy/k8s (each file, and what
kustomize builds of the base and the local overlay) against the strict schemas of
Kubernetes 1.33 and 1.37, and the KafkaTopics against Strimzi's KafkaTopic CRD. Each
validator is also shown a broken copy, which it must refuse (deploy_support.py has the
validators, deploy/schemas/README.md the sources of the schemas). Every pod also meets the
"restricted" Pod Security Standard."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from opexbridge.strimzi import k8s_topic_specs
from tests.unit.opexbridge.deploy_support import (
    COMPOSE_SCHEMA,
    KAFKA_TOPIC_CRD,
    KUBERNETES_VERSIONS,
    REPO,
    SCHEMAS,
    KustomizeError,
    compose_errors,
    kafka_topic_errors,
    kafka_topic_versions,
    kubernetes_errors,
    kustomize_build,
    load_yaml,
    load_yaml_documents,
    restricted_pod_security_errors,
)

K8S = REPO / "deploy" / "k8s"
OVERLAYS = [K8S / "base", K8S / "overlays" / "local"]
COMPOSE: dict[str, Any] = load_yaml(REPO / "docker-compose.yml")
SOURCES = sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")
"""Every manifest file (resources and patches; all are whole resources)."""
BUILT = {folder.relative_to(K8S).as_posix(): kustomize_build(folder) for folder in OVERLAYS}


def _label(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


# --- the vendored schemas ------------------------------------------------------------------


def test_vendored_schemas_are_the_recorded_copies() -> None:
    recorded = dict(
        re.findall(
            r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$",
            (SCHEMAS / "README.md").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    )
    assert set(recorded) == {COMPOSE_SCHEMA.name, KAFKA_TOPIC_CRD.name}
    for name, digest in recorded.items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, name


def test_the_crd_is_strimzis_kafka_topic() -> None:
    crd = load_yaml(KAFKA_TOPIC_CRD)
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "kafkatopics.kafka.strimzi.io"
    assert {"v1", "v1beta2"} <= set(kafka_topic_versions())


# --- docker-compose.yml --------------------------------------------------------------------


def test_docker_compose_follows_the_compose_specification() -> None:
    assert compose_errors(COMPOSE) == []


def _ports_as_a_number(compose: dict[str, Any]) -> None:
    compose["services"]["notifier"]["ports"] = 8000


def _misspelled_service_field(compose: dict[str, Any]) -> None:
    service = compose["services"]["risk-engine"]
    service["helthcheck"] = service.pop("healthcheck")


def _unknown_dependency_condition(compose: dict[str, Any]) -> None:
    compose["services"]["init"]["depends_on"]["kafka"]["condition"] = "service_ready"


def _interval_as_a_number(compose: dict[str, Any]) -> None:
    compose["services"]["postgres"]["healthcheck"]["interval"] = 5


def _unknown_top_level_key(compose: dict[str, Any]) -> None:
    compose["service"] = compose.pop("services")


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (_ports_as_a_number, "services/notifier"),
        (_misspelled_service_field, "services/risk-engine"),
        (_unknown_dependency_condition, "services/init/depends_on"),
        (_interval_as_a_number, "services/postgres/healthcheck/interval"),
        (_unknown_top_level_key, "(top)"),
    ],
)
def test_a_broken_compose_file_is_refused(
    break_it: Callable[[dict[str, Any]], None], where: str
) -> None:
    broken = copy.deepcopy(COMPOSE)
    break_it(broken)
    errors = compose_errors(broken)
    assert any(error.startswith(where) for error in errors), errors


# --- Kubernetes resources ------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.relative_to(K8S).as_posix())
def test_every_manifest_file_is_valid(path: Path, version: str) -> None:
    for resource in load_yaml_documents(path):
        assert kubernetes_errors(resource, version) == [], _label(resource)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", sorted(BUILT))
def test_what_kustomize_builds_is_valid(overlay: str, version: str) -> None:
    resources = BUILT[overlay]
    assert len({_label(r) for r in resources}) == len(resources), "a resource twice"
    for resource in resources:
        assert kubernetes_errors(resource, version) == [], _label(resource)


def test_the_builds_hold_every_resource() -> None:
    kinds = {overlay: sorted({r["kind"] for r in built}) for overlay, built in BUILT.items()}
    assert kinds == {
        "base": ["ConfigMap", "Deployment", "Job", "KafkaTopic", "Service"],
        "overlays/local": ["ConfigMap", "Deployment", "Job", "KafkaTopic", "Secret", "Service"],
    }
    for built in BUILT.values():
        topics = [r for r in built if r["kind"] == "KafkaTopic"]
        assert len(topics) == len(k8s_topic_specs())


def _deployment() -> dict[str, Any]:
    return copy.deepcopy(next(r for r in BUILT["overlays/local"] if r["kind"] == "Deployment"))


def _container(resource: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = resource["spec"]["template"]["spec"]["containers"][0]
    return container


def _misspelled_container_field(resource: dict[str, Any]) -> None:
    _container(resource)["imagePullPolcy"] = "IfNotPresent"


def _port_as_text(resource: dict[str, Any]) -> None:
    _container(resource)["ports"][0]["containerPort"] = "8092"


def _replicas_as_text(resource: dict[str, Any]) -> None:
    resource["spec"]["replicas"] = "1"


def _probe_without_a_handler_field(resource: dict[str, Any]) -> None:
    _container(resource)["readinessProbe"]["httpGet"]["paht"] = "/health"


def _container_name_with_capitals(resource: dict[str, Any]) -> None:
    _container(resource)["name"] = "RiskEngine"


def _port_name_too_long(resource: dict[str, Any]) -> None:
    _container(resource)["ports"][0]["name"] = "http-metrics-and-health"


@pytest.mark.parametrize(
    "break_it",
    [
        _misspelled_container_field,
        _port_as_text,
        _replicas_as_text,
        _probe_without_a_handler_field,
        _container_name_with_capitals,
        _port_name_too_long,
    ],
)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_a_broken_deployment_is_refused(
    break_it: Callable[[dict[str, Any]], None], version: str
) -> None:
    deployment = _deployment()
    assert kubernetes_errors(deployment, version) == []
    break_it(deployment)
    assert kubernetes_errors(deployment, version) != []


def test_an_unknown_kind_is_refused() -> None:
    resource = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    assert kubernetes_errors(resource, KUBERNETES_VERSIONS[-1]) != []


def test_a_service_name_must_be_a_dns_label() -> None:
    service = copy.deepcopy(next(r for r in BUILT["base"] if r["kind"] == "Service"))
    service["metadata"]["name"] = "risk.engine"
    assert kubernetes_errors(service, KUBERNETES_VERSIONS[-1]) != []


@pytest.mark.parametrize("overlay", sorted(BUILT))
def test_every_pod_meets_the_restricted_pod_security_standard(overlay: str) -> None:
    workloads = [r for r in BUILT[overlay] if r["kind"] in ("Deployment", "Job")]
    assert workloads
    for workload in workloads:
        assert restricted_pod_security_errors(workload) == [], _label(workload)


def _pod_security(resource: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = resource["spec"]["template"]["spec"]["securityContext"]
    return context


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: _pod_security(d).pop("seccompProfile"),
        lambda d: _pod_security(d).pop("runAsNonRoot"),
        lambda d: _container(d)["securityContext"].pop("allowPrivilegeEscalation"),
        lambda d: _container(d)["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
        lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True),
        lambda d: d["spec"]["template"]["spec"].update(
            volumes=[{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]
        ),
    ],
    ids=["seccomp", "root", "escalation", "capability", "host-network", "host-path"],
)
def test_a_privileged_pod_is_refused(break_it: Callable[[dict[str, Any]], object]) -> None:
    deployment = _deployment()
    break_it(deployment)
    assert restricted_pod_security_errors(deployment) != []


# --- Strimzi KafkaTopics -------------------------------------------------------------------


def _topics() -> list[dict[str, Any]]:
    return [r for r in BUILT["overlays/local"] if r["kind"] == "KafkaTopic"]


@pytest.mark.parametrize("api_version", ["v1beta2", "v1"])
def test_every_topic_is_a_valid_kafka_topic(api_version: str) -> None:
    """As written (v1, the only version Strimzi 1.0 and later serve), and as v1beta2,
    which Strimzi 0.49-0.51 still serve."""
    for topic in [*load_yaml_documents(K8S / "base" / "kafka-topics.yaml"), *_topics()]:
        assert kafka_topic_errors(topic, api_version) == [], _label(topic)


def test_the_topics_use_a_served_version() -> None:
    for topic in load_yaml_documents(K8S / "base" / "kafka-topics.yaml"):
        version = topic["apiVersion"].split("/")[1]
        assert kafka_topic_versions()[version]["served"]


def _partitions_as_text(topic: dict[str, Any]) -> None:
    topic["spec"]["partitions"] = "12"


def _misspelled_spec_field(topic: dict[str, Any]) -> None:
    topic["spec"]["partitons"] = topic["spec"].pop("partitions")


def _no_replicas(topic: dict[str, Any]) -> None:
    topic["spec"]["replicas"] = 0


def _label_value_a_number(topic: dict[str, Any]) -> None:
    topic["metadata"]["labels"]["strimzi.io/generation"] = 2


def _name_with_an_underscore(topic: dict[str, Any]) -> None:
    topic["metadata"]["name"] = "orders_commands"


def _unknown_api_version(topic: dict[str, Any]) -> None:
    topic["apiVersion"] = "kafka.strimzi.io/v1beta3"


def _unknown_top_level_field(topic: dict[str, Any]) -> None:
    topic["specs"] = topic.pop("spec")


@pytest.mark.parametrize(
    "break_it",
    [
        _partitions_as_text,
        _misspelled_spec_field,
        _no_replicas,
        _label_value_a_number,
        _name_with_an_underscore,
        _unknown_api_version,
        _unknown_top_level_field,
    ],
)
def test_a_broken_kafka_topic_is_refused(break_it: Callable[[dict[str, Any]], None]) -> None:
    topic = copy.deepcopy(_topics()[0])
    assert kubernetes_errors(topic, KUBERNETES_VERSIONS[-1]) == []
    break_it(topic)
    assert kafka_topic_errors(topic) != []
    assert kubernetes_errors(topic, KUBERNETES_VERSIONS[-1]) != []


# --- kustomize -----------------------------------------------------------------------------


def _copy_of_deploy(tmp_path: Path) -> Path:
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s" / "overlays" / "local"


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = load_yaml(path)
    change(document)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def test_the_copy_builds_as_the_original(tmp_path: Path) -> None:
    assert kustomize_build(_copy_of_deploy(tmp_path)) == BUILT["overlays/local"]


def _misspelled_kustomization_field(kustomization: dict[str, Any]) -> None:
    kustomization["resorces"] = kustomization.pop("resources")


def _missing_resource(kustomization: dict[str, Any]) -> None:
    kustomization["resources"].append("kafka.yaml")


def _patch_of_a_missing_file(kustomization: dict[str, Any]) -> None:
    kustomization["patches"][0]["path"] = "config-patches.yaml"


@pytest.mark.parametrize(
    "break_it",
    [
        _misspelled_kustomization_field,
        _missing_resource,
        _patch_of_a_missing_file,
    ],
)
def test_a_broken_overlay_does_not_build(
    tmp_path: Path, break_it: Callable[[dict[str, Any]], None]
) -> None:
    overlay = _copy_of_deploy(tmp_path)
    _edit(overlay / "kustomization.yaml", break_it)
    with pytest.raises(KustomizeError):
        kustomize_build(overlay)


def test_a_patch_that_misses_its_field_builds_but_is_refused(tmp_path: Path) -> None:
    """kustomize applies a JSON patch's ``replace`` of a missing field as an ``add``: the
    build succeeds, and only the KafkaTopic schema sees the stray field."""

    def _misspelled_path(kustomization: dict[str, Any]) -> None:
        patch = kustomization["patches"][1]
        patch["patch"] = patch["patch"].replace("/spec/replicas", "/spec/replica")

    overlay = _copy_of_deploy(tmp_path)
    _edit(overlay / "kustomization.yaml", _misspelled_path)
    topics = [r for r in kustomize_build(overlay) if r["kind"] == "KafkaTopic"]
    assert topics
    for topic in topics:
        assert topic["spec"]["replica"] == 1
        errors = kubernetes_errors(topic, KUBERNETES_VERSIONS[-1])
        assert any("'replica' was unexpected" in error for error in errors), errors
