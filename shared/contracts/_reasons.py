"""Reason codes: why a message, an order or a provisioning was refused.

Codes are machine-readable ``UPPER_SNAKE`` strings that travel in ``reason_code``
fields; the human explanation travels beside them in ``reason``.

- `ReasonCode`: refusals at the contract level, i.e. the message itself is wrong
  (raised by this package as `ContractError.code`).
- `RejectReason`: the risk engine's pre-trade checks and the exchange's refusals, for
  `OrderRejected`, `OrderFailed` and `CancelRejected`.
- `ProvisioningFailureReason`: why user_sync could not open an OPEX account.

The three enums share no value, so a code read back from a message names exactly one
member (see `parse_reason_code`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeAlias

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "AnyReasonCode",
    "ProvisioningFailureReason",
    "ReasonCode",
    "RejectReason",
    "parse_reason_code",
]


class ReasonCode(StrEnum):
    """The message was refused because of its shape or one of its values."""

    # the whole message
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    MALFORMED_JSON = "MALFORMED_JSON"
    UNKNOWN_MESSAGE_TYPE = "UNKNOWN_MESSAGE_TYPE"
    WRONG_TOPIC = "WRONG_TOPIC"
    UNEXPECTED_MESSAGE_TYPE = "UNEXPECTED_MESSAGE_TYPE"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    # one field
    MISSING_FIELD = "MISSING_FIELD"
    FIELD_NOT_ALLOWED = "FIELD_NOT_ALLOWED"
    INVALID_FIELD = "INVALID_FIELD"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    NON_FINITE_AMOUNT = "NON_FINITE_AMOUNT"
    NEGATIVE_AMOUNT = "NEGATIVE_AMOUNT"
    NON_POSITIVE_AMOUNT = "NON_POSITIVE_AMOUNT"
    AMOUNT_TOO_LARGE = "AMOUNT_TOO_LARGE"
    AMOUNT_TOO_PRECISE = "AMOUNT_TOO_PRECISE"
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    INVALID_SYMBOL = "INVALID_SYMBOL"
    INVALID_ASSET = "INVALID_ASSET"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    INVALID_IDENTIFIER = "INVALID_IDENTIFIER"
    INVALID_TEXT = "INVALID_TEXT"
    INVALID_EMAIL = "INVALID_EMAIL"


class RejectReason(StrEnum):
    """Why an order or a cancel was refused or failed after the contract accepted it."""

    # risk engine, in the order of its checks (ARCHITECTURE.md, risk_engine)
    INSTRUMENT_UNKNOWN = "INSTRUMENT_UNKNOWN"
    INSTRUMENT_NOT_TRADING = "INSTRUMENT_NOT_TRADING"
    PRICE_STEP = "PRICE_STEP"
    QUANTITY_STEP = "QUANTITY_STEP"
    ORDER_VALUE_OUT_OF_BOUNDS = "ORDER_VALUE_OUT_OF_BOUNDS"
    ORDER_TYPE_NOT_ALLOWED = "ORDER_TYPE_NOT_ALLOWED"
    USER_NOT_PROVISIONED = "USER_NOT_PROVISIONED"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION_SIZE = "MAX_POSITION_SIZE"
    PRICE_COLLAR = "PRICE_COLLAR"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_LEVERAGE = "MAX_LEVERAGE"
    MARGIN_RATIO = "MARGIN_RATIO"
    ORDER_RATE = "ORDER_RATE"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    # cancels
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_NOT_OPEN = "ORDER_NOT_OPEN"
    # order gateway and OPEX
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"
    EXCHANGE_TIMEOUT = "EXCHANGE_TIMEOUT"
    EXCHANGE_UNAVAILABLE = "EXCHANGE_UNAVAILABLE"
    NOT_ACKNOWLEDGED = "NOT_ACKNOWLEDGED"


class ProvisioningFailureReason(StrEnum):
    """Why user_sync gave up provisioning a user on OPEX."""

    REGISTRATION_FAILED = "REGISTRATION_FAILED"
    LOGIN_FAILED = "LOGIN_FAILED"
    API_KEY_FAILED = "API_KEY_FAILED"
    WALLETS_MISSING = "WALLETS_MISSING"
    OPEX_UNAVAILABLE = "OPEX_UNAVAILABLE"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"


AnyReason: TypeAlias = ReasonCode | RejectReason | ProvisioningFailureReason

_BY_VALUE: dict[str, AnyReason] = {
    member.value: member
    for enum in (ReasonCode, RejectReason, ProvisioningFailureReason)
    for member in enum
}


def parse_reason_code(value: object) -> AnyReason:
    """The member of `ReasonCode`, `RejectReason` or `ProvisioningFailureReason` named
    by ``value`` (a member or its string value); `ValueError` for anything else."""
    if isinstance(value, str):
        member = _BY_VALUE.get(value)
        if member is not None:
            return member
    raise ValueError(f"{str(value)[:40]!r} is not a known reason code")


def _validate_reason_code(value: object) -> AnyReason:
    try:
        return parse_reason_code(value)
    except ValueError:
        raise PydanticCustomError(
            "invalid_field", "reason_code must be a known reason code"
        ) from None


AnyReasonCode = Annotated[
    AnyReason,
    PlainValidator(_validate_reason_code),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "enum": sorted(_BY_VALUE)}),
]
"""A ``reason_code`` field: a member of any of the three reason enums."""
