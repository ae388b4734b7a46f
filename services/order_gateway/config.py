"""The order gateway's configuration: a frozen `GatewayConfig` with documented defaults,
and `GatewaySettings`, which reads it from the environment (``ORDER_GATEWAY_<FIELD>``,
``.env`` supported): ``ORDER_GATEWAY_FAILED_AFTER_MS=90000``.

Times are milliseconds (OPEX's 429 blocks, seconds, as OPEX states them); percentages
are fractions (``0.02`` is 2 %).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "MAX_MARKET_COLLAR_PCT",
    "GatewayConfig",
    "GatewaySettings",
    "ServiceSettings",
    "Surface",
]

MAX_MARKET_COLLAR_PCT = Decimal("0.05")
"""The risk engine's default ``market_collar_pct``: a market buy reserves reference x
(1 + it), so the gateway's collar must not be wider (services do not import each other;
the service checks the live value at start-up)."""


class Surface(StrEnum):
    """OPEX's REST surfaces (OPEX.md): ``/v3`` is not rate-limited, ``/opex/v1`` is."""

    V3 = "v3"
    OPEX = "opex"


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """How the gateway places, correlates, resolves and paces; `ValueError` when out of
    range."""

    # correlation and in-flight resolution
    listing_grace_ms: int = 2_000
    """An in-flight order not listed yet and younger than this is simply waited for."""
    query_interval_ms: int = 5_000
    """Least time between two targeted queries (``allOrders`` in the order's window)."""
    failed_after_ms: int = 60_000
    """An order OPEX has not listed this long after its request, confirmed by a targeted
    query made after the deadline, is FAILED (NOT_ACKNOWLEDGED)."""
    clock_skew_ms: int = 5_000
    """OPEX's order time may precede our request time by this much (clock skew)."""
    correlation_window_ms: int = 65_000
    """A listed order matches an intent only if OPEX's time is within
    [request - clock_skew_ms, request + this]; at least ``failed_after_ms``."""

    # market orders
    market_collar_pct: Decimal = Decimal("0.02")
    """A market order goes out as an IOC limit at best ask x (1 + this) (buy) or best bid x
    (1 - this) (sell); at most `MAX_MARKET_COLLAR_PCT`."""
    best_price_max_age_ms: int = 10_000
    """A best bid/ask older than this is stale: market orders wait or fail closed."""

    # polling
    poll_interval_ms: int = 1_000
    """Open orders and trades of users with open orders are polled this often (/v3)."""
    reconcile_interval_ms: int = 60_000
    """Full reconciliation with OPEX (also run at start)."""

    # outages
    breaker_failure_threshold: int = 5
    """Consecutive unavailable/ambiguous outcomes that open the circuit breaker."""
    breaker_cool_down_ms: int = 30_000
    """How long the breaker stays open before one trial request (half-open)."""

    # rate limits (OPEX.md: "low impact", 10 per 60 s on /opex/v1; /v3 unlimited)
    order_surface: Surface = Surface.V3
    """Where orders are placed and read."""
    v3_max_requests: int | None = None
    """Requests per user per window on /v3; None: no limiter (OPEX has none)."""
    opex_max_requests: int | None = 10
    """Requests per user per window on /opex/v1; None: no limiter."""
    rate_window_ms: int = 60_000
    rate_limit_blocks_s: tuple[int, ...] = (60, 120, 180)
    """A user's n-th consecutive 429 waits at least the n-th of these (the last repeats),
    or OPEX's Retry-After when longer, as OPEX's escalating blocks do."""

    def __post_init__(self) -> None:
        for name in (
            "listing_grace_ms",
            "query_interval_ms",
            "failed_after_ms",
            "best_price_max_age_ms",
            "poll_interval_ms",
            "reconcile_interval_ms",
            "breaker_failure_threshold",
            "breaker_cool_down_ms",
            "rate_window_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if self.clock_skew_ms < 0:
            raise ValueError("clock_skew_ms must not be negative")
        if self.listing_grace_ms > self.failed_after_ms:
            raise ValueError("listing_grace_ms must not exceed failed_after_ms")
        if self.correlation_window_ms < self.failed_after_ms:
            raise ValueError("correlation_window_ms must be at least failed_after_ms")
        if not self.market_collar_pct.is_finite() or not (
            Decimal(0) < self.market_collar_pct <= MAX_MARKET_COLLAR_PCT
        ):
            raise ValueError(f"market_collar_pct must be in (0, {MAX_MARKET_COLLAR_PCT}]")
        for name in ("v3_max_requests", "opex_max_requests"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be greater than zero or None")
        if not self.rate_limit_blocks_s or any(block <= 0 for block in self.rate_limit_blocks_s):
            raise ValueError("rate_limit_blocks_s must be positive seconds")

    def max_requests(self, surface: Surface) -> int | None:
        """The per-user request limit on ``surface`` (None: unlimited)."""
        return self.v3_max_requests if surface is Surface.V3 else self.opex_max_requests


_DEFAULT = GatewayConfig()


class GatewaySettings(BaseSettings):
    """`GatewayConfig` from the environment; defaults are `GatewayConfig`'s."""

    model_config = SettingsConfigDict(env_prefix="ORDER_GATEWAY_", env_file=".env", extra="ignore")

    listing_grace_ms: int = _DEFAULT.listing_grace_ms
    query_interval_ms: int = _DEFAULT.query_interval_ms
    failed_after_ms: int = _DEFAULT.failed_after_ms
    clock_skew_ms: int = _DEFAULT.clock_skew_ms
    correlation_window_ms: int = _DEFAULT.correlation_window_ms
    market_collar_pct: Decimal = _DEFAULT.market_collar_pct
    best_price_max_age_ms: int = _DEFAULT.best_price_max_age_ms
    poll_interval_ms: int = _DEFAULT.poll_interval_ms
    reconcile_interval_ms: int = _DEFAULT.reconcile_interval_ms
    breaker_failure_threshold: int = _DEFAULT.breaker_failure_threshold
    breaker_cool_down_ms: int = _DEFAULT.breaker_cool_down_ms
    order_surface: Surface = _DEFAULT.order_surface
    v3_max_requests: int | None = _DEFAULT.v3_max_requests
    opex_max_requests: int | None = _DEFAULT.opex_max_requests
    rate_window_ms: int = _DEFAULT.rate_window_ms
    rate_limit_blocks_s: tuple[int, ...] = _DEFAULT.rate_limit_blocks_s

    def config(self) -> GatewayConfig:
        """These settings as a `GatewayConfig` (`ValueError` when out of range)."""
        return GatewayConfig(
            **{item.name: getattr(self, item.name) for item in fields(GatewayConfig)}
        )


class ServiceSettings(BaseSettings):
    """How the gateway process runs (not how it places orders: `GatewaySettings`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", alias="ORDER_GATEWAY_HOST")
    port: int = Field(default=8093, alias="ORDER_GATEWAY_PORT")
    schema_name: str = Field(default="order_gateway", alias="ORDER_GATEWAY_SCHEMA")
    group_id: str = Field(default="order_gateway", alias="ORDER_GATEWAY_GROUP")
    instance: str = Field(default="0", alias="ORDER_GATEWAY_INSTANCE")
    batch_size: int = Field(default=500, alias="ORDER_GATEWAY_BATCH_SIZE", ge=1, le=5000)
    batch_timeout_ms: int = Field(default=10, alias="ORDER_GATEWAY_BATCH_TIMEOUT_MS", ge=1)
    """How long one poll of orders.approved waits for records. It returns as soon as any
    arrive, so this only sets how often an idle subscriber wakes (FastStream also sleeps
    this long after an empty poll: at most this much added to an order after a lull)."""
    side_batch_timeout_ms: int = Field(
        default=500, alias="ORDER_GATEWAY_SIDE_BATCH_TIMEOUT_MS", ge=1
    )
    """The same for users.events (balances to publish), where no one waits."""
    market_batch_timeout_ms: int = Field(
        default=200, alias="ORDER_GATEWAY_MARKET_BATCH_TIMEOUT_MS", ge=1
    )
    """The same for market.instruments and market.tickers (best prices, stop triggers;
    tickers come every second)."""
    fetch_wait_ms: int = Field(default=500, alias="ORDER_GATEWAY_FETCH_WAIT_MS", ge=0)
    """How long the broker may hold an empty fetch of orders.approved (aiokafka's
    default). A waiting fetch ends as soon as records become readable, a Kafka
    transaction's commit included (measured on the local Kafka 4.1.1: a read_committed
    fetch held for 2 s answered about 1 ms after the commit), so a longer wait adds no
    latency; a short one costs an idle gateway a fetch round trip every few ms."""
    market_fetch_wait_ms: int = Field(default=500, alias="ORDER_GATEWAY_MARKET_FETCH_WAIT_MS", ge=0)
    side_fetch_wait_ms: int = Field(default=500, alias="ORDER_GATEWAY_SIDE_FETCH_WAIT_MS", ge=0)
    outbox_poll_ms: int = Field(default=5_000, alias="ORDER_GATEWAY_OUTBOX_POLL_MS", gt=0)
    """How often the outbox relay looks for rows unasked: every commit that stages rows
    wakes it at once, so this is only a safety net."""
    credentials_schema: str = Field(default="user_sync", alias="ORDER_GATEWAY_CREDENTIALS_SCHEMA")
    place_concurrency: int = Field(default=64, alias="ORDER_GATEWAY_PLACE_CONCURRENCY", ge=1)
    min_poll_gap_ms: int = Field(default=25, alias="ORDER_GATEWAY_MIN_POLL_GAP_MS", ge=1)
    """Least time between two listing reads of one user: one read serves every order of
    the user in flight, so under load a longer gap means fewer reads per order."""
    poll_concurrency: int = Field(default=32, alias="ORDER_GATEWAY_POLL_CONCURRENCY", ge=1)
    balances_interval_ms: int = Field(
        default=1_000, alias="ORDER_GATEWAY_BALANCES_INTERVAL_MS", gt=0
    )
    balances_refresh_ms: int = Field(
        default=30_000, alias="ORDER_GATEWAY_BALANCES_REFRESH_MS", gt=0
    )
    market_data_interval_ms: int = Field(
        default=1_000, alias="ORDER_GATEWAY_MARKET_DATA_INTERVAL_MS", gt=0
    )
    instruments_interval_ms: int = Field(
        default=60_000, alias="ORDER_GATEWAY_INSTRUMENTS_INTERVAL_MS", gt=0
    )
    market_heartbeat_ms: int = Field(default=3_000, alias="ORDER_GATEWAY_MARKET_HEARTBEAT_MS", gt=0)
    """A pair's ticker is read every ``market_data_interval_ms`` but published only when
    its prices or volume changed, or when the last one is this old (readers treat a
    price older than 10 s as stale)."""
    listing_margin_ms: int = Field(default=250, alias="ORDER_GATEWAY_LISTING_MARGIN_MS", ge=0)
    """Slack on the clock offset learnt from OPEX's listings when a read only looks for
    what a recent request or cancel did (see `GatewayService._window_start`)."""
    publish_market_data: bool = Field(default=True, alias="ORDER_GATEWAY_PUBLISH_MARKET_DATA")
    topic_prefix: str = Field(default="", alias="OPEXBRIDGE_TOPIC_PREFIX")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
