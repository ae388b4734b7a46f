from __future__ import annotations

import pytest

from services.opex_sandbox.domain import ERRORS_BY_CODE, OpexError
from services.opex_sandbox.domain.errors import InvalidRequestParam


@pytest.mark.parametrize(
    ("code", "name", "http_status"),
    [
        (1020, "InvalidRequestParam", 400),
        (4001, "SubmitOrderForbiddenByAccountant", 400),
        (4002, "InvalidOrderType", 400),
        (4003, "InvalidQuantity", 400),
        (6038, "PairIsNotAvailable", 400),
        (7001, "OrderNotFound", 404),
        (7002, "SymbolNotFound", 404),
        (7006, "CancelOrderNotAllowed", 403),
    ],
)
def test_errors_by_code_when_looked_up_then_opex_name_and_status(
    code: int, name: str, http_status: int
) -> None:
    cls = ERRORS_BY_CODE[code]
    assert issubclass(cls, OpexError)
    assert (cls.code, cls.name, cls.http_status) == (code, name, http_status)


def test_invalid_request_param_when_raised_then_message_names_parameter() -> None:
    err = InvalidRequestParam("price")
    assert err.message == "Parameter 'price' is either missing or invalid"
    assert str(err).startswith("1020 InvalidRequestParam")
