"""The notifier's settings, from the environment (or ``.env``), with defaults that run
locally with nothing set.

Names follow the platform where it has them (``JWT_SECRET``, ``JWT_JWKS_URL``); the rest
are ``NOTIFIER_*``. ``OPEXBRIDGE_TOPIC_PREFIX`` selects a private set of topics, as for
every service.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-secret-change-me-not-for-production"  # noqa: S105 - documented local default
"""The HS256 secret used when neither ``JWT_SECRET`` nor ``JWT_JWKS_URL`` is set; the
service logs a loud warning when it runs with it."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class NotifierSettings(BaseSettings):
    """Every knob of the notifier. See ``services/notifier/README.md`` for what each
    limit means to a client."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # -- where it listens and what it reads
    host: str = Field(default="127.0.0.1", validation_alias=_env("NOTIFIER_HOST"))
    port: int = Field(default=8000, ge=0, le=65535, validation_alias=_env("NOTIFIER_PORT"))
    schema_name: str = Field(default="notifier", validation_alias=_env("NOTIFIER_SCHEMA"))
    topic_prefix: str = Field(default="", validation_alias=_env("OPEXBRIDGE_TOPIC_PREFIX"))
    instance_id: str = Field(default="", validation_alias=_env("NOTIFIER_INSTANCE_ID"))
    group_id: str | None = Field(default=None, validation_alias=_env("NOTIFIER_GROUP_ID"))
    migrate_on_start: bool = Field(default=True, validation_alias=_env("NOTIFIER_MIGRATE"))

    # -- authentication
    jwt_secret: SecretStr | None = Field(default=None, validation_alias=_env("JWT_SECRET"))
    jwt_jwks_url: str | None = Field(default=None, validation_alias=_env("JWT_JWKS_URL"))
    jwt_audience: str | None = Field(default=None, validation_alias=_env("JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(default=None, validation_alias=_env("JWT_ISSUER"))
    jwt_leeway_s: float = Field(default=0.0, ge=0, le=300, validation_alias=_env("JWT_LEEWAY"))
    jwks_cache_s: int = Field(default=300, ge=1, validation_alias=_env("JWT_JWKS_CACHE_SECONDS"))
    token_cache_size: int = Field(
        default=10_000, ge=0, validation_alias=_env("NOTIFIER_TOKEN_CACHE")
    )
    """Verified tokens remembered (0: verify every request); see `CachingVerifier`."""
    token_cache_s: float = Field(
        default=60.0, ge=0, le=3600, validation_alias=_env("NOTIFIER_TOKEN_CACHE_SECONDS")
    )

    # -- limits per connection and per process
    auth_timeout_s: float = Field(
        default=5.0, gt=0, le=120, validation_alias=_env("NOTIFIER_AUTH_TIMEOUT")
    )
    max_frame_bytes: int = Field(
        default=4096, ge=256, le=1 << 20, validation_alias=_env("NOTIFIER_MAX_FRAME_BYTES")
    )
    max_connections_per_user: int = Field(
        default=10, ge=1, validation_alias=_env("NOTIFIER_MAX_CONNECTIONS_PER_USER")
    )
    max_connections: int = Field(
        default=20_000, ge=1, validation_alias=_env("NOTIFIER_MAX_CONNECTIONS")
    )
    send_budget_bytes: int = Field(
        default=256 * 1024, ge=1024, validation_alias=_env("NOTIFIER_SEND_BUDGET_BYTES")
    )
    socket_send_buffer: int = Field(
        default=0, ge=0, le=16 << 20, validation_alias=_env("NOTIFIER_SOCKET_SEND_BUFFER")
    )
    slow_close_grace_s: float = Field(
        default=5.0, gt=0, le=60, validation_alias=_env("NOTIFIER_SLOW_CLOSE_GRACE")
    )
    refresh_notice_s: float = Field(
        default=60.0, ge=0, validation_alias=_env("NOTIFIER_REFRESH_NOTICE")
    )
    max_channels: int = Field(default=64, ge=4, validation_alias=_env("NOTIFIER_MAX_CHANNELS"))
    ws_ping_interval_s: float = Field(
        default=20.0, ge=0, validation_alias=_env("NOTIFIER_WS_PING_INTERVAL")
    )

    # -- the per-user stream
    retention_events: int = Field(
        default=1000, ge=10, validation_alias=_env("NOTIFIER_RETENTION_EVENTS")
    )
    retention_s: float = Field(
        default=24 * 3600, gt=0, validation_alias=_env("NOTIFIER_RETENTION_SECONDS")
    )
    prune_interval_s: float = Field(
        default=60.0, gt=0, validation_alias=_env("NOTIFIER_PRUNE_INTERVAL")
    )
    inbox_retention_s: float = Field(
        default=7 * 24 * 3600, gt=0, validation_alias=_env("NOTIFIER_INBOX_RETENTION_SECONDS")
    )

    # -- the Kafka side
    batch_max_records: int = Field(
        default=500, ge=1, le=10_000, validation_alias=_env("NOTIFIER_BATCH_MAX_RECORDS")
    )
    batch_timeout_ms: int = Field(
        default=5, ge=1, le=1000, validation_alias=_env("NOTIFIER_BATCH_TIMEOUT_MS")
    )
    db_pool_size: int = Field(default=10, ge=2, le=200, validation_alias=_env("NOTIFIER_DB_POOL"))

    # -- the trading REST API (OPEX itself is `shared.opex.OpexSettings`: OPEX_API_URL...)
    idempotency_ttl_s: float = Field(
        default=24 * 3600, gt=0, validation_alias=_env("NOTIFIER_IDEMPOTENCY_TTL")
    )
    """How long an accepted command (and its ``Idempotency-Key``) is remembered."""
    command_batch_max: int = Field(
        default=200, ge=1, le=5000, validation_alias=_env("NOTIFIER_COMMAND_BATCH")
    )
    """Most commands written in one transaction (concurrent requests share it)."""
    relay_linger_ms: float = Field(
        default=5.0, ge=0, le=1000, validation_alias=_env("NOTIFIER_RELAY_LINGER_MS")
    )
    """How long the outbox relay waits after a commit before it publishes, so that the
    commits of that moment share one Kafka transaction (0: at once). The 202 does not
    wait for it; only the command's arrival on ``orders.commands`` does."""
    opex_timeout_s: float = Field(
        default=2.0, gt=0, le=60, validation_alias=_env("NOTIFIER_OPEX_TIMEOUT")
    )
    """Cap on ``OPEX_TIMEOUT`` for the market-data and health calls of a request."""
    service_health_urls: dict[str, str] = Field(
        default_factory=lambda: {
            "risk_engine": "http://127.0.0.1:8092/health",
            "user_sync": "http://127.0.0.1:8091/health",
        },
        validation_alias=_env("NOTIFIER_SERVICE_HEALTH_URLS"),
    )
    """JSON object, service name → its ``/health`` URL, checked by
    ``GET /api/trading/health`` (add ``order_gateway`` where it runs)."""
    optional_services: frozenset[str] = Field(
        default=frozenset({"user_sync"}), validation_alias=_env("NOTIFIER_OPTIONAL_SERVICES")
    )
    """JSON list of services reported but not required for trading."""
    health_timeout_s: float = Field(
        default=1.5, gt=0, le=30, validation_alias=_env("NOTIFIER_HEALTH_TIMEOUT")
    )
    health_cache_s: float = Field(
        default=1.0, ge=0, le=60, validation_alias=_env("NOTIFIER_HEALTH_CACHE")
    )

    @field_validator("jwt_jwks_url", "jwt_audience", "jwt_issuer", "group_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group of the user topics: ``NOTIFIER_GROUP_ID``, else
        ``notifier`` (one instance) or ``notifier-<instance>`` (one group per instance,
        see the README's scale-out section)."""
        if self.group_id:
            return self.group_id
        return f"notifier-{self.instance_id}" if self.instance_id else "notifier"

    @property
    def outbox_instance(self) -> str:
        """Names the outbox relay's Kafka transactional id
        (``<topic prefix>notifier-outbox-<instance>``): unique per running instance."""
        return self.instance_id or "0"

    @property
    def uses_dev_secret(self) -> bool:
        return self.jwt_secret is None and self.jwt_jwks_url is None

    def hs256_secret(self) -> str | None:
        """The HS256 secret: ``JWT_SECRET``, or the dev default when no key source is
        configured at all (JWKS alone means no HS256)."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return DEV_JWT_SECRET if self.jwt_jwks_url is None else None
