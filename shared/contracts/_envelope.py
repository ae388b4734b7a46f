"""The envelope every message travels in (ARCHITECTURE.md, Messages).

```
{"id": uuid, "type": "PlaceOrder", "version": 1, "occurred_at": "2026-01-01T00:00:00.000Z",
 "correlation_id": uuid, "causation_id": uuid | null, "user_id": "42" | null, "data": {...}}
```

``id`` is unique per message and is the idempotency key of a command;
``correlation_id`` is the id of the command that started the chain; ``causation_id``
the message that directly caused this one. ``user_id`` is required on user-keyed topics
and absent where the data carries its own key (``market.*`` and a global
`TradingStateChanged`).

Build envelopes with `new_message` (a chain's first message) and `caused_by` (any
message caused by another); both return ``Envelope[T]`` for data of type ``T``.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from shared.contracts._base import Message
from shared.contracts._errors import (
    InvalidMessage,
    UnexpectedMessageType,
    UnknownMessageType,
    refusal,
)
from shared.contracts._reasons import ReasonCode
from shared.contracts._registry import registry
from shared.contracts._topics import Topic
from shared.contracts._types import UserId, UtcDatetime

__all__ = ["Envelope", "caused_by", "new_message", "partition_key"]

DataT = TypeVar("DataT", bound=Message)
M = TypeVar("M", bound=Message)


class Envelope(BaseModel, Generic[DataT]):
    """One message: its metadata and its ``data``.

    Validating a plain `Envelope` picks the data model from the default registry by
    ``type`` and ``version``; ``Envelope[PlaceOrder]`` reads only PlaceOrder data. Read
    bytes with `decode`, not ``model_validate_json``: pydantic's JSON parser reads
    numbers as binary floats (losing digits past the 17th) and lets NaN through in
    ignored fields, and it enforces no size limit.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    id: UUID
    type: str = Field(min_length=1, max_length=64)
    version: int = Field(strict=True, ge=1)
    occurred_at: UtcDatetime
    correlation_id: UUID
    causation_id: UUID | None = None
    user_id: UserId | None = None
    data: SerializeAsAny[DataT]

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_by_type(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        args = cls.__pydantic_generic_metadata__["args"]
        if isinstance(value, Message) or (args and not isinstance(args[0], TypeVar)):
            return handler(value)  # a model instance (checked below), or Envelope[X]
        type_, version = info.data.get("type"), info.data.get("version")
        if type_ is None or version is None:
            raise refusal(ReasonCode.INVALID_FIELD, "data cannot be read without type and version")
        try:
            model = registry.get(type_, version)
        except UnknownMessageType as exc:
            raise refusal(ReasonCode.UNKNOWN_MESSAGE_TYPE, exc.message) from None
        if not isinstance(value, dict):
            raise refusal(ReasonCode.INVALID_FIELD, f"data of a {type_} must be an object")
        return model.model_validate(value)

    @model_validator(mode="after")
    def _consistent(self) -> Envelope[DataT]:
        data = self.data
        if (self.type, self.version) != (data.TYPE, data.VERSION):
            raise refusal(
                ReasonCode.INVALID_FIELD,
                f"data is a {data.TYPE} v{data.VERSION}, not a {self.type} v{self.version}",
                field="type",
            )
        has_user = data.routing_key() is None
        if has_user and self.user_id is None:
            raise refusal(
                ReasonCode.MISSING_FIELD, f"a {data.TYPE} needs a user_id", field="user_id"
            )
        if not has_user and self.user_id is not None:
            raise refusal(
                ReasonCode.FIELD_NOT_ALLOWED,
                f"a {data.TYPE} belongs to no user; user_id must be null",
                field="user_id",
            )
        return self

    @property
    def topic(self) -> Topic:
        """The topic this message travels on."""
        return self.data.TOPIC

    def data_as(self, model: builtins.type[M]) -> M:
        """``data``, if it is a ``model``; `UnexpectedMessageType` if not."""
        data = self.data
        if not isinstance(data, model):
            raise UnexpectedMessageType(model.__name__, type(data).__name__)
        return data


def partition_key(envelope: Envelope[Any]) -> bytes:
    """The Kafka key of ``envelope``: its ``user_id``, or, for data that carries its own
    key, that key (the symbol on ``market.*``)."""
    key: str | None = envelope.data.routing_key()
    if key is None:
        assert envelope.user_id is not None  # guaranteed by validation
        key = envelope.user_id
    return key.encode()


def _now() -> datetime:
    return datetime.now(UTC)


def new_message(
    data: M,
    *,
    user_id: str | None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
    message_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[M]:
    """A new envelope for ``data``: a fresh uuid4 ``id``, ``correlation_id`` defaulting
    to that id (a new chain starts here), ``occurred_at`` now in UTC to the millisecond.

    ``message_id`` and ``occurred_at`` are for tests and replays. `InvalidMessage` if the
    envelope is not valid (a missing ``user_id``, say).
    """
    new_id = message_id if message_id is not None else uuid4()
    try:
        return Envelope(
            id=new_id,
            type=data.TYPE,
            version=data.VERSION,
            occurred_at=occurred_at if occurred_at is not None else _now(),
            correlation_id=correlation_id if correlation_id is not None else new_id,
            causation_id=causation_id,
            user_id=user_id,
            data=data,
        )
    except ValidationError as exc:
        raise InvalidMessage.from_validation_error(exc, subject=data.TYPE) from None


class _Same:
    """The user of the parent message."""


_SAME = _Same()


def caused_by(
    parent: Envelope[Any],
    data: M,
    *,
    user_id: str | _Same | None = _SAME,
    message_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[M]:
    """An envelope for ``data`` caused by ``parent``: the parent's ``correlation_id``,
    ``causation_id`` = the parent's ``id``, and the parent's ``user_id`` (None if
    ``data`` belongs to no user; pass ``user_id`` to name another user, as when a
    ticker moves many users' positions)."""
    if isinstance(user_id, _Same):
        user_id = parent.user_id if data.routing_key() is None else None
    return new_message(
        data,
        user_id=user_id,
        correlation_id=parent.correlation_id,
        causation_id=parent.id,
        message_id=message_id,
        occurred_at=occurred_at,
    )
