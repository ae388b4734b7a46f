"""The risk engine as a service, against the real broker and database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from opexbridge.cli import app as cli_app
from services.risk_engine.app import build
from services.risk_engine.config import RiskSettings, ServiceSettings
from shared.contracts import (
    CancelApproved,
    CancelOrder,
    Envelope,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    TradingStateChanged,
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
from tests.support.kafka import Tally, produce, read_all, wait_for

pytestmark = pytest.mark.integration
RELAXED = {
    "RISK_MAX_ORDERS_PER_SECOND": "100000",
    "RISK_MAX_ORDERS_PER_MINUTE": "1000000",
    "RISK_REFERENCE_PRICE_MAX_AGE_MS": "600000",
}


def settings(schema: str, prefix: str) -> ServiceSettings:
    return ServiceSettings(
        RISK_ENGINE_SCHEMA=schema,
        OPEXBRIDGE_TOPIC_PREFIX=prefix,
        RISK_ENGINE_GROUP=f"risk-{schema}",
        RISK_ENGINE_TICK_S=0.2,
    )


async def outputs(
    kafka: KafkaSettings, topic: str, users: set[str], expect: int
) -> list[Envelope[Any]]:
    records = await read_all(kafka, topic, expect=None, timeout=0.5, idle=0)
    found = [decode(r.value) for r in records if r.key is not None and r.key.decode() in users]
    if len(found) >= expect:
        return found
    records = await read_all(kafka, topic, expect=len(records) + expect - len(found), timeout=30)
    return [decode(r.value) for r in records if r.key is not None and r.key.decode() in users]


async def test_service_when_commands_arrive_then_each_gets_one_decision_and_fills_move_positions(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, risk_schema: str
) -> None:
    p = topic_prefix
    user, stranger = f"u-{risk_schema}", f"nobody-{risk_schema}"
    await produce(kafka_settings, p + "market.instruments", [instrument()])
    await produce(kafka_settings, p + "market.tickers", [ticker()])
    await produce(kafka_settings, p + "users.events", funded_user(user)[:1])
    await produce(kafka_settings, p + "accounts.events", funded_user(user)[1:])
    risk = RiskSettings(
        max_orders_per_second=1000, max_orders_per_minute=100000, reference_price_max_age_ms=600000
    )
    app = build(
        settings(risk_schema, p),
        kafka=kafka_settings,
        database=DatabaseSettings(DATABASE_URL=database_url),
        risk=risk,
    )
    await app.start()
    try:
        state = app.service.engine.state

        async def ready() -> bool:
            account = state.accounts.get(user)
            return (
                SYMBOL in state.instruments
                and SYMBOL in state.references
                and account is not None
                and account.provisioned
                and account.totals is not None
            )

        await wait_for(ready, timeout=30)
        good = limit_buy(user, "c1")
        off_step = limit_buy(user, "c2", price=Decimal("50000.005"))
        unknown_user = limit_buy(stranger, "c3")
        cancel = new_message(CancelOrder(client_order_id="c1", symbol=SYMBOL), user_id=user)
        await produce(
            kafka_settings,
            p + "orders.commands",
            [
                keyed(good),
                keyed(off_step),
                (user.encode(), b'{"id": "not a message"'),
                keyed(unknown_user),
                keyed(cancel),
            ],
        )
        approved = await outputs(kafka_settings, p + "orders.approved", {user}, 2)
        assert [type(e.data) for e in approved] == [OrderApproved, CancelApproved]
        first = approved[0].data_as(OrderApproved)
        assert first.command.client_order_id == "c1"
        assert first.reservation.asset == "USDT"
        assert first.reservation.amount >= Decimal("50")  # 0.001 x 50000, plus fee allowance
        assert approved[0].causation_id == good.id
        assert approved[0].correlation_id == good.correlation_id

        rejected = await outputs(kafka_settings, p + "orders.events", {user, stranger}, 2)
        reasons = {
            e.data_as(OrderRejected).client_order_id: e.data_as(OrderRejected).reason_code
            for e in rejected
        }
        assert reasons == {"c2": "PRICE_STEP", "c3": "USER_NOT_PROVISIONED"}
        letters = await read_all(kafka_settings, p + "orders.commands.dlq", expect=1)
        assert any(r.value == b'{"id": "not a message"' for r in letters)

        fill = Fill(
            trade_id="t1",
            price=Decimal("49990"),
            quantity=Decimal("0.001"),
            fee=Decimal("0.000001"),
            fee_asset="BTC",
            liquidity="taker",
        )
        common: dict[str, Any] = {
            "client_order_id": "c1",
            "order_id": "9001",
            "symbol": SYMBOL,
            "side": "buy",
            "order_type": "limit",
            "quantity": Decimal("0.001"),
            "price": Decimal("50000"),
        }
        accepted = new_message(OrderAccepted(**common), user_id=user)
        filled = new_message(
            OrderFilled(
                **common,
                status="FILLED",
                filled_quantity=Decimal("0.001"),
                avg_price=Decimal("49990"),
                last_fill=fill,
            ),
            user_id=user,
        )
        await produce(
            kafka_settings, p + "orders.events", [keyed(accepted), keyed(filled), keyed(filled)]
        )
        positions = await outputs(kafka_settings, p + "positions.events", {user}, 1)
        position = positions[-1].data_as(PositionUpdated)
        assert position.symbol == SYMBOL
        assert position.quantity == Decimal("0.001")  # the duplicate fill counted once
        assert position.realized_pnl < 0  # the fee, booked as a cost
        account = state.accounts[user]
        assert account.reserved.get("USDT", Decimal(0)) == 0
        assert not account.open_orders
    finally:
        await app.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_service_when_killed_mid_stream_then_every_command_decided_once_and_state_rebuilt(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, risk_schema: str
) -> None:
    p = topic_prefix
    users = [f"k{i}-{risk_schema}" for i in range(20)]
    await produce(kafka_settings, p + "market.instruments", [instrument()])
    await produce(kafka_settings, p + "market.tickers", [ticker()])
    await produce(kafka_settings, p + "users.events", [funded_user(u)[0] for u in users])
    await produce(kafka_settings, p + "accounts.events", [funded_user(u)[1] for u in users])
    env = {
        **os.environ,
        **RELAXED,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "DATABASE_URL": database_url,
        "RISK_ENGINE_SCHEMA": risk_schema,
        "RISK_ENGINE_GROUP": f"risk-{risk_schema}",
        "OPEXBRIDGE_TOPIC_PREFIX": p,
        "RISK_ENGINE_BATCH_SIZE": "20",
        "LOG_LEVEL": "WARNING",
    }

    def start() -> subprocess.Popen[bytes]:
        env["RISK_ENGINE_PORT"] = str(free_port())
        return subprocess.Popen(
            [sys.executable, "-m", "services.risk_engine"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def decisions(records: list[Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in records:
            if r.key is None or r.key.decode() not in users:
                continue
            data = decode(r.value).data
            if isinstance(data, OrderApproved):
                cid = data.command.client_order_id
            elif isinstance(data, OrderRejected):
                cid = data.client_order_id
            else:
                continue
            counts[cid] = counts.get(cid, 0) + 1
        return counts

    async with Tally(kafka_settings, p + "orders.approved", p + "orders.events") as tally:
        child = start()
        try:
            probe = limit_buy(users[0], "probe")
            await produce(kafka_settings, p + "orders.commands", [keyed(probe)])
            await tally.reach(lambda rs: "probe" in decisions(rs), timeout=60)
            commands = [limit_buy(users[i % 20], f"o{i}") for i in range(300)]
            await produce(kafka_settings, p + "orders.commands", [keyed(c) for c in commands])
            await tally.reach(lambda rs: len(decisions(rs)) >= 40, timeout=60)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        before = decisions(tally.records)
        assert 0 < len(before) < 301, "the kill came after every decision"

        child = start()
        try:
            await tally.reach(lambda rs: len(decisions(rs)) >= 301, timeout=90)
            again = limit_buy(users[0], "o0")  # a new message reusing a decided order's id
            await produce(kafka_settings, p + "orders.commands", [keyed(again)])
            await tally.reach(lambda rs: decisions(rs).get("o0") == 2, timeout=30)
            await asyncio.sleep(1.0)  # time for anything doubled to show up
        finally:
            child.send_signal(signal.SIGTERM)
            await asyncio.to_thread(child.wait, 20)
        counts = decisions(tally.records)
        rejected = [
            d
            for r in tally.records
            if r.key == users[0].encode()
            and isinstance(d := decode(r.value).data, OrderRejected)
            and d.client_order_id == "o0"
        ]

    assert counts["o0"] == 2  # its decision, and the duplicate's refusal
    assert rejected[0].reason_code == "DUPLICATE_CLIENT_ORDER_ID"
    del counts["o0"]
    assert set(counts) == {"probe", *(f"o{i}" for i in range(1, 300))}
    assert set(counts.values()) == {1}


async def test_ops_when_user_halted_or_limited_then_next_command_refused_and_state_published(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, risk_schema: str
) -> None:
    p = topic_prefix
    user = f"ops-{risk_schema}"
    await produce(kafka_settings, p + "market.instruments", [instrument()])
    await produce(kafka_settings, p + "market.tickers", [ticker()])
    await produce(kafka_settings, p + "users.events", funded_user(user)[:1])
    await produce(kafka_settings, p + "accounts.events", funded_user(user)[1:])
    app = build(
        settings(risk_schema, p),
        kafka=kafka_settings,
        database=DatabaseSettings(DATABASE_URL=database_url),
        risk=RiskSettings(reference_price_max_age_ms=600000),
    )
    runner = CliRunner()

    def cli(*args: str) -> None:
        result = runner.invoke(cli_app, [*args, "--schema", risk_schema])
        assert result.exit_code == 0, result.output

    await app.start()
    try:
        account = app.service.engine.state.accounts

        async def ready() -> bool:
            return user in account and account[user].totals is not None

        await wait_for(ready, timeout=30)
        await asyncio.to_thread(cli, "risk", "halt", "--user", user, "--reason", "incident 7")
        await asyncio.sleep(1.5)  # applied on the engine's next tick at the latest
        await produce(kafka_settings, p + "orders.commands", [keyed(limit_buy(user, "h1"))])
        halted = await outputs(kafka_settings, p + "orders.events", {user}, 1)
        assert [e.data_as(OrderRejected).reason_code for e in halted] == ["TRADING_HALTED"]
        await asyncio.to_thread(cli, "risk", "resume", "--user", user, "--reason", "resolved")
        await asyncio.to_thread(
            cli, "risk", "limits", "set", "--user", user, "--max-order-notional", "20"
        )
        await asyncio.sleep(1.5)  # the engine applies both on its next tick
        await produce(kafka_settings, p + "orders.commands", [keyed(limit_buy(user, "h2"))])
        rejected = await outputs(kafka_settings, p + "orders.events", {user}, 2)
        reasons = [e.data_as(OrderRejected).reason_code for e in rejected]
        assert reasons == ["TRADING_HALTED", "MAX_NOTIONAL"]
        changes = await outputs(kafka_settings, p + "accounts.events", {user}, 2)
        states = [
            (e.data.state, e.data.changed_by, e.data.reason)
            for e in changes
            if isinstance(e.data, TradingStateChanged)
        ]
        assert [s[0] for s in states] == ["HALTED", "ACTIVE"]
        assert states[0][1].startswith("ops:")
        assert states[0][2] == "incident 7"
    finally:
        await app.stop()
