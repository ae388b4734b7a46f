"""Reason codes (shared/contracts/_reasons.py)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts import (
    AnyReasonCode,
    ProvisioningFailureReason,
    ReasonCode,
    RejectReason,
    parse_reason_code,
)

ENUMS = (ReasonCode, RejectReason, ProvisioningFailureReason)

RISK_CHECKS = {
    "INSTRUMENT_UNKNOWN",
    "INSTRUMENT_NOT_TRADING",
    "PRICE_STEP",
    "QUANTITY_STEP",
    "ORDER_VALUE_OUT_OF_BOUNDS",
    "ORDER_TYPE_NOT_ALLOWED",
    "USER_NOT_PROVISIONED",
    "DUPLICATE_CLIENT_ORDER_ID",
    "INSUFFICIENT_BALANCE",
    "MAX_NOTIONAL",
    "MAX_POSITION_SIZE",
    "PRICE_COLLAR",
    "NO_REFERENCE_PRICE",
    "DAILY_LOSS_LIMIT",
    "MAX_LEVERAGE",
    "MARGIN_RATIO",
    "ORDER_RATE",
    "MAX_OPEN_ORDERS",
    "TRADING_HALTED",
    "TRADING_REDUCING",
    "ORDER_NOT_FOUND",
    "ORDER_NOT_OPEN",
    "EXCHANGE_REJECTED",
    "EXCHANGE_TIMEOUT",
    "NOT_ACKNOWLEDGED",
}


class Refusal(BaseModel):
    reason_code: AnyReasonCode


def test_reason_enums_share_no_value_and_values_are_upper_snake() -> None:
    values = [member.value for enum in ENUMS for member in enum]

    assert len(values) == len(set(values))
    assert all(member.value == member.name for enum in ENUMS for member in enum)
    assert all(value.replace("_", "").isalpha() and value.isupper() for value in values)


def test_reject_reason_covers_the_risk_checks_of_the_architecture() -> None:
    assert {member.value for member in RejectReason} >= RISK_CHECKS


@pytest.mark.parametrize(
    "member",
    [ReasonCode.INVALID_SYMBOL, RejectReason.MAX_NOTIONAL, ProvisioningFailureReason.LOGIN_FAILED],
)
def test_parse_when_value_of_any_enum_then_that_member(member: str) -> None:
    assert parse_reason_code(str(member)) is member
    assert parse_reason_code(member) is member
    assert Refusal(reason_code=str(member)).reason_code is member
    assert Refusal.model_validate_json(f'{{"reason_code": "{member}"}}').reason_code is member


def test_serialise_reason_code_then_its_value() -> None:
    assert Refusal(reason_code=RejectReason.PRICE_COLLAR).model_dump_json() == (
        '{"reason_code":"PRICE_COLLAR"}'
    )


@pytest.mark.parametrize("bad", ["price_collar", "NOPE", "", 1, None])
def test_parse_when_unknown_code_then_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a known reason code"):
        parse_reason_code(bad)
    with pytest.raises(ValidationError) as caught:
        Refusal(reason_code=bad)
    assert caught.value.errors()[0]["type"] == "invalid_field"
