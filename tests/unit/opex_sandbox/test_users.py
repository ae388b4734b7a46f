"""Registration, login and API keys (`users.UserStore`)."""

from __future__ import annotations

import base64

import pytest

from services.opex_sandbox.domain.errors import (
    APIKeyLimitReached,
    BadRequest,
    ExpiredOTP,
    InvalidOTP,
    InvalidRegisterToken,
    InvalidUsername,
    OpexError,
    UserAlreadyExists,
    UsernameOrPasswordIsIncorrect,
)
from services.opex_sandbox.users import User, UserStore, username_type


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store() -> tuple[UserStore, Clock, list[str]]:
    clock = Clock()
    created: list[str] = []
    users = UserStore(otp_lifetime_s=60, clock=clock, on_created=lambda u: created.append(u.uuid))
    return users, clock, created


def register(users: UserStore, username: str = "alice@example.com") -> User:
    otp = users.register(username, "Alice", None)
    token = users.verify(username, otp)
    return users.confirm(token, "secret")


def test_registration_when_register_verify_confirm_then_enabled_with_wallets() -> None:
    users, _, created = store()
    otp = users.register("alice@example.com", "Alice", "A")
    assert len(otp) == 6
    assert otp.isdigit()
    assert not users.by_username["alice@example.com"].enabled
    token = users.verify("alice@example.com", otp)
    user = users.confirm(token, "secret")
    assert user.enabled
    assert "LEVEL_1" in user.roles
    assert created == [user.uuid]
    assert users.login("ALICE@example.com", "secret") is user


@pytest.mark.parametrize(("username", "kind"), [("a@b.co", "EMAIL"), ("+989121234567", "MOBILE")])
def test_username_type_when_email_or_mobile_then_kind(username: str, kind: str) -> None:
    assert username_type(username) == kind


@pytest.mark.parametrize("username", ["alice", "a@b", "12", ""])
def test_register_when_username_neither_email_nor_mobile_then_5014(username: str) -> None:
    users, _, _ = store()
    with pytest.raises(InvalidUsername) as err:
        users.register(username, None, None)
    assert err.value.code == 5014


def test_register_when_already_enabled_then_5022_and_when_pending_then_new_otp() -> None:
    users, _, _ = store()
    users.register("bob@example.com", None, None)
    again = users.register("bob@example.com", None, None)  # still pending: a new OTP
    users.confirm(users.verify("bob@example.com", again), "pw")
    with pytest.raises(UserAlreadyExists) as err:
        users.register("bob@example.com", None, None)
    assert err.value.code == 5022


def test_verify_when_otp_wrong_or_expired_then_5005_or_5017() -> None:
    users, clock, _ = store()
    otp = users.register("carol@example.com", None, None)
    wrong = "000000" if otp != "000000" else "111111"
    with pytest.raises(InvalidOTP) as err:
        users.verify("carol@example.com", wrong)
    assert (err.value.code, err.value.http_status) == (5005, 403)
    clock.now += 61
    with pytest.raises(ExpiredOTP):
        users.verify("carol@example.com", otp)


def test_confirm_when_token_unknown_reused_or_user_enabled_then_refused() -> None:
    users, _, _ = store()
    with pytest.raises(InvalidRegisterToken) as err:
        users.confirm("nope", "pw")
    assert err.value.code == 5016
    otp = users.register("dan@example.com", None, None)
    token = users.verify("dan@example.com", otp)
    users.confirm(token, "pw")
    with pytest.raises(InvalidRegisterToken):
        users.confirm(token, "pw")  # one use only


def test_login_when_wrong_password_unknown_or_pending_then_5021() -> None:
    users, _, _ = store()
    register(users, "erin@example.com")
    users.register("frank@example.com", None, None)
    for username, password in (
        ("erin@example.com", "wrong"),
        ("nobody@example.com", "secret"),
        ("frank@example.com", ""),
    ):
        with pytest.raises(UsernameOrPasswordIsIncorrect) as err:
            users.login(username, password)
        assert err.value.code == 5021


def test_create_api_key_when_created_then_base64_secret_and_limit_of_ten() -> None:
    users, _, _ = store()
    user = register(users)
    first = users.create_api_key(user, label="a", allowed_ips=None, allowed_endpoints=None)
    assert len(base64.b64decode(first.secret)) == 48
    assert first.user == user.uuid
    assert users.api_keys[first.key_id] is first
    named = users.create_api_key(
        user, label=None, allowed_ips=["1.2.3.4"], allowed_endpoints=[], key_id="mine"
    )
    assert (named.key_id, named.allowed_ips, named.allowed_endpoints) == (
        "mine",
        frozenset({"1.2.3.4"}),
        None,
    )
    with pytest.raises(BadRequest):
        users.create_api_key(
            user, label=None, allowed_ips=None, allowed_endpoints=None, key_id="mine"
        )
    for _ in range(8):
        users.create_api_key(user, label=None, allowed_ips=None, allowed_endpoints=None)
    with pytest.raises(APIKeyLimitReached) as err:
        users.create_api_key(user, label=None, allowed_ips=None, allowed_endpoints=None)
    assert isinstance(err.value, OpexError)
