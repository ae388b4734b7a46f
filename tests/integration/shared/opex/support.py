"""Helpers of the client's integration tests: the sandbox's switchboard, new users, and
waiting for OPEX's asynchronous listings."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from shared.opex import (
    ApiKey,
    Bearer,
    LegacyApiKey,
    OpexClient,
    OpexSettings,
    Order,
    Token,
)

ADMIN_KEY = "it-admin-key"
ADMIN_SECRET = "it-admin-secret"
LISTING_DELAY_MS = 100
CANCEL_DELAY_MS = 50
RATE_LIMIT = 5
TAKE_NO_ANSWER_DELAY_S = 3.0


@dataclass(frozen=True)
class Sandbox:
    url: str
    config: Any


def settings_for(sandbox: Sandbox, **changes: Any) -> OpexSettings:
    values: dict[str, Any] = {
        "api_url": sandbox.url,
        "api_key": ADMIN_KEY,
        "api_secret": ADMIN_SECRET,
        "timeout": 5,
        **changes,
    }
    return OpexSettings(**values)


class Control:
    """The sandbox's test-only switchboard (`/sandbox/*`), never affected by faults."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def faults(self, **settings: Any) -> None:
        """`PUT /sandbox/faults`: latency_ms, error_rate, take_no_answer_rate / _mode /
        _delay_s, outage, listing_delay_ms, rate_limit_enabled."""
        (await self._http.put("/sandbox/faults", json=settings)).raise_for_status()

    async def clear_faults(self) -> None:
        (await self._http.delete("/sandbox/faults")).raise_for_status()

    async def add_pair(self, symbol: str, price_step: str, quantity_step: str) -> None:
        answer = await self._http.post(
            "/sandbox/pairs",
            json={"symbol": symbol, "priceStep": price_step, "quantityStep": quantity_step},
        )
        answer.raise_for_status()

    async def audit(self) -> list[Any]:
        answer = await self._http.get("/sandbox/audit")
        answer.raise_for_status()
        result: list[Any] = answer.json()
        return result


@dataclass(frozen=True)
class User:
    username: str
    password: str
    token: Token
    key: ApiKey

    @property
    def uuid(self) -> str:
        assert self.token.subject is not None
        return self.token.subject

    @property
    def bearer(self) -> Bearer:
        return self.token.bearer()

    @property
    def legacy(self) -> LegacyApiKey:
        return LegacyApiKey(self.key.key, self.key.secret)


async def new_user(
    opex: OpexClient,
    *,
    usdt: Decimal = Decimal(0),
    btc: Decimal = Decimal(0),
    allowed_endpoints: list[str] | None = None,
) -> User:
    """register -> verify -> confirm -> login -> API key -> admin deposits."""
    username = f"it-{uuid.uuid4().hex[:12]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    registration = await opex.register(username, first_name="Inte", last_name="Gration")
    assert registration.otp is not None, "the sandbox runs with OTP in response"
    action = await opex.verify(username, registration.otp)
    await opex.confirm(action, password)
    token = await opex.login(username, password)
    key = await opex.create_api_key(
        token.bearer(), "integration", allowed_endpoints=allowed_endpoints
    )
    user = User(username, password, token, key.credentials())
    admin = opex.admin
    assert admin is not None
    for asset, amount in (("USDT", usdt), ("BTC", btc)):
        if amount:
            await opex.deposit(admin, amount, asset, user.uuid)
    return user


async def eventually_listed(
    opex: OpexClient,
    creds: ApiKey | LegacyApiKey | Bearer,
    symbol: str,
    *,
    price: Decimal,
    timeout_s: float = 5.0,
) -> Order:
    """The order at ``price`` once OPEX lists it (OPEX gives no id on submit)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        for order in await opex.all_orders(creds, symbol):
            if order.price == price:
                return order
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no order at {price} listed within {timeout_s} s")
        await asyncio.sleep(0.05)
