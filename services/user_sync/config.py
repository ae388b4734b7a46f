"""user_sync's settings, from the environment (or ``.env``), with defaults that run locally
with nothing set. OPEX's address and credentials are `shared.opex.OpexSettings`
(``OPEX_*``), the encryption keys `shared.credentials.SecretsSettings`
(``OPEXBRIDGE_SECRETS_KEY``), Kafka and the database the shared settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.user_sync.domain.provisioning import RetryPolicy, Step

__all__ = ["SERVICE", "UserSyncSettings"]

SERVICE = "user_sync"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class UserSyncSettings(BaseSettings):
    """Every knob of user_sync (README.md, Configuration)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # -- where it runs
    host: str = Field(default="127.0.0.1", validation_alias=_env("USER_SYNC_HOST"))
    port: int = Field(default=8091, ge=0, le=65535, validation_alias=_env("USER_SYNC_PORT"))
    schema_name: str = Field(default="user_sync", validation_alias=_env("USER_SYNC_SCHEMA"))
    topic_prefix: str = Field(default="", validation_alias=_env("OPEXBRIDGE_TOPIC_PREFIX"))
    instance_id: str = Field(
        default="0", min_length=1, max_length=64, validation_alias=_env("USER_SYNC_INSTANCE_ID")
    )
    """Names this process's leases, its consumer-group membership and its outbox relay;
    unique per running instance, and stable across its restarts."""
    group_id: str = Field(default="user_sync", validation_alias=_env("USER_SYNC_GROUP_ID"))
    migrate_on_start: bool = Field(default=True, validation_alias=_env("USER_SYNC_MIGRATE"))
    db_pool_size: int = Field(default=10, ge=2, le=200, validation_alias=_env("USER_SYNC_DB_POOL"))

    # -- the worker
    concurrency: int = Field(
        default=16, ge=1, le=1000, validation_alias=_env("USER_SYNC_CONCURRENCY")
    )
    """Users provisioned at the same time by this process."""
    max_attempts: int = Field(
        default=10, ge=1, le=1000, validation_alias=_env("USER_SYNC_MAX_ATTEMPTS")
    )
    """Failed attempts after which a user's provisioning fails (UserProvisioningFailed)."""
    backoff_base_s: float = Field(
        default=1.0, ge=0, validation_alias=_env("USER_SYNC_BACKOFF_BASE")
    )
    backoff_max_s: float = Field(
        default=300.0, ge=0, validation_alias=_env("USER_SYNC_BACKOFF_MAX")
    )
    lease_s: float = Field(default=120.0, gt=0, validation_alias=_env("USER_SYNC_LEASE"))
    """How long a claimed user stays this process's if it stops renewing (crashed)."""
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_env("USER_SYNC_POLL_INTERVAL")
    )

    # -- the reconcile job
    reconcile_interval_s: float = Field(
        default=60.0, gt=0, validation_alias=_env("USER_SYNC_RECONCILE_INTERVAL")
    )
    auto_retries: int = Field(default=3, ge=0, validation_alias=_env("USER_SYNC_AUTO_RETRIES"))
    """Times the reconcile job re-queues a user that failed because OPEX was unavailable,
    once OPEX answers its health check again."""
    verify_every_s: float = Field(
        default=24 * 3600.0, gt=0, validation_alias=_env("USER_SYNC_VERIFY_EVERY")
    )
    verify_batch: int = Field(default=50, ge=0, validation_alias=_env("USER_SYNC_VERIFY_BATCH"))
    """Provisioned users whose key the reconcile job checks per round (0: none)."""

    # -- tests only: crash (SIGKILL itself) right before / after committing a step
    test_crash_before: Step | None = Field(
        default=None, validation_alias=_env("USER_SYNC_TEST_CRASH_BEFORE")
    )
    test_crash_after: Step | None = Field(
        default=None, validation_alias=_env("USER_SYNC_TEST_CRASH_AFTER")
    )

    @field_validator("test_crash_before", "test_crash_after", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay_s=self.backoff_base_s,
            max_delay_s=self.backoff_max_s,
        )
