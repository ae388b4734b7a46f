"""What OPEX answers, as immutable models with `Decimal` money.

Field names are snake_case; OPEX's camelCase names (and the native surface's variants,
``qty`` / ``quantity``, ``withdraw`` / ``withdrawing``) are read as aliases. Unknown
fields are ignored. Times are aware UTC datetimes read from epoch milliseconds or from
ISO strings (Spring writes ``Date`` and ``LocalDateTime`` as ISO; a naive one is UTC).
Symbols are OPEX's native ``BTC_USDT`` whichever surface answered.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)
from pydantic.alias_generators import to_camel

from shared.opex._auth import ApiKey, Bearer

__all__ = [
    "Account",
    "ActionToken",
    "ApiKeySecret",
    "Balance",
    "CancelAck",
    "DepositResult",
    "Depth",
    "ExchangeInfo",
    "Health",
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
    "SymbolInfo",
    "Ticker",
    "TimeInForce",
    "Token",
    "Trade",
]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """OPEX's order types; every one but MARKET is a plain limit order inside OPEX."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    REQUESTED = "REQUESTED"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.REQUESTED, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


def _parse_time(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _parse_decimal(value: Any) -> Any:
    if isinstance(value, float):
        # Never reached from the wire (JSON is read with parse_float=Decimal).
        return Decimal(repr(value))
    return value


OpexTime = Annotated[datetime, BeforeValidator(_parse_time)]
Dec = Annotated[Decimal, BeforeValidator(_parse_decimal), Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
    )


class OrderAck(_Model):
    """OPEX took an order for processing. It carries no order id (``/v3`` says -1): the
    order travels asynchronously and appears later in the open/all order listings."""

    symbol: str
    order_id: int = -1
    transact_time: OpexTime | None = Field(
        default=None, validation_alias=AliasChoices("transactTime", "date", "transact_time")
    )


class Order(_Model):
    """An order as ``/v3/order``, ``/v3/openOrders``, ``/v3/allOrders`` (and the native
    ``/opex/v1/order``) read it. ``client_order_id`` is always empty in OPEX."""

    symbol: str
    order_id: int
    price: Dec
    orig_qty: Dec
    executed_qty: Dec
    cummulative_quote_qty: Dec = Decimal(0)
    status: OrderStatus
    time_in_force: TimeInForce | None = None
    type: OrderType
    side: Side
    time: OpexTime | None = None
    update_time: OpexTime | None = None
    is_working: bool | None = None
    client_order_id: str = ""
    stop_price: Dec | None = None
    ouid: str | None = None

    @property
    def remaining_qty(self) -> Decimal:
        return self.orig_qty - self.executed_qty


class CancelAck(_Model):
    """OPEX's answer to a cancel: status CANCELED at once; the cancel itself is
    asynchronous."""

    symbol: str
    order_id: int | None = None
    status: OrderStatus | None = None
    price: Dec | None = None
    orig_qty: Dec | None = None
    executed_qty: Dec | None = None
    cummulative_quote_qty: Dec | None = None
    time_in_force: TimeInForce | None = None
    type: OrderType | None = None
    side: Side | None = None


class Trade(_Model):
    """One of the user's fills (``/v3/myTrades``). OPEX computes ``is_buyer`` inverted
    (``side = 'ASK'``); it is passed through as OPEX says it."""

    symbol: str
    id: int
    order_id: int
    price: Dec
    qty: Dec = Field(validation_alias=AliasChoices("qty", "quantity"))
    quote_qty: Dec = Field(
        default=Decimal(0), validation_alias=AliasChoices("quoteQty", "quoteQuantity", "quote_qty")
    )
    commission: Dec = Decimal(0)
    commission_asset: str = ""
    time: OpexTime
    is_buyer: bool
    is_maker: bool
    is_best_match: bool = True


class Balance(_Model):
    """One asset of a wallet: ``free`` to trade, ``locked`` in open orders."""

    asset: str
    free: Dec
    locked: Dec
    withdrawing: Dec = Field(
        default=Decimal(0), validation_alias=AliasChoices("withdrawing", "withdraw")
    )

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class Account(_Model):
    """``/v3/account``."""

    maker_commission: Dec = Decimal(0)
    taker_commission: Dec = Decimal(0)
    buyer_commission: Dec = Decimal(0)
    seller_commission: Dec = Decimal(0)
    can_trade: bool = True
    can_withdraw: bool = True
    can_deposit: bool = True
    update_time: OpexTime | None = None
    account_type: str = "SPOT"
    balances: tuple[Balance, ...] = ()
    permissions: tuple[str, ...] = ()

    def balance(self, asset: str) -> Balance:
        """The balance of ``asset``; zero when OPEX lists none."""
        for balance in self.balances:
            if balance.asset.upper() == asset.upper():
                return balance
        return Balance(asset=asset.upper(), free=Decimal(0), locked=Decimal(0))


class PriceLevel(_Model):
    price: Dec
    quantity: Dec


def _levels(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [
            {"price": level[0], "quantity": level[1]}
            if isinstance(level, list | tuple) and len(level) >= 2
            else level
            for level in value
        ]
    return value


Levels = Annotated[tuple[PriceLevel, ...], BeforeValidator(_levels)]


class Depth(_Model):
    """The order book: bids best (highest) first, asks best (lowest) first."""

    symbol: str = ""
    last_update_id: int
    bids: Levels
    asks: Levels


class PublicTrade(_Model):
    """A recent trade of the market (``/v3/trades``)."""

    id: int
    price: Dec
    qty: Dec = Field(validation_alias=AliasChoices("qty", "quantity"))
    quote_qty: Dec = Field(
        default=Decimal(0), validation_alias=AliasChoices("quoteQty", "quoteQuantity")
    )
    time: OpexTime
    is_buyer_maker: bool
    is_best_match: bool = True


class Ticker(_Model):
    """Price change statistics over a window (``/v3/ticker/24h``)."""

    symbol: str
    base: str | None = None
    quote: str | None = None
    price_change: Dec = Decimal(0)
    price_change_percent: Dec = Decimal(0)
    weighted_avg_price: Dec = Decimal(0)
    last_price: Dec = Decimal(0)
    last_qty: Dec = Decimal(0)
    bid_price: Dec = Decimal(0)
    ask_price: Dec = Decimal(0)
    open_price: Dec = Decimal(0)
    high_price: Dec = Decimal(0)
    low_price: Dec = Decimal(0)
    volume: Dec = Decimal(0)
    quote_volume: Dec | None = None
    open_time: OpexTime | None = None
    close_time: OpexTime | None = None
    first_id: int | None = None
    last_id: int | None = None
    count: int = 0


class PriceTicker(_Model):
    """The last price of a symbol (`None` before its first trade)."""

    symbol: str
    price: Dec | None = None

    @field_validator("price", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value in ("", None) else value


def _step(precision: int) -> Decimal:
    return Decimal(1).scaleb(-precision)


class SymbolInfo(_Model):
    """One pair in ``/v3/exchangeInfo``: ``symbol`` is the ``/v3`` alias (``BTCUSDT``);
    ``native`` OPEX's own name (``BTC_USDT``). The precisions are the scales of OPEX's
    quantity (base) and price (quote) steps."""

    symbol: str
    status: str = "TRADING"
    base_asset: str
    base_asset_precision: int
    quote_asset: str
    quote_asset_precision: int = Field(
        validation_alias=AliasChoices("quoteAssetPrecision", "quotePrecision")
    )
    order_types: tuple[str, ...] = ()

    @property
    def native(self) -> str:
        return f"{self.base_asset.upper()}_{self.quote_asset.upper()}"

    @property
    def quantity_step(self) -> Decimal:
        return _step(self.base_asset_precision)

    @property
    def price_step(self) -> Decimal:
        return _step(self.quote_asset_precision)


class ExchangeInfo(_Model):
    timezone: str = "UTC"
    server_time: OpexTime | None = None
    symbols: tuple[SymbolInfo, ...] = ()

    def by_native(self, symbol: str) -> SymbolInfo | None:
        return next((info for info in self.symbols if info.native == symbol.upper()), None)


_ENGINE_TYPES = {"LIMIT_ORDER": "LIMIT", "MARKET_ORDER": "MARKET"}


def _order_types(value: Any) -> Any:
    """OPEX's pair settings name the matching engine's types, comma separated
    (``LIMIT_ORDER,MARKET_ORDER``); read as the API's ``LIMIT`` / ``MARKET``."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        names = (str(part).strip().upper() for part in value)
        return tuple(_ENGINE_TYPES.get(name, name) for name in names if name)
    return value


class PairInfo(_Model):
    """A pair's trading rules (``/opex/v1/market/pair``, merged with the steps of
    ``/v3/exchangeInfo`` by `OpexClient.pairs`): ``min_order`` / ``max_order`` bound
    price x quantity; price and quantity must be multiples of their steps."""

    symbol: str = Field(validation_alias=AliasChoices("pair", "symbol"))
    base_asset: str = ""
    quote_asset: str = ""
    is_available: bool = Field(validation_alias=AliasChoices("isAvailable", "available"))
    min_order: Dec
    max_order: Dec
    order_types: Annotated[tuple[str, ...], BeforeValidator(_order_types)] = ()
    price_step: Dec | None = None
    quantity_step: Dec | None = None


class PairSetting(_Model):
    """A pair's setting on OPEX's matching gateway (``/pair-setting``)."""

    symbol: str = Field(validation_alias=AliasChoices("pair", "symbol"))
    is_available: bool = Field(validation_alias=AliasChoices("isAvailable", "available"))
    min_order: Dec
    max_order: Dec
    order_types: Annotated[tuple[str, ...], BeforeValidator(_order_types)] = ()


def _amount(value: Any) -> Any:
    """OPEX's ``Amount``: ``{"currency": {...}, "amount": 1000}``."""
    return value.get("amount") if isinstance(value, dict) else value


class DepositResult(_Model):
    """OPEX's transfer result for a manual deposit; only the stable fields are read."""

    date: OpexTime | None = None
    dest_uuid: str | None = None
    source_uuid: str | None = None
    amount: Annotated[Dec | None, BeforeValidator(_amount)] = None


class Registration(_Model):
    """Registration started: the OTP when OPEX runs with "OTP in response"."""

    otp: SecretStr | None = None
    receiver: str | None = None
    receiver_type: str | None = None

    @classmethod
    def from_opex(cls, body: dict[str, Any]) -> Registration:
        receiver = body.get("otpReceiver") or {}
        return cls(
            otp=body.get("otp") or None,
            receiver=receiver.get("receiver"),
            receiver_type=receiver.get("type"),
        )


class ActionToken(_Model):
    """The token ``register/verify`` answers, to confirm the registration with."""

    token: SecretStr


def _jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, InvalidOperation):
        return {}
    return claims if isinstance(claims, dict) else {}


class Token(BaseModel):
    """An OAuth token (login, registration confirmed). The access token is the user's
    bearer credential; its ``sub`` claim is the user's OPEX id."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    access_token: SecretStr
    expires_in: int | None = None
    refresh_token: SecretStr | None = None
    refresh_expires_in: int | None = None
    token_type: str | None = None
    scope: str | None = None

    def bearer(self) -> Bearer:
        return Bearer(self.access_token)

    @property
    def subject(self) -> str | None:
        """The token's ``sub`` (OPEX's user id), read without verifying the token."""
        sub = _jwt_claims(self.access_token.get_secret_value()).get("sub")
        return sub if isinstance(sub, str) else None


class ApiKeySecret(_Model):
    """A new API key; ``secret`` is shown by OPEX this once."""

    api_key_id: str
    secret: SecretStr
    label: str | None = None
    enabled: bool = True
    allowed_ips: tuple[str, ...] | None = None
    allowed_endpoints: tuple[str, ...] | None = None

    def credentials(self) -> ApiKey:
        return ApiKey(self.api_key_id, self.secret)


class Health(_Model):
    status: str

    @property
    def up(self) -> bool:
        return self.status.upper() == "UP"
