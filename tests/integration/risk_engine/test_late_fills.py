"""Late fills through the real broker and database: fills the gateway learns after an
order's terminal event (OPEX answers a cancel at once while its engine may still trade)
move the position and the balances once, however often they arrive."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from services.risk_engine.app import build
from services.risk_engine.config import RiskSettings, ServiceSettings
from shared.contracts import (
    Envelope,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderFilled,
    PositionUpdated,
    decode,
    new_message,
)
from shared.db import DatabaseSettings
from shared.messaging import KafkaSettings
from tests.integration.risk_engine.scenario import (
    SYMBOL,
    funded_user,
    instrument,
    keyed,
    limit_buy,
    ticker,
)
from tests.support.kafka import Tally, produce, wait_for

pytestmark = pytest.mark.integration
D = Decimal


def fill(trade_id: str, quantity: str, price: str, fee: str = "0") -> Fill:
    return Fill(
        trade_id=trade_id,
        price=D(price),
        quantity=D(quantity),
        fee=D(fee),
        fee_asset="BTC",
        liquidity="maker",
    )


async def test_service_when_fills_arrive_after_the_cancel_then_applied_once_and_published(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, risk_schema: str
) -> None:
    p = topic_prefix
    user = f"late-{risk_schema}"
    await produce(kafka_settings, p + "market.instruments", [instrument()])
    await produce(kafka_settings, p + "market.tickers", [ticker()])
    await produce(kafka_settings, p + "users.events", funded_user(user)[:1])
    await produce(kafka_settings, p + "accounts.events", funded_user(user)[1:])
    app = build(
        ServiceSettings(
            RISK_ENGINE_SCHEMA=risk_schema,
            OPEXBRIDGE_TOPIC_PREFIX=p,
            RISK_ENGINE_GROUP=f"risk-{risk_schema}",
            RISK_ENGINE_TICK_S=0.2,
        ),
        kafka=kafka_settings,
        database=DatabaseSettings(DATABASE_URL=database_url),
        risk=RiskSettings(reference_price_max_age_ms=600000),
    )

    def mine(records: list[Any], kind: type[Any]) -> list[Any]:
        found = []
        for r in records:
            if r.key == user.encode() and isinstance(data := decode(r.value).data, kind):
                found.append(data)
        return found

    async with Tally(kafka_settings, p + "orders.approved", p + "positions.events") as tally:
        await app.start()
        try:
            state = app.service.engine.state

            async def ready() -> bool:
                account = state.accounts.get(user)
                return SYMBOL in state.references and account is not None and bool(account.totals)

            await wait_for(ready, timeout=30)
            await produce(kafka_settings, p + "orders.commands", [keyed(limit_buy(user, "c1"))])
            await tally.reach(lambda rs: len(mine(rs, OrderApproved)) == 1, timeout=30)
            account = state.accounts[user]
            assert account.reserved["USDT"] > 0

            common: dict[str, Any] = {
                "client_order_id": "c1",
                "order_id": "9001",
                "symbol": SYMBOL,
                "side": "buy",
                "order_type": "limit",
                "quantity": D("0.001"),
                "price": D("50000"),
            }
            partial = OrderFilled(
                **common,
                status="PARTIALLY_FILLED",
                filled_quantity=D("0.0004"),
                avg_price=D("50000"),
                last_fill=fill("t1", "0.0004", "50000"),
            )
            canceled = OrderCanceled(**common, filled_quantity=D("0.0004"), avg_price=D("50000"))
            # learnt after the cancel: the cancel re-stated with the trade ...
            late_cancel = OrderCanceled(
                **common,
                filled_quantity=D("0.0007"),
                avg_price=D("49995.714285714285714286"),
                last_fill=fill("t2", "0.0003", "49990", fee="0.0000003"),
            )
            # ... and the rest, which fills the order
            late_filled = OrderFilled(
                **common,
                status="FILLED",
                filled_quantity=D("0.001"),
                avg_price=D("49991"),
                last_fill=fill("t3", "0.0003", "49980"),
            )
            first_batch: list[Envelope[Any]] = [
                new_message(OrderAccepted(**common), user_id=user),
                new_message(partial, user_id=user),
                new_message(canceled, user_id=user),
            ]
            late = new_message(late_cancel, user_id=user)
            await produce(
                kafka_settings,
                p + "orders.events",
                [
                    *(keyed(e) for e in first_batch),
                    keyed(late),
                    keyed(late),  # the same message redelivered
                    keyed(new_message(late_cancel, user_id=user)),  # the same fill re-published
                    keyed(new_message(canceled, user_id=user)),  # the first cancel again
                    keyed(new_message(late_filled, user_id=user)),
                    keyed(new_message(late_filled, user_id=user)),
                ],
            )
            await tally.reach(
                lambda rs: any(u.quantity == D("0.001") for u in mine(rs, PositionUpdated)),
                timeout=30,
            )
            await asyncio.sleep(1.0)  # time for anything counted twice to show up

            updates = mine(tally.records, PositionUpdated)
            assert [u.quantity for u in updates] == [D("0.0004"), D("0.0007"), D("0.001")]
            assert updates[-1].realized_pnl == -D("0.0000003") * D("49990")
            position = account.positions[SYMBOL]
            assert position.quantity == D("0.001")
            assert account.reserved == {}
            assert not account.open_orders
            assert account.totals == {
                "USDT": D(100_000)
                - D("0.0004") * 50000
                - D("0.0003") * 49990
                - D("0.0003") * 49980,
                "BTC": D("0.001") - D("0.0000003"),
            }
        finally:
            await app.stop()

    # a restart rebuilds the same state from the journal
    again = build(
        ServiceSettings(
            RISK_ENGINE_SCHEMA=risk_schema,
            OPEXBRIDGE_TOPIC_PREFIX=p,
            RISK_ENGINE_GROUP=f"risk-{risk_schema}",
        ),
        kafka=kafka_settings,
        database=DatabaseSettings(DATABASE_URL=database_url),
    )
    await again.service.rebuild(again.db)
    try:
        rebuilt = again.service.engine.state.accounts[user]
        restored = rebuilt.positions[SYMBOL]
        assert (restored.quantity, restored.avg_entry, restored.realized_pnl) == (
            position.quantity,
            position.avg_entry,
            position.realized_pnl,
        )
        assert rebuilt.totals == account.totals
        assert rebuilt.reserved == {}
    finally:
        await again.db.dispose()
