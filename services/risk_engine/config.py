"""The risk engine's configuration: its limits, with the seed defaults, and where they come
from (environment variables, ``.env``).

- `RiskLimits`: one frozen set of limits. The engine holds a global one and merges a
  user's `LimitOverrides` over it (`services.risk_engine.domain.Limits`); both can be
  changed at run time and take effect on the next command.
- `RiskSettings`: reads the global limits from the environment. The platform's names are
  kept for the four limits its guide defines (``MAX_POSITION_SIZE``, ``MAX_DAILY_LOSS``,
  ``MIN_MARGIN_RATIO``, ``MAX_LEVERAGE``); every other limit is ``RISK_<FIELD>``
  (``RISK_PRICE_COLLAR_PCT=0.03``).

Money limits are in units of the instrument's quote asset (USDT on the default pairs);
percentages are fractions (``0.05`` is 5 %).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LimitOverrides", "RiskLimits", "RiskSettings"]

_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """Pre-trade limits. Every field has the seed default; `ValueError` for a value
    outside its range (so a bad run-time change is refused, not half-applied)."""

    max_position_size: Decimal = Decimal(1_000_000)
    """Largest worst-case position per symbol, valued at the order's price (quote asset):
    |position + open orders on the order's side + the order| x price."""
    max_daily_loss: Decimal = Decimal(10_000)
    """Largest loss, realised + unrealised, since the start of the UTC day (quote asset);
    at or beyond it only position-reducing orders pass and the user goes REDUCING."""
    min_margin_ratio: Decimal = Decimal("0.1")
    """Smallest equity / exposure after the order."""
    max_leverage: Decimal = Decimal(100)
    """Largest exposure / equity after the order (an instrument may cap it lower)."""
    max_order_notional: Decimal = Decimal(1_000_000)
    """Largest quantity x price of one order (quote asset)."""
    price_collar_pct: Decimal = Decimal("0.05")
    """A limit or stop price must be within this fraction of a fresh reference price."""
    reference_price_max_age_ms: int = 10_000
    """A reference price older than this is stale: orders on the symbol are refused."""
    market_collar_pct: Decimal = Decimal("0.05")
    """A market buy reserves quantity x reference x (1 + this); the gateway's slippage
    collar must not exceed it."""
    fee_allowance_rate: Decimal = Decimal("0.002")
    """Added to a buy's quote reservation (price x (1 + this)) as a margin for fees."""
    max_orders_per_second: int = 10
    """Approved orders per user in any 1 s window."""
    max_orders_per_minute: int = 300
    """Approved orders per user in any 60 s window."""
    max_open_orders: int = 200
    """Approved orders per user not yet in a terminal state."""
    mark_move_publish_threshold_pct: Decimal = Decimal("0.001")
    """A mark move of at least this fraction since the last PositionUpdated publishes one."""
    position_publish_throttle_ms: int = 1_000
    """At most one mark-move PositionUpdated per position in this interval (fills always
    publish)."""

    # derived once, for the hot path
    buy_fee_factor: Decimal = field(init=False, repr=False, compare=False)
    """1 + fee_allowance_rate."""
    market_buy_factor: Decimal = field(init=False, repr=False, compare=False)
    """1 + market_collar_pct."""

    def __post_init__(self) -> None:
        for item in fields(self):
            if not item.init:
                continue
            value = getattr(self, item.name)
            if isinstance(value, Decimal) and not value.is_finite():
                raise ValueError(f"{item.name} must be finite")
        for name in ("max_position_size", "max_order_notional"):
            if not getattr(self, name) > _ZERO:
                raise ValueError(f"{name} must be greater than zero")
        if not self.max_daily_loss >= _ZERO:
            raise ValueError("max_daily_loss must not be negative")
        if not _ZERO <= self.min_margin_ratio <= _ONE:
            raise ValueError("min_margin_ratio must be between 0 and 1")
        if not self.max_leverage >= _ONE:
            raise ValueError("max_leverage must be at least 1")
        for name in (
            "price_collar_pct",
            "market_collar_pct",
            "fee_allowance_rate",
            "mark_move_publish_threshold_pct",
        ):
            if not _ZERO <= getattr(self, name) < _ONE:
                raise ValueError(f"{name} must be in [0, 1)")
        for name in (
            "reference_price_max_age_ms",
            "max_orders_per_second",
            "max_orders_per_minute",
            "max_open_orders",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if self.position_publish_throttle_ms < 0:
            raise ValueError("position_publish_throttle_ms must not be negative")
        object.__setattr__(self, "buy_fee_factor", _ONE + self.fee_allowance_rate)
        object.__setattr__(self, "market_buy_factor", _ONE + self.market_collar_pct)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitOverrides:
    """A user's limits where they differ from the global ones; None keeps the global."""

    max_position_size: Decimal | None = None
    max_daily_loss: Decimal | None = None
    min_margin_ratio: Decimal | None = None
    max_leverage: Decimal | None = None
    max_order_notional: Decimal | None = None
    price_collar_pct: Decimal | None = None
    reference_price_max_age_ms: int | None = None
    market_collar_pct: Decimal | None = None
    fee_allowance_rate: Decimal | None = None
    max_orders_per_second: int | None = None
    max_orders_per_minute: int | None = None
    max_open_orders: int | None = None
    mark_move_publish_threshold_pct: Decimal | None = None
    position_publish_throttle_ms: int | None = None

    def apply(self, base: RiskLimits) -> RiskLimits:
        """``base`` with these overrides; `ValueError` if the result is out of range."""
        changes = {
            item.name: value
            for item in fields(self)
            if (value := getattr(self, item.name)) is not None
        }
        return replace(base, **changes) if changes else base


def _env(name: str) -> AliasChoices:
    """The platform's name for a limit, or ``RISK_<NAME>``."""
    return AliasChoices(name, f"RISK_{name}")


_DEFAULT = RiskLimits()


class RiskSettings(BaseSettings):
    """The global limits from the environment (or ``.env``); defaults are the seed's."""

    model_config = SettingsConfigDict(env_prefix="RISK_", env_file=".env", extra="ignore")

    max_position_size: Decimal = Field(
        default=_DEFAULT.max_position_size, validation_alias=_env("MAX_POSITION_SIZE")
    )
    max_daily_loss: Decimal = Field(
        default=_DEFAULT.max_daily_loss, validation_alias=_env("MAX_DAILY_LOSS")
    )
    min_margin_ratio: Decimal = Field(
        default=_DEFAULT.min_margin_ratio, validation_alias=_env("MIN_MARGIN_RATIO")
    )
    max_leverage: Decimal = Field(
        default=_DEFAULT.max_leverage, validation_alias=_env("MAX_LEVERAGE")
    )
    max_order_notional: Decimal = _DEFAULT.max_order_notional
    price_collar_pct: Decimal = _DEFAULT.price_collar_pct
    reference_price_max_age_ms: int = _DEFAULT.reference_price_max_age_ms
    market_collar_pct: Decimal = _DEFAULT.market_collar_pct
    fee_allowance_rate: Decimal = _DEFAULT.fee_allowance_rate
    max_orders_per_second: int = _DEFAULT.max_orders_per_second
    max_orders_per_minute: int = _DEFAULT.max_orders_per_minute
    max_open_orders: int = _DEFAULT.max_open_orders
    mark_move_publish_threshold_pct: Decimal = _DEFAULT.mark_move_publish_threshold_pct
    position_publish_throttle_ms: int = _DEFAULT.position_publish_throttle_ms

    def limits(self) -> RiskLimits:
        """These settings as the engine's global `RiskLimits` (`ValueError` if out of
        range)."""
        return RiskLimits(
            **{item.name: getattr(self, item.name) for item in fields(RiskLimits) if item.init}
        )


class ServiceSettings(BaseSettings):
    """How the risk engine process runs (not what it decides)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", alias="RISK_ENGINE_HOST")
    port: int = Field(default=8092, alias="RISK_ENGINE_PORT")
    schema_name: str = Field(default="risk_engine", alias="RISK_ENGINE_SCHEMA")
    group_id: str = Field(default="risk_engine", alias="RISK_ENGINE_GROUP")
    instance: str = Field(default="0", alias="RISK_ENGINE_INSTANCE")
    batch_size: int = Field(default=500, alias="RISK_ENGINE_BATCH_SIZE", ge=1, le=5000)
    batch_timeout_ms: int = Field(default=5, alias="RISK_ENGINE_BATCH_TIMEOUT_MS", ge=0)
    fetch_wait_ms: int = Field(default=25, alias="RISK_ENGINE_FETCH_WAIT_MS", ge=0, le=500)
    """How long the broker may hold a fetch for ``fetch_min_bytes`` to arrive: each fetch
    (of every partition) and each batch (a database transaction, a Kafka commit) costs
    the same whatever its size, so a few full ones beat many of one message."""
    fetch_min_bytes: int = Field(default=64 * 1024, alias="RISK_ENGINE_FETCH_MIN_BYTES", ge=1)
    relay_linger_ms: int = Field(default=10, alias="RISK_ENGINE_RELAY_LINGER_MS", ge=0, le=1000)
    """How long the outbox relay waits after a commit for more before it publishes (each
    publication is one Kafka transaction whatever its size)."""
    tick_interval_s: float = Field(default=1.0, alias="RISK_ENGINE_TICK_S", gt=0)
    topic_prefix: str = Field(default="", alias="OPEXBRIDGE_TOPIC_PREFIX")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
