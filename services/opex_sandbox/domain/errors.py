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


class BadRequest(OpexError):
    code = 1002
    http_status = 400
    name = "BadRequest"
    default_message = "Bad request"


class UnAuthorized(OpexError):
    code = 1003
    http_status = 401
    name = "UnAuthorized"
    default_message = "Unauthorized"


class Forbidden(OpexError):
    """1004: e.g. an API key used from an IP or on an endpoint outside its allow-lists."""

    code = 1004
    http_status = 403
    name = "Forbidden"
    default_message = "Forbidden"


class ServiceUnavailable(OpexError):
    code = 1006
    http_status = 503
    name = "ServiceUnavailable"
    default_message = "Service unavailable"


class InvalidRequestParam(OpexError):
    code = 1020
    http_status = 400
    name = "InvalidRequestParam"
    default_message = "Parameter is either missing or invalid"

    def __init__(self, param: str, message: str | None = None) -> None:
        self.param = param
        super().__init__(message or f"Parameter '{param}' is either missing or invalid")


class InvalidRequestBody(OpexError):
    code = 1021
    http_status = 400
    name = "InvalidRequestBody"
    default_message = "Request body is invalid"


class RateLimit(OpexError):
    """1024: too many requests in a rate-limit group, or blocked after repeated excess."""

    code = 1024
    http_status = 429
    name = "RateLimit"
    default_message = "Too many requests"


class InvalidSignature(OpexError):
    """1025: an API-key signature that does not verify, or a timestamp over 5 minutes off."""

    code = 1025
    http_status = 400
    name = "InvalidSignature"
    default_message = "Invalid signature"


class InvalidTime(OpexError):
    """1026: an `X-API-TIMESTAMP` that is not a number."""

    code = 1026
    http_status = 400
    name = "InvalidTime"
    default_message = "Invalid timestamp"


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


class UserNotFound(OpexError):
    code = 5004
    http_status = 404
    name = "UserNotFound"
    default_message = "User not found"


class InvalidOTP(OpexError):
    code = 5005
    http_status = 403
    name = "InvalidOTP"
    default_message = "Invalid OTP"


class InvalidUsername(OpexError):
    code = 5014
    http_status = 400
    name = "InvalidUsername"
    default_message = "Invalid username"


class InvalidRegisterToken(OpexError):
    code = 5016
    http_status = 400
    name = "InvalidRegisterToken"
    default_message = "Invalid register token"


class ExpiredOTP(OpexError):
    code = 5017
    http_status = 400
    name = "ExpiredOTP"
    default_message = "OTP is expired"


class InvalidToken(OpexError):
    code = 5018
    http_status = 400
    name = "InvalidToken"
    default_message = "Invalid token"


class UsernameOrPasswordIsIncorrect(OpexError):
    code = 5021
    http_status = 400
    name = "UsernameOrPasswordIsIncorrect"
    default_message = "Username or password is incorrect"


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


class PairNotFound(OpexError):
    """6011: the matching gateway knows no such pair (unknown symbol on `/opex/v1/order`)."""

    code = 6011
    http_status = 400
    name = "PairNotFound"
    default_message = "Pair not found"


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


class InvalidPriceChangeDuration(OpexError):
    code = 7005
    http_status = 400
    name = "InvalidPriceChangeDuration"
    default_message = "Valid durations: [24h, 7d, 1m]"


class CancelOrderNotAllowed(OpexError):
    code = 7006
    http_status = 403
    name = "CancelOrderNotAllowed"
    default_message = "Canceling this order is not allowed"


class APIKeyLimitReached(OpexError):
    """7007 (OPEX reuses the code for InvalidInterval; the sandbox has no klines)."""

    code = 7007
    http_status = 400
    name = "APIKeyLimitReached"
    default_message = "Reached API key limit. Maximum number of API key is 10"


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
