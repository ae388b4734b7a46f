"""docker-compose.yml and deploy/prometheus/prometheus.yml, checked without Docker (the
compose file against the Compose Specification: test_deploy_schemas.py): every
command runs a module that exists, every variable is one a service reads, ports agree,
dependencies and healthchecks are in place."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.unit.opexbridge.deploy_support import (
    REPO,
    env_read_by,
    load_yaml,
    module_exists,
)

COMPOSE = load_yaml(REPO / "docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = load_yaml(REPO / "deploy" / "prometheus" / "prometheus.yml")
APPS = {
    # compose service: (module, <PREFIX>_PORT variable, make run's port)
    "opex-sandbox": ("services.opex_sandbox", "SANDBOX_PORT", 8082),
    "risk-engine": ("services.risk_engine", "RISK_ENGINE_PORT", 8092),
    "user-sync": ("services.user_sync", "USER_SYNC_PORT", 8091),
    "order-gateway": ("services.order_gateway", "ORDER_GATEWAY_PORT", 8093),
    "notifier": ("services.notifier", "NOTIFIER_PORT", 8000),
}
MODULE = re.compile(r"python -m ([\w.]+)")


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def _modules(service: dict[str, Any]) -> list[str]:
    return MODULE.findall(_command(service))


def _container_ports(service: dict[str, Any]) -> list[int]:
    return [int(str(mapping).rsplit(":", 1)[-1]) for mapping in service.get("ports", [])]


def test_the_stack_has_every_part() -> None:
    assert {"kafka", "postgres", "init", "kafka-ui", "prometheus", "grafana"} <= set(SERVICES)
    assert set(APPS) <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka-ui"]["image"].startswith("provectuslabs/kafka-ui:")
    kafka_env = SERVICES["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"], "KRaft, no ZooKeeper"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_runs_something_that_exists(name: str) -> None:
    service = SERVICES[name]
    assert "image" in service or "build" in service
    for module in _modules(service):
        assert module_exists(module), f"{name}: python -m {module} does not exist"
    if "build" in service:
        assert (REPO / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_each_python_service_runs_its_module() -> None:
    for name, (module, _port_var, _port) in APPS.items():
        assert _modules(SERVICES[name]) == [module], name
    assert _modules(SERVICES["init"]) == ["opexbridge.cli", "opexbridge.cli"]
    assert "topics apply" in _command(SERVICES["init"])
    assert "migrate" in _command(SERVICES["init"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_are_defined_and_waited_for(name: str) -> None:
    for dependency, rule in (SERVICES[name].get("depends_on") or {}).items():
        assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        condition = rule["condition"]
        if condition == "service_healthy":
            assert "test" in SERVICES[dependency]["healthcheck"], f"{dependency} has no check"
        else:
            assert condition == "service_completed_successfully"
            assert SERVICES[dependency]["restart"] == "no", f"{dependency} is not one-shot"


def test_services_start_after_topics_and_migrations() -> None:
    for name in APPS:
        if name == "opex-sandbox":
            continue
        assert SERVICES[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    assert set(SERVICES["init"]["depends_on"]) == {"kafka", "postgres"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    if service.get("restart") == "no":
        return
    check = service["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["interval"]
    assert check["retries"]


def test_host_ports_are_unique_and_local() -> None:
    published = [
        str(mapping).rsplit(":", 1)[0]
        for service in SERVICES.values()
        for mapping in service.get("ports", [])
    ]
    assert len(published) == len(set(published))
    assert all(mapping.startswith("127.0.0.1:") for mapping in published)


@pytest.mark.parametrize("name", sorted(APPS))
def test_ports_agree_with_the_service_settings_and_make_run(name: str) -> None:
    module, port_var, port = APPS[name]
    service = SERVICES[name]
    assert int(service["environment"][port_var]) == port
    assert _container_ports(service) == [port]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"])
    host_var = port_var.removesuffix("PORT") + "HOST"
    assert service["environment"][host_var] == "0.0.0.0"
    assert {port_var, host_var} <= env_read_by(module)


@pytest.mark.parametrize("name", sorted([*APPS, "init"]))
def test_every_variable_is_one_the_process_reads(name: str) -> None:
    service = SERVICES[name]
    modules = _modules(service)
    read = set().union(*(env_read_by(module) for module in modules))
    unknown = {key for key in service["environment"] if key.upper() not in read}
    assert not unknown, f"{name}: nothing reads {sorted(unknown)}"


def test_connection_settings_point_at_the_stack() -> None:
    env = SERVICES["risk-engine"]["environment"]
    kafka_host, kafka_port = env["KAFKA_BOOTSTRAP_SERVERS"].split(":")
    assert kafka_host == "kafka"
    assert (
        f"PLAINTEXT://kafka:{kafka_port}"
        in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    database = urlsplit(env["DATABASE_URL"])
    pg = SERVICES["postgres"]["environment"]
    assert database.hostname == "postgres"
    assert database.username == pg["POSTGRES_USER"]
    assert database.password == pg["POSTGRES_PASSWORD"]
    assert database.path == "/" + pg["POSTGRES_DB"]
    opex = urlsplit(env["OPEX_API_URL"])
    assert opex.hostname in SERVICES
    assert opex.port == APPS[opex.hostname][2]


def test_mounted_files_and_volumes_exist() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_prometheus_scrapes_every_service_on_its_metrics_endpoint() -> None:
    targets: dict[str, str] = {}
    for job in PROMETHEUS["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                targets[target.split(":")[0]] = target
        if job["job_name"] != "prometheus":
            assert job["metrics_path"] == "/metrics"
    for name, (_module, _var, port) in APPS.items():
        if name == "opex-sandbox":
            continue
        assert targets[name] == f"{name}:{port}"
    assert set(targets) - {"localhost"} <= set(SERVICES)
