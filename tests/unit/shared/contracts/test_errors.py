"""The exception hierarchy (shared/contracts/_errors.py)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from shared.contracts import (
    ContractError,
    FieldError,
    InvalidMessage,
    MalformedJson,
    MessageTooLarge,
    ReasonCode,
    UnexpectedMessageType,
    UnknownMessageType,
    WrongTopic,
)
from shared.contracts._errors import refusal


class Pair(BaseModel):
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> Pair:
        if self.low > self.high:
            raise refusal(ReasonCode.INVALID_FIELD, "low {is} above high", field="low")
        return self


def validation_error(**fields: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Pair(**fields)
    return caught.value


def test_every_error_is_a_contract_error_with_its_own_code() -> None:
    errors: list[ContractError] = [
        MessageTooLarge(70_000, 65_536),
        MalformedJson("not JSON"),
        UnknownMessageType("Nope", 1),
        WrongTopic("PlaceOrder", "orders.events", "orders.commands"),
        UnexpectedMessageType("PlaceOrder", "CancelOrder"),
        InvalidMessage("invalid message"),
    ]

    assert [error.code for error in errors] == [
        ReasonCode.MESSAGE_TOO_LARGE,
        ReasonCode.MALFORMED_JSON,
        ReasonCode.UNKNOWN_MESSAGE_TYPE,
        ReasonCode.WRONG_TOPIC,
        ReasonCode.UNEXPECTED_MESSAGE_TYPE,
        ReasonCode.INVALID_MESSAGE,
    ]
    for error in errors:
        assert isinstance(error, ContractError)
        assert str(error).startswith(f"{error.code}: ")
        assert error.message in str(error)


def test_from_validation_error_when_missing_field_then_missing_field_with_prefixed_loc() -> None:
    error = InvalidMessage.from_validation_error(
        validation_error(low=1), subject="Pair", prefix=("data",)
    )

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors == (
        FieldError(
            loc=("data", "high"),
            code=ReasonCode.MISSING_FIELD,
            message="Field required",
            type="missing",
        ),
    )
    assert str(error) == "MISSING_FIELD: invalid Pair: data.high: Field required"


def test_from_validation_error_when_model_check_names_field_then_loc_points_at_it() -> None:
    error = InvalidMessage.from_validation_error(validation_error(low=2, high=1))

    assert error.errors[0].loc == ("low",)
    assert error.errors[0].code is ReasonCode.INVALID_FIELD
    assert error.errors[0].message == "low {is} above high"  # braces are not a template


def test_from_validation_error_when_wrong_type_then_invalid_field_and_no_input_echoed() -> None:
    secret = "s3cr3t-value"
    error = InvalidMessage.from_validation_error(validation_error(low=secret, high=1))

    assert error.code is ReasonCode.INVALID_FIELD
    assert error.errors[0].type == "int_parsing"
    assert secret not in str(error)


def test_from_validation_error_when_many_errors_then_message_shortened() -> None:
    class Many(BaseModel):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    with pytest.raises(ValidationError) as caught:
        Many.model_validate({})
    error = InvalidMessage.from_validation_error(caught.value)

    assert len(error.errors) == 7
    assert str(error).endswith("and 2 more")


def test_field_error_path_when_nested_then_dotted() -> None:
    error = FieldError(
        loc=("data", "balances", 0, "free"), code=ReasonCode.NEGATIVE_AMOUNT, message="", type=""
    )

    assert error.path == "data.balances.0.free"
    assert (
        FieldError(loc=(), code=ReasonCode.INVALID_FIELD, message="", type="").path == "<message>"
    )


def test_error_messages_quote_at_most_an_excerpt() -> None:
    assert len(str(UnknownMessageType("X" * 10_000, 1))) < 200
    assert len(str(WrongTopic("PlaceOrder", "t" * 10_000, None))) < 200
