"""`SecretBox`: symmetric encryption of secrets at rest (Fernet, AES-128-CBC + HMAC-SHA256,
from the ``cryptography`` package), with key rotation through ``MultiFernet``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEV_KEY_SEED",
    "SecretBox",
    "SecretUnreadable",
    "SecretsSettings",
    "dev_key",
    "generate_key",
]

log = structlog.get_logger(__name__)

DEV_KEY_SEED = b"opex-bridge development secrets key: public, never use it with real accounts"
"""The seed of the development key used when ``OPEXBRIDGE_SECRETS_KEY`` is unset. Anyone
who reads this file can decrypt what it encrypted: the service logs a loud warning."""


def dev_key() -> bytes:
    """The deterministic development key (a valid Fernet key derived from `DEV_KEY_SEED`)."""
    return base64.urlsafe_b64encode(hashlib.sha256(DEV_KEY_SEED).digest())


def generate_key() -> str:
    """A fresh random key for ``OPEXBRIDGE_SECRETS_KEY``."""
    return Fernet.generate_key().decode("ascii")


def _fingerprint(key: bytes) -> str:
    """A short public name of a key (``key_version``): not the key, not reversible."""
    return hashlib.sha256(b"opex-bridge key id:" + key).hexdigest()[:12]


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with any configured key (wrong or missing
    key, or a corrupted value). Carries no part of the value or the keys."""


class SecretsSettings(BaseSettings):
    """``OPEXBRIDGE_SECRETS_KEY``: comma-separated Fernet keys, the first one encrypts and
    all of them decrypt (so a new key goes first and old ones stay until rotated)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    secrets_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPEXBRIDGE_SECRETS_KEY", "secrets_key")
    )


class SecretBox:
    """Encrypts and decrypts secrets with the configured keys.

    ::

        box = SecretBox.from_settings(SecretsSettings())
        token = box.encrypt(SecretStr("p@ss"))   # bytes for a bytea column
        box.decrypt(token).get_secret_value()    # "p@ss"

    `key_version` names the key that encrypts now; `rotate` re-encrypts a value with it.
    Neither the repr nor any exception shows a key or a value.
    """

    __slots__ = ("_fernet", "_primary", "_size", "uses_dev_key")

    def __init__(self, keys: Sequence[str | bytes], *, uses_dev_key: bool = False) -> None:
        raw = [k.encode("ascii") if isinstance(k, str) else k for k in keys]
        raw = [k.strip() for k in raw if k.strip()]
        if not raw:
            raise ValueError("a SecretBox needs at least one key")
        fernets: list[Fernet] = []
        for index, key in enumerate(raw):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ValueError(
                    f"secrets key #{index + 1} is not a Fernet key (32 url-safe base64 bytes; "
                    "make one with shared.credentials.generate_key())"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._primary = _fingerprint(raw[0])
        self._size = len(raw)
        self.uses_dev_key = uses_dev_key

    @classmethod
    def from_settings(cls, settings: SecretsSettings | None = None) -> SecretBox:
        """The keys of ``OPEXBRIDGE_SECRETS_KEY``; without it, the development key and a
        loud warning."""
        settings = settings if settings is not None else SecretsSettings()
        if settings.secrets_key is None or not settings.secrets_key.get_secret_value().strip():
            log.warning(
                "secrets_dev_key_in_use",
                message="OPEXBRIDGE_SECRETS_KEY is unset: OPEX passwords and API-key secrets "
                "are encrypted with the PUBLIC development key. Never run like this with real "
                "accounts; set OPEXBRIDGE_SECRETS_KEY (see shared/credentials).",
            )
            return cls([dev_key()], uses_dev_key=True)
        return cls(settings.secrets_key.get_secret_value().split(","))

    @property
    def key_version(self) -> str:
        """The fingerprint of the key that encrypts (stored beside each value)."""
        return self._primary

    def encrypt(self, value: SecretStr | str) -> bytes:
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        return self._fernet.encrypt(plain.encode("utf-8"))

    def decrypt(self, token: bytes | memoryview) -> SecretStr:
        try:
            plain = self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret could not be decrypted with any configured key"
            ) from None
        return SecretStr(plain.decode("utf-8"))

    def rotate(self, token: bytes | memoryview) -> bytes:
        """``token`` re-encrypted with the first key (after a new key was put first)."""
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret could not be decrypted with any configured key"
            ) from None

    def __repr__(self) -> str:
        dev = ", dev key" if self.uses_dev_key else ""
        return f"SecretBox(keys={self._size}, key_version={self._primary!r}{dev})"
