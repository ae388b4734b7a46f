from __future__ import annotations

import logging
import ssl
from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


class KafkaSettings(BaseSettings):
    """Kafka connection settings from the environment (or ``.env``).

    ``KAFKA_BOOTSTRAP_SERVERS`` is the only one needed locally; a real cluster adds
    ``KAFKA_SECURITY_PROTOCOL`` (SSL, SASL_PLAINTEXT, SASL_SSL) and, for SASL,
    ``KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with
    ``KAFKA_SASL_USERNAME`` / ``KAFKA_SASL_PASSWORD``; ``KAFKA_SSL_CAFILE`` for a
    private CA.
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", env_file=".env", extra="ignore")

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    linger_ms: int = Field(default=1, ge=0, le=1000)
    request_timeout_ms: int = Field(default=30_000, ge=1000)

    def security(self) -> BaseSecurity | None:
        if self.security_protocol == "PLAINTEXT":
            return None
        use_ssl = self.security_protocol in ("SSL", "SASL_SSL")
        context = ssl.create_default_context(cafile=self.ssl_cafile) if use_ssl else None
        if self.security_protocol == "SSL":
            return BaseSecurity(ssl_context=context, use_ssl=True)
        if not self.sasl_username or self.sasl_password is None:
            raise ValueError("SASL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        username = self.sasl_username
        password = self.sasl_password.get_secret_value()
        if self.sasl_mechanism == "SCRAM-SHA-256":
            return SASLScram256(username, password, ssl_context=context, use_ssl=use_ssl)
        if self.sasl_mechanism == "SCRAM-SHA-512":
            return SASLScram512(username, password, ssl_context=context, use_ssl=use_ssl)
        return SASLPlaintext(username, password, ssl_context=context, use_ssl=use_ssl)

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """The same settings for a bare aiokafka client (admin, relay, tools)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol != "PLAINTEXT":
            if self.security_protocol in ("SSL", "SASL_SSL"):
                kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.security_protocol.startswith("SASL"):
                kwargs["sasl_mechanism"] = self.sasl_mechanism
                kwargs["sasl_plain_username"] = self.sasl_username
                kwargs["sasl_plain_password"] = (
                    self.sasl_password.get_secret_value() if self.sasl_password else None
                )
        return kwargs


def create_broker(settings: KafkaSettings, *, service: str, **overrides: Any) -> KafkaBroker:
    """A broker for ``service``: every write acknowledged by all in-sync replicas, the
    idempotent producer (no duplicates or reordering on producer retries), topics never
    auto-created by a client, the service name as client id."""
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "allow_auto_create_topics": False,
        "client_id": service,
        "linger_ms": settings.linger_ms,
        "request_timeout_ms": settings.request_timeout_ms,
        "security": settings.security(),
        "description": f"opex-bridge {service}",
        # FastStream logs every message at its broker log level: keep that for debugging.
        "log_level": logging.DEBUG,
    }
    options.update(overrides)
    return KafkaBroker(settings.bootstrap_servers, **options)


async def start_broker(
    broker: KafkaBroker,
    *,
    timeout_s: float = 300.0,
    first_delay_s: float = 0.5,
    max_delay_s: float = 5.0,
) -> None:
    """Start ``broker``, waiting for Kafka: a service started while the broker is down
    (a broker restart, a rolling deploy) retries with backoff for up to ``timeout_s``
    instead of exiting at once; then the last connection error is raised."""
    import asyncio
    import contextlib
    import time

    from aiokafka.errors import KafkaConnectionError

    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    while True:
        try:
            await broker.start()
            return
        except KafkaConnectionError as error:
            with contextlib.suppress(Exception):
                await broker.stop()
            if time.monotonic() + delay > deadline:
                raise
            logging.getLogger(__name__).warning(
                "kafka unavailable at start, retrying in %.1f s: %s", delay, error
            )
            await asyncio.sleep(delay)
            delay = min(max_delay_s, delay * 2)
