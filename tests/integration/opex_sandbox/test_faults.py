"""Every fault mode as an HTTP client sees it: through the ASGI transport, and through a real
uvicorn socket where connections and timeouts matter."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from tests.integration.opex_sandbox.support import Api, config, live_server

D = Decimal


async def test_faults_when_put_get_delete_then_settings_round_trip(api: Api) -> None:
    r = await api.http.put("/sandbox/faults", json={"latency_ms": 5, "error_rate": 0.25})
    assert r.status_code == 200
    assert (r.json()["latency_ms"], r.json()["error_rate"]) == (5, 0.25)
    assert (await api.http.get("/sandbox/faults")).json()["latency_ms"] == 5
    r = await api.http.put("/sandbox/faults", json={"error_rate": 3})
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    r = await api.http.delete("/sandbox/faults")
    assert (r.json()["latency_ms"], r.json()["error_rate"]) == (0, 0)


async def test_latency_when_set_then_opex_routes_slow_and_sandbox_routes_not(api: Api) -> None:
    await api.faults(latency_ms=150)
    started = time.perf_counter()
    assert (await api.http.get("/v3/depth?symbol=BTCUSDT")).status_code == 200
    assert time.perf_counter() - started >= 0.14
    started = time.perf_counter()
    assert (await api.http.get("/sandbox/state")).status_code == 200
    assert time.perf_counter() - started < 0.1


async def test_error_rate_when_one_then_every_opex_call_fails_5xx_and_nothing_is_done(
    api: Api,
) -> None:
    alice = await api.new_user(usdt=100_000)
    await api.faults(error_rate=1.0)
    statuses = set()
    for _ in range(20):
        r = await api.place(alice, "BUY", "0.01", "30000")
        statuses.add(r.status_code)
        if r.status_code == 500:
            assert r.json()["code"] == 1001
    assert statuses <= {500, 502, 503}
    assert len(statuses) >= 2
    await api.faults(error_rate=0.0)
    assert await api.all_orders(alice) == []


async def test_error_rate_when_half_then_about_half_fail(api: Api) -> None:
    await api.faults(error_rate=0.5)
    ok = sum([(await api.http.get("/v3/ticker/price")).status_code == 200 for _ in range(200)])
    assert 60 <= ok <= 140


async def test_take_no_answer_when_client_times_out_then_order_is_listed_anyway(
    api: Api,
) -> None:
    alice = await api.new_user(usdt=100_000)
    await api.faults(take_no_answer_rate=1.0, take_no_answer_delay_s=30)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(api.place(alice, "BUY", "0.01", "24000"), 0.3)
    await api.faults(take_no_answer_rate=0.0)
    [order] = await api.listed(alice, price=D(24000))
    assert order["status"] == "NEW"


async def test_outage_when_on_then_503_everywhere_health_down_and_nothing_done(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    await api.faults(outage=True)
    r = await api.place(alice, "BUY", "0.01", "30000")
    assert r.status_code == 503
    assert (await api.http.get("/api/v3/depth?symbol=BTCUSDT")).status_code == 503
    r = await api.http.get("/actuator/health")
    assert (r.status_code, r.json()) == (503, {"status": "DOWN"})
    assert (await api.http.get("/sandbox/state")).status_code == 200
    await api.faults(outage=False)
    assert (await api.http.get("/actuator/health")).json() == {"status": "UP"}
    assert await api.all_orders(alice) == []


async def test_listing_delay_override_when_set_then_orders_listed_that_late(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    await api.faults(listing_delay_ms=500)
    started = asyncio.get_running_loop().time()
    await api.place(alice, "BUY", "0.01", "23000")
    await asyncio.sleep(0.2)
    assert await api.all_orders(alice) == []
    await api.listed(alice, price=D(23000))
    assert asyncio.get_running_loop().time() - started >= 0.49


async def test_real_socket_when_taken_but_not_answered_then_timeout_or_drop_and_order_listed() -> (
    None
):
    """Through uvicorn: a read timeout (delay mode) and a cut connection (drop mode) on a
    placement that was taken; health and a normal placement work over the same socket."""
    with live_server(config(take_no_answer_delay_s=5.0)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            api = Api(http)
            assert (await http.get("/actuator/health")).json() == {"status": "UP"}
            alice = await api.new_user(usdt=100_000)
            r = await api.place(alice, "BUY", "0.01", "21000")
            assert r.status_code == 200
            await api.faults(take_no_answer_rate=1.0)
            async with httpx.AsyncClient(base_url=url, timeout=0.5) as impatient:
                short = Api(impatient)
                with pytest.raises(httpx.ReadTimeout):
                    await short.place(alice, "BUY", "0.01", "21001")
                await api.faults(take_no_answer_mode="drop")
                with pytest.raises(httpx.RemoteProtocolError):
                    await short.place(alice, "BUY", "0.01", "21002")
            await api.faults(take_no_answer_rate=0.0, take_no_answer_mode="delay")
            for price in (21000, 21001, 21002):
                [order] = await api.listed(alice, price=D(price))
                assert order["status"] == "NEW"
            await api.faults(outage=True)
            assert (await http.get("/actuator/health")).status_code == 503
            await api.faults(outage=False)
            assert await api.audit() == []
