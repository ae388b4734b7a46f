"""Helpers for the sandbox's HTTP tests: a newcomer's calls made by hand (no client
library), with OPEX's signing computed here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn

from services.opex_sandbox.app import create_app
from services.opex_sandbox.config import SandboxConfig

ADMIN_KEY = "it-admin-key"
ADMIN_SECRET = "it-admin-secret"
ADMIN = {"X-API-KEY": ADMIN_KEY, "X-API-SECRET": ADMIN_SECRET}
LISTING_DELAY_MS = 40
CANCEL_DELAY_MS = 20


def config(**changes: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "market_maker": False,
        "listing_delay_ms": LISTING_DELAY_MS,
        "cancel_delay_ms": CANCEL_DELAY_MS,
        "admin_api_key": ADMIN_KEY,
        "admin_api_secret": ADMIN_SECRET,
        "take_no_answer_delay_s": 2.0,
        "seed": 7,
    } | changes
    return SandboxConfig(**values)


def decimals(response: httpx.Response) -> Any:
    """The JSON of an answer, numbers as Decimal (OPEX sends money as JSON numbers)."""
    return json.loads(response.content, parse_float=Decimal, parse_int=Decimal)


def signature(secret: str, method: str, path: str, query: str, body_hash: str, ts: int) -> str:
    canonical = f"{method}\n{path}\n{query}\n{body_hash}\n{ts}"
    digest = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class User:
    uuid: str
    username: str
    password: str
    access_token: str
    key_id: str
    secret: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def legacy(self) -> dict[str, str]:
        return {"X-API-KEY": self.key_id, "X-API-SECRET": self.secret}

    def signed(
        self,
        method: str,
        path: str,
        query: str,
        *,
        ts: int | None = None,
        body_hash: str = "",
        sign_path: str | None = None,
    ) -> dict[str, str]:
        """Headers for a signed request to `path` (signed as `/api` + the route)."""
        ts = int(time.time() * 1000) if ts is None else ts
        route = path[4:] if path.startswith("/api/") else path
        headers = {
            "X-API-KEY": self.key_id,
            "X-API-TIMESTAMP": str(ts),
            "X-API-SIGNATURE": signature(
                self.secret, method, sign_path or "/api" + route, query, body_hash, ts
            ),
        }
        if body_hash:
            headers["X-API-BODY-SHA256"] = body_hash
        return headers


class Api:
    """A newcomer's HTTP calls against one sandbox."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def new_user(
        self,
        *,
        usdt: Decimal | int = 0,
        btc: Decimal | int = 0,
        eth: Decimal | int = 0,
        allowed_ips: list[str] | None = None,
        allowed_endpoints: list[str] | None = None,
    ) -> User:
        """register -> verify -> confirm -> login -> API key -> admin deposits."""
        username = f"it-{uuid.uuid4().hex[:10]}@example.com"
        password = uuid.uuid4().hex
        r = await self.http.post(
            "/opex/v1/user/public/register",
            json={"username": username, "firstName": "It", "captchaCode": "x"},
        )
        assert r.status_code == 200, r.text
        registration = r.json()
        assert registration["otpReceiver"] == {"receiver": username, "type": "EMAIL"}
        r = await self.http.post(
            "/opex/v1/user/public/register/verify",
            json={"username": username, "otp": registration["otp"]},
        )
        assert r.status_code == 200, r.text
        r = await self.http.post(
            "/opex/v1/user/public/register/confirm",
            json={"password": password, "token": r.json()["token"], "clientId": "web-app"},
        )
        assert (r.status_code, r.content) == (200, b"")
        r = await self.http.post(
            "/opex/v1/oauth/protocol/openid-connect/token",
            json={"username": username, "password": password, "clientId": "web-app"},
        )
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        access = token["access_token"]
        claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
        r = await self.http.post(
            "/v1/api-key",
            json={
                "label": "it",
                "allowedIps": allowed_ips,
                "allowedEndpoints": allowed_endpoints,
            },
            headers={"Authorization": f"Bearer {access}"},
        )
        assert r.status_code == 200, r.text
        key = r.json()
        user = User(claims["sub"], username, password, access, key["apiKeyId"], key["secret"])
        for asset, amount in (("USDT", usdt), ("BTC", btc), ("ETH", eth)):
            if amount:
                await self.deposit(user, asset, Decimal(amount))
        return user

    async def deposit(self, user: User, asset: str, amount: Decimal) -> httpx.Response:
        r = await self.http.post(
            f"/opex/v1/admin/deposit/manually/{amount}_{asset}/{user.uuid}",
            json={"ref": uuid.uuid4().hex, "gatewayUuid": "manually"},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        return r

    async def v3(
        self, method: str, route: str, user: User, *, prefix: str = "", **params: Any
    ) -> httpx.Response:
        """A signed `/v3` call: parameters in the query string, `timestamp` added."""
        params.setdefault("timestamp", int(time.time() * 1000))
        query = urlencode({k: v for k, v in params.items() if v is not None})
        headers = user.signed(method, route, query) | {
            "Content-Type": "application/x-www-form-urlencoded"
        }
        return await self.http.request(method, f"{prefix}{route}?{query}", headers=headers)

    async def native(
        self, method: str, route: str, user: User, *, prefix: str = "", **params: Any
    ) -> httpx.Response:
        """A `/opex/v1` call with the user's bearer token."""
        query = urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{prefix}{route}" + (f"?{query}" if query else "")
        return await self.http.request(method, url, headers=user.bearer)

    async def place(
        self, user: User, side: str, qty: str, price: str | None, *, symbol: str = "BTCUSDT",
        type: str = "LIMIT", tif: str | None = "GTC",
    ) -> httpx.Response:  # fmt: skip
        return await self.v3(
            "POST", "/v3/order", user, symbol=symbol, side=side, type=type,
            timeInForce=tif, quantity=qty, price=price,
        )  # fmt: skip

    async def all_orders(self, user: User, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
        r = await self.v3("GET", "/v3/allOrders", user, symbol=symbol)
        assert r.status_code == 200, r.text
        orders: list[dict[str, Any]] = decimals(r)
        return orders

    async def listed(
        self, user: User, *, price: Decimal, count: int = 1, timeout_s: float = 3.0
    ) -> list[dict[str, Any]]:
        """The user's orders at `price` once `count` of them are listed."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            orders = [o for o in await self.all_orders(user) if o["price"] == price]
            if len(orders) >= count:
                return orders
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no order at {price} listed within {timeout_s} s")
            await asyncio.sleep(0.01)

    async def faults(self, **settings: Any) -> None:
        r = await self.http.put("/sandbox/faults", json=settings)
        assert r.status_code == 200, r.text

    async def audit(self) -> list[str]:
        await self.http.post("/sandbox/flush")
        problems: list[str] = (await self.http.get("/sandbox/audit")).json()
        return problems


@contextmanager
def live_server(cfg: SandboxConfig) -> Iterator[str]:
    """The sandbox served by uvicorn on a free 127.0.0.1 port, in a thread of its own."""
    app = create_app(cfg)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="critical", lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
