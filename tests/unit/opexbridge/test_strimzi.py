"""deploy/k8s/base/kafka-topics.yaml is the topic spec as Strimzi KafkaTopics."""

from __future__ import annotations

import re

import pytest

from opexbridge.strimzi import (
    CLUSTER,
    PARTITIONS,
    REPLICAS,
    TOPICS_FILE,
    k8s_topic_specs,
    kafka_topics_yaml,
)
from shared.messaging.topics import topic_specs
from tests.unit.opexbridge.deploy_support import load_yaml_documents

K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def test_committed_file_matches_the_generator() -> None:
    assert TOPICS_FILE.read_text(encoding="utf-8") == kafka_topics_yaml(), (
        "deploy/k8s/base/kafka-topics.yaml is out of date: run `make docs`"
    )


def test_every_topic_of_the_spec_is_a_kafka_topic_with_its_settings() -> None:
    resources = {doc["spec"]["topicName"]: doc for doc in load_yaml_documents(TOPICS_FILE)}
    specs = topic_specs(partitions=PARTITIONS, replication_factor=REPLICAS, prefix="")
    assert list(resources) == [spec.name for spec in specs]
    for spec in specs:
        resource = resources[spec.name]
        assert resource["apiVersion"] == "kafka.strimzi.io/v1"
        assert resource["kind"] == "KafkaTopic"
        assert K8S_NAME.match(resource["metadata"]["name"]), resource["metadata"]["name"]
        assert resource["metadata"]["labels"]["strimzi.io/cluster"] == CLUSTER
        assert resource["spec"]["partitions"] == spec.partitions
        assert resource["spec"]["replicas"] == spec.replication_factor
        config = {key: str(value) for key, value in resource["spec"]["config"].items()}
        assert config == spec.configs()
        assert config["cleanup.policy"] == ("compact" if spec.compacted else "delete")
        assert config["retention.ms"] == str(spec.retention_ms)


def test_the_file_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = kafka_topics_yaml()
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_PARTITIONS", "3")
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_REPLICATION", "1")
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_PREFIX", "t.")
    assert kafka_topics_yaml() == before
    assert k8s_topic_specs()[0].partitions == PARTITIONS


def test_replication_three_asks_for_two_in_sync_replicas() -> None:
    for doc in load_yaml_documents(TOPICS_FILE):
        assert doc["spec"]["config"]["min.insync.replicas"] == 2
