"""``make bench-risk``: decisions per second through the real broker with durable state,
decision latency, and — in the same run — a bare aiokafka consume-and-produce relay on
the same topics as the baseline. Writes ``.bench/risk_engine.json``.

Everything runs on 127.0.0.1 against the local stack (started if needed); the risk
engine runs as its own process, as in production. Bounded: a few tens of thousands of
messages and a couple of minutes at most.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from shared.contracts import (
    Balance,
    BalancesUpdated,
    Envelope,
    InstrumentUpdated,
    PlaceOrder,
    TickerUpdated,
    UserProvisioned,
    Wallet,
    encode,
    new_message,
    partition_key,
)
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs

REPO = Path(__file__).resolve().parents[2]
USERS = 200
SYMBOL = "BTC_USDT"


@dataclass
class Run:
    count: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_s(self) -> float:
        return self.count / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process has used so far; None where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _order(user: str, n: int) -> bytes:
    return encode(
        new_message(
            PlaceOrder(
                client_order_id=f"b{n}",
                symbol=SYMBOL,
                side="buy",
                type="limit",
                quantity=Decimal("0.001"),
                price=Decimal("50000"),
                time_in_force="GTC",
            ),
            user_id=user,
        )
    )


async def _seed(producer: AIOKafkaProducer, prefix: str, users: list[str]) -> None:
    now = datetime.now(UTC)
    market: list[tuple[str, Envelope[Any]]] = [
        (
            "market.instruments",
            new_message(
                InstrumentUpdated(
                    symbol=SYMBOL,
                    base_asset="BTC",
                    quote_asset="USDT",
                    price_step=Decimal("0.01"),
                    quantity_step=Decimal("0.000001"),
                    min_order_value=Decimal(10),
                    max_order_value=Decimal(1_000_000),
                    is_available=True,
                    order_types=("LIMIT", "MARKET"),
                ),
                user_id=None,
            ),
        ),
        (
            "market.tickers",
            new_message(
                TickerUpdated(symbol=SYMBOL, last_price=Decimal(50000), at=now), user_id=None
            ),
        ),
    ]
    for topic, envelope in market:
        await producer.send(prefix + topic, encode(envelope), key=partition_key(envelope))
    for user in users:
        provisioned = new_message(
            UserProvisioned(
                opex_user_id=uuid.uuid4(), wallets=(Wallet(asset="USDT", free=Decimal(0)),)
            ),
            user_id=user,
        )
        balances = new_message(
            BalancesUpdated(
                balances=(Balance(asset="USDT", free=Decimal(10**7), locked=Decimal(0)),),
                source="opex",
            ),
            user_id=user,
        )
        await producer.send(prefix + "users.events", encode(provisioned), key=user.encode())
        await producer.send(prefix + "accounts.events", encode(balances), key=user.encode())
    await producer.flush()


_CLIENT_ORDER_ID = re.compile(rb'"client_order_id":"([^"\\]*)"')


async def _collect(
    consumer: AIOKafkaConsumer, sent_at: dict[str, float], expect: int, timeout: float
) -> tuple[list[float], float]:
    """Latencies (ms) of the first ``expect`` outputs whose client order id we sent."""
    latencies: list[float] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while len(latencies) < expect and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        now = time.monotonic()
        for records in batch.values():
            for record in records:
                headers = dict(record.headers or ())
                cid = _client_order_id(record.value, headers)
                started = sent_at.pop(cid, None) if cid else None
                if started is not None:
                    latencies.append((now - started) * 1000)
                    last = now
    return latencies, last


def _client_order_id(value: bytes, headers: dict[str, bytes]) -> str | None:
    """The client order id an output answers: the first one in its JSON (an approval's
    command comes first in its data; a rejection carries it at the top of its data).
    The collector is the load generator, not the system under test: a regex, not a
    JSON parse of every output."""
    relayed = headers.get("x-bench-cid")
    if relayed is not None:
        return relayed.decode()
    found = _CLIENT_ORDER_ID.search(value)
    return found.group(1).decode() if found else None


async def _pipeline_run(
    kafka: KafkaSettings,
    prefix: str,
    users: list[str],
    count: int,
    rate: float | None,
    start_n: int,
) -> Run:
    consumer = AIOKafkaConsumer(
        prefix + "orders.approved",
        prefix + "orders.events",
        **kafka.aiokafka_kwargs(),
        auto_offset_reset="latest",
        isolation_level="read_committed",
        group_id=None,
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=500)  # settle at the end of both topics
    producer = AIOKafkaProducer(
        **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
    )
    await producer.start()
    sent_at: dict[str, float] = {}
    # Encoded before the clock starts: the load generator shares the CPUs with the
    # engine, and making 20,000 envelopes is not what is measured.
    orders = [
        (f"b{n}", users[n % len(users)].encode(), _order(users[n % len(users)], n))
        for n in range(start_n, start_n + count)
    ]
    topic = prefix + "orders.commands"
    try:
        collector = asyncio.create_task(_collect(consumer, sent_at, count, 120))
        began = time.monotonic()
        for i, (client_order_id, key, value) in enumerate(orders):
            sent_at[client_order_id] = time.monotonic()
            await producer.send(topic, value, key=key)
            if rate is not None:
                wait = began + (i + 1) / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
        await producer.flush()
        latencies, last = await collector
    finally:
        await producer.stop()
        await consumer.stop()
    return Run(len(latencies), max(last - began, 1e-9), latencies)


async def _bare_relay(kafka: KafkaSettings, prefix: str, count: int) -> Run:
    """Consume the same commands and produce each to orders.approved (acks=all,
    idempotent, offsets committed per batch): the Kafka-only floor of one hop."""
    source = AIOKafkaConsumer(
        prefix + "orders.commands",
        **kafka.aiokafka_kwargs(),
        group_id=f"bare-relay-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=500,
    )
    sink = AIOKafkaProducer(
        **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
    )
    await source.start()
    await sink.start()
    relayed = 0
    began: float | None = None
    try:
        while relayed < count:
            batch = await source.getmany(timeout_ms=1000, max_records=500)
            if not batch:
                continue
            began = began or time.monotonic()
            futures = []
            for records in batch.values():
                for record in records:
                    futures.append(
                        await sink.send(
                            prefix + "bench.relay",
                            record.value,
                            key=record.key,
                        )
                    )
                    relayed += 1
            await asyncio.gather(*futures)
            await source.commit()
        seconds = time.monotonic() - (began or time.monotonic())
    finally:
        await source.stop()
        await sink.stop()
    return Run(relayed, max(seconds, 1e-9), [])


async def main() -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.support.stack import load_stack

    stack: Any = load_stack()
    started = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        started = stack.ensure_up()
        os.environ.update(stack.endpoints())
    kafka = KafkaSettings()
    database_url = DatabaseSettings().database_url
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    child: subprocess.Popen[bytes] | None = None
    try:
        specs = topic_specs(prefix=prefix)
        await apply_topics(admin, specs)
        from aiokafka.admin import NewTopic

        await admin.create_topics([NewTopic(prefix + "bench.relay", 12, 1)])
        migrate(database_url, schema, REPO / "services/risk_engine/migrations/versions")
        users = [f"bench-user-{i}" for i in range(USERS)]
        producer = AIOKafkaProducer(**kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True)
        await producer.start()
        await _seed(producer, prefix, users)
        await producer.stop()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "DATABASE_URL": database_url,
            "RISK_ENGINE_SCHEMA": schema,
            "RISK_ENGINE_GROUP": f"risk-{schema}",
            # its own outbox transactional id: another run on this broker is not fenced
            "RISK_ENGINE_INSTANCE": schema,
            "RISK_ENGINE_PORT": str(_free_port()),
            "OPEXBRIDGE_TOPIC_PREFIX": prefix,
            "RISK_MAX_ORDERS_PER_SECOND": "1000000",
            "RISK_MAX_ORDERS_PER_MINUTE": "100000000",
            "RISK_MAX_OPEN_ORDERS": "100000",
            "RISK_REFERENCE_PRICE_MAX_AGE_MS": "3600000",
            "LOG_LEVEL": "WARNING",
        }
        log_path = REPO / ".bench" / "risk_engine.log"
        log_path.parent.mkdir(exist_ok=True)
        log = log_path.open("wb")
        child = subprocess.Popen(
            [sys.executable, "-m", "services.risk_engine"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        warm = await _pipeline_run(kafka, prefix, users, 200, None, 0)
        if warm.count < 200:
            raise RuntimeError(f"risk engine did not answer the warm-up ({warm.count}/200)")
        cpu_before = _cpu_seconds(child.pid)
        flood = await _pipeline_run(kafka, prefix, users, 20_000, None, 1_000)
        cpu_after = _cpu_seconds(child.pid)
        paced = await _pipeline_run(kafka, prefix, users, 5_000, 1_000.0, 100_000)
        cpu_paced = _cpu_seconds(child.pid)
        relay = await _bare_relay(kafka, prefix, 200 + 20_000 + 5_000)
    finally:
        if child is not None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        existing = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if existing:
            await admin.delete_topics(existing)
        await admin.close()
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        if started is not None:
            stack.stop(started)
    return {
        "decisions_per_s": round(flood.per_s, 1),
        "decisions": flood.count,
        "p50_ms": round(paced.pct(0.50), 2),
        "p99_ms": round(paced.pct(0.99), 2),
        "paced_rate_per_s": 1000,
        "flood_p50_ms": round(flood.pct(0.50), 2),
        "flood_p99_ms": round(flood.pct(0.99), 2),
        "engine_cpu_us_per_decision": round((cpu_after - cpu_before) / flood.count * 1e6, 1)
        if flood.count and cpu_after is not None and cpu_before is not None
        else None,
        "paced_engine_cpu_us_per_decision": round((cpu_paced - cpu_after) / paced.count * 1e6, 1)
        if paced.count and cpu_paced is not None and cpu_after is not None
        else None,
        "bare_relay_per_s": round(relay.per_s, 1),
        "ratio_to_bare_relay": round(flood.per_s / relay.per_s, 3),
        "mean_paced_ms": round(statistics.fmean(paced.latencies_ms), 2)
        if paced.latencies_ms
        else None,
    }


def run() -> None:
    result = asyncio.run(main())
    out = REPO / ".bench" / "risk_engine.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    print("risk engine benchmark (real Kafka + PostgreSQL, 127.0.0.1)")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    run()
