"""What each call sends and how each answer is read, on both surfaces."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from shared.opex import (
    ApiKey,
    Bearer,
    OpexClient,
    OpexRefused,
    OpexSettings,
    OrderStatus,
    OrderType,
    Side,
    Surface,
    TimeInForce,
)
from shared.opex.testing import MockOpex, opex_json

CREDS = ApiKey("k", SecretStr("s"))
NOW = 1_700_000_000_000

ORDER = {
    "symbol": "BTCUSDT",
    "ouid": "o-1",
    "orderId": 42,
    "orderListId": -1,
    "clientOrderId": "",
    "price": Decimal("30000.123456789012345678"),
    "origQty": Decimal("0.5"),
    "executedQty": Decimal("0.2"),
    "cummulativeQuoteQty": Decimal("6000.02"),
    "status": "PARTIALLY_FILLED",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "SELL",
    "time": "2026-01-02T03:04:05.678+00:00",
    "updateTime": 1767323045678,
    "isWorking": True,
    "origQuoteOrderQty": 0,
}
TRADE = {
    "symbol": "BTCUSDT",
    "id": 9,
    "orderId": 42,
    "orderListId": -1,
    "price": Decimal("30000"),
    "qty": Decimal("0.2"),
    "quoteQty": Decimal("6000"),
    "commission": Decimal("0.0002"),
    "commissionAsset": "BTC",
    "time": "2026-01-02T03:04:05.678",
    "isBuyer": False,
    "isMaker": True,
    "isBestMatch": True,
}


def query(request: httpx.Request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())


@pytest.fixture
def mock() -> MockOpex:
    return MockOpex()


async def test_place_order_on_v3_is_a_form_post_with_a_timestamp(mock: MockOpex) -> None:
    mock.on(
        "POST",
        "/v3/order",
        json={"symbol": "BTCUSDT", "orderId": -1, "orderListId": -1, "transactTime": NOW},
    )
    async with mock.client(clock=lambda: NOW) as opex:
        ack = await opex.place_order(
            CREDS,
            "BTC_USDT",
            Side.SELL,
            OrderType.LIMIT,
            Decimal("1E+1"),
            Decimal("30000.00"),
            TimeInForce.IOC,
        )
    sent = mock.last
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert query(sent) == [
        ("symbol", "BTCUSDT"),
        ("side", "SELL"),
        ("type", "LIMIT"),
        ("timeInForce", "IOC"),
        ("quantity", "10"),
        ("price", "30000"),
        ("timestamp", str(NOW)),
    ]
    assert ack.symbol == "BTC_USDT"
    assert ack.order_id == -1
    assert ack.transact_time == datetime.fromtimestamp(NOW / 1000, tz=UTC)


async def test_place_order_natively_has_no_timestamp_and_the_native_symbol(mock: MockOpex) -> None:
    mock.on(
        "POST",
        "/opex/v1/order",
        json={"symbol": "BTC_USDT", "date": "2026-01-01T00:00:00.000+00:00"},
    )
    async with mock.client(surface="opex") as opex:
        ack = await opex.place_order(
            CREDS,
            "btcusdt",
            "BUY",
            "MARKET",
            None,
            quote_order_qty=Decimal("25.5"),
            time_in_force="IOC",
        )
    assert query(mock.last) == [
        ("symbol", "BTC_USDT"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("timeInForce", "IOC"),
        ("quoteOrderQty", "25.5"),
    ]
    assert ack.transact_time == datetime(2026, 1, 1, tzinfo=UTC)


async def test_stop_price_is_sent(mock: MockOpex) -> None:
    mock.on("POST", "/v3/order", json={"symbol": "BTCUSDT"})
    async with mock.client() as opex:
        await opex.place_order(
            CREDS, "BTC_USDT", "BUY", "STOP_LOSS_LIMIT", Decimal(1), Decimal(2), "GTC", Decimal(3)
        )
    assert ("stopPrice", "3") in query(mock.last)


async def test_bad_enum_is_refused_before_anything_is_sent(mock: MockOpex) -> None:
    async with mock.client() as opex:
        with pytest.raises(ValueError, match="HOLD"):
            await opex.place_order(CREDS, "BTC_USDT", "HOLD", "LIMIT", Decimal(1))
    assert mock.requests == []


@pytest.mark.parametrize(
    ("surface", "method", "path", "extra"),
    [
        ("v3", "DELETE", "/v3/order", [("timestamp", str(NOW))]),
        ("opex", "PUT", "/opex/v1/order", []),
    ],
)
async def test_cancel_order(
    mock: MockOpex, surface: Surface, method: str, path: str, extra: list[tuple[str, str]]
) -> None:
    mock.on(
        method,
        path,
        json={
            "symbol": "X",
            "orderId": 42,
            "orderListId": -1,
            "status": "CANCELED",
            "side": "SELL",
        },
    )
    async with mock.client(surface=surface, clock=lambda: NOW) as opex:
        ack = await opex.cancel_order(CREDS, "BTC_USDT", 42)
    symbol = "BTCUSDT" if surface == "v3" else "BTC_USDT"
    assert query(mock.last) == [("symbol", symbol), ("orderId", "42"), *extra]
    assert mock.last.method == method
    assert ack.status is OrderStatus.CANCELED
    assert ack.symbol == "BTC_USDT"


@pytest.mark.parametrize(("surface", "path"), [("v3", "/v3/order"), ("opex", "/opex/v1/order")])
async def test_get_order_reads_decimals_exactly(
    mock: MockOpex, surface: Surface, path: str
) -> None:
    mock.on("GET", path, json=ORDER)
    async with mock.client(surface=surface) as opex:
        order = await opex.get_order(CREDS, "BTC_USDT", 42)
    assert order.price == Decimal("30000.123456789012345678")
    assert isinstance(order.orig_qty, Decimal)
    assert order.remaining_qty == Decimal("0.3")
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.side is Side.SELL
    assert order.symbol == "BTC_USDT"
    assert order.time == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert order.update_time == order.time
    assert order.status.is_open


@pytest.mark.parametrize(
    ("surface", "path"), [("v3", "/v3/openOrders"), ("opex", "/opex/v1/order/open")]
)
async def test_open_orders(mock: MockOpex, surface: Surface, path: str) -> None:
    mock.on("GET", path, json=[ORDER, {**ORDER, "orderId": 43}])
    async with mock.client(surface=surface) as opex:
        orders = await opex.open_orders(CREDS, "BTC_USDT")
    assert [o.order_id for o in orders] == [42, 43]
    # /v3 says it takes a form even on GET; the native surface has no such rule
    expected = "application/x-www-form-urlencoded" if surface == "v3" else None
    assert mock.last.headers.get("Content-Type") == expected


async def test_all_orders_and_my_trades_always_use_v3(mock: MockOpex) -> None:
    mock.on("GET", "/v3/allOrders", json=[ORDER])
    mock.on("GET", "/v3/myTrades", json=[TRADE])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with mock.client(surface="opex", clock=lambda: NOW) as opex:
        orders = await opex.all_orders(CREDS, "BTC_USDT", start_time=start, end_time=NOW, limit=10)
        assert query(mock.last) == [
            ("symbol", "BTCUSDT"),
            ("startTime", "1767225600000"),
            ("endTime", str(NOW)),
            ("limit", "10"),
            ("timestamp", str(NOW)),
        ]
        trades = await opex.my_trades(CREDS, "BTC_USDT", from_id=8, limit=5)
        assert query(mock.last) == [
            ("symbol", "BTCUSDT"),
            ("fromId", "8"),
            ("limit", "5"),
            ("timestamp", str(NOW)),
        ]
    assert orders[0].order_id == 42
    trade = trades[0]
    assert (trade.id, trade.order_id, trade.qty, trade.commission) == (
        9,
        42,
        Decimal("0.2"),
        Decimal("0.0002"),
    )
    assert trade.time == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)  # naive = UTC
    assert trade.symbol == "BTC_USDT"


async def test_naive_datetime_is_refused(mock: MockOpex) -> None:
    async with mock.client() as opex:
        with pytest.raises(ValueError, match="naive"):
            await opex.all_orders(CREDS, "BTC_USDT", start_time=datetime(2026, 1, 1))


async def test_account_and_balances(mock: MockOpex) -> None:
    mock.on(
        "GET",
        "/v3/account",
        json={
            "makerCommission": 0,
            "canTrade": True,
            "updateTime": NOW,
            "accountType": "SPOT",
            "balances": [
                {"asset": "USDT", "free": Decimal("100.5"), "locked": Decimal(2), "withdraw": 0},
                {"asset": "BTC", "free": 0, "locked": 0, "withdraw": 0},
            ],
            "permissions": ["SPOT"],
        },
    )
    mock.on(
        "GET",
        "/opex/v1/wallet/asset",
        json=[{"asset": "USDT", "free": Decimal("100.5"), "locked": 2, "withdrawing": 1}],
    )
    async with mock.client() as opex:
        account = await opex.account(CREDS)
        assert account.balance("usdt").total == Decimal("102.5")
        assert account.balance("ETH").free == 0
        assert [b.asset for b in await opex.balances(CREDS)] == ["USDT", "BTC"]
        native = await opex.using("opex").balances(CREDS)
        assert native[0].withdrawing == 1
        assert await opex.wallet_assets(CREDS, "usdt") == native
        assert query(mock.last) == [("symbol", "USDT")]


@pytest.mark.parametrize(
    ("surface", "prefix", "symbol"),
    [("v3", "/v3", "BTCUSDT"), ("opex", "/opex/v1/market", "BTC_USDT")],
)
async def test_market_data(mock: MockOpex, surface: Surface, prefix: str, symbol: str) -> None:
    mock.on(
        "GET",
        f"{prefix}/depth",
        json={
            "lastUpdateId": 5,
            "bids": [[Decimal("29999.9"), Decimal("0.1")]],
            "asks": [[Decimal("30000.1"), Decimal("0.2")], [Decimal("30001"), Decimal(1)]],
        },
    )
    mock.on(
        "GET",
        f"{prefix}/trades",
        json=[
            {
                "id": 1,
                "price": Decimal(30000),
                "qty": Decimal("0.1"),
                "quoteQty": Decimal(3000),
                "time": NOW,
                "isBuyerMaker": False,
                "isBestMatch": True,
            }
        ],
    )
    mock.on(
        "GET",
        f"{prefix}/ticker/24h",
        json=[{"symbol": symbol, "lastPrice": Decimal("30000.5"), "volume": 3, "openTime": 0}],
    )
    mock.on("GET", f"{prefix}/ticker/price", json=[{"symbol": symbol, "price": "30000.5"}])
    async with mock.client(surface=surface) as opex:
        depth = await opex.depth("BTC_USDT", 5)
        assert query(mock.last) == [("symbol", symbol), ("limit", "5")]
        trades = await opex.trades("BTC_USDT", limit=3)
        assert query(mock.last) == [("symbol", symbol), ("limit", "3")]
        tickers = await opex.ticker_24h("BTC_USDT")
        prices = await opex.ticker_price()
        assert query(mock.last) == []
    assert depth.symbol == "BTC_USDT"
    assert depth.bids[0].price == Decimal("29999.9")
    assert [a.quantity for a in depth.asks] == [Decimal("0.2"), Decimal(1)]
    assert trades[0].qty == Decimal("0.1")
    assert not trades[0].is_buyer_maker
    assert tickers[0].symbol == "BTC_USDT"
    assert tickers[0].last_price == Decimal("30000.5")
    assert prices[0].symbol == "BTC_USDT"
    assert prices[0].price == Decimal("30000.5")
    for request in mock.requests:
        assert "Authorization" not in request.headers


async def test_market_data_uses_the_market_url() -> None:
    mock = MockOpex(OpexSettings(api_url="http://api.test", market_url="http://market.test/"))
    mock.on("GET", "/v3/ticker/price", json=[])
    async with mock.client() as opex:
        await opex.ticker_price()
    assert mock.last.url.host == "market.test"


EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": NOW,
    "rateLimits": [],
    "symbols": [
        {
            "symbol": "XBTUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 6,
            "quoteAsset": "USDT",
            "quoteAssetPrecision": 2,
            "orderTypes": ["LIMIT", "MARKET"],
        }
    ],
}


async def test_exchange_info_teaches_the_v3_aliases(mock: MockOpex) -> None:
    mock.on("GET", "/v3/exchangeInfo", json=EXCHANGE_INFO)
    mock.on("GET", "/v3/ticker/price", json=[{"symbol": "XBTUSDT", "price": None}])
    async with mock.client() as opex:
        assert opex.v3_symbol("BTC_USDT") == "BTCUSDT"
        info = await opex.exchange_info()
        assert opex.v3_symbol("BTC_USDT") == "XBTUSDT"
        assert opex.native_symbol("XBTUSDT") == "BTC_USDT"
        prices = await opex.ticker_price("BTC_USDT")
    assert query(mock.last) == [("symbol", "XBTUSDT")]
    assert prices[0].symbol == "BTC_USDT"
    assert prices[0].price is None
    symbol = info.symbols[0]
    assert (symbol.native, symbol.quantity_step, symbol.price_step) == (
        "BTC_USDT",
        Decimal("0.000001"),
        Decimal("0.01"),
    )


async def test_pairs_with_steps(mock: MockOpex) -> None:
    mock.on(
        "GET",
        "/opex/v1/market/pair",
        json=[
            {
                "pair": "btc_usdt",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "isAvailable": True,
                "minOrder": Decimal(10),
                "maxOrder": Decimal(100000),
                "orderTypes": "LIMIT_ORDER,MARKET_ORDER",
            }
        ],
    )
    mock.on("GET", "/v3/exchangeInfo", json=EXCHANGE_INFO)
    async with mock.client() as opex:
        (pair,) = await opex.pairs()
        (bare,) = await opex.pairs(with_steps=False)
    assert pair.symbol == "BTC_USDT"
    assert pair.is_available
    assert (pair.min_order, pair.max_order) == (Decimal(10), Decimal(100000))
    assert pair.order_types == ("LIMIT", "MARKET")
    assert (pair.price_step, pair.quantity_step) == (Decimal("0.01"), Decimal("0.000001"))
    assert bare.price_step is None


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


async def test_registration_login_and_api_key(mock: MockOpex) -> None:
    access = jwt({"sub": "user-uuid-1"})
    mock.on(
        "POST",
        "/opex/v1/user/public/register",
        json={"otp": "123456", "otpReceiver": {"receiver": "a@b.c", "type": "EMAIL"}},
    )
    mock.on("POST", "/opex/v1/user/public/register/verify", json={"token": "action-token"})
    mock.on(
        "POST",
        "/opex/v1/user/public/register/confirm",
        json={
            "access_token": access,
            "expires_in": 300,
            "refresh_token": "r",
            "token_type": "Bearer",
        },
    )
    mock.on(
        "POST",
        "/opex/v1/oauth/protocol/openid-connect/token",
        json={"token": {"access_token": access, "expires_in": 300}, "otp": None, "otpCode": None},
    )
    mock.on(
        "POST",
        "/v1/api-key",
        json={
            "apiKeyId": "kid",
            "label": "bot",
            "enabled": True,
            "allowedIps": None,
            "allowedEndpoints": ["/api/v3/order"],
            "keycloakUsername": "a@b.c",
            "secret": "the-secret",
        },
    )
    async with mock.client() as opex:
        registration = await opex.register("a@b.c", first_name="A", last_name="B")
        assert json.loads(mock.last.content) == {
            "username": "a@b.c",
            "firstName": "A",
            "lastName": "B",
            "captchaType": "INTERNAL",
            "captchaCode": "",
        }
        assert registration.otp is not None
        action = await opex.verify("a@b.c", registration.otp)
        assert json.loads(mock.last.content) == {"username": "a@b.c", "otp": "123456"}
        confirmed = await opex.confirm(action, SecretStr("pw"))
        assert json.loads(mock.last.content) == {
            "password": "pw",
            "token": "action-token",
            "clientId": "web-app",
            "clientSecret": None,
        }
        token = await opex.login("a@b.c", "pw")
        sent_login = json.loads(mock.last.content)
        assert (sent_login["username"], sent_login["password"], sent_login["clientId"]) == (
            "a@b.c",
            "pw",
            "web-app",
        )
        key = await opex.create_api_key(token.bearer(), "bot", allowed_endpoints=["/api/v3/order"])
        assert mock.last.headers["Authorization"] == f"Bearer {access}"
        assert json.loads(mock.last.content) == {
            "apiKeyId": None,
            "label": "bot",
            "allowedIps": None,
            "allowedEndpoints": ["/api/v3/order"],
        }
    assert registration.receiver == "a@b.c"
    assert confirmed is not None
    assert confirmed.subject == token.subject == "user-uuid-1"
    assert confirmed.expires_in == 300
    assert key.api_key_id == "kid"
    assert key.allowed_endpoints == ("/api/v3/order",)
    assert key.credentials() == ApiKey("kid", SecretStr("the-secret"))


async def test_confirm_without_a_client_secret_answers_no_token(mock: MockOpex) -> None:
    mock.on("POST", "/opex/v1/user/public/register/confirm", status=200, content=b"")
    async with mock.client() as opex:
        assert await opex.confirm("action-token", "pw") is None


async def test_login_that_asks_for_an_otp_is_refused(mock: MockOpex) -> None:
    mock.on(
        "POST",
        "/opex/v1/oauth/protocol/openid-connect/token",
        json={"token": None, "otp": {"type": "SMS", "receiver": "+1"}, "otpCode": None},
    )
    async with mock.client() as opex:
        with pytest.raises(OpexRefused) as caught:
            await opex.login("a@b.c", "pw")
    assert caught.value.name == "OTPRequired"


async def test_token_subject_is_none_for_an_opaque_token() -> None:
    from shared.opex import Token

    assert Token(access_token=SecretStr("opaque")).subject is None


async def test_admin_deposit(mock: MockOpex) -> None:
    mock.on(
        "POST",
        "/opex/v1/admin/deposit/manually/1000_USDT/user-1",
        json={"date": NOW, "destUuid": "user-1", "sourceUuid": "1", "amount": {"amount": 1000}},
    )
    async with mock.client() as opex:
        assert opex.admin == ApiKey("sandbox-admin-key", SecretStr("sandbox-admin-secret"))
        assert opex.admin is not None
        result = await opex.deposit(opex.admin, Decimal("1000.00"), "usdt", "user-1")
    body = json.loads(mock.last.content)
    assert body["gatewayUuid"] == "manually"
    assert body["ref"]
    assert result.dest_uuid == "user-1"
    assert result.amount == Decimal(1000)


async def test_pair_settings_go_to_the_matching_gateway() -> None:
    mock = MockOpex(OpexSettings(api_url="http://api.test", matching_gateway_url="http://mg.test"))
    answer = {
        "pair": "BTC_USDT",
        "isAvailable": True,
        "minOrder": 10,
        "maxOrder": 1000,
        "orderTypes": "LIMIT_ORDER",
    }
    mock.on("PUT", "/pair-setting", json=answer)
    mock.on("GET", "/pair-setting/BTC_USDT", json=answer)
    admin = Bearer(SecretStr("admin-token"))
    async with mock.client() as opex:
        setting = await opex.update_pair_setting(
            admin,
            "BTCUSDT",
            is_available=True,
            min_order=Decimal(10),
            max_order=Decimal(1000),
            order_types=["LIMIT", OrderType.STOP_LOSS_LIMIT],
        )
        assert mock.last.url.host == "mg.test"
        assert json.loads(mock.last.content) == {
            "pair": "BTC_USDT",
            "isAvailable": True,
            "minOrder": "10",
            "maxOrder": "1000",
            "orderTypes": "LIMIT_ORDER",
        }
        again = await opex.pair_setting(admin, "BTC_USDT")
    assert setting == again
    assert setting.order_types == ("LIMIT",)


async def test_health(mock: MockOpex) -> None:
    mock.on("GET", "/actuator/health", json={"status": "UP"})
    async with mock.client() as opex:
        assert (await opex.health()).up


async def test_using_shares_the_pool_and_only_the_owner_closes_it() -> None:
    mock = MockOpex()
    mock.on("GET", "/actuator/health", json={"status": "UP"})
    opex = mock.client()
    view = opex.using("opex")
    assert view.surface == "opex"
    assert opex.surface == "v3"
    await view.aclose()
    assert (await opex.health()).up
    await opex.aclose()
    with pytest.raises(RuntimeError):
        await view.health()


def test_symbols() -> None:
    opex = OpexClient(OpexSettings())
    assert opex.native_symbol("btc-usdt") == "BTC_USDT"
    assert opex.native_symbol("ETHUSDT") == "ETH_USDT"
    assert opex.v3_symbol("eth_usdt") == "ETHUSDT"
    with pytest.raises(ValueError, match="not a symbol"):
        opex.native_symbol("???")


def test_mock_json_writes_decimals_exactly() -> None:
    assert opex_json({"p": Decimal("0.10000000000000000001"), "l": [1, "a", None]}) == (
        b'{"p":0.10000000000000000001,"l":[1,"a",null]}'
    )
