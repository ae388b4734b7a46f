"""Every fault the sandbox injects reaches the client as the exception that tells the
gateway what to do: retry (unavailable, rate-limited) or look before resending (ambiguous)."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal

import pytest

from shared.opex import (
    OpexAmbiguous,
    OpexClient,
    OpexError,
    OpexRateLimited,
    OpexUnavailable,
    OrderStatus,
    Surface,
)
from tests.integration.shared.opex.support import (
    RATE_LIMIT,
    TAKE_NO_ANSWER_DELAY_S,
    Control,
    Sandbox,
    User,
    eventually_listed,
    new_user,
    settings_for,
)

SYMBOL = "BTC_USDT"
PRICE = Decimal(20_000)


async def place(client: OpexClient, user: User, price: Decimal = PRICE) -> object:
    return await client.place_order(
        user.key, SYMBOL, "BUY", "LIMIT", Decimal("0.001"), price, "GTC"
    )


async def test_latency_is_slow_but_fine(opex: OpexClient, control: Control) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(latency_ms=300)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await place(opex, user)
    await opex.open_orders(user.key, SYMBOL)
    assert loop.time() - started >= 0.6


async def test_latency_past_the_timeout(
    sandbox: Sandbox, opex: OpexClient, control: Control
) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(latency_ms=1500)
    async with OpexClient(settings_for(sandbox, timeout=0.5)) as hurried:
        with pytest.raises(OpexUnavailable):
            await hurried.open_orders(user.key, SYMBOL)
        with pytest.raises(OpexAmbiguous) as ambiguous:
            await place(hurried, user)
    assert ambiguous.value.http_status is None


@pytest.mark.parametrize("surface", ["v3", "opex"])
async def test_server_errors(opex: OpexClient, control: Control, surface: Surface) -> None:
    client = opex.using(surface)
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(error_rate=1.0)
    statuses: dict[str, set[int | None]] = {"read": set(), "order": set()}
    for _ in range(30):
        with pytest.raises(OpexUnavailable) as read:
            await client.open_orders(user.key, SYMBOL)
        statuses["read"].add(read.value.http_status)
        with pytest.raises(OpexError) as order:
            await place(client, user)
        # a 503 is the proxy saying the API is down: nothing was done; 500 and 502 may
        # come after the order was taken, so the client cannot know
        if order.value.http_status == 503:
            assert type(order.value) is OpexUnavailable
        else:
            assert type(order.value) is OpexAmbiguous
        statuses["order"].add(order.value.http_status)
    assert statuses["read"] == statuses["order"] == {500, 502, 503}
    await control.clear_faults()
    await asyncio.sleep(0.3)
    assert await opex.all_orders(user.key, SYMBOL) == []  # the sandbox did nothing


@pytest.mark.parametrize("mode", ["delay", "drop"])
async def test_taken_but_not_answered(
    sandbox: Sandbox, opex: OpexClient, control: Control, mode: str
) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(take_no_answer_rate=1.0, take_no_answer_mode=mode)
    async with OpexClient(settings_for(sandbox, timeout=TAKE_NO_ANSWER_DELAY_S / 3)) as client:
        with pytest.raises(OpexAmbiguous) as ambiguous:
            await place(client, user)
        assert ambiguous.value.may_have_taken_effect
        # reads are untouched by this fault: ask OPEX what happened
        order = await eventually_listed(client, user.key, SYMBOL, price=PRICE)
        assert order.status is OrderStatus.NEW
        with pytest.raises(OpexAmbiguous):
            await client.cancel_order(user.key, SYMBOL, order.order_id)
        for _ in range(100):
            if (
                await client.get_order(user.key, SYMBOL, order.order_id)
            ).status is OrderStatus.CANCELED:
                break
            await asyncio.sleep(0.02)
        assert (
            await client.get_order(user.key, SYMBOL, order.order_id)
        ).status is OrderStatus.CANCELED


async def test_outage(opex: OpexClient, control: Control) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(outage=True)
    with pytest.raises(OpexUnavailable) as down:
        await opex.health()
    assert down.value.http_status == 503
    with pytest.raises(OpexUnavailable):
        await opex.account(user.key)
    with pytest.raises(OpexUnavailable) as order:
        await place(opex, user)
    assert order.value.http_status == 503
    await control.clear_faults()
    assert (await opex.health()).up
    await asyncio.sleep(0.3)
    assert await opex.all_orders(user.key, SYMBOL) == []


async def test_nothing_listening(sandbox: Sandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the port is free again: nothing listens there
    async with OpexClient(settings_for(sandbox, api_url=f"http://127.0.0.1:{port}")) as opex:
        with pytest.raises(OpexUnavailable) as down:
            await opex.health()
        assert down.value.http_status is None
        assert opex.admin is not None
        with pytest.raises(OpexUnavailable):
            await opex.deposit(opex.admin, Decimal(1), "USDT", "nobody")


async def test_rate_limit_on_the_native_surface_only(opex: OpexClient, control: Control) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    await control.faults(rate_limit_enabled=True)
    native = opex.using("opex")
    for _ in range(RATE_LIMIT):
        await native.open_orders(user.key, SYMBOL)
    with pytest.raises(OpexRateLimited) as limited:
        await native.open_orders(user.key, SYMBOL)
    assert (limited.value.code, limited.value.http_status) == (1024, 429)
    assert limited.value.retry_after_s == 60  # OPEX sends no Retry-After: its first block
    assert not limited.value.may_have_taken_effect
    with pytest.raises(OpexRateLimited):  # blocked, whatever the credential
        await native.open_orders(user.bearer, SYMBOL)
    for _ in range(3 * RATE_LIMIT):  # /v3 is not limited
        await opex.open_orders(user.key, SYMBOL)
