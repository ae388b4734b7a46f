"""user_sync's settings from the environment."""

from __future__ import annotations

import pytest

from services.user_sync.config import UserSyncSettings
from services.user_sync.domain.provisioning import Step


def test_settings_when_nothing_is_set_then_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("USER_SYNC_PORT", "USER_SYNC_SCHEMA", "OPEXBRIDGE_TOPIC_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = UserSyncSettings()
    assert settings.port == 8091
    assert settings.schema_name == "user_sync"
    assert settings.test_crash_after is None
    policy = settings.retry_policy()
    assert policy.max_attempts == settings.max_attempts == 10


def test_settings_when_the_environment_names_them_then_they_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SYNC_PORT", "9001")
    monkeypatch.setenv("USER_SYNC_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("USER_SYNC_BACKOFF_BASE", "0.5")
    monkeypatch.setenv("USER_SYNC_TEST_CRASH_AFTER", "API_KEY")
    monkeypatch.setenv("USER_SYNC_TEST_CRASH_BEFORE", "")
    settings = UserSyncSettings()
    assert settings.port == 9001
    assert settings.retry_policy().max_attempts == 3
    assert settings.retry_policy().base_delay_s == 0.5
    assert settings.test_crash_after is Step.API_KEY
    assert settings.test_crash_before is None
