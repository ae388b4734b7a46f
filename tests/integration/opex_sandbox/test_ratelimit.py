"""OPEX's rate limits over HTTP: `/opex/v1` limited per user, `/v3` not."""

from __future__ import annotations

from tests.integration.opex_sandbox.conftest import MakeApi
from tests.integration.opex_sandbox.support import Api


async def test_native_order_route_when_over_ten_per_minute_then_429_1024(api: Api) -> None:
    alice = await api.new_user()
    statuses = []
    for _ in range(11):
        r = await api.native("GET", "/opex/v1/order/open", alice, prefix="/api")
        statuses.append(r.status_code)
    assert statuses == [200] * 10 + [429]
    body = r.json()
    assert (body["code"], body["error"], body["status"]) == (1024, "RateLimit", 429)
    # blocked on that route only; another user is not affected
    bob = await api.new_user()
    assert (await api.native("GET", "/opex/v1/order/open", bob)).status_code == 200
    assert (await api.native("GET", "/opex/v1/wallet/asset", alice)).status_code == 200


async def test_v3_route_when_many_requests_then_never_limited(api: Api) -> None:
    alice = await api.new_user()
    for _ in range(40):
        r = await api.v3("GET", "/v3/openOrders", alice, symbol="BTCUSDT")
        assert r.status_code == 200


async def test_public_routes_when_unauthenticated_then_not_limited(api: Api) -> None:
    for _ in range(30):
        assert (await api.http.get("/opex/v1/market/depth?symbol=BTC_USDT")).status_code == 200


async def test_rate_limit_when_configured_or_switched_off_then_obeyed(make_api: MakeApi) -> None:
    async with make_api(rate_limit_requests=3, rate_limit_window_s=60) as api:
        alice = await api.new_user()
        codes = [
            (await api.native("GET", "/opex/v1/order/open", alice)).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        await api.faults(rate_limit_enabled=False)
        codes = [
            (await api.native("GET", "/opex/v1/order/open", alice)).status_code for _ in range(5)
        ]
        assert codes == [200] * 5
    async with make_api(rate_limit_enabled=False) as api:
        alice = await api.new_user()
        codes = [
            (await api.native("GET", "/opex/v1/order/open", alice)).status_code for _ in range(15)
        ]
        assert set(codes) == {200}
