"""The suite's topics as Strimzi ``KafkaTopic`` resources, generated from
``shared/messaging/topics.py`` `topic_specs()` into ``deploy/k8s/base/kafka-topics.yaml``,
so a Kubernetes cluster gets the same topics as ``opexbridge topics apply`` makes.

The base is for a real cluster: `PARTITIONS` partitions on user-keyed topics and
replication `REPLICAS` (which adds ``min.insync.replicas=2``); the local overlay patches
every KafkaTopic down to one replica. Each resource carries the Strimzi cluster label
(`CLUSTER`; patch it in an overlay for another cluster name). Nothing here reads the
environment, so the file is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from shared.messaging.topics import TopicSpec, topic_specs

__all__ = [
    "CLUSTER",
    "PARTITIONS",
    "REPLICAS",
    "TOPICS_FILE",
    "k8s_topic_specs",
    "kafka_topic",
    "kafka_topics_yaml",
]

REPO = Path(__file__).resolve().parent.parent
TOPICS_FILE = REPO / "deploy" / "k8s" / "base" / "kafka-topics.yaml"
API_VERSION = "kafka.strimzi.io/v1"  # Strimzi 1.0+ serves only v1 (0.49+ have both)
CLUSTER = "opexbridge"
"""The ``strimzi.io/cluster`` label: the name of the Strimzi ``Kafka`` resource."""
PARTITIONS = 12
"""Partitions of the user-keyed topics (the spec's default; market topics get up to 6)."""
REPLICAS = 3
HEADER = (
    "# Generated from shared/messaging/topics.py by `opexbridge generate topics`\n"
    "# (make docs). Do not edit: change the topic spec and regenerate.\n"
)


def k8s_topic_specs() -> list[TopicSpec]:
    """The topic spec for a real cluster, independent of the environment."""
    return topic_specs(partitions=PARTITIONS, replication_factor=REPLICAS, prefix="")


def _config_value(value: str) -> int | str:
    """Numbers as YAML numbers (``retention.ms: 604800000``), the rest as strings."""
    return int(value) if value.lstrip("-").isdigit() else value


def resource_name(topic: str) -> str:
    """A Kubernetes name for ``topic`` (lower case, ``_`` becomes ``-``)."""
    return topic.lower().replace("_", "-")


def kafka_topic(spec: TopicSpec, *, cluster: str = CLUSTER) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "KafkaTopic",
        "metadata": {
            "name": resource_name(spec.name),
            "labels": {
                "strimzi.io/cluster": cluster,
                "app.kubernetes.io/part-of": "opex-bridge",
            },
            "annotations": {
                "opexbridge.io/key": spec.key,
                "opexbridge.io/description": spec.description,
            },
        },
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": spec.replication_factor,
            "config": {key: _config_value(value) for key, value in spec.configs().items()},
        },
    }


def kafka_topics_yaml(specs: Sequence[TopicSpec] | None = None, *, cluster: str = CLUSTER) -> str:
    """Every topic as one multi-document YAML file, in the spec's order."""
    resources = [kafka_topic(spec, cluster=cluster) for spec in specs or k8s_topic_specs()]
    body = yaml.safe_dump_all(
        resources, sort_keys=False, default_flow_style=False, explicit_start=True, width=100
    )
    return HEADER + body
