"""Test doubles for user_sync's unit tests: an in-memory OPEX with OPEX's registration,
login and API-key rules (the sandbox's), faults on demand, and an in-memory store for
the worker."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from services.user_sync.domain.provisioning import (
    Decision,
    Origin,
    Outcome,
    Provisioning,
    Step,
)
from shared.contracts import Envelope
from shared.opex import (
    Account,
    ActionToken,
    ApiKey,
    ApiKeySecret,
    Balance,
    Bearer,
    Health,
    OpexAmbiguous,
    OpexRefused,
    OpexUnauthenticated,
    OpexUnavailable,
    Registration,
    Token,
)


def jwt_for(subject: str) -> str:
    """An unsigned JWT-shaped token whose ``sub`` is ``subject``."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'sub': subject})}.{secrets.token_urlsafe(16)}"


def refused(code: int, name: str, message: str | None = None, status: int = 400) -> OpexRefused:
    return OpexRefused(message or name, code=code, http_status=status, name=name)


@dataclass
class FakeUser:
    uuid: str
    username: str
    enabled: bool = False
    password: str | None = None
    otp: str | None = None


@dataclass
class FakeKey:
    key_id: str
    secret: str
    user: str
    enabled: bool = True


class FakeOpex:
    """OPEX in memory. ``fail(method, error, times)`` makes the next calls of
    ``method`` raise ``error`` before doing anything; ``lose_answer(method)`` makes the
    next one take effect and then raise `OpexAmbiguous` (a lost answer)."""

    def __init__(self, *, assets: Sequence[str] = ("USDT", "BTC", "ETH")) -> None:
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, str] = {}
        self.access: dict[str, str] = {}
        self.keys: dict[str, FakeKey] = {}
        self.assets = list(assets)
        self.balances: dict[tuple[str, str], Decimal] = {}
        self.calls: list[str] = []
        self.secrets_handed_out: list[str] = []
        self._faults: dict[str, list[BaseException]] = {}
        self._lost: dict[str, int] = {}
        self.ignore_key_id = False

    # -- test controls -------------------------------------------------------------------

    def fail(self, method: str, error: BaseException, times: int = 1) -> None:
        self._faults.setdefault(method, []).extend([error] * times)

    def lose_answer(self, method: str, times: int = 1) -> None:
        self._lost[method] = self._lost.get(method, 0) + times

    def add_enabled(self, username: str, password: str) -> FakeUser:
        user = FakeUser(str(uuid.uuid4()), username, enabled=True, password=password)
        self.users[username.lower()] = user
        return user

    def keys_of(self, user_uuid: str) -> list[FakeKey]:
        return [k for k in self.keys.values() if k.user == user_uuid]

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        queue = self._faults.get(method)
        if queue:
            raise queue.pop(0)

    def _leave(self, method: str) -> None:
        if self._lost.get(method):
            self._lost[method] -= 1
            raise OpexAmbiguous("ReadTimeout after the request was sent", method="POST", path="/x")

    def _handout(self, value: str) -> str:
        self.secrets_handed_out.append(value)
        return value

    # -- the port ------------------------------------------------------------------------

    async def register(
        self, username: str, *, first_name: str | None = None, last_name: str | None = None
    ) -> Registration:
        self._enter("register")
        if "@" not in username or username.startswith("bad"):
            raise refused(5014, "InvalidUsername")
        user = self.users.get(username.lower())
        if user is not None and user.enabled:
            raise refused(5022, "UserAlreadyExists")
        if user is None:
            user = FakeUser(str(uuid.uuid4()), username)
            self.users[username.lower()] = user
        user.otp = self._handout(f"{secrets.randbelow(1_000_000):06d}x")
        self._leave("register")
        return Registration(otp=SecretStr(user.otp), receiver=username, receiver_type="EMAIL")

    async def verify(self, username: str, otp: SecretStr) -> ActionToken:
        self._enter("verify")
        user = self.users.get(username.lower())
        if user is None or user.otp is None or user.otp != otp.get_secret_value():
            raise refused(5005, "InvalidOTP", status=403)
        user.otp = None
        token = self._handout(secrets.token_urlsafe(24))
        self.tokens[token] = user.uuid
        self._leave("verify")
        return ActionToken(token=SecretStr(token))

    async def confirm(self, token: SecretStr, password: SecretStr) -> Token | None:
        self._enter("confirm")
        owner = self.tokens.pop(token.get_secret_value(), None)
        if owner is None:
            raise refused(5016, "InvalidRegisterToken")
        user = next(u for u in self.users.values() if u.uuid == owner)
        if user.enabled:
            raise refused(1002, "BadRequest")
        user.enabled = True
        user.password = password.get_secret_value()
        for asset in self.assets:
            self.balances[(user.uuid, asset)] = Decimal(0)
        self._leave("confirm")
        return None

    async def login(self, username: str, password: SecretStr) -> Token:
        self._enter("login")
        user = self.users.get(username.lower())
        if user is None or not user.enabled or user.password != password.get_secret_value():
            raise refused(5021, "UsernameOrPasswordIsIncorrect")
        access = self._handout(jwt_for(user.uuid))
        self.access[access] = user.uuid
        return Token(access_token=SecretStr(access), expires_in=3600)

    async def create_api_key(
        self, bearer: Bearer, label: str, *, api_key_id: str | None = None
    ) -> ApiKeySecret:
        self._enter("create_api_key")
        owner = self.access.get(bearer.token.get_secret_value())
        if owner is None:
            raise OpexUnauthenticated(None, http_status=401)
        if len(self.keys_of(owner)) >= 10:
            raise refused(7007, "APIKeyLimitReached")
        key_id = api_key_id if api_key_id and not self.ignore_key_id else str(uuid.uuid4())
        if key_id in self.keys:
            raise refused(1002, "BadRequest", f"API key {key_id} already exists")
        secret = self._handout(secrets.token_urlsafe(32))
        self.keys[key_id] = FakeKey(key_id, secret, owner)
        self._leave("create_api_key")
        return ApiKeySecret(api_key_id=key_id, secret=SecretStr(secret), label=label)

    async def account(self, creds: ApiKey) -> Account:
        self._enter("account")
        key = self.keys.get(creds.key)
        if key is None or not key.enabled:
            raise OpexUnauthenticated(None, http_status=401)
        if key.secret != creds.secret.get_secret_value():
            raise refused(1025, "InvalidSignature")
        balances = tuple(
            Balance(asset=asset, free=amount, locked=Decimal(0))
            for (user, asset), amount in self.balances.items()
            if user == key.user
        )
        return Account(balances=balances)

    async def health(self) -> Health:
        self._enter("health")
        return Health(status="UP")


