from __future__ import annotations

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512

from shared.messaging import KafkaSettings, create_broker


def test_settings_when_environment_sets_sasl_ssl_then_security_and_aiokafka_kwargs_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "bridge")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "pw-not-in-repr")
    settings = KafkaSettings()
    security = settings.security()
    assert isinstance(security, SASLScram512)
    assert security.use_ssl
    kwargs = settings.aiokafka_kwargs()
    assert kwargs["bootstrap_servers"] == "k1:9093,k2:9093"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == "pw-not-in-repr"
    assert "pw-not-in-repr" not in repr(settings)


def test_settings_when_plaintext_then_no_security_and_sasl_plain_needs_credentials() -> None:
    assert KafkaSettings(security_protocol="PLAINTEXT").security() is None
    assert isinstance(KafkaSettings(security_protocol="SSL").security(), BaseSecurity)
    with pytest.raises(ValueError, match="SASL needs"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT").security()
    sasl = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p"
    ).security()
    assert isinstance(sasl, SASLPlaintext)
    assert not sasl.use_ssl


def test_create_broker_when_called_then_names_the_client_and_never_auto_creates_topics() -> None:
    broker = create_broker(KafkaSettings(bootstrap_servers="k1:9092"), service="risk_engine")
    config = broker.config.broker_config
    assert config.allow_auto_create_topics is False
    assert config.client_id == "risk_engine"
    assert config.builder.keywords["bootstrap_servers"] == ["k1:9092"]  # type: ignore[attr-defined]
