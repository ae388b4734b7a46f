"""Users, registration, login and API keys, as OPEX's auth gateway and api service do them
(auth-gateway `RegisterService.kt`, api-app `APIKeyController.kt`).

Registration: `register` (username = email or mobile) creates a disabled user and an OTP
(re-registering a still-disabled user issues a new OTP; an enabled one: 5022); `verify`
(username, otp) gives a one-time register token (wrong OTP: 5005, expired: 5017);
`confirm` (password, token) enables the user, gives it the `LEVEL_1` role and, through the
`on_created` hook, its zero wallets (wrong token: 5016, already enabled: 1002).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .auth import ApiKeyRecord, Principal
from .domain.errors import (
    APIKeyLimitReached,
    BadRequest,
    ExpiredOTP,
    InvalidOTP,
    InvalidRegisterToken,
    InvalidRequestParam,
    InvalidUsername,
    UserAlreadyExists,
    UsernameOrPasswordIsIncorrect,
)

__all__ = ["MAX_API_KEYS", "User", "UserStore", "username_type"]

MAX_API_KEYS = 10
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MOBILE = re.compile(r"\+?[0-9]{7,15}")


def username_type(username: str) -> str:
    """OPEX's `Username.create`: EMAIL or MOBILE (OTP by EMAIL or SMS); else 5014."""
    if _EMAIL.fullmatch(username):
        return "EMAIL"
    if _MOBILE.fullmatch(username):
        return "MOBILE"
    raise InvalidUsername()


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)


@dataclass(slots=True)
class User:
    uuid: str
    username: str
    first_name: str | None = None
    last_name: str | None = None
    enabled: bool = False
    roles: set[str] = field(default_factory=set)
    salt: bytes = b""
    password_hash: bytes = b""
    otp: str | None = None
    otp_expires: float = 0.0

    def principal(self) -> Principal:
        return Principal(self.uuid, self.username, frozenset(self.roles))

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and hmac.compare_digest(
            _hash(password, self.salt), self.password_hash
        )

    def set_password(self, password: str) -> None:
        self.salt = secrets.token_bytes(16)
        self.password_hash = _hash(password, self.salt)


class UserStore:
    def __init__(
        self,
        *,
        otp_lifetime_s: float = 300,
        clock: Callable[[], float] = time.time,
        on_created: Callable[[User], None] = lambda user: None,
    ) -> None:
        self.by_uuid: dict[str, User] = {}
        self.by_username: dict[str, User] = {}
        self.api_keys: dict[str, ApiKeyRecord] = {}
        self._register_tokens: dict[str, tuple[str, float]] = {}
        self.otp_lifetime_s = otp_lifetime_s
        self._clock = clock
        self._on_created = on_created

    # -- users ------------------------------------------------------------------------------

    def create_enabled(
        self,
        username: str,
        password: str,
        *,
        roles: Iterable[str] = ("LEVEL_1",),
        user_uuid: str | None = None,
    ) -> User:
        """A ready user (the pre-created admin, test fixtures): as if registered."""
        user = User(user_uuid or str(uuid.uuid4()), username, enabled=True, roles=set(roles))
        user.set_password(password)
        self.by_uuid[user.uuid] = user
        self.by_username[username.lower()] = user
        self._on_created(user)
        return user

    def get(self, user_uuid: str) -> User | None:
        return self.by_uuid.get(user_uuid)

    def register(self, username: str, first_name: str | None, last_name: str | None) -> str:
        """Start registration; returns the OTP."""
        username_type(username)
        user = self.by_username.get(username.lower())
        if user is not None and user.enabled:
            raise UserAlreadyExists()
        if user is None:
            user = User(str(uuid.uuid4()), username, first_name, last_name)
            self.by_uuid[user.uuid] = user
            self.by_username[username.lower()] = user
        user.otp = f"{secrets.randbelow(1_000_000):06d}"
        user.otp_expires = self._clock() + self.otp_lifetime_s
        return user.otp

    def verify(self, username: str, otp: str) -> str:
        """Check the registration OTP; returns the register token for `confirm`."""
        username_type(username)
        user = self.by_username.get(username.lower())
        if user is None or user.otp is None or not hmac.compare_digest(user.otp, otp):
            raise InvalidOTP()
        if user.otp_expires < self._clock():
            raise ExpiredOTP()
        user.otp = None
        token = secrets.token_urlsafe(32)
        self._register_tokens[token] = (user.uuid, self._clock() + self.otp_lifetime_s)
        return token

    def confirm(self, token: str, password: str) -> User:
        """Finish registration: set the password, enable the user, create its wallets."""
        entry = self._register_tokens.pop(token, None)
        if entry is None or entry[1] < self._clock():
            raise InvalidRegisterToken()
        user = self.by_uuid.get(entry[0])
        if user is None or user.enabled:
            raise BadRequest()
        if not password:
            raise InvalidRequestParam("password")
        user.set_password(password)
        user.enabled = True
        user.roles.add("LEVEL_1")
        self._on_created(user)
        return user

    def login(self, username: str, password: str) -> User:
        user = self.by_username.get(username.lower())
        if user is None or not user.enabled or not user.check_password(password):
            raise UsernameOrPasswordIsIncorrect()
        return user

    # -- API keys ---------------------------------------------------------------------------

    def create_api_key(
        self,
        user: User,
        *,
        label: str | None,
        allowed_ips: Iterable[str] | None,
        allowed_endpoints: Iterable[str] | None,
        key_id: str | None = None,
        secret: str | None = None,
    ) -> ApiKeyRecord:
        """A new key for `user`; the secret (Base64 of 48 random bytes) is in the record."""
        if sum(1 for k in self.api_keys.values() if k.user == user.uuid) >= MAX_API_KEYS:
            raise APIKeyLimitReached()
        key_id = key_id if key_id and key_id.strip() else str(uuid.uuid4())
        if key_id in self.api_keys:
            raise BadRequest(f"API key {key_id} already exists")
        record = ApiKeyRecord(
            key_id=key_id,
            secret=secret or base64.b64encode(secrets.token_bytes(48)).decode("ascii"),
            user=user.uuid,
            label=label,
            allowed_ips=frozenset(allowed_ips) if allowed_ips else None,
            allowed_endpoints=frozenset(allowed_endpoints) if allowed_endpoints else None,
        )
        self.api_keys[key_id] = record
        return record
