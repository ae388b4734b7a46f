from __future__ import annotations

import pytest

from services.notifier.config import DEV_JWT_SECRET, NotifierSettings


def test_settings_when_nothing_set_then_local_defaults_and_dev_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("JWT_SECRET", "JWT_JWKS_URL", "NOTIFIER_PORT", "NOTIFIER_INSTANCE_ID"):
        monkeypatch.delenv(name, raising=False)
    settings = NotifierSettings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.uses_dev_secret
    assert settings.hs256_secret() == DEV_JWT_SECRET
    assert settings.consumer_group == "notifier"


def test_settings_when_environment_then_platform_names_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_SECRET", "s3cret")
    monkeypatch.setenv("JWT_AUDIENCE", "aud")
    monkeypatch.setenv("NOTIFIER_PORT", "9001")
    monkeypatch.setenv("NOTIFIER_INSTANCE_ID", "b")
    monkeypatch.setenv("JWT_JWKS_URL", "")
    settings = NotifierSettings(_env_file=None)
    assert settings.hs256_secret() == "s3cret"
    assert not settings.uses_dev_secret
    assert settings.jwt_audience == "aud"
    assert settings.jwt_jwks_url is None
    assert settings.port == 9001
    assert settings.consumer_group == "notifier-b"
    assert "s3cret" not in repr(settings)


def test_settings_when_jwks_only_then_no_hs256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = NotifierSettings(jwt_jwks_url="http://127.0.0.1:1/jwks", _env_file=None)
    assert settings.hs256_secret() is None
    assert not settings.uses_dev_secret
