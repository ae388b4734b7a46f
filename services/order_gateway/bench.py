"""The order gateway's benchmark: `make bench-gateway` (`python -m services.order_gateway.bench`).

Everything on 127.0.0.1: the local Kafka and PostgreSQL (started if needed), the sandbox
in a subprocess (uvicorn; per-user rate limit off, market maker off, listing delay 5 ms —
OPEX lists an order a moment after answering; 5 ms stands for a fast OPEX), the gateway
in a subprocess (``python -m services.order_gateway``), funded users with API keys
stored as user_sync stores them. This process publishes OrderApproved messages (resting
limit buys with distinct terms) to ``orders.approved`` and reads ``orders.events``.

1. flood: ``FLOOD`` approvals as fast as they can be produced; ``orders_per_s`` = orders
   with OrderAccepted / (last OrderAccepted - first send).
2. paced: ``PACED`` approvals at 500/s; ``p50_ms`` / ``p99_ms`` from the send of an
   approval to the arrival of its OrderAccepted (which carries OPEX's order id, so it
   includes OPEX's listing delay and the gateway's correlation).
3. direct: the same kind and number of orders sent straight to the sandbox with the
   suite's OPEX client, as many at a time as the gateway's send slots
   (``ORDER_GATEWAY_PLACE_CONCURRENCY``), no Kafka, no database, no correlation:
   ``direct_ms_per_order`` against ``gateway_ms_per_order`` (both wall time per order).

The gateway's own CPU (user + system, from ``/proc/<pid>/stat``) is measured too: idle
for ``IDLE_S`` seconds right after it is healthy (no order yet: ``idle_cpu_pct`` of one
core), during the flood (``gateway_cpu_ms_per_order``), and idle again after the paced
run with every order resting (``resting_idle_cpu_pct``).

Printed and written to ``.bench/order_gateway.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from shared.contracts import (
    OrderApproved,
    PlaceOrder,
    Reservation,
    encode,
    new_message,
)
from shared.credentials import SecretBox, generate_key, opex_credentials_table
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs
from shared.observability import configure_logging
from shared.opex import ApiKey, OpexClient, OpexSettings
from shared.opex import OrderType as OpexOrderType
from shared.opex import Side as OpexSide
from shared.opex import TimeInForce as OpexTif

REPO = Path(__file__).resolve().parents[2]
USERS = 20
WARM = 200
FLOOD = 3_000
PACED = 2_500
PACED_RATE = 500.0
CONCURRENCY = 32
IDLE_S = 20.0
ADMIN_KEY = "bench-admin-key"
ADMIN_SECRET = "bench-admin-secret"


@dataclass
class Run:
    sent_at: dict[str, float] = field(default_factory=dict)
    accepted_at: dict[str, float] = field(default_factory=dict)

    @property
    def latencies_ms(self) -> list[float]:
        return sorted(
            (self.accepted_at[cid] - sent) * 1000
            for cid, sent in self.sent_at.items()
            if cid in self.accepted_at
        )

    def pct(self, q: float) -> float:
        values = self.latencies_ms
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q * len(values)))]

    @property
    def per_s(self) -> float:
        if not self.accepted_at:
            return 0.0
        span = max(self.accepted_at.values()) - min(self.sent_at.values())
        return len(self.accepted_at) / span if span > 0 else 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _idle_cpu_pct(pid: int, seconds: float) -> float:
    """Percent of one core that ``pid`` used over ``seconds`` of wall time."""
    before, started = _cpu_s(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return 100 * (_cpu_s(pid) - before) / (time.perf_counter() - started)


async def _opex_calls(gateway_port: int) -> dict[str, tuple[float, float]]:
    """The gateway's OPEX requests so far, per call: (count, total seconds)."""
    async with httpx.AsyncClient(timeout=5) as http:
        body = (await http.get(f"http://127.0.0.1:{gateway_port}/metrics")).text
    out: dict[str, tuple[float, float]] = {}
    for line in body.splitlines():
        for suffix, index in (("_count{", 0), ("_sum{", 1)):
            head = "opexbridge_gateway_opex_request_seconds" + suffix
            if line.startswith(head):
                call = line.split('call="', 1)[1].split('"', 1)[0]
                value = float(line.rsplit(" ", 1)[1])
                pair = list(out.get(call, (0.0, 0.0)))
                pair[index] = value
                out[call] = (pair[0], pair[1])
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not become healthy")


