from __future__ import annotations

import pytest

from shared.messaging.topics import TopicSpec, drift_of, topic_specs


def test_topic_specs_when_defaults_then_user_topics_have_12_partitions_and_dlq_twins() -> None:
    specs = {s.name: s for s in topic_specs()}
    user_keyed = [s for s in specs.values() if s.key == "user_id"]
    assert {s.name for s in user_keyed} == {
        "orders.commands",
        "orders.approved",
        "orders.events",
        "positions.events",
        "accounts.events",
        "users.events",
    }
    assert all(s.partitions == 12 for s in user_keyed)
    for spec in list(specs.values()):
        if spec.key in ("user_id", "symbol"):
            assert spec.name + ".dlq" in specs
    assert specs["market.instruments"].compacted
    assert specs["market.instruments"].configs()["cleanup.policy"] == "compact"
    assert not specs["market.tickers"].compacted


def test_topic_specs_when_env_sets_partitions_and_prefix_then_uses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_PARTITIONS", "24")
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_PREFIX", "staging.")
    specs = {s.name: s for s in topic_specs()}
    assert specs["staging.orders.commands"].partitions == 24
    assert all(name.startswith("staging.") for name in specs)


def test_configs_when_replicated_then_requires_two_in_sync_replicas() -> None:
    spec = topic_specs(replication_factor=3)[0]
    assert spec.configs()["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in topic_specs(replication_factor=1)[0].configs()


def test_drift_of_when_actual_matches_then_none_else_each_difference() -> None:
    spec = TopicSpec("x", 3, "user_id", 1000)
    assert drift_of(spec, 3, {"cleanup.policy": "delete", "retention.ms": "1000"}) == []
    drift = drift_of(spec, 5, {"cleanup.policy": "compact"})
    assert {(d.what, d.expected, d.actual) for d in drift} == {
        ("partitions", "3", "5"),
        ("cleanup.policy", "delete", "compact"),
        ("retention.ms", "1000", "<unset>"),
    }
    assert not next(d for d in drift if d.what == "partitions").fixable
