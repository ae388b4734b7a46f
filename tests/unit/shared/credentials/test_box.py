"""`SecretBox`: encryption at rest, key rotation, the development key, and no key or
value in any repr or error."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from structlog.testing import capture_logs

from shared.credentials import (
    SecretBox,
    SecretsSettings,
    SecretUnreadable,
    dev_key,
    generate_key,
)

VALUE = "Sup3r-Secret!value"


def test_encrypt_when_decrypted_then_the_same_secret_and_never_the_plain_bytes() -> None:
    box = SecretBox([generate_key()])
    token = box.encrypt(SecretStr(VALUE))
    assert VALUE.encode() not in token
    assert box.encrypt(VALUE) != token  # a fresh IV each time
    decrypted = box.decrypt(token)
    assert isinstance(decrypted, SecretStr)
    assert decrypted.get_secret_value() == VALUE
    assert box.decrypt(memoryview(token)).get_secret_value() == VALUE


def test_decrypt_when_the_key_is_wrong_then_unreadable_without_any_detail() -> None:
    token = SecretBox([generate_key()]).encrypt(VALUE)
    other = generate_key()
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox([other]).decrypt(token)
    assert VALUE not in str(caught.value)
    assert other not in str(caught.value)
    assert caught.value.__cause__ is None
    with pytest.raises(SecretUnreadable):
        SecretBox([other]).decrypt(b"garbage")


def test_rotate_when_a_new_key_goes_first_then_old_values_read_and_rewrite_with_it() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt(VALUE)
    both = SecretBox([new, old])
    assert both.key_version == SecretBox([new]).key_version != SecretBox([old]).key_version
    assert both.decrypt(token).get_secret_value() == VALUE
    rotated = both.rotate(token)
    assert SecretBox([new]).decrypt(rotated).get_secret_value() == VALUE
    with pytest.raises(SecretUnreadable):
        SecretBox([old]).decrypt(rotated)


def test_settings_when_several_keys_are_given_then_comma_separated_and_first_encrypts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = generate_key(), generate_key()
    monkeypatch.setenv("OPEXBRIDGE_SECRETS_KEY", f"{first}, {second}")
    box = SecretBox.from_settings()
    assert box.key_version == SecretBox([first]).key_version
    assert not box.uses_dev_key
    assert SecretBox([second]).decrypt(SecretBox([second]).encrypt("x"))
    assert box.decrypt(SecretBox([second]).encrypt(VALUE)).get_secret_value() == VALUE


def test_settings_when_no_key_is_set_then_the_dev_key_with_a_loud_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPEXBRIDGE_SECRETS_KEY", raising=False)
    with capture_logs() as logs:
        box = SecretBox.from_settings(SecretsSettings(_env_file=None))
    assert box.uses_dev_key
    assert [entry["event"] for entry in logs] == ["secrets_dev_key_in_use"]
    assert logs[0]["log_level"] == "warning"
    assert SecretBox([dev_key()]).decrypt(box.encrypt(VALUE)).get_secret_value() == VALUE
    assert dev_key() == dev_key()
    Fernet(dev_key())


def test_box_when_a_key_is_not_a_fernet_key_then_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="key #2 is not a Fernet key") as caught:
        SecretBox([generate_key(), "not-a-key-sekrit"])
    assert "sekrit" not in str(caught.value)
    with pytest.raises(ValueError, match="at least one key"):
        SecretBox([" "])


def test_repr_when_printed_then_no_key() -> None:
    key = generate_key()
    text = repr(SecretBox([key, generate_key()]))
    assert key not in text
    assert text.startswith("SecretBox(keys=2, key_version=")