async def _provision(opex: OpexClient, n: int) -> tuple[str, str, ApiKey]:
    email = f"bench-{uuid.uuid4().hex[:10]}-{n}@example.com"
    password = SecretStr(f"Pw-{uuid.uuid4().hex}")
    registration = await opex.register(email)
    if registration.otp is None:
        raise RuntimeError("the sandbox must answer the OTP (SANDBOX_OTP_IN_RESPONSE)")
    await opex.confirm(await opex.verify(email, registration.otp), password)
    token = await opex.login(email, password)
    key = await opex.create_api_key(token.bearer(), "bench")
    subject = token.subject
    admin = opex.admin
    if subject is None or admin is None:
        raise RuntimeError("no subject or admin credential")
    await opex.deposit(admin, Decimal(10_000_000), "USDT", subject)
    return f"bench-user-{n}", subject, key.credentials()


def _store(
    database_url: str, schema: str, box: SecretBox, users: list[tuple[str, str, ApiKey]]
) -> None:
    table = opex_credentials_table(schema)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            table.create(conn)
            for user_id, subject, key in users:
                conn.execute(
                    table.insert().values(
                        user_id=user_id,
                        opex_user_id=uuid.UUID(subject),
                        api_key=key.key,
                        secret_enc=box.encrypt(key.secret),
                        password_enc=box.encrypt("unused"),
                        key_version="bench",
                    )
                )
    finally:
        engine.dispose()


