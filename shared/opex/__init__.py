"""OPEX Core over HTTP: one async client, typed answers, typed failures.

::

    from shared.opex import ApiKey, OpexClient, OpexSettings, OrderType, Side, TimeInForce

    async with OpexClient(OpexSettings()) as opex:      # OPEX_API_URL, OPEX_TIMEOUT, ...
        creds = ApiKey(key, secret)                      # or LegacyApiKey, or Bearer
        await opex.place_order(creds, "BTC_USDT", Side.BUY, OrderType.LIMIT,
                               Decimal("0.01"), Decimal("30000"), TimeInForce.GTC)
        orders = await opex.open_orders(creds, "BTC_USDT")

- `OpexClient` — orders, wallets, market data, users, API keys, admin; ``/v3`` or
  ``/opex/v1`` by ``OPEX_SURFACE`` (`OpexClient.using` switches).
- `ApiKey` (signed, HMAC-SHA256), `LegacyApiKey` (X-API-SECRET), `Bearer` — credentials
  whose secrets never reach a repr, a log line or an exception.
- `OpexError` and its subclasses — refused, rate-limited, unavailable or ambiguous; see
  `shared.opex._errors` for the tree and what each means for a retry.
- `shared.opex.testing` — `MockOpex`, an `httpx.MockTransport` for unit tests.

OPEX's behaviour is described in OPEX.md; this package follows its quirks rather than
hiding them (no order id on submit, asynchronous cancels, ``24h`` tickers).
"""

from shared.opex._auth import (
    SIGNED_PATH_PREFIX,
    ApiKey,
    Bearer,
    Clock,
    Credentials,
    LegacyApiKey,
    OpexAuth,
    body_sha256,
    redacted_headers,
    system_clock,
)
from shared.opex._client import OpexClient, TickerWindow, Timestamp
from shared.opex._errors import (
    OpexAmbiguous,
    OpexAuthError,
    OpexBadSignature,
    OpexBadTimestamp,
    OpexError,
    OpexForbidden,
    OpexRateLimited,
    OpexRefused,
    OpexUnauthenticated,
    OpexUnavailable,
)
from shared.opex._models import (
    Account,
    ActionToken,
    ApiKeySecret,
    Balance,
    CancelAck,
    DepositResult,
    Depth,
    ExchangeInfo,
    Health,
    Order,
    OrderAck,
    OrderStatus,
    OrderType,
    PairInfo,
    PairSetting,
    PriceLevel,
    PriceTicker,
    PublicTrade,
    Registration,
    Side,
    SymbolInfo,
    Ticker,
    TimeInForce,
    Token,
    Trade,
)
from shared.opex._settings import OpexSettings, Surface

__all__ = [
    "SIGNED_PATH_PREFIX",
    "Account",
    "ActionToken",
    "ApiKey",
    "ApiKeySecret",
    "Balance",
    "Bearer",
    "CancelAck",
    "Clock",
    "Credentials",
    "DepositResult",
    "Depth",
    "ExchangeInfo",
    "Health",
    "LegacyApiKey",
    "OpexAmbiguous",
    "OpexAuth",
    "OpexAuthError",
    "OpexBadSignature",
    "OpexBadTimestamp",
    "OpexClient",
    "OpexError",
    "OpexForbidden",
    "OpexRateLimited",
    "OpexRefused",
    "OpexSettings",
    "OpexUnauthenticated",
    "OpexUnavailable",
    "Order",
    "OrderAck",
    "OrderStatus",
    "OrderType",
    "PairInfo",
    "PairSetting",
    "PriceLevel",
    "PriceTicker",
    "PublicTrade",
    "Registration",
    "Side",
    "Surface",
    "SymbolInfo",
    "Ticker",
    "TickerWindow",
    "TimeInForce",
    "Timestamp",
    "Token",
    "Trade",
    "body_sha256",
    "redacted_headers",
    "system_clock",
]
