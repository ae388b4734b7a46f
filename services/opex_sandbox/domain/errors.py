"""OPEX's error vocabulary: one exception hierarchy carrying OPEX's numeric code,
its name (the Kotlin enum constant in opexdev/core `common/.../OpexError.kt`), a message
and the HTTP status OPEX answers with. The HTTP layer renders these; the domain only raises.
"""

from __future__ import annotations

from typing import ClassVar


class OpexError(Exception):
    """Base of every error the sandbox domain reports to a client."""

    code: ClassVar[int] = 1000
    http_status: ClassVar[int] = 500
    name: ClassVar[str] = "Error"
    default_message: ClassVar[str] = "Generic error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(f"{self.code} {self.name}: {self.message}")


class InternalServerError(OpexError):
    code = 1001
    http_status = 500
    name = "InternalServerError"
    default_message = "Internal server error"


class InvalidRequestParam(OpexError):
    code = 1020
    http_status = 400
    name = "InvalidRequestParam"
    default_message = "Parameter is either missing or invalid"

    def __init__(self, param: str, message: str | None = None) -> None:
        self.param = param
        super().__init__(message or f"Parameter '{param}' is either missing or invalid")


class SubmitOrderForbiddenByAccountant(OpexError):
    """4001: the accountant refused the order (insufficient free balance, or no wallet)."""

    code = 4001
    http_status = 400
    name = "SubmitOrderForbiddenByAccountant"
    default_message = "Insufficient balance"


class InvalidOrderType(OpexError):
    code = 4002
    http_status = 400
    name = "InvalidOrderType"
    default_message = "Invalid order type"


class InvalidQuantity(OpexError):
    """4003: price x quantity outside the pair's [minOrder, maxOrder]."""

    code = 4003
    http_status = 400
    name = "InvalidQuantity"
    default_message = "Invalid quantity"


class UserAlreadyExists(OpexError):
    code = 5022
    http_status = 400
    name = "UserAlreadyExists"
    default_message = "User is already registered"


class WalletOwnerNotFound(OpexError):
    code = 6001
    http_status = 404
    name = "WalletOwnerNotFound"
    default_message = "Wallet owner not found"


class WalletNotFound(OpexError):
    code = 6002
    http_status = 404
    name = "WalletNotFound"
    default_message = "Wallet not found"


class CurrencyNotFound(OpexError):
    code = 6003
    http_status = 404
    name = "CurrencyNotFound"
    default_message = "Currency not found"


class PairIsExist(OpexError):
    code = 6008
    http_status = 400
    name = "PairIsExist"
    default_message = "Pair already exists"


class NotEnoughBalance(OpexError):
    """6018: a wallet operation would make a free or locked balance negative."""

    code = 6018
    http_status = 400
    name = "NotEnoughBalance"
    default_message = "Not enough balance"


class InvalidAmount(OpexError):
    code = 6021
    http_status = 400
    name = "InvalidAmount"
    default_message = "Invalid amount"


class PairIsNotAvailable(OpexError):
    code = 6038
    http_status = 400
    name = "PairIsNotAvailable"
    default_message = "Pair is not available"


class OrderNotFound(OpexError):
    code = 7001
    http_status = 404
    name = "OrderNotFound"
    default_message = "No order found"


class SymbolNotFound(OpexError):
    code = 7002
    http_status = 404
    name = "SymbolNotFound"
    default_message = "No symbol found"


class InvalidLimitForOrderBook(OpexError):
    code = 7003
    http_status = 400
    name = "InvalidLimitForOrderBook"
    default_message = "Valid limits: [5, 10, 20, 50, 100, 500, 1000, 5000]"


class InvalidLimitForRecentTrades(OpexError):
    code = 7004
    http_status = 400
    name = "InvalidLimitForRecentTrades"
    default_message = "Valid limits: 1 min - 1000 max"


class CancelOrderNotAllowed(OpexError):
    code = 7006
    http_status = 403
    name = "CancelOrderNotAllowed"
    default_message = "Canceling this order is not allowed"


def _all_subclasses(cls: type[OpexError]) -> list[type[OpexError]]:
    out: list[type[OpexError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


ERRORS_BY_CODE: dict[int, type[OpexError]] = {OpexError.code: OpexError} | {
    c.code: c for c in _all_subclasses(OpexError)
}
"""Code -> exception class, e.g. for a client double that maps codes back to types."""
