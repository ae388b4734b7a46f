"""Every answer and transport failure maps to the one exception that says what happened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr

from shared.opex import (
    ApiKey,
    Bearer,
    OpexAmbiguous,
    OpexAuthError,
    OpexBadSignature,
    OpexBadTimestamp,
    OpexClient,
    OpexError,
    OpexForbidden,
    OpexRateLimited,
    OpexRefused,
    OpexUnauthenticated,
    OpexUnavailable,
)
from shared.opex.testing import MockOpex, opex_error

CREDS = ApiKey("k", SecretStr("s"))
Call = Callable[[OpexClient], Awaitable[object]]


async def place(opex: OpexClient) -> object:
    return await opex.place_order(
        CREDS, "BTC_USDT", "BUY", "LIMIT", Decimal(1), Decimal(100), "GTC"
    )


async def cancel(opex: OpexClient) -> object:
    return await opex.cancel_order(CREDS, "BTC_USDT", 7)


async def read(opex: OpexClient) -> object:
    return await opex.open_orders(CREDS, "BTC_USDT")


# (route of the call on /v3, the call, whether it changes state)
PLACE = ("POST", "/v3/order", place)
CANCEL = ("DELETE", "/v3/order", cancel)
READ = ("GET", "/v3/openOrders", read)


async def outcome(route: tuple[str, str, Call], **answer: object) -> OpexError:
    method, path, call = route
    mock = MockOpex()
    mock.on(method, path, **answer)  # type: ignore[arg-type]
    async with mock.client() as opex:
        with pytest.raises(OpexError) as caught:
            await call(opex)
    return caught.value


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError],
)
@pytest.mark.parametrize("route", [PLACE, CANCEL, READ], ids=["place", "cancel", "read"])
async def test_not_sent_is_unavailable_whatever_the_request(
    route: tuple[str, str, Call], error: type[httpx.TransportError]
) -> None:
    exc = await outcome(route, raises=error)
    assert type(exc) is OpexUnavailable
    assert not exc.may_have_taken_effect
    assert isinstance(exc.__cause__, error)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.RemoteProtocolError,
    ],
)
@pytest.mark.parametrize("route", [PLACE, CANCEL], ids=["place", "cancel"])
async def test_maybe_sent_is_ambiguous_for_a_state_change(
    route: tuple[str, str, Call], error: type[httpx.TransportError]
) -> None:
    exc = await outcome(route, raises=error)
    assert type(exc) is OpexAmbiguous
    assert exc.may_have_taken_effect
    assert exc.http_status is None


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError])
async def test_maybe_sent_is_unavailable_for_a_read(error: type[httpx.TransportError]) -> None:
    exc = await outcome(READ, raises=error)
    assert type(exc) is OpexUnavailable


@pytest.mark.parametrize("status", [500, 502, 504])
@pytest.mark.parametrize("route", [PLACE, CANCEL], ids=["place", "cancel"])
async def test_5xx_to_a_state_change_is_ambiguous(
    route: tuple[str, str, Call], status: int
) -> None:
    exc = await outcome(route, status=status, content=b"<html>bad gateway</html>")
    assert type(exc) is OpexAmbiguous
    assert exc.http_status == status


async def test_5xx_with_opex_body_to_an_order_keeps_the_code() -> None:
    exc = await outcome(PLACE, response=opex_error(1001, "InternalServerError", status=500))
    assert isinstance(exc, OpexAmbiguous)
    assert exc.code == 1001


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_5xx_to_a_read_is_unavailable(status: int) -> None:
    exc = await outcome(READ, status=status, content=b"")
    assert type(exc) is OpexUnavailable
    assert exc.http_status == status


@pytest.mark.parametrize("route", [PLACE, READ], ids=["place", "read"])
async def test_503_is_unavailable_even_for_an_order(route: tuple[str, str, Call]) -> None:
    exc = await outcome(route, status=503, content=b"", headers={"Retry-After": "7"})
    assert type(exc) is OpexUnavailable
    assert exc.retry_after_s == 7


async def test_2xx_unreadable_answer_to_an_order_is_ambiguous() -> None:
    exc = await outcome(PLACE, content=b"<html>ok</html>")
    assert type(exc) is OpexAmbiguous
    assert exc.http_status == 200


async def test_2xx_unexpected_shape_to_a_read_is_unavailable() -> None:
    exc = await outcome(READ, json={"not": "a list"})
    assert type(exc) is OpexUnavailable


async def test_429_is_rate_limited_with_opex_default_block_when_no_header() -> None:
    exc = await outcome(PLACE, response=opex_error(1024, "RateLimit", status=429))
    assert type(exc) is OpexRateLimited
    assert exc.retry_after_s == 60
    assert exc.code == 1024
    assert not exc.may_have_taken_effect


@pytest.mark.parametrize("header", ["12", "12.5"])
async def test_429_retry_after_seconds(header: str) -> None:
    exc = await outcome(READ, status=429, content=b"", headers={"Retry-After": header})
    assert isinstance(exc, OpexRateLimited)
    assert exc.retry_after_s == float(header)


async def test_429_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    exc = await outcome(READ, status=429, content=b"", headers={"Retry-After": when})
    assert isinstance(exc, OpexRateLimited)
    assert 25 <= exc.retry_after_s <= 30


async def test_code_1024_is_rate_limited_whatever_the_status() -> None:
    exc = await outcome(READ, response=opex_error(1024, "RateLimit", status=400))
    assert isinstance(exc, OpexRateLimited)


async def test_400_with_an_opex_code_is_refused_with_its_fields() -> None:
    exc = await outcome(
        PLACE, response=opex_error(4001, "SubmitOrderForbiddenByAccountant", "Insufficient balance")
    )
    assert type(exc) is OpexRefused
    assert (exc.code, exc.http_status, exc.name) == (4001, 400, "SubmitOrderForbiddenByAccountant")
    assert exc.opex_message == "Insufficient balance"
    assert exc.method == "POST"
    assert exc.path == "/v3/order"
    assert str(exc) == (
        "POST /v3/order: refused by OPEX: 4001 SubmitOrderForbiddenByAccountant: "
        "Insufficient balance (HTTP 400)"
    )


async def test_404_symbol_not_found_is_refused() -> None:
    exc = await outcome(READ, response=opex_error(7002, "SymbolNotFound", status=404))
    assert type(exc) is OpexRefused
    assert exc.code == 7002
    assert exc.http_status == 404


async def test_403_cancel_not_allowed_7006_is_a_refusal_not_an_auth_error() -> None:
    exc = await outcome(CANCEL, response=opex_error(7006, "CancelOrderNotAllowed", status=403))
    assert type(exc) is OpexRefused
    assert (exc.code, exc.http_status) == (7006, 403)


@pytest.mark.parametrize(
    ("answer", "cls", "code"),
    [
        (opex_error(1025, "InvalidSignature"), OpexBadSignature, 1025),
        (opex_error(1026, "InvalidTime"), OpexBadTimestamp, 1026),
        (opex_error(1004, "Forbidden", "Forbidden", status=403), OpexForbidden, 1004),
        (httpx.Response(403), OpexForbidden, None),
        (httpx.Response(401), OpexUnauthenticated, None),
        (opex_error(1003, "UnAuthorized", status=401), OpexUnauthenticated, 1003),
    ],
    ids=["1025", "1026", "1004", "403-empty", "401-empty", "1003"],
)
async def test_auth_refusals(
    answer: httpx.Response, cls: type[OpexAuthError], code: int | None
) -> None:
    exc = await outcome(PLACE, response=answer)
    assert type(exc) is cls
    assert isinstance(exc, OpexRefused)
    assert exc.code == code


async def test_401_with_empty_body_names_the_status() -> None:
    exc = await outcome(READ, response=httpx.Response(401))
    assert isinstance(exc, OpexUnauthenticated)
    assert exc.http_status == 401
    assert exc.name == "Unauthorized"
    assert str(exc) == "GET /v3/openOrders: refused by OPEX: Unauthorized (HTTP 401)"


async def test_spring_default_error_body_has_no_code() -> None:
    body = b'{"timestamp":"2026-01-01T00:00:00Z","path":"/v3/x","status":404,"error":"Not Found"}'
    exc = await outcome(READ, status=404, content=body)
    assert type(exc) is OpexRefused
    assert exc.code is None
    assert exc.name == "Not Found"


async def test_a_redirect_is_a_refusal_not_followed() -> None:
    exc = await outcome(PLACE, status=302, content=b"", headers={"Location": "https://x/"})
    assert type(exc) is OpexRefused
    assert exc.http_status == 302


async def test_408_is_unavailable() -> None:
    exc = await outcome(PLACE, status=408, content=b"")
    assert type(exc) is OpexUnavailable


async def test_connection_refused_for_real_is_unavailable() -> None:
    from shared.opex import OpexSettings

    async with OpexClient(OpexSettings(api_url="http://127.0.0.1:9", timeout=2)) as opex:
        with pytest.raises(OpexUnavailable):
            await place(opex)


async def test_long_opex_messages_are_shortened() -> None:
    exc = await outcome(READ, response=opex_error(1020, "InvalidRequestParam", "x" * 5000))
    assert isinstance(exc, OpexRefused)
    assert len(str(exc)) < 400


def test_the_hierarchy() -> None:
    for cls in (OpexRefused, OpexRateLimited, OpexUnavailable, OpexAmbiguous):
        assert issubclass(cls, OpexError)
    for cls in (OpexUnauthenticated, OpexForbidden, OpexBadSignature, OpexBadTimestamp):
        assert issubclass(cls, OpexAuthError)
        assert issubclass(cls, OpexRefused)
    assert not issubclass(OpexRateLimited, OpexRefused)
    assert [
        cls
        for cls in (OpexRefused, OpexRateLimited, OpexUnavailable, OpexAmbiguous)
        if cls.may_have_taken_effect
    ] == [OpexAmbiguous]


BEARER = Bearer(SecretStr("t"))
STATE_CHANGES: list[tuple[str, str, Call]] = [
    (
        "POST",
        "/opex/v1/admin/deposit/manually/1_USDT/u",
        lambda o: o.deposit(CREDS, Decimal(1), "USDT", "u"),
    ),
    ("POST", "/opex/v1/user/public/register", lambda o: o.register("a@b.c")),
    ("POST", "/opex/v1/user/public/register/verify", lambda o: o.verify("a@b.c", "1")),
    ("POST", "/opex/v1/user/public/register/confirm", lambda o: o.confirm("t", "pw")),
    ("POST", "/v1/api-key", lambda o: o.create_api_key(BEARER, "x")),
    (
        "PUT",
        "/pair-setting",
        lambda o: o.update_pair_setting(
            CREDS,
            "BTC_USDT",
            is_available=True,
            min_order=Decimal(1),
            max_order=Decimal(2),
            order_types=["LIMIT"],
        ),
    ),
    ("PUT", "/opex/v1/order", lambda o: o.using("opex").cancel_order(CREDS, "BTC_USDT", 1)),
    (
        "POST",
        "/opex/v1/order",
        lambda o: o.using("opex").place_order(
            CREDS, "BTC_USDT", "BUY", "MARKET", Decimal(1), time_in_force="IOC"
        ),
    ),
]
READS: list[tuple[str, str, Call]] = [
    ("POST", "/opex/v1/oauth/protocol/openid-connect/token", lambda o: o.login("a@b.c", "pw")),
    ("GET", "/v3/account", lambda o: o.account(CREDS)),
    ("GET", "/v3/depth", lambda o: o.depth("BTC_USDT")),
    ("GET", "/v3/exchangeInfo", lambda o: o.exchange_info()),
    ("GET", "/pair-setting/BTC_USDT", lambda o: o.pair_setting(CREDS, "BTC_USDT")),
    ("GET", "/actuator/health", lambda o: o.health()),
    ("GET", "/opex/v1/wallet/asset", lambda o: o.wallet_assets(CREDS)),
    ("GET", "/v3/myTrades", lambda o: o.my_trades(CREDS, "BTC_USDT")),
]


@pytest.mark.parametrize("route", STATE_CHANGES, ids=[f"{m} {p}" for m, p, _ in STATE_CHANGES])
async def test_every_state_change_is_ambiguous_when_maybe_sent(
    route: tuple[str, str, Call],
) -> None:
    assert type(await outcome(route, raises=httpx.ReadTimeout)) is OpexAmbiguous
    assert type(await outcome(route, status=502, content=b"")) is OpexAmbiguous
    assert type(await outcome(route, raises=httpx.ConnectError)) is OpexUnavailable


@pytest.mark.parametrize("route", READS, ids=[f"{m} {p}" for m, p, _ in READS])
async def test_every_read_is_unavailable_when_maybe_sent(route: tuple[str, str, Call]) -> None:
    assert type(await outcome(route, raises=httpx.ReadTimeout)) is OpexUnavailable
    assert type(await outcome(route, status=500, content=b"")) is OpexUnavailable
