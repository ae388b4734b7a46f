"""Bytes on Kafka to envelopes and back.

`encode` writes compact UTF-8 JSON: decimals as plain-notation strings, timestamps as
RFC 3339 UTC with milliseconds. `decode` reads it back, refusing on the way, in this
order: a message over ``max_size`` bytes (before parsing), bytes that are not UTF-8
JSON (NaN and Infinity literals and nesting deeper than the interpreter's recursion
limit included), a ``type``/``version`` not in the registry, a type that does not
belong on ``topic``, and data that does not validate. JSON numbers are read as exact
decimals, so ``0.1`` arrives as ``Decimal("0.1")`` whatever its number of digits.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from shared.contracts._base import Message
from shared.contracts._envelope import Envelope
from shared.contracts._errors import (
    FieldError,
    InvalidMessage,
    MalformedJson,
    MessageTooLarge,
    WrongTopic,
)
from shared.contracts._reasons import ReasonCode
from shared.contracts._registry import Registry
from shared.contracts._registry import registry as default_registry
from shared.contracts._topics import Topic

__all__ = ["MAX_MESSAGE_SIZE", "decode", "encode"]

MAX_MESSAGE_SIZE = 64 * 1024
"""The default limit, in bytes, of an encoded message."""

_MAX_TYPE_NAME = 64
_KNOWN_TOPICS = frozenset(topic.value for topic in Topic)


def encode(envelope: Envelope[Any], *, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """``envelope`` as compact UTF-8 JSON; `MessageTooLarge` if over ``max_size`` bytes,
    since no consumer would read it."""
    raw = envelope.__pydantic_serializer__.to_json(envelope)
    if len(raw) > max_size:
        raise MessageTooLarge(len(raw), max_size)
    return raw


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what Decimal holds
        raise ValueError("number out of range") from None


_decoder = json.JSONDecoder(parse_float=_exact_decimal, parse_constant=_refuse_constant)


def _parse(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        return _decoder.decode(text)
    except RecursionError:
        raise MalformedJson("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limits
        raise MalformedJson(f"not UTF-8 JSON: {str(exc)[:200]}") from None


def _has_float(value: Any) -> bool:
    """Whether a parsed document holds a float anywhere (in a dict or list)."""
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _has_float(item)):
            return True
    return False


def _parse_fast(raw: bytes | bytearray | memoryview | str) -> Any:
    """`_parse`, through pydantic-core's JSON parser where that gives the same result.

    The reference `_parse` decides whenever the fast parser refuses the input (so
    every refusal and its message stay the same: that parser also refuses lone
    surrogates and very long integers, which `_parse` reads) or reads a float anywhere
    in the document (`_parse` reads every number with a fraction or an exponent as an
    exact `Decimal`). Otherwise both give the same objects (last of duplicate keys).
    """
    try:
        document = from_json(
            raw.tobytes() if isinstance(raw, memoryview) else raw,
            allow_inf_nan=False,
            cache_strings=False,
        )
    except (ValueError, TypeError):  # TypeError: a str it cannot encode (lone surrogates)
        return _parse(raw)
    if _has_float(document):
        return _parse(raw)
    return document


def _header_error(loc: str, message: str, *, missing: bool = False) -> InvalidMessage:
    code = ReasonCode.MISSING_FIELD if missing else ReasonCode.INVALID_FIELD
    error = FieldError(loc=(loc,) if loc else (), code=code, message=message, type="header")
    return InvalidMessage(f"invalid message: {error.path}: {message}", (error,))


@functools.cache
def _envelope_of(model: type[Message]) -> type[Envelope[Any]]:
    """``Envelope[model]``: validates the data inline, faster than by registry lookup."""
    return Envelope[model]  # type: ignore[valid-type]


def decode(
    raw: bytes | bytearray | memoryview | str,
    *,
    topic: Topic | str | None = None,
    max_size: int = MAX_MESSAGE_SIZE,
    registry: Registry = default_registry,
) -> Envelope[Any]:
    """The envelope in ``raw``, its ``data`` an instance of the registered model.

    With ``topic``, a message whose type belongs on another topic is `WrongTopic`.
    Raises only `ContractError` subclasses, whatever the bytes.
    """
    if isinstance(raw, str):
        size = len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, memoryview):
        size = raw.nbytes
    else:
        size = len(raw)
    if size > max_size:
        raise MessageTooLarge(size, max_size)
    document = _parse_fast(raw)
    if not isinstance(document, dict):
        raise _header_error("", "a message is a JSON object")
    type_, version = document.get("type"), document.get("version")
    if not isinstance(type_, str) or not 0 < len(type_) <= _MAX_TYPE_NAME:
        raise _header_error("type", "type must be a message type name", missing=type_ is None)
    if type(version) is not int:
        raise _header_error("version", "version must be an integer", missing=version is None)
    model = registry.get(type_, version)
    if topic is not None and topic != model.TOPIC:
        expected = model.TOPIC.value if topic in _KNOWN_TOPICS else None
        raise WrongTopic(type_, str(topic), expected)
    try:
        return _envelope_of(model).model_validate(document)
    except ValidationError as exc:
        raise InvalidMessage.from_validation_error(exc, subject=type_) from None
