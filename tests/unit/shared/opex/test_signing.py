"""Request signing, checked against an independent implementation of OPEX.md's rule.

The reference below is written from OPEX.md (and OPEX's HmacVerifier) alone, with
hmac/hashlib/base64 directly; it never calls the code under test. One vector is a
literal computed with the openssl command line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from shared.opex import ApiKey, Bearer, LegacyApiKey, OpexAuth, OpexSettings
from shared.opex.testing import MockOpex

SECRET = "test-secret"
KEY = "key-123"
NOW = 1_700_000_000_000


def reference_signature(
    secret: str, method: str, path: str, query: str, body_sha: str, timestamp: int
) -> str:
    message = f"{method}\n{path}\n{query}\n{body_sha}\n{timestamp}"
    mac = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def clock() -> int:
    return NOW


def api_key() -> ApiKey:
    return ApiKey(KEY, SecretStr(SECRET))


def raw_query(request: httpx.Request) -> str:
    return urlsplit(str(request.url)).query


def test_reference_matches_an_openssl_vector() -> None:
    # printf 'GET\n/api/v3/openOrders\nsymbol=BTCUSDT&timestamp=1700000000000\n\n1700000000000'
    #   | openssl dgst -sha256 -hmac 'test-secret' -binary | base64
    expected = "Bj0ykETQVDk8wGhTXR03duOFXzyLoX/vGht2AbLgfpc="
    assert (
        reference_signature(
            SECRET, "GET", "/api/v3/openOrders", "symbol=BTCUSDT&timestamp=1700000000000", "", NOW
        )
        == expected
    )


async def test_open_orders_signature_equals_the_openssl_vector() -> None:
    mock = MockOpex()
    mock.on("GET", "/v3/openOrders", json=[])
    async with mock.client(clock=clock) as opex:
        await opex.open_orders(api_key(), "BTC_USDT")
    sent = mock.last
    assert raw_query(sent) == "symbol=BTCUSDT&timestamp=1700000000000"
    assert sent.headers["X-API-KEY"] == KEY
    assert sent.headers["X-API-TIMESTAMP"] == str(NOW)
    assert "X-API-BODY-SHA256" not in sent.headers
    assert sent.headers["X-API-SIGNATURE"] == "Bj0ykETQVDk8wGhTXR03duOFXzyLoX/vGht2AbLgfpc="


async def test_place_order_signs_the_exact_query_string_sent() -> None:
    mock = MockOpex()
    mock.on("POST", "/v3/order", json={"symbol": "BTCUSDT", "orderId": -1})
    async with mock.client(clock=clock) as opex:
        await opex.place_order(
            api_key(), "BTC_USDT", "BUY", "LIMIT", Decimal("0.0100"), Decimal("30000.5"), "GTC"
        )
    sent = mock.last
    query = raw_query(sent)
    assert query == (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=30000.5"
        "&timestamp=1700000000000"
    )
    assert sent.content == b""
    assert sent.headers["X-API-SIGNATURE"] == reference_signature(
        SECRET, "POST", "/api/v3/order", query, "", NOW
    )


async def test_escaped_characters_are_signed_as_sent() -> None:
    request = httpx.Request(
        "GET", "http://opex.test/opex/v1/wallet/asset", params={"symbol": "a b&c=d/é"}
    )
    auth = OpexAuth(api_key(), clock=clock)
    signed = next(auth.auth_flow(request))
    query = raw_query(signed)
    assert "%26" in query  # the & inside the value stays escaped
    assert signed.headers["X-API-SIGNATURE"] == reference_signature(
        SECRET, "GET", "/api/opex/v1/wallet/asset", query, "", NOW
    )


async def test_a_body_is_hashed_and_the_hash_signed() -> None:
    mock = MockOpex()
    mock.on("POST", "/opex/v1/admin/deposit/manually/100.5_USDT/u-1", json={})
    async with mock.client(clock=clock) as opex:
        await opex.deposit(api_key(), Decimal("100.50"), "usdt", "u-1", ref="r-1")
    sent = mock.last
    body = sent.content
    assert json.loads(body)["ref"] == "r-1"
    body_sha = hashlib.sha256(body).hexdigest()
    assert sent.headers["X-API-BODY-SHA256"] == body_sha
    assert sent.headers["X-API-SIGNATURE"] == reference_signature(
        SECRET, "POST", "/api/opex/v1/admin/deposit/manually/100.5_USDT/u-1", "", body_sha, NOW
    )


@pytest.mark.parametrize(
    ("api_url", "prefix", "url_path"),
    [
        ("http://127.0.0.1:8082", "", "/v3/account"),
        ("https://exchange.test/api", "", "/api/v3/account"),
        ("https://exchange.test", "/api", "/api/v3/account"),
        ("https://exchange.test/opex/api/", "", "/opex/api/v3/account"),
    ],
)
async def test_the_signed_path_is_always_api_plus_the_route(
    api_url: str, prefix: str, url_path: str
) -> None:
    settings = OpexSettings(api_url=api_url, path_prefix=prefix)
    mock = MockOpex(settings)
    mock.on("GET", url_path, json={"balances": []})
    async with mock.client(clock=clock) as opex:
        await opex.account(api_key())
    sent = mock.last
    assert sent.url.path == url_path
    assert sent.headers["X-API-SIGNATURE"] == reference_signature(
        SECRET, "GET", "/api/v3/account", f"timestamp={NOW}", "", NOW
    )


async def test_every_request_takes_the_clock_at_signing_time() -> None:
    ticks = iter(range(NOW, NOW + 100))
    mock = MockOpex()
    mock.on("GET", "/opex/v1/wallet/asset", json=[])
    async with mock.client(clock=lambda: next(ticks)) as opex:
        await opex.wallet_assets(api_key())
        await opex.wallet_assets(api_key())
    stamps = [request.headers["X-API-TIMESTAMP"] for request in mock.requests]
    assert stamps == [str(NOW), str(NOW + 1)]
    for request, stamp in zip(mock.requests, stamps, strict=True):
        assert request.headers["X-API-SIGNATURE"] == reference_signature(
            SECRET, "GET", "/api/opex/v1/wallet/asset", "", "", int(stamp)
        )


async def test_legacy_mode_sends_the_plain_secret_and_no_signature() -> None:
    mock = MockOpex()
    mock.on("GET", "/opex/v1/wallet/asset", json=[])
    async with mock.client(clock=clock) as opex:
        await opex.wallet_assets(LegacyApiKey(KEY, SecretStr(SECRET)))
    sent = mock.last
    assert sent.headers["X-API-KEY"] == KEY
    assert sent.headers["X-API-SECRET"] == SECRET
    assert "X-API-SIGNATURE" not in sent.headers
    assert "X-API-TIMESTAMP" not in sent.headers


async def test_bearer_mode_sends_only_the_authorization_header() -> None:
    mock = MockOpex()
    mock.on("GET", "/opex/v1/wallet/asset", json=[])
    async with mock.client(clock=clock) as opex:
        await opex.wallet_assets(Bearer(SecretStr("tok")))
    sent = mock.last
    assert sent.headers["Authorization"] == "Bearer tok"
    assert not any(name.lower().startswith("x-api-") for name in sent.headers)


async def test_public_market_data_carries_no_credential() -> None:
    mock = MockOpex()
    mock.on("GET", "/v3/depth", json={"lastUpdateId": 1, "bids": [], "asks": []})
    async with mock.client(clock=clock) as opex:
        await opex.depth("BTC_USDT", 5)
    sent = mock.last
    assert "Authorization" not in sent.headers
    assert not any(name.lower().startswith("x-api-") for name in sent.headers)


def test_settings_build_the_admin_credential() -> None:
    signed = OpexSettings(api_key="admin", api_secret=SecretStr("s"))
    assert signed.admin_credentials() == ApiKey("admin", SecretStr("s"))
    legacy = OpexSettings(api_key="admin", api_secret=SecretStr("s"), legacy_auth=True)
    assert isinstance(legacy.admin_credentials(), LegacyApiKey)
    assert OpexSettings(api_key="", api_secret="").admin_credentials() is None
