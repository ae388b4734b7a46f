"""Every way a message can be refused, as one exception hierarchy.

```
ContractError                 code, message: a message was refused; never retry it
├── MessageTooLarge           more bytes than the limit, refused before parsing
├── MalformedJson             not UTF-8 JSON (or NaN/Infinity literals, nesting too deep)
├── UnknownMessageType        (type, version) is not in the registry
├── WrongTopic                a known type read from a topic it does not belong to
├── UnexpectedMessageType     Envelope.data_as(X) on a message that is not an X
└── InvalidMessage            the message does not validate; `.errors` names each field
```

`ContractError.code` is a `ReasonCode`: one per class, except `InvalidMessage`, whose
code is that of its first field error (``NON_POSITIVE_AMOUNT``, ``INVALID_SYMBOL``, ...),
so a consumer can reject an order with ``reason_code=error.code`` as it stands.

A consumer catches `ContractError` around `decode` and dead-letters the message; a
producer meets the same errors from `new_message`, `caused_by` and `encode`. Building a
data model directly (``PlaceOrder(...)``) raises pydantic's `ValidationError`, whose
error types are the lower-cased reason codes; `InvalidMessage.from_validation_error`
turns one into the other.

Errors quote at most a short excerpt of what they refuse (a symbol, a type name), never
a whole value: it may be huge, or personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from shared.contracts._reasons import ReasonCode

__all__ = [
    "ContractError",
    "FieldError",
    "InvalidMessage",
    "MalformedJson",
    "MessageTooLarge",
    "UnexpectedMessageType",
    "UnknownMessageType",
    "WrongTopic",
    "refusal",
]

_MAX_FIELD_ERRORS_IN_MESSAGE = 5


def refusal(code: ReasonCode, message: str, *, field: str | None = None) -> PydanticCustomError:
    """A pydantic error for a validator to raise, typed by a `ReasonCode`.

    ``field`` names the offending field when a model-level check raises it, so the
    field error's ``loc`` points at the field rather than at the model.
    """
    context = {"field": field} if field is not None else None
    # The message is passed as a context value so braces in it are never a template.
    return PydanticCustomError(
        code.value.lower(), "{detail}", {"detail": message, **(context or {})}
    )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a message did not validate.

    ``loc`` is the path to the field inside the envelope, e.g. ``("data", "quantity")``;
    ``code`` the `ReasonCode`; ``message`` the human explanation; ``type`` pydantic's
    error type (``missing``, ``string_type``, ``non_positive_amount``, ...).
    """

    loc: tuple[str | int, ...]
    code: ReasonCode
    message: str
    type: str

    @property
    def path(self) -> str:
        """``loc`` as a dotted path: ``data.balances.0.free``."""
        return ".".join(str(part) for part in self.loc) or "<message>"


class ContractError(Exception):
    """A message was refused: its bytes, its type or its content break the contract."""

    code: ReasonCode = ReasonCode.INVALID_MESSAGE

    def __init__(self, message: str, *, code: ReasonCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class MessageTooLarge(ContractError):
    """The message is larger than the limit; it was not parsed."""

    code = ReasonCode.MESSAGE_TOO_LARGE

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes is larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class MalformedJson(ContractError):
    """The bytes are not one UTF-8 JSON document the contract can read."""

    code = ReasonCode.MALFORMED_JSON


class UnknownMessageType(ContractError):
    """No model is registered for the message's ``type`` and ``version``."""

    code = ReasonCode.UNKNOWN_MESSAGE_TYPE

    def __init__(self, type_: str, version: int) -> None:
        super().__init__(f"no message type {type_[:64]!r} version {version} is registered")
        self.type = type_
        self.version = version


class WrongTopic(ContractError):
    """A message type met on a topic it does not belong to."""

    code = ReasonCode.WRONG_TOPIC

    def __init__(self, type_: str, topic: str, expected: str | None) -> None:
        if expected is None:
            super().__init__(f"{topic[:64]!r} is not a known topic")
        else:
            super().__init__(f"{type_} belongs on {expected!r}, not on {topic[:64]!r}")
        self.type = type_
        self.topic = topic
        self.expected = expected


class UnexpectedMessageType(ContractError):
    """The envelope carries another type of message than the one asked for."""

    code = ReasonCode.UNEXPECTED_MESSAGE_TYPE

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected a {expected} message, got a {actual}")
        self.expected = expected
        self.actual = actual


class InvalidMessage(ContractError):
    """The message failed validation; ``errors`` says where and why."""

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        code = self.errors[0].code if self.errors else ReasonCode.INVALID_MESSAGE
        super().__init__(message, code=code)

    @classmethod
    def from_validation_error(
        cls,
        exc: ValidationError,
        *,
        subject: str = "message",
        prefix: tuple[str | int, ...] = (),
    ) -> InvalidMessage:
        """Convert pydantic's error; ``prefix`` is prepended to every ``loc``."""
        errors = tuple(
            _field_error(error, prefix)
            for error in exc.errors(include_url=False, include_input=False)
        )
        shown = "; ".join(
            f"{error.path}: {error.message}" for error in errors[:_MAX_FIELD_ERRORS_IN_MESSAGE]
        )
        more = len(errors) - _MAX_FIELD_ERRORS_IN_MESSAGE
        if more > 0:
            shown += f"; and {more} more"
        return cls(f"invalid {subject}: {shown}", errors)


_CODES = {code.value.lower(): code for code in ReasonCode}


def _field_error(error: Any, prefix: tuple[str | int, ...]) -> FieldError:
    loc: tuple[str | int, ...] = prefix + tuple(error["loc"])
    context = error.get("ctx") or {}
    field = context.get("field")
    if isinstance(field, str):
        loc += (field,)
    kind: str = error["type"]
    if kind in _CODES:
        code = _CODES[kind]
    elif kind == "missing":
        code = ReasonCode.MISSING_FIELD
    else:
        code = ReasonCode.INVALID_FIELD
    return FieldError(loc=loc, code=code, message=str(error["msg"]), type=kind)
