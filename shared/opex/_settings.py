"""Where OPEX is and how to talk to it, from the environment (``OPEX_*``, ``.env``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.opex._auth import ApiKey, LegacyApiKey

__all__ = ["HttpBackend", "OpexSettings", "Surface"]

Surface = Literal["v3", "opex"]
HttpBackend = Literal["lean", "aiohttp", "httpx"]
"""``lean``: the client's own HTTP/1.1 pool (`shared.opex._wire`), the cheapest per
request; ``aiohttp``: aiohttp's pool (`shared.opex._transport`); ``httpx``: httpx's own
pool (httpcore), the most expensive."""
"""``v3``: OPEX's Binance-style ``/v3`` (not rate-limited); ``opex``: native ``/opex/v1``."""


class OpexSettings(BaseSettings):
    """OPEX's address, the admin credential and the HTTP client's limits.

    ``OPEX_API_URL`` and ``OPEX_MARKET_URL`` may point at the API service itself
    (``http://127.0.0.1:8082``) or at OPEX's public proxy (``https://host/api``); put
    ``/api`` in ``OPEX_PATH_PREFIX`` instead when the proxy's URL is given without it.
    """

    model_config = SettingsConfigDict(env_prefix="OPEX_", env_file=".env", extra="ignore")

    api_url: str = "http://127.0.0.1:8082"
    """``OPEX_API_URL``: orders, accounts, users, admin."""
    market_url: str | None = None
    """``OPEX_MARKET_URL``: public market data; defaults to ``OPEX_API_URL``."""
    matching_gateway_url: str | None = None
    """``OPEX_MATCHING_GATEWAY_URL``: ``/pair-setting``; defaults to ``OPEX_API_URL``."""
    path_prefix: Literal["", "/api"] = ""
    """``OPEX_PATH_PREFIX``: put in front of every route (``/api`` behind OPEX's proxy)."""
    api_key: str | None = "sandbox-admin-key"
    """``OPEX_API_KEY``: the admin's API key id (default: the sandbox's; empty: none)."""
    api_secret: SecretStr | None = SecretStr("sandbox-admin-secret")
    """``OPEX_API_SECRET``: its secret (default: the sandbox's)."""
    legacy_auth: bool = False
    """``OPEX_LEGACY_AUTH``: send the admin key as X-API-KEY + X-API-SECRET, unsigned."""
    timeout: float = Field(default=30.0, gt=0, le=600)
    """``OPEX_TIMEOUT``: seconds for connect, read, write and pool wait each."""
    surface: Surface = "v3"
    """``OPEX_SURFACE``: the surface of the calls that exist on both."""
    client_id: str = "web-app"
    """``OPEX_CLIENT_ID``: OAuth client id sent with login and registration."""
    client_secret: SecretStr | None = None
    """``OPEX_CLIENT_SECRET``: its secret, when the client has one."""
    deposit_gateway_uuid: str = "manually"
    """``OPEX_DEPOSIT_GATEWAY_UUID``: the off-chain MANUALLY gateway of an admin deposit
    (real OPEX refuses a deposit without one of the currency's gateways)."""
    http_backend: HttpBackend = "lean"
    """``OPEX_HTTP_BACKEND``: what carries the requests (same answers, same exceptions)."""
    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    keepalive_expiry: float = Field(default=4.0, ge=0)
    """Seconds an idle connection is kept; below the server's own keep-alive timeout, so
    a request never goes out on a connection the server is closing."""
    rate_limit_retry_after: Decimal = Field(default=Decimal(60), gt=0)
    """``OPEX_RATE_LIMIT_RETRY_AFTER``: seconds to wait after a 429 that does not say
    (OPEX's first block is 60 s)."""

    @field_validator("api_url", "market_url", "matching_gateway_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value[:64]!r} is not an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("an OPEX base URL has no query or fragment")
        return value.rstrip("/")

    @field_validator("api_key", "api_secret", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _defaults(self) -> OpexSettings:
        if self.market_url is None:
            self.market_url = self.api_url
        if self.matching_gateway_url is None:
            self.matching_gateway_url = self.api_url
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("set both OPEX_API_KEY and OPEX_API_SECRET, or neither")
        return self

    def admin_credentials(self) -> ApiKey | LegacyApiKey | None:
        """The admin credential from ``OPEX_API_KEY`` / ``OPEX_API_SECRET``, if set."""
        if self.api_key is None or self.api_secret is None:
            return None
        if self.legacy_auth:
            return LegacyApiKey(self.api_key, self.api_secret)
        return ApiKey(self.api_key, self.api_secret)
