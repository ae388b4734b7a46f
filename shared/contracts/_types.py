"""Annotated field types: amounts, timestamps, identifiers and text.

Amounts
    `Amount` (>= 0), `PositiveAmount`, `Price` and `Quantity` (> 0), `SignedAmount` (any
    sign, for P&L and net positions) and `Leverage` (1..1000) are `Decimal` inside the
    suite and plain-notation decimal strings on the wire (``"0.001"``, ``"1000"``; never
    ``"1E+3"``). Input may be a decimal string, a `Decimal`, an `int` or a `float` (a
    float is read through its shortest repr, so ``0.001`` becomes ``Decimal("0.001")``,
    not the binary expansion). Refused, each with its own reason code: booleans and
    other types, NaN and infinities, strings that are not decimal numbers, an absolute
    value of 10**15 or more (an absurd size), more than 18 decimal places, and a sign
    the type does not allow. Values are stored without pointless trailing zeros
    (``"1.50"`` reads as ``Decimal("1.5")``), which keeps them exactly equal.

Timestamps
    `UtcDatetime` is an aware `datetime` in UTC, truncated to milliseconds, written as
    RFC 3339 with exactly three fractional digits and a ``Z``
    (``2026-01-01T00:00:00.000Z``). Strings must be RFC 3339 with an offset; a string
    without one, a naive `datetime` and a number (Unix time) are refused rather than
    guessed at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from shared.contracts._errors import refusal
from shared.contracts._reasons import ReasonCode

__all__ = [
    "MAX_AMOUNT_DECIMALS",
    "MAX_AMOUNT_EXCLUSIVE",
    "Actor",
    "Amount",
    "Asset",
    "Attempts",
    "ClientOrderId",
    "Email",
    "ExternalId",
    "Leverage",
    "Mobile",
    "Name",
    "PositiveAmount",
    "Price",
    "Quantity",
    "SignedAmount",
    "Text",
    "UserId",
    "UtcDatetime",
    "format_decimal",
    "format_timestamp",
    "parse_amount",
]

MAX_AMOUNT_EXCLUSIVE = Decimal(10) ** 15
"""Amounts must be smaller than this in absolute value."""
MAX_AMOUNT_DECIMALS = 18
"""Amounts may have at most this many digits after the decimal point."""
_MAX_AMOUNT_TEXT = 64
_MAX_AMOUNT_DIGITS = 64
_ZERO = Decimal(0)
_ONE = Decimal(1)
_QUANTUM = Decimal(1).scaleb(-MAX_AMOUNT_DECIMALS)
# Exact for every amount of up to _MAX_AMOUNT_DIGITS digits; a result that would have
# to be rounded raises Inexact instead.
_EXACT = Context(prec=_MAX_AMOUNT_DIGITS, traps=[Inexact, InvalidOperation])


# ---------------------------------------------------------------------------- amounts


def _to_decimal(value: object) -> Decimal:
    if type(value) is str:
        # Decimal() also reads "1_000", " 1 " and non-ASCII digits; the contract does not.
        if (
            not value
            or len(value) > _MAX_AMOUNT_TEXT
            or not value.isascii()
            or "_" in value
            or value[0].isspace()
            or value[-1].isspace()
        ):
            raise refusal(ReasonCode.INVALID_AMOUNT, "not a decimal number")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise refusal(ReasonCode.INVALID_AMOUNT, "not a decimal number") from None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool):
        raise refusal(ReasonCode.INVALID_AMOUNT, "an amount must be a number, not a boolean")
    elif isinstance(value, int):
        if value.bit_length() > 64:
            raise refusal(ReasonCode.AMOUNT_TOO_LARGE, "amount is absurdly large")
        number = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest string that reads back as the same float: 0.001, not
        # 0.001000000000000000020816681711721685...
        number = Decimal(repr(value))
    else:
        raise refusal(ReasonCode.INVALID_AMOUNT, "an amount must be a decimal string or a number")
    if not number.is_finite():
        raise refusal(ReasonCode.NON_FINITE_AMOUNT, "an amount must be finite")
    return number


def parse_amount(value: object) -> Decimal:
    """Read an amount of any sign; `ValueError` if it is not one (a pydantic
    ``PydanticCustomError`` whose ``type`` is the lower-cased `ReasonCode`).

    The result is canonical: no exponent above zero, no trailing fractional zeros, and
    zero is ``Decimal(0)`` (never ``-0`` or ``0E-8``).
    """
    if type(value) is str and _CANONICAL_AMOUNT.fullmatch(value):
        number = Decimal(value)  # canonical already: what the general path returns
        return number if number else _ZERO
    return _parse_any_amount(value)


# A string the general path would return as Decimal(string): an integer below 10**15
# without leading zeros, or a fraction of at most 18 decimals without trailing zeros.
# Most amounts on the wire are written so (`format_decimal` of a parsed amount is).
_CANONICAL_AMOUNT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{0,17}[1-9])?", re.ASCII)


def _parse_any_amount(value: object) -> Decimal:
    number = _to_decimal(value)
    if not number:
        return _ZERO
    if number.adjusted() >= 15:  # |number| >= 10**15
        raise refusal(
            ReasonCode.AMOUNT_TOO_LARGE,
            f"an amount must be smaller than {MAX_AMOUNT_EXCLUSIVE:f} in absolute value",
        )
    try:
        number = number.normalize(_EXACT)  # strips trailing zeros: 1.50 -> 1.5, 100 -> 1E+2
        if number == number.to_integral_value():
            return number.quantize(_ONE, context=_EXACT)  # 1E+2 -> 100
        number.quantize(_QUANTUM, context=_EXACT)  # Inexact beyond 18 decimal places
    except (Inexact, InvalidOperation):
        raise refusal(
            ReasonCode.AMOUNT_TOO_PRECISE,
            f"an amount may have at most {MAX_AMOUNT_DECIMALS} decimal places",
        ) from None
    return number


def _non_negative(value: object) -> Decimal:
    number = parse_amount(value)
    if number < 0:
        raise refusal(ReasonCode.NEGATIVE_AMOUNT, "must not be negative")
    return number


def _positive(value: object) -> Decimal:
    number = parse_amount(value)
    if number <= 0:
        raise refusal(ReasonCode.NON_POSITIVE_AMOUNT, "must be greater than zero")
    return number


_MAX_LEVERAGE = Decimal(1000)


def _leverage(value: object) -> Decimal:
    number = _positive(value)
    if not 1 <= number <= _MAX_LEVERAGE:
        raise refusal(ReasonCode.AMOUNT_OUT_OF_RANGE, "leverage must be between 1 and 1000")
    return number


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent: ``Decimal("1E+3")`` is ``"1000"``."""
    return format(value, "f")


