"""Amounts, timestamps, identifiers and text (shared/contracts/_types.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from shared.contracts import (
    MAX_AMOUNT_DECIMALS,
    Actor,
    Amount,
    Asset,
    ClientOrderId,
    Email,
    Leverage,
    Mobile,
    Name,
    PositiveAmount,
    Price,
    Quantity,
    ReasonCode,
    SignedAmount,
    Text,
    UserId,
    UtcDatetime,
    format_decimal,
    format_timestamp,
    parse_amount,
)

AMOUNT = TypeAdapter(Amount)
POSITIVE = TypeAdapter(PositiveAmount)
SIGNED = TypeAdapter(SignedAmount)
LEVERAGE = TypeAdapter(Leverage)
TIMESTAMP = TypeAdapter(UtcDatetime)

AMOUNT_CODES = {
    code.value.lower()
    for code in (
        ReasonCode.INVALID_AMOUNT,
        ReasonCode.NON_FINITE_AMOUNT,
        ReasonCode.NEGATIVE_AMOUNT,
        ReasonCode.NON_POSITIVE_AMOUNT,
        ReasonCode.AMOUNT_TOO_LARGE,
        ReasonCode.AMOUNT_TOO_PRECISE,
    )
}


def refusal_type(adapter: TypeAdapter[Any], value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    errors = caught.value.errors()
    assert len(errors) == 1
    return str(errors[0]["type"])


# ---------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.001", Decimal("0.001")),
        (0.001, Decimal("0.001")),
        (0.1 + 0.2, Decimal("0.30000000000000004")),
        (1e-7, Decimal("0.0000001")),
        (5, Decimal(5)),
        (Decimal("2.50"), Decimal("2.5")),
        ("1.500000", Decimal("1.5")),
        ("1E+3", Decimal(1000)),
        ("+7", Decimal(7)),
        (".5", Decimal("0.5")),
        ("0.000000000000000001", Decimal("1E-18")),
        ("999999999999999.999999999999999999", Decimal("999999999999999.999999999999999999")),
        ("1." + "0" * 60, Decimal(1)),
    ],
)
def test_validate_when_number_or_decimal_string_then_exact_decimal(
    value: object, expected: Decimal
) -> None:
    parsed = POSITIVE.validate_python(value)

    exponent = parsed.as_tuple().exponent
    assert isinstance(parsed, Decimal)
    assert parsed == expected
    assert isinstance(exponent, int)
    assert exponent <= 0  # stored as 1000, never 1E+3
    assert "E" not in format_decimal(parsed)


def test_validate_when_float_then_read_through_repr_not_binary_expansion() -> None:
    parsed = AMOUNT.validate_python(0.001)

    assert parsed == Decimal("0.001")
    assert parsed != Decimal.from_float(0.001)  # the binary expansion is another number


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("NaN", ReasonCode.NON_FINITE_AMOUNT),
        ("nan", ReasonCode.NON_FINITE_AMOUNT),
        ("sNaN", ReasonCode.NON_FINITE_AMOUNT),
        ("Infinity", ReasonCode.NON_FINITE_AMOUNT),
        ("-Infinity", ReasonCode.NON_FINITE_AMOUNT),
        ("inf", ReasonCode.NON_FINITE_AMOUNT),
        (float("nan"), ReasonCode.NON_FINITE_AMOUNT),
        (float("inf"), ReasonCode.NON_FINITE_AMOUNT),
        (Decimal("NaN"), ReasonCode.NON_FINITE_AMOUNT),
        (Decimal("-Infinity"), ReasonCode.NON_FINITE_AMOUNT),
        (-1, ReasonCode.NEGATIVE_AMOUNT),
        ("-0.000001", ReasonCode.NEGATIVE_AMOUNT),
        (1e20, ReasonCode.AMOUNT_TOO_LARGE),
        ("1e15", ReasonCode.AMOUNT_TOO_LARGE),
        ("1000000000000000", ReasonCode.AMOUNT_TOO_LARGE),
        (10**30, ReasonCode.AMOUNT_TOO_LARGE),
        (10**400, ReasonCode.AMOUNT_TOO_LARGE),
        ("1e999999", ReasonCode.AMOUNT_TOO_LARGE),
        ("1e-30", ReasonCode.AMOUNT_TOO_PRECISE),
        ("0.0000000000000000001", ReasonCode.AMOUNT_TOO_PRECISE),
        ("1e-999999999", ReasonCode.AMOUNT_TOO_PRECISE),
        (True, ReasonCode.INVALID_AMOUNT),
        (False, ReasonCode.INVALID_AMOUNT),
        ("", ReasonCode.INVALID_AMOUNT),
        ("abc", ReasonCode.INVALID_AMOUNT),
        ("1_000", ReasonCode.INVALID_AMOUNT),
        (" 1", ReasonCode.INVALID_AMOUNT),
        ("1 ", ReasonCode.INVALID_AMOUNT),
        ("١٢", ReasonCode.INVALID_AMOUNT),  # Arabic-Indic digits: Decimal() would read them
        ("1" * 65, ReasonCode.INVALID_AMOUNT),
        ("0x10", ReasonCode.INVALID_AMOUNT),
        (None, ReasonCode.INVALID_AMOUNT),
        ([1], ReasonCode.INVALID_AMOUNT),
        ({"amount": 1}, ReasonCode.INVALID_AMOUNT),
    ],
)
def test_validate_amount_when_hostile_then_refused_with_its_code(
    value: object, code: ReasonCode
) -> None:
    assert refusal_type(AMOUNT, value) == code.value.lower()


@pytest.mark.parametrize("value", [0, "0", "0.0", -0.0, Decimal("-0"), "0E-50"])
def test_validate_positive_when_zero_then_non_positive_amount(value: object) -> None:
    assert refusal_type(POSITIVE, value) == "non_positive_amount"


@pytest.mark.parametrize("value", [0, "-0", "0E+5", Decimal("0E-8")])
def test_validate_amount_when_any_zero_then_canonical_zero(value: object) -> None:
    parsed = AMOUNT.validate_python(value)

    assert parsed == 0
    assert str(parsed) == "0"


def test_validate_signed_when_negative_then_kept() -> None:
    assert SIGNED.validate_python("-12.50") == Decimal("-12.5")
    assert SIGNED.validate_python(-3) == Decimal(-3)


def test_validate_signed_when_absurd_negative_then_too_large() -> None:
    assert refusal_type(SIGNED, "-1e16") == "amount_too_large"


def test_price_and_quantity_are_positive_amounts() -> None:
    for adapter in (TypeAdapter(Price), TypeAdapter(Quantity)):
        assert adapter.validate_python("0.5") == Decimal("0.5")
        assert refusal_type(adapter, "0") == "non_positive_amount"


@pytest.mark.parametrize(
    ("value", "ok"), [("1", True), (1000, True), ("0.5", False), (1001, False)]
)
def test_validate_leverage_when_outside_1_to_1000_then_out_of_range(
    value: object, ok: bool
) -> None:
    if ok:
        assert LEVERAGE.validate_python(value) == Decimal(str(value))
    else:
        assert refusal_type(LEVERAGE, value) == "amount_out_of_range"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+3"), "1000"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("-2.5"), "-2.5"),
    ],
)
def test_serialise_amount_when_json_then_plain_notation_string(value: Decimal, text: str) -> None:
    assert AMOUNT.dump_json(abs(value)) == json.dumps(text.lstrip("-")).encode()
    assert SIGNED.dump_json(value) == json.dumps(text).encode()


def test_serialise_amount_when_validated_with_trailing_zeros_then_without() -> None:
    assert AMOUNT.dump_json(AMOUNT.validate_python("0.100")) == b'"0.1"'
    assert AMOUNT.dump_json(AMOUNT.validate_python(1e3)) == b'"1000"'


def test_dump_amount_when_python_mode_then_decimal_kept() -> None:
    assert AMOUNT.dump_python(Decimal("1.5")) == Decimal("1.5")


def refusal_types_or_value(value: object) -> Decimal | set[str]:
    """The parsed signed amount, or the set of error types refusing it."""
    try:
        return SIGNED.validate_python(value)
    except ValidationError as exc:
        return {str(error["type"]) for error in exc.errors()}


amount_decimals = st.decimals(
    min_value=Decimal("-999999999999999.999999999999999999"),
    max_value=Decimal("999999999999999.999999999999999999"),
    places=MAX_AMOUNT_DECIMALS,
    allow_nan=False,
    allow_infinity=False,
)


@given(amount_decimals)
def test_amount_round_trip_when_in_range_then_exact_and_plain(value: Decimal) -> None:
    parsed = SIGNED.validate_python(value)
    text = json.loads(SIGNED.dump_json(parsed))

    assert parsed == value
    assert isinstance(text, str)
    assert "e" not in text.lower()
    assert SIGNED.validate_json(SIGNED.dump_json(parsed)) == value
    assert Decimal(text) == value


@given(st.floats())
def test_validate_when_any_float_then_repr_value_or_typed_refusal(value: float) -> None:
    parsed = refusal_types_or_value(value)

    if isinstance(parsed, set):
        assert parsed <= AMOUNT_CODES
    else:
        assert parsed == Decimal(repr(value))


@given(st.text(max_size=80))
def test_validate_when_any_text_then_decimal_or_typed_refusal(value: str) -> None:
    parsed = refusal_types_or_value(value)

    if isinstance(parsed, set):
        assert parsed <= AMOUNT_CODES
    else:
        assert abs(parsed) < 10**15


# ------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00.000Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01t00:00:00z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01 12:00:00.1234567+00:00", datetime(2026, 1, 1, 12, 0, 0, 123000, UTC)),
        ("2026-01-01T03:30:00.999999+03:30", datetime(2026, 1, 1, 0, 0, 0, 999000, UTC)),
        ("2025-12-31T23:00:00-01:00", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_validate_timestamp_when_rfc3339_then_utc_truncated_to_ms(
    text: str, expected: datetime
) -> None:
    parsed = TIMESTAMP.validate_python(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC
    assert parsed.microsecond % 1000 == 0


def test_validate_timestamp_when_aware_datetime_then_converted_to_utc() -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    parsed = TIMESTAMP.validate_python(datetime(2026, 1, 1, 3, 30, 0, 123456, tehran))

    assert parsed == datetime(2026, 1, 1, 0, 0, 0, 123000, UTC)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00",  # no offset: refused, not assumed UTC
        "2026-01-01T00:00:00.000",
        datetime(2026, 1, 1),  # naive datetime
    ],
)
def test_validate_timestamp_when_naive_then_refused(value: object) -> None:
    assert refusal_type(TIMESTAMP, value) == "invalid_timestamp"


@pytest.mark.parametrize(
    "value",
    [
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01",
        "20260101T000000Z",
        "1700000000",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "x" * 1000,
        1700000000,
        1.5,
        None,
        True,
    ],
)
def test_validate_timestamp_when_not_rfc3339_then_refused(value: object) -> None:
    assert refusal_type(TIMESTAMP, value) == "invalid_timestamp"


def test_serialise_timestamp_then_three_fraction_digits_and_z() -> None:
    moment = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)

    assert TIMESTAMP.dump_json(moment) == b'"2026-01-01T00:00:00.000Z"'
    assert format_timestamp(datetime(2026, 5, 6, 7, 8, 9, 120000, UTC)) == (
        "2026-05-06T07:08:09.120Z"
    )


@given(st.datetimes(timezones=st.just(UTC)))
def test_timestamp_round_trip_when_any_utc_datetime_then_same_millisecond(
    moment: datetime,
) -> None:
    parsed = TIMESTAMP.validate_python(moment)
    text = json.loads(TIMESTAMP.dump_json(parsed))

    assert parsed == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert len(text) == 24
    assert text.endswith("Z")
    assert TIMESTAMP.validate_python(text) == parsed


# ---------------------------------------------------------------- identifiers and text


class Ids(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: UserId | None = None
    client_order_id: ClientOrderId | None = None
    asset: Asset | None = None
    email: Email | None = None
    mobile: Mobile | None = None
    name: Name | None = None
    actor: Actor | None = None
    text: Text | None = None


def ids_refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Ids.model_validate(fields)
    return str(caught.value.errors()[0]["type"])


def test_validate_ids_when_valid_then_kept_and_asset_upper_cased() -> None:
    ids = Ids(
        user_id="user@42",
        client_order_id="web:2026-01-01_1.a",
        asset="usdt",
        email="ada.lovelace+opex@example.co.uk",
        mobile="+989121234567",
        name="Ada Lovelace",
        actor="ops:alice",
        text="line one\nline two\twith a tab",
    )

    assert ids.user_id == "user@42"
    assert ids.asset == "USDT"
    assert ids.client_order_id == "web:2026-01-01_1.a"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"user_id": ""}, "invalid_identifier"),
        ({"user_id": "a b"}, "invalid_identifier"),
        ({"user_id": "x" * 65}, "invalid_identifier"),
        ({"user_id": "ü"}, "invalid_identifier"),
        ({"user_id": 42}, "string_type"),
        ({"client_order_id": "a/b"}, "invalid_identifier"),
        ({"client_order_id": ""}, "invalid_identifier"),
        ({"asset": "U"}, "invalid_asset"),
        ({"asset": "USD-T"}, "invalid_asset"),
        ({"asset": "ABCDEFGHIJK"}, "invalid_asset"),
        ({"email": "no-at-sign"}, "invalid_email"),
        ({"email": "a@b"}, "invalid_email"),
        ({"email": "a b@example.com"}, "invalid_email"),
        ({"email": "a@@example.com"}, "invalid_email"),
        ({"email": "a@" + "b" * 250 + ".com"}, "invalid_email"),
        ({"mobile": "12ab"}, "invalid_field"),
        ({"name": ""}, "string_too_short"),
        ({"name": "a\nb"}, "invalid_text"),
        ({"name": "x" * 101}, "invalid_text"),
        ({"actor": "\x00"}, "invalid_text"),
        ({"text": "bell\x07"}, "invalid_text"),
        ({"text": "lone \ud800 surrogate"}, "string_unicode"),
        ({"text": "x" * 2001}, "invalid_text"),
    ],
)
def test_validate_ids_when_malformed_then_typed_refusal(fields: dict[str, Any], code: str) -> None:
    assert ids_refusal(**fields) == code


def test_parse_amount_when_used_directly_then_value_error_typed_by_reason() -> None:
    assert parse_amount("0.10") == Decimal("0.1")
    with pytest.raises(ValueError, match="finite") as caught:
        parse_amount("NaN")
    assert isinstance(caught.value, PydanticCustomError)
    assert caught.value.type == "non_finite_amount"
