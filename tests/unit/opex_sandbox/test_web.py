"""Spring-style parameter binding of the HTTP layer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.opex_sandbox.domain import Side
from services.opex_sandbox.domain.errors import InvalidRequestParam
from services.opex_sandbox.web import Call, _params


def call(**params: str) -> Call:
    dummy: Any = None
    return Call(dummy, dummy, None, dict(params), "/v3/order", b"")


def test_params_when_query_and_form_body_then_merged_first_value_wins() -> None:
    params = _params(
        "price=1e%2B5&side=BUY&side=SELL&q=a+b",
        b"side=X&quantity=1&note=a+b%21",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )
    assert params == {"price": "1e+5", "side": "BUY", "q": "a+b", "quantity": "1", "note": "a b!"}


def test_params_when_body_not_form_then_ignored() -> None:
    assert _params("", b"side=BUY", "application/json") == {}
    assert _params("a=&b", b"", None) == {"a": "", "b": ""}


@pytest.mark.parametrize("value", ["1", "-0.5", ".5", "5.", "1e-39", "+2E3"])
def test_decimal_when_java_bigdecimal_syntax_then_parsed(value: str) -> None:
    assert call(price=value).decimal("price") == Decimal(value)


@pytest.mark.parametrize("value", ["NaN", "Infinity", " 1", "1,5", "0x10", "1e"])
def test_decimal_when_not_a_number_then_1020_naming_it(value: str) -> None:
    with pytest.raises(InvalidRequestParam) as err:
        call(price=value).decimal("price")
    assert err.value.param == "price"


def test_decimal_and_long_when_empty_then_absent_and_required_long_then_1020() -> None:
    assert call(price="").decimal("price") is None
    assert call().long("limit") is None
    with pytest.raises(InvalidRequestParam):
        call().long("timestamp", required=True)
    with pytest.raises(InvalidRequestParam):
        call(timestamp="9223372036854775808").long("timestamp")


def test_enum_when_case_differs_then_1020() -> None:
    assert call(side="BUY").enum("side", Side) is Side.BUY
    with pytest.raises(InvalidRequestParam):
        call(side="buy").enum("side", Side)