_AMOUNT_TEXT_SCHEMA = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
_AMOUNT_JSON_SCHEMA = WithJsonSchema(
    {"anyOf": [_AMOUNT_TEXT_SCHEMA, {"type": "number"}], "description": "decimal amount"},
    mode="validation",
)
_AMOUNT_OUT_SCHEMA = WithJsonSchema(
    {**_AMOUNT_TEXT_SCHEMA, "description": "decimal amount"}, mode="serialization"
)
_AMOUNT_SERIALIZER = PlainSerializer(format_decimal, return_type=str, when_used="json")

Amount = Annotated[
    Decimal,
    PlainValidator(_non_negative),
    _AMOUNT_SERIALIZER,
    _AMOUNT_JSON_SCHEMA,
    _AMOUNT_OUT_SCHEMA,
]
"""A decimal amount >= 0 (a balance, a fee, a filled quantity)."""
PositiveAmount = Annotated[
    Decimal, PlainValidator(_positive), _AMOUNT_SERIALIZER, _AMOUNT_JSON_SCHEMA, _AMOUNT_OUT_SCHEMA
]
"""A decimal amount > 0."""
Price = PositiveAmount
"""A price: > 0."""
Quantity = PositiveAmount
"""An order or fill quantity: > 0."""
SignedAmount = Annotated[
    Decimal,
    PlainValidator(parse_amount),
    _AMOUNT_SERIALIZER,
    _AMOUNT_JSON_SCHEMA,
    _AMOUNT_OUT_SCHEMA,
]
"""A decimal amount of any sign (P&L, a net position)."""
Leverage = Annotated[
    Decimal, PlainValidator(_leverage), _AMOUNT_SERIALIZER, _AMOUNT_JSON_SCHEMA, _AMOUNT_OUT_SCHEMA
]
"""Leverage: a decimal from 1 to 1000."""


# ------------------------------------------------------------------------- timestamps

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_MAX_TIMESTAMP_TEXT = 40


def _parse_timestamp(value: str) -> datetime:
    if len(value) > _MAX_TIMESTAMP_TEXT or not _RFC3339.fullmatch(value):
        if len(value) <= _MAX_TIMESTAMP_TEXT and _RFC3339.fullmatch(value + "Z"):
            raise refusal(
                ReasonCode.INVALID_TIMESTAMP,
                "a timestamp needs a UTC offset (Z or +hh:mm); naive times are refused",
            )
        raise refusal(
            ReasonCode.INVALID_TIMESTAMP,
            "not an RFC 3339 timestamp (2026-01-01T00:00:00.000Z)",
        )
    try:
        # Reads the subset of ISO 8601 the pattern lets through; drops digits past
        # the microsecond.
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise refusal(ReasonCode.INVALID_TIMESTAMP, "not a valid date and time") from None