def down() -> OpexUnavailable:
    return OpexUnavailable("HTTP 503", http_status=503, method="POST", path="/x")


def new_user(email: str = "ada@example.com", user_id: str = "42") -> Provisioning:
    return Provisioning(user_id=user_id, email=email, origin=Origin(uuid.uuid4(), uuid.uuid4()))


@dataclass
class Saved:
    before: Provisioning
    decision: Decision
    messages: list[Envelope[Any]]


@dataclass
class FakeStore:
    """The worker's side of the store, in memory."""

    saved: list[Saved] = field(default_factory=list)
    lose_lease_at: Step | None = None
    released: int = 0
    deferred: list[tuple[str, str]] = field(default_factory=list)

    async def save(
        self,
        before: Provisioning,
        decision: Decision,
        messages: Sequence[Envelope[Any]] = (),
    ) -> Provisioning | None:
        if self.lose_lease_at is not None and decision.state.step is self.lose_lease_at:
            return None
        self.saved.append(Saved(before, decision, list(messages)))
        return decision.state.evolve(revision=before.revision + 1)

    async def release_leases(self) -> int:
        self.released += 1
        return 0

    async def claim(self, limit: int) -> list[Provisioning]:
        return []

    async def defer(self, user_id: str, delay_s: float, *, error: str) -> None:
        self.deferred.append((user_id, error))

    @property
    def steps(self) -> list[Step]:
        return [s.decision.state.step for s in self.saved]

    @property
    def outcomes(self) -> list[Outcome]:
        return [s.decision.outcome for s in self.saved]