class Orders:
    """Resting limit buys far below the market with terms that do not repeat."""

    def __init__(self) -> None:
        self.n = 0

    def terms(self) -> tuple[Decimal, Decimal]:
        self.n += 1
        price = Decimal(15000 + self.n % 5000)
        quantity = Decimal("0.001") + Decimal(self.n // 5000) * Decimal("0.000001")
        return price, quantity

    def approval(self, user_id: str) -> tuple[str, bytes]:
        price, quantity = self.terms()
        cid = f"b-{uuid.uuid4().hex[:20]}"
        command = PlaceOrder.model_validate(
            {
                "client_order_id": cid,
                "symbol": "BTC_USDT",
                "side": "buy",
                "type": "limit",
                "quantity": quantity,
                "price": price,
            }
        )
        envelope = new_message(
            OrderApproved(
                command=command, reservation=Reservation(asset="USDT", amount=price * quantity)
            ),
            user_id=user_id,
        )
        return cid, encode(envelope)


async def _collect(kafka: KafkaSettings, topic: str, runs: list[Run], stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        group_id=None,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value)
                    if body.get("type") != "OrderAccepted":
                        continue
                    cid = body["data"]["client_order_id"]
                    for run in runs:
                        if cid in run.sent_at:
                            run.accepted_at.setdefault(cid, now)
    finally:
        await consumer.stop()


async def _drive(
    producer: AIOKafkaProducer,
    topic: str,
    run: Run,
    users: list[str],
    orders: Orders,
    count: int,
    rate: float | None,
    timeout_s: float = 120,
) -> None:
    started = time.perf_counter()
    for i in range(count):
        if rate is not None:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        user = users[i % len(users)]
        cid, payload = orders.approval(user)
        run.sent_at[cid] = time.perf_counter()
        await producer.send(topic, payload, key=user.encode())
    await producer.flush()
    deadline = time.perf_counter() + timeout_s
    while len(run.accepted_at) < count and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _direct(
    opex: OpexClient, users: list[tuple[str, str, ApiKey]], orders: Orders, count: int
) -> float:
    """Wall seconds for ``count`` placements straight to the sandbox."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            _, _, key = users[i % len(users)]
            price, quantity = orders.terms()
            await opex.place_order(
                key, "BTC_USDT", OpexSide.BUY, OpexOrderType.LIMIT, quantity, price, OpexTif.GTC
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def main() -> dict[str, Any]:
    from tests.support.stack import load_stack

    stack: Any = load_stack()
    started_stack = None
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL")):
        started_stack = stack.ensure_up()
        os.environ.update(stack.endpoints())
    kafka = KafkaSettings()
    database_url = DatabaseSettings().database_url
    prefix = f"gwbench{uuid.uuid4().hex[:6]}."
    schema = f"gwbench_{uuid.uuid4().hex[:8]}"
    creds_schema = f"{schema}_creds"
    secrets_key = generate_key()
    box = SecretBox([secrets_key])
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    sandbox_port, gateway_port = _free_port(), _free_port()
    log_dir = REPO / ".bench"
    log_dir.mkdir(exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        await apply_topics(admin, topic_specs(prefix=prefix))
        migrate(database_url, schema, REPO / "services/order_gateway/migrations/versions")
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "services.opex_sandbox"],
            cwd=REPO,
            env={
                **os.environ,
                "SANDBOX_HOST": "127.0.0.1",
                "SANDBOX_PORT": str(sandbox_port),
                "SANDBOX_RATE_LIMIT_ENABLED": "false",
                "SANDBOX_LISTING_DELAY_MS": "5",
                "SANDBOX_CANCEL_DELAY_MS": "5",
                "SANDBOX_MARKET_MAKER": "false",
                "OPEX_API_KEY": ADMIN_KEY,
                "OPEX_API_SECRET": ADMIN_SECRET,
            },
            stdout=(log_dir / "gateway_sandbox.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        children.append(sandbox)
        url = f"http://127.0.0.1:{sandbox_port}"
        await _wait_healthy(url + "/actuator/health", sandbox, "sandbox")
        settings = OpexSettings(
            api_url=url,
            api_key=ADMIN_KEY,
            api_secret=ADMIN_SECRET,
            timeout=10,
            max_keepalive_connections=CONCURRENCY + 8,
        )
        async with OpexClient(settings) as opex:
            users = [await _provision(opex, n) for n in range(USERS)]
            _store(database_url, creds_schema, box, users)
            gateway = subprocess.Popen(
                [sys.executable, "-m", "services.order_gateway"],
                cwd=REPO,
                env={
                    **os.environ,
                    "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                    "DATABASE_URL": database_url,
                    "OPEXBRIDGE_TOPIC_PREFIX": prefix,
                    "OPEXBRIDGE_SECRETS_KEY": secrets_key,
                    "ORDER_GATEWAY_SCHEMA": schema,
                    "ORDER_GATEWAY_CREDENTIALS_SCHEMA": creds_schema,
                    "ORDER_GATEWAY_GROUP": f"gw-{schema}",
                    "ORDER_GATEWAY_INSTANCE": schema,
                    "ORDER_GATEWAY_PORT": str(gateway_port),
                    "ORDER_GATEWAY_PLACE_CONCURRENCY": str(CONCURRENCY),
                    "ORDER_GATEWAY_PUBLISH_MARKET_DATA": "false",
                    "OPEX_API_URL": url,
                    "OPEX_API_KEY": ADMIN_KEY,
                    "OPEX_API_SECRET": ADMIN_SECRET,
                    "OPEX_MAX_KEEPALIVE_CONNECTIONS": str(CONCURRENCY + 8),
                    "LOG_LEVEL": "WARNING",
                },
                stdout=(log_dir / "order_gateway.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            children.append(gateway)
            await _wait_healthy(f"http://127.0.0.1:{gateway_port}/health", gateway, "gateway")
            await asyncio.sleep(2.0)  # start-up work (reconcile, first reads) settles
            idle_pct = await _idle_cpu_pct(gateway.pid, IDLE_S)
            user_ids = [u[0] for u in users]
            orders = Orders()
            warm, flood, paced = Run(), Run(), Run()
            stop = asyncio.Event()
            collector = asyncio.create_task(
                _collect(kafka, prefix + "orders.events", [warm, flood, paced], stop)
            )
            producer = AIOKafkaProducer(
                **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
            )
            await producer.start()
            topic = prefix + "orders.approved"
            try:
                await _drive(producer, topic, warm, user_ids, orders, WARM, None)
                if len(warm.accepted_at) < WARM:
                    raise RuntimeError(f"warm-up: {len(warm.accepted_at)}/{WARM} accepted")
                flood_cpu = _cpu_s(gateway.pid)
                sandbox_cpu = _cpu_s(sandbox.pid)
                calls_before = await _opex_calls(gateway_port)
                await _drive(producer, topic, flood, user_ids, orders, FLOOD, None)
                flood_cpu = _cpu_s(gateway.pid) - flood_cpu
                sandbox_cpu = _cpu_s(sandbox.pid) - sandbox_cpu
                calls_after = await _opex_calls(gateway_port)
                await asyncio.sleep(1.0)
                await _drive(producer, topic, paced, user_ids, orders, PACED, PACED_RATE)
                await asyncio.sleep(2.0)
                resting_pct = await _idle_cpu_pct(gateway.pid, IDLE_S)
            finally:
                stop.set()
                await collector
                await producer.stop()
            direct_s = await _direct(opex, users, orders, FLOOD)
    finally:
        for child in reversed(children):
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
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{creds_schema}" CASCADE'))
        engine.dispose()
        if started_stack is not None:
            stack.stop(started_stack)
    direct_per_s = FLOOD / direct_s
    gateway_ms = 1000 / flood.per_s if flood.per_s else float("inf")
    direct_ms = 1000 / direct_per_s
    return {
        "orders_per_s": round(flood.per_s, 1),
        "orders_accepted": len(flood.accepted_at),
        "orders_sent": FLOOD,
        "p50_ms": round(paced.pct(0.50), 2),
        "p99_ms": round(paced.pct(0.99), 2),
        "paced_rate_per_s": PACED_RATE,
        "paced_accepted": len(paced.accepted_at),
        "paced_mean_ms": round(statistics.fmean(paced.latencies_ms), 2)
        if paced.latencies_ms
        else None,
        "flood_p50_ms": round(flood.pct(0.50), 2),
        "flood_p99_ms": round(flood.pct(0.99), 2),
        "gateway_ms_per_order": round(gateway_ms, 3),
        "direct_ms_per_order": round(direct_ms, 3),
        "direct_orders_per_s": round(direct_per_s, 1),
        "ratio_to_direct": round(gateway_ms / direct_ms, 2),
        "gateway_cpu_ms_per_order": round(1000 * flood_cpu / max(1, len(flood.accepted_at)), 3),
        "sandbox_cpu_ms_per_order": round(1000 * sandbox_cpu / max(1, len(flood.accepted_at)), 3),
        "opex_calls_in_flood": {
            call: {
                "per_order": round((n - calls_before.get(call, (0.0, 0.0))[0]) / FLOOD, 3),
                "mean_ms": round(
                    1000
                    * (total - calls_before.get(call, (0.0, 0.0))[1])
                    / max(1.0, n - calls_before.get(call, (0.0, 0.0))[0]),
                    2,
                ),
            }
            for call, (n, total) in sorted(calls_after.items())
        },
        "idle_cpu_pct": round(idle_pct, 2),
        "resting_idle_cpu_pct": round(resting_pct, 2),
        "resting_orders": WARM + FLOOD + PACED,
        "sandbox_listing_delay_ms": 5,
        "users": USERS,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target": {"orders_per_s": 1000, "p99_ms": 50, "ratio_to_direct": 1.5},
    }


def run() -> None:
    configure_logging("order_gateway_bench", level="WARNING")
    result = asyncio.run(main())
    out = REPO / ".bench" / "order_gateway.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    print("order gateway benchmark (sandbox, real Kafka + PostgreSQL, 127.0.0.1)")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    run()
