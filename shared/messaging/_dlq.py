from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from shared.observability.metrics import DLQ_WRITES

if TYPE_CHECKING:
    from shared.messaging._consumer import Delivery

log = structlog.get_logger(__name__)

DLQ_SUFFIX = ".dlq"
_MAX_ERROR_CHARS = 2000


class DLQ_HEADERS:
    """Header names a dead letter carries (values are UTF-8 strings)."""

    ERROR = "x-dlq-error"
    ERROR_CODE = "x-dlq-error-code"
    SERVICE = "x-dlq-service"
    ATTEMPTS = "x-dlq-attempts"
    TOPIC = "x-dlq-original-topic"
    PARTITION = "x-dlq-original-partition"
    OFFSET = "x-dlq-original-offset"
    FAILED_AT = "x-dlq-failed-at"


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


class Publisher(Protocol):
    """What a dead-letter writer needs from a broker: a confirmed publish."""

    async def publish(
        self,
        message: bytes,
        topic: str,
        *,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> object: ...


def error_code(error: BaseException) -> str:
    code = getattr(error, "code", None)
    return str(code) if code is not None else type(error).__name__


class DeadLetters:
    """Writes undeliverable messages, byte for byte, to ``<topic>.dlq``.

    The original headers are kept and the ``x-dlq-*`` headers added. The write is
    confirmed by the broker before :meth:`send` returns, so the caller may then commit
    the original offset without losing the message.
    """

    def __init__(self, publisher: Publisher, service: str) -> None:
        self._publisher = publisher
        self._service = service

    async def send(self, delivery: Delivery, error: BaseException, *, attempts: int) -> None:
        headers = {name: value.decode("utf-8", "replace") for name, value in delivery.headers}
        message = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
        headers.update(
            {
                DLQ_HEADERS.ERROR: message,
                DLQ_HEADERS.ERROR_CODE: error_code(error),
                DLQ_HEADERS.SERVICE: self._service,
                DLQ_HEADERS.ATTEMPTS: str(attempts),
                DLQ_HEADERS.TOPIC: delivery.topic,
                DLQ_HEADERS.PARTITION: str(delivery.partition),
                DLQ_HEADERS.OFFSET: str(delivery.offset),
                DLQ_HEADERS.FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        await self._publisher.publish(
            delivery.value, dlq_topic(delivery.topic), key=delivery.key, headers=headers
        )
        DLQ_WRITES.labels(service=self._service, topic=delivery.topic).inc()
        log.warning(
            "dead_lettered",
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            error_code=headers[DLQ_HEADERS.ERROR_CODE],
            error=message,
            attempts=attempts,
        )
