"""The gateway against the sandbox and the real broker: placement and correlation,
fills, cancels, stops, market data and balances, bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.contracts import TickerUpdated, new_message
from shared.messaging import KafkaSettings
from tests.integration.order_gateway.conftest import NewUser, StartGateway
from tests.integration.order_gateway.support import (
    Sandbox,
    approved,
    cancel_approved,
    decoded,
    events_of,
    send,
)
from tests.support.kafka import Tally, produce, read_all


def _of(tally: Tally, prefix: str) -> list[Any]:
    return decoded(tally.records)


async def test_limit_order_is_accepted_with_opex_id_then_canceled(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
) -> None:
    user = await new_user()
    await start_gateway()
    order = approved(user, price="25000")
    cid = order.data.command.client_order_id
    async with Tally(kafka_settings, topic_prefix + "orders.events") as tally:
        await send(kafka_settings, topic_prefix, [order])
        await tally.reach(lambda rs: "OrderAccepted" in events_of(decoded(rs), cid))
        accepted = next(e for e in decoded(tally.records) if e.type == "OrderAccepted")
        held = sandbox.orders_of(user.opex_user_id)
        assert [str(o.order_id) for o in held] == [accepted.data.order_id]
        assert accepted.correlation_id == order.correlation_id
        assert accepted.causation_id == order.id
        await send(kafka_settings, topic_prefix, [cancel_approved(user, client_order_id=cid)])
        await tally.reach(lambda rs: "OrderCanceled" in events_of(decoded(rs), cid))
    assert events_of(decoded(tally.records), cid) == [
        "OrderSubmitted",
        "OrderAccepted",
        "OrderCanceled",
    ]
    assert [o.status.value for o in sandbox.orders_of(user.opex_user_id)] == ["CANCELED"]


async def test_market_order_goes_out_as_ioc_limit_and_fills(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
) -> None:
    user = await new_user()
    app = await start_gateway()
    order = approved(user, type="market", quantity="0.01", price=None)
    cid = order.data.command.client_order_id
    async with Tally(kafka_settings, topic_prefix + "orders.events") as tally:
        # the gateway prices a market order from the tickers it publishes itself
        await tally_wait_for_best(app)
        await send(kafka_settings, topic_prefix, [order])
        await tally.reach(
            lambda rs: any(
                e.type == "OrderFilled" and e.data.status.value == "FILLED"
                for e in decoded(rs)
                if getattr(e.data, "client_order_id", None) == cid
            ),
            timeout=20,
        )
    filled = [e for e in decoded(tally.records) if e.type == "OrderFilled"]
    assert sum(e.data.last_fill.quantity for e in filled) == Decimal("0.01")
    assert filled[-1].data.filled_quantity == Decimal("0.01")
    assert filled[-1].data.avg_price is not None
    held = sandbox.orders_of(user.opex_user_id)
    assert len(held) == 1
    assert held[0].type.value == "LIMIT"
    assert held[0].time_in_force.value == "IOC"


async def tally_wait_for_best(app: Any, timeout: float = 15.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while "BTC_USDT" not in app.service.best or "BTC_USDT" not in app.service.rules:
        if time.monotonic() > deadline:
            raise TimeoutError("no best price")
        await asyncio.sleep(0.05)


async def test_stop_order_is_held_until_the_ticker_crosses(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
) -> None:
    user = await new_user()
    app = await start_gateway(ORDER_GATEWAY_PUBLISH_MARKET_DATA=False)
    await app.service.publish_instruments()
    order = approved(user, type="stop_limit", price="31000", stop_price="40000")
    cid = order.data.command.client_order_id
    await send(kafka_settings, topic_prefix, [order])
    import asyncio

    for _ in range(100):
        if cid in app.service.book:
            break
        await asyncio.sleep(0.05)
    assert app.service.book.get(cid) is not None
    assert len(app.service.book.stops) == 1
    assert sandbox.orders_of(user.opex_user_id) == []
    async with Tally(kafka_settings, topic_prefix + "orders.events") as tally:
        from datetime import UTC, datetime

        for last in ("39000", "40001"):
            ticker = TickerUpdated(
                symbol="BTC_USDT",
                last_price=Decimal(last),
                bid_price=Decimal(30000),
                ask_price=Decimal(30010),
                at=datetime.now(UTC),
            )
            envelope = new_message(ticker, user_id=None)
            from shared.contracts import encode

            await produce(
                kafka_settings, topic_prefix + "market.tickers", [(b"BTC_USDT", encode(envelope))]
            )
        await tally.reach(lambda rs: "OrderAccepted" in events_of(decoded(rs), cid), timeout=20)
    assert len(sandbox.orders_of(user.opex_user_id)) == 1


async def test_cancel_of_an_unknown_order_is_rejected(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
) -> None:
    user = await new_user()
    await start_gateway()
    await send(kafka_settings, topic_prefix, [cancel_approved(user, client_order_id="nope-1")])
    records = await read_all(kafka_settings, topic_prefix + "orders.events", expect=1, idle=0.2)
    [rejection] = decoded(records)
    assert rejection.type == "CancelRejected"
    assert rejection.data.reason_code == "ORDER_NOT_FOUND"


async def test_hostile_approved_messages_go_to_the_dlq(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
) -> None:
    user = await new_user()
    await start_gateway()
    hostile = [b"", b"{", b'{"type": "OrderApproved"}', b"\xff" * 100, b"[1,2,3]"]
    await produce(
        kafka_settings, topic_prefix + "orders.approved", [(b"x", raw) for raw in hostile]
    )
    good = approved(user, price="25000")
    await send(kafka_settings, topic_prefix, [good])
    dead = await read_all(
        kafka_settings, topic_prefix + "orders.approved.dlq", expect=len(hostile), idle=0.2
    )
    assert sorted(r.value for r in dead) == sorted(hostile)
    events = await read_all(kafka_settings, topic_prefix + "orders.events", expect=2, idle=0.2)
    assert "OrderAccepted" in events_of(decoded(events), good.data.command.client_order_id)


async def test_market_data_and_balances_are_published(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
) -> None:
    user = await new_user()
    app = await start_gateway()
    instruments = await read_all(kafka_settings, topic_prefix + "market.instruments", expect=2)
    symbols = {e.data.symbol for e in decoded(instruments)}
    assert {"BTC_USDT", "ETH_USDT"} <= symbols
    tickers = await read_all(kafka_settings, topic_prefix + "market.tickers", expect=2)
    assert {e.data.symbol for e in decoded(tickers)} >= {"BTC_USDT"}
    await app.service.publish_balances([user.user_id])
    balances = await read_all(kafka_settings, topic_prefix + "accounts.events", expect=1)
    [update] = [e for e in decoded(balances) if e.user_id == user.user_id]
    assets = {b.asset: b.free for b in update.data.balances}
    assert assets["USDT"] == Decimal(1_000_000)
    assert assets["BTC"] == Decimal(100)


async def test_a_provisioned_user_gets_balances_without_an_order(
    start_gateway: StartGateway,
    new_user: NewUser,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
) -> None:
    from uuid import UUID

    from shared.contracts import UserProvisioned, Wallet, encode

    user = await new_user()
    await start_gateway()
    provisioned = new_message(
        UserProvisioned(
            opex_user_id=UUID(user.opex_user_id),
            wallets=(Wallet(asset="USDT", free=Decimal(0)),),
        ),
        user_id=user.user_id,
    )
    await produce(
        kafka_settings,
        topic_prefix + "users.events",
        [(user.user_id.encode(), encode(provisioned))],
    )
    records = await read_all(kafka_settings, topic_prefix + "accounts.events", expect=1)
    [update] = [e for e in decoded(records) if e.user_id == user.user_id]
    assert {b.asset: b.free for b in update.data.balances}["USDT"] == Decimal(1_000_000)
