"""The sandbox's settings, from the environment (``SANDBOX_*``; the admin credential from
``OPEX_API_KEY`` / ``OPEX_API_SECRET``, the names the rest of the suite uses) or ``.env``."""

from __future__ import annotations

import secrets
from decimal import Decimal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MarketMakerPair", "SandboxConfig"]


class MarketMakerPair(BaseModel):
    """One pair the market maker keeps liquid."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    mid_price: Decimal
    level_quantity: Decimal
    levels: int = Field(default=5, ge=0)


def _default_maker_pairs() -> list[MarketMakerPair]:
    return [
        MarketMakerPair(symbol="BTC_USDT", mid_price=Decimal(30000), level_quantity=Decimal("0.5")),
        MarketMakerPair(symbol="ETH_USDT", mid_price=Decimal(2000), level_quantity=Decimal(5)),
    ]


class SandboxConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8082, ge=0, le=65535)
    """The platform guide's OPEX API port."""

    # -- OPEX's asynchronous behaviour ---------------------------------------------------------
    listing_delay_ms: int = Field(default=150, ge=0)
    """An accepted order reaches the engine (and the listings) this long after the answer."""
    cancel_delay_ms: int = Field(default=100, ge=0)
    """A cancel answered CANCELED is applied this long after the answer."""

    # -- rate limits (OPEX's api service, V3__insert_rate_limit_data.sql) --------------------
    rate_limit_enabled: bool = True
    rate_limit_requests: int = Field(default=10, ge=1)
    """LOW_IMPACT group: /opex/v1/order/** GET/POST/PUT, /opex/v1/wallet/** GET,
    /opex/v1/user/** GET/POST (authenticated)."""
    rate_limit_window_s: float = Field(default=60, gt=0)
    rate_limit_block_steps_s: list[float] = Field(default_factory=lambda: [60.0, 120.0, 180.0])
    """Block after the 1st, 2nd, 3rd (and later) violation."""
    rate_limit_cooldown_s: float = Field(default=300, ge=0)
    """An allowed request this long after the last violation forgets one violation."""
    rate_limit_admin_requests: int = Field(default=15, ge=1)
    rate_limit_admin_window_s: float = Field(default=30, gt=0)
    rate_limit_admin_block_steps_s: list[float] = Field(default_factory=lambda: [60.0])
    rate_limit_admin_cooldown_s: float = Field(default=120, ge=0)

    # -- market maker ----------------------------------------------------------------------
    market_maker: bool = True
    market_maker_interval_ms: int = Field(default=1000, ge=10)
    market_maker_pairs: list[MarketMakerPair] = Field(default_factory=_default_maker_pairs)
    seed: int = 0
    """Seeds the market maker's random walk and the fault dice."""

    # -- auth -------------------------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    """HS256 key of the tokens the sandbox signs; generated at start when unset."""
    token_lifetime_s: int = Field(default=3600, ge=1)
    refresh_token_lifetime_s: int = Field(default=86_400, ge=1)
    otp_in_response: bool = True
    """Return the registration OTP in the answer (OPEX's "OTP in response" setting)."""
    otp_lifetime_s: int = Field(default=300, ge=1)
    admin_api_key: str = Field(
        default="sandbox-admin-key",
        validation_alias=AliasChoices("OPEX_API_KEY", "SANDBOX_ADMIN_API_KEY", "admin_api_key"),
    )
    admin_api_secret: SecretStr = Field(
        default=SecretStr("sandbox-admin-secret"),
        validation_alias=AliasChoices(
            "OPEX_API_SECRET", "SANDBOX_ADMIN_API_SECRET", "admin_api_secret"
        ),
    )
    admin_username: str = "admin@opex.sandbox"
    admin_password: SecretStr = SecretStr("sandbox-admin-password")
    invert_is_buyer: bool = True
    """Mimic OPEX's myTrades `isBuyer`, computed as `side = 'ASK'` (inverted)."""

    # -- faults -----------------------------------------------------------------------------
    take_no_answer_delay_s: float = Field(default=30.0, ge=0)
    """How late a "taken but not answered" response is sent."""

    @model_validator(mode="after")
    def _secret(self) -> SandboxConfig:
        if self.jwt_secret is None:
            self.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        return self

    def jwt_key(self) -> str:
        assert self.jwt_secret is not None
        return self.jwt_secret.get_secret_value()