def _utc_milliseconds(value: object) -> datetime:
    if isinstance(value, str):
        moment = _parse_timestamp(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise refusal(
                ReasonCode.INVALID_TIMESTAMP,
                "a naive datetime is refused; give it a timezone",
            )
        moment = value
    else:
        raise refusal(ReasonCode.INVALID_TIMESTAMP, "a timestamp must be an RFC 3339 string")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise refusal(ReasonCode.INVALID_TIMESTAMP, "timestamp out of range") from None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-01-01T00:00:00.000Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


UtcDatetime = Annotated[
    datetime,
    PlainValidator(_utc_milliseconds),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An aware datetime in UTC, truncated to milliseconds."""


# ---------------------------------------------------------------- identifiers and text


def _pattern(code: ReasonCode, pattern: str, what: str, max_length: int) -> BeforeValidator:
    compiled = re.compile(pattern, re.ASCII)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not (len(value) <= max_length and compiled.fullmatch(value)):
            raise refusal(code, what)
        return value

    return BeforeValidator(check)


UserId = Annotated[
    str,
    StringConstraints(strict=True),
    _pattern(
        ReasonCode.INVALID_IDENTIFIER,
        r"[\x21-\x7e]{1,64}",
        "a user id is 1 to 64 printable ASCII characters without spaces",
        64,
    ),
]
"""The platform's user id: 1..64 printable ASCII characters, no whitespace."""

ClientOrderId = Annotated[
    str,
    StringConstraints(strict=True),
    _pattern(
        ReasonCode.INVALID_IDENTIFIER,
        r"[A-Za-z0-9._:-]{1,64}",
        "an id is 1 to 64 of the characters A-Z a-z 0-9 . _ : -",
        64,
    ),
]
"""An id chosen by a client: 1..64 characters from ``A-Z a-z 0-9 . _ : -``."""

ExternalId = ClientOrderId
"""An id chosen by another system (OPEX's order and trade ids, a position id)."""


def _asset(value: Any) -> Any:
    if isinstance(value, str):
        if not (2 <= len(value) <= 10 and value.isascii() and value.isalnum()):
            raise refusal(
                ReasonCode.INVALID_ASSET, "an asset is 2 to 10 letters or digits, e.g. USDT"
            )
        return value.upper()
    return value


Asset = Annotated[str, StringConstraints(strict=True), BeforeValidator(_asset)]
"""An asset code: 2..10 ASCII letters or digits, upper-cased (``usdt`` reads as ``USDT``)."""


# C0 controls but tab and newline, DEL, and lone surrogates (which cannot be UTF-8)
_BAD_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_BAD_IN_LINE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _text(max_length: int, *, single_line: bool) -> AfterValidator:
    bad = _BAD_IN_LINE if single_line else _BAD_IN_TEXT

    def check(value: str) -> str:
        if len(value) > max_length:
            raise refusal(ReasonCode.INVALID_TEXT, f"at most {max_length} characters")
        if bad.search(value):
            raise refusal(ReasonCode.INVALID_TEXT, "contains a control or invalid character")
        return value

    return AfterValidator(check)


Text = Annotated[str, StringConstraints(strict=True, min_length=1), _text(2000, single_line=False)]
"""Human-readable text (a reason): 1..2000 characters, no control characters but
newline and tab, valid Unicode."""

Name = Annotated[str, StringConstraints(strict=True, min_length=1), _text(100, single_line=True)]
"""A person's name: 1..100 characters on one line."""

Actor = Annotated[str, StringConstraints(strict=True, min_length=1), _text(64, single_line=True)]
"""Who did something (``ops:alice``, ``risk_engine``): 1..64 characters on one line."""

Email = Annotated[
    str,
    StringConstraints(strict=True),
    _pattern(
        ReasonCode.INVALID_EMAIL,
        # local@domain.tld, no spaces, one @, a dot in the domain, no empty labels
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+",
        "not an email address",
        254,
    ),
]
"""An email address: ``local@domain.tld``, at most 254 characters."""

Mobile = Annotated[
    str,
    StringConstraints(strict=True),
    _pattern(
        ReasonCode.INVALID_FIELD,
        r"\+?[0-9]{6,15}",
        "a mobile number is 6 to 15 digits, optionally after +",
        16,
    ),
]
"""A mobile number: 6..15 digits, optionally with a leading ``+``."""

Attempts = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
"""How many times something was tried."""
