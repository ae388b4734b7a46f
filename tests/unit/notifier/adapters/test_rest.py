from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from services.notifier.adapters.errors import install_error_handlers
from services.notifier.adapters.rest import rest_router
from services.notifier.adapters.store import AccountSnapshot, Snapshot
from services.notifier.domain.auth import AuthError, AuthFailure, Identity


class Verifier:
    async def verify(self, token: str) -> Identity:
        if token == "good":
            return Identity("42", datetime(2030, 1, 1, tzinfo=UTC))
        if token == "down":
            raise AuthError(AuthFailure.UNAVAILABLE, "keys unavailable")
        raise AuthError(AuthFailure.INVALID, "bad signature")


class Store:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def orders_snapshot(self, user_id: str, **kwargs: Any) -> Snapshot:
        self.calls.append((user_id, kwargs))
        return Snapshot("e1", 12, [{"id": "c-1", "status": "accepted", "seq": 12}])

    async def positions_snapshot(self, user_id: str, **kwargs: Any) -> Snapshot:
        self.calls.append((user_id, kwargs))
        return Snapshot("e1", 12, [])

    async def account_snapshot(self, user_id: str) -> AccountSnapshot:
        return AccountSnapshot(
            "e1", 12, [{"asset": "USDT", "free": "1", "locked": "0"}], None, None
        )


def client(store: Store) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(rest_router(store, Verifier()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


AUTH = {"Authorization": "Bearer good"}


async def test_orders_when_authorised_then_items_with_stream_position() -> None:
    store = Store()
    async with client(store) as http:
        response = await http.get(
            "/api/trading/orders",
            params={"symbol": "BTCUSDT", "status": "open", "limit": 5},
            headers=AUTH,
        )
    assert response.status_code == 200
    assert response.json() == {
        "seq": 12,
        "epoch": "e1",
        "items": [{"id": "c-1", "status": "accepted", "seq": 12}],
    }
    assert store.calls == [
        ("42", {"symbol": "BTC_USDT", "statuses": None, "terminal": False, "limit": 5})
    ]


async def test_orders_when_status_filters_then_mapped() -> None:
    store = Store()
    async with client(store) as http:
        for status in ("filled", "CLOSED", "all"):
            assert (
                await http.get("/api/trading/orders", params={"status": status}, headers=AUTH)
            ).status_code == 200
        bad = await http.get("/api/trading/orders", params={"status": "nope"}, headers=AUTH)
        too_many = await http.get("/api/trading/orders", params={"limit": 5000}, headers=AUTH)
        bad_symbol = await http.get("/api/trading/positions", params={"symbol": "??"}, headers=AUTH)
    assert [c[1]["statuses"] for c in store.calls] == [["filled"], None, None]
    assert [c[1]["terminal"] for c in store.calls] == [None, True, None]
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_status"
    assert bad.json()["error"]["field"] == "status"
    assert too_many.status_code == 422
    assert too_many.json()["error"]["field"] == "limit"
    assert bad_symbol.status_code == 422
    assert bad_symbol.json()["error"]["code"] == "invalid_symbol"


async def test_snapshots_when_token_missing_or_bad_then_401_and_keys_down_503() -> None:
    async with client(Store()) as http:
        missing = await http.get("/api/trading/positions")
        bad = await http.get("/api/trading/account", headers={"Authorization": "Bearer forged"})
        basic = await http.get("/api/trading/account", headers={"Authorization": "Basic Zm9v"})
        down = await http.get("/api/trading/account", headers={"Authorization": "Bearer down"})
    assert [r.status_code for r in (missing, bad, basic, down)] == [401, 401, 401, 503]
    assert bad.json() == {
        "error": {"code": "invalid_token", "message": "bad signature", "field": None}
    }
    assert down.json()["error"]["code"] == "unavailable"
    assert bad.headers["www-authenticate"] == "Bearer"


async def test_account_when_authorised_then_balances_and_position() -> None:
    async with client(Store()) as http:
        body = (await http.get("/api/trading/account", headers=AUTH)).json()
    assert body["seq"] == 12
    assert body["balances"][0]["asset"] == "USDT"
