"""``make bench``: the whole pipeline measured against its limits in one run.

The suite runs as child processes (`opexbridge.suite`) on the local Kafka and PostgreSQL
(the ones named by ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``, else the local stack,
started if needed) with a private topic prefix and schemas; users are provisioned by
user_sync and funded on the sandbox (rate limits off, listing delay 5 ms, market maker on).

1. rising load: PlaceOrder (resting limit buys, distinct terms) published to
   ``orders.commands`` at 50, 100, 200 ... orders/s; each step's end-to-end throughput
   is OrderAccepted on ``orders.events`` / (last OrderAccepted - first send). The steps
   stop at saturation (throughput under 80 % of the offered rate, or orders left
   unanswered); ``orders_per_s`` is the best step.
2. 500 orders/s for a few seconds: ``accepted_p50/p99/p999_ms`` (send → OrderAccepted);
   one order in ten is a crossing IOC order of a user with a WebSocket client on the
   notifier, and ``ws_p99_ms`` is send → the ``order_update`` frame saying it filled.
3. ``bare_relay_per_s``: the same PlaceOrder bytes through two bare aiokafka relays
   (consume, produce acks=all idempotent, commit per batch), as many hops as
   orders.commands → risk → orders.approved → gateway → orders.events.
4. ``direct_orders_per_s``: the same orders straight to the sandbox, one HTTP call per
   order (32 in flight), no Kafka, as the platform's old synchronous backend did.
5. what limits it: CPU seconds of every process (each service, the Kafka broker,
   PostgreSQL and its backends, the load generator) read from /proc, per order in the
   500/s run and per step, the cores busy while idle, and the orders/s the machine's
   cores could give at that cost (``cpu_bound_orders_per_s``).
6. every per-service benchmark (``--quick`` skips them), each as its own process, its
   JSON collected under ``services``.

Printed as a table and written to ``.bench/pipeline.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.engine import make_url

from opexbridge.devrun import load_stack
from opexbridge.procstat import CpuMeter, Sample, listening_pid, per_order_ms, with_children
from opexbridge.suite import REPO, Suite, SuiteOptions, SuiteUser, parse
from shared.contracts import PlaceOrder, encode, new_message
from shared.messaging import KafkaSettings
from shared.observability import configure_logging

USERS = 20
WS_USERS = 4
FUNDS = {"USDT": Decimal(50_000_000), "BTC": Decimal(1_000)}
STEPS = (10, 25, 50, 100, 200, 400, 800, 1600, 3200)
STEP_S = 5.0
PACED_RATE = 500.0
PACED_S = 4.0
DRAIN_S = 45.0
PACED_DRAIN_S = 90.0
RELAY_MESSAGES = 20_000
DIRECT_ORDERS = 1_500
DIRECT_CONCURRENCY = 32
IDLE_S = 5.0
CENT = Decimal("0.01")

SERVICE_BENCHES = (
    ("bench-sandbox", "services.opex_sandbox.bench", "sandbox.json"),
    ("bench-risk", "services.risk_engine.bench", "risk_engine.json"),
    ("bench-users", "services.user_sync.bench", "user_sync.json"),
    ("bench-notifier", "services.notifier.bench", "notifier.json"),
    ("bench-gateway", "services.order_gateway.bench", "order_gateway.json"),
    ("bench-api", "services.notifier.bench_api", "rest_api.json"),
)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


@dataclass
class Market:
    last: Decimal = Decimal(30000)


@dataclass
class Tracker:
    """Reads orders.events and market.tickers: when each order was accepted or filled."""

    sent: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, str] = field(default_factory=dict)
    ws_filled: dict[str, float] = field(default_factory=dict)
    market: Market = field(default_factory=Market)

    async def run(self, suite: Suite, stop: asyncio.Event, ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            suite.topic("orders.events"),
            suite.topic("market.tickers"),
            **suite.kafka.aiokafka_kwargs(),
            group_id=None,
            auto_offset_reset="latest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=300)
            ready.set()
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        body = parse(record.value)
                        if body is None:
                            continue
                        data = body.get("data") or {}
                        kind = body.get("type")
                        if kind == "TickerUpdated" and data.get("symbol") == "BTC_USDT":
                            last = data.get("last_price") or data.get("bid_price")
                            if last:
                                self.market.last = Decimal(str(last))
                            continue
                        cid = data.get("client_order_id")
                        if cid is None:
                            continue
                        if kind == "OrderAccepted":
                            self.accepted.setdefault(cid, now)
                        if kind in (
                            "OrderRejected",
                            "OrderFailed",
                            "OrderExpired",
                            "OrderCanceled",
                        ):
                            self.terminal.setdefault(cid, kind)
        finally:
            await consumer.stop()


class Orders:
    """PlaceOrder commands: resting buys below the market with terms that do not repeat,
    and crossing IOC orders that fill against the sandbox's market maker."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.n = 0

    def resting(self, user: str) -> tuple[str, bytes]:
        self.n += 1
        base = (self.tracker.market.last * Decimal("0.97")).quantize(CENT, ROUND_DOWN)
        price = base - Decimal(self.n % 2000) * CENT
        quantity = Decimal("0.001") + Decimal(self.n // 2000) * Decimal("0.000001")
        return self._command(user, "buy", "limit", quantity, price, "GTC")

    def crossing(self, user: str) -> tuple[str, bytes]:
        self.n += 1
        side = "buy" if self.n % 2 else "sell"
        factor = Decimal("1.01") if side == "buy" else Decimal("0.99")
        price = (self.tracker.market.last * factor).quantize(CENT, ROUND_DOWN)
        return self._command(user, side, "limit", Decimal("0.001"), price, "IOC")

    def _command(
        self, user: str, side: str, kind: str, quantity: Decimal, price: Decimal, tif: str
    ) -> tuple[str, bytes]:
        cid = f"pb-{uuid.uuid4().hex[:16]}"
        command = PlaceOrder.model_validate(
            {
                "client_order_id": cid,
                "symbol": "BTC_USDT",
                "side": side,
                "type": kind,
                "quantity": quantity,
                "price": price,
                "time_in_force": tif,
            }
        )
        return cid, encode(new_message(command, user_id=user))


@dataclass
class Step:
    rate: float
    sent: int
    accepted: int
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    refused: int = 0
    """Orders that ended without an OrderAccepted (a bench set-up problem if any)."""
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per accepted order by process, from the first send to the last
    answer (idle work in between included: it is what the machine spent)."""
    machine_busy: float | None = None


async def _drive(
    suite: Suite,
    producer: AIOKafkaProducer,
    tracker: Tracker,
    orders: Orders,
    users: list[str],
    rate: float,
    seconds: float,
    crossing_users: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Publish at ``rate`` for ``seconds``; the resting and crossing client order ids."""
    count = max(50, int(rate * seconds))
    resting: list[str] = []
    crossing: list[str] = []
    began = time.perf_counter()
    topic = suite.topic("orders.commands")
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if crossing_users and i % 10 == 5:
            user = crossing_users[(i // 10) % len(crossing_users)]
            cid, payload = orders.crossing(user)
            crossing.append(cid)
        else:
            user = users[i % len(users)]
            cid, payload = orders.resting(user)
            resting.append(cid)
        tracker.sent[cid] = time.perf_counter()
        await producer.send(topic, payload, key=user.encode())
    await producer.flush()
    return resting, crossing


async def _drain(tracker: Tracker, cids: list[str], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(c in tracker.accepted or c in tracker.terminal for c in cids):
            return
        await asyncio.sleep(0.1)


def meter_for(suite: Suite) -> CpuMeter:
    """CPU per process: each service of the suite, the Kafka broker and PostgreSQL
    (found by the ports they listen on, with PostgreSQL's backends) and this process,
    the load generator."""
    kafka_port = int(suite.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    pg_port = make_url(suite.options.database_url).port or 5432
    broker, postgres = listening_pid(kafka_port), listening_pid(pg_port)
    groups: dict[str, Any] = {}
    for name, child in suite.children.items():

        def pids(child: Any = child) -> list[int]:
            return [child.proc.pid] if child.proc is not None else []

        groups[name] = pids
    groups["kafka"] = lambda: [broker] if broker else []
    groups["postgres"] = lambda: with_children(postgres) if postgres else []
    groups["bench (load)"] = lambda: [os.getpid()]
    return CpuMeter(groups)


def limits(before: Sample, after: Sample, orders: int) -> dict[str, Any]:
    usage = CpuMeter.usage(before, after)
    busy = CpuMeter.machine_busy(before, after)
    return {
        "cpu_ms_per_order": per_order_ms(usage, orders),
        "machine_busy": round(busy, 3) if busy is not None else None,
    }


def idle_cost(before: Sample, after: Sample) -> dict[str, float]:
    """Per process, share of one core used while no order was sent."""
    seconds = after.at - before.at
    usage = CpuMeter.usage(before, after)
    ranked = sorted(usage.items(), key=lambda kv: kv[1], reverse=True)
    out = {name: round(used / seconds, 3) for name, used in ranked}
    out["total"] = round(sum(usage.values()) / seconds, 3)
    return out


def _step(tracker: Tracker, rate: float, cids: list[str]) -> Step:
    done = [c for c in cids if c in tracker.accepted]
    lat = [(tracker.accepted[c] - tracker.sent[c]) * 1000 for c in done]
    span = (
        (max(tracker.accepted[c] for c in done) - min(tracker.sent[c] for c in cids)) if done else 0
    )
    return Step(
        rate,
        len(cids),
        len(done),
        round(len(done) / span, 1) if span > 0 else 0.0,
        pct(lat, 0.5),
        pct(lat, 0.99),
        sum(1 for c in cids if c in tracker.terminal and c not in tracker.accepted),
    )


class WsClients:
    """One WebSocket client per user on the notifier, channel ``orders``."""

    def __init__(self, suite: Suite, users: list[SuiteUser], tracker: Tracker) -> None:
        self.suite = suite
        self.users = users
        self.tracker = tracker
        self.tasks: list[asyncio.Task[None]] = []
        self.ready = 0

    async def start(self) -> None:
        for user in self.users:
            self.tasks.append(asyncio.create_task(self._client(user)))
        deadline = time.monotonic() + 30
        while self.ready < len(self.users) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    async def _client(self, user: SuiteUser) -> None:
        url = self.suite.notifier_url.replace("http", "ws") + "/ws"
        url += f"?token={self.suite.token(user.user_id)}&channels=orders"
        async with websockets.connect(url, max_size=2**22) as ws:
            async for raw in ws:
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame.get("type") == "subscribed":
                    self.ready += 1
                data = frame.get("data") or {}
                if frame.get("type") == "order_update" and data.get("status") in (
                    "filled",
                    "partially_filled",
                ):
                    self.tracker.ws_filled.setdefault(str(data.get("client_order_id")), now)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task


async def bare_relay(kafka: KafkaSettings, prefix: str, payloads: list[bytes]) -> float:
    """Messages per second through two consume → produce hops (acks=all, idempotent,
    offsets committed per batch, read_committed), end to end."""
    names = [f"{prefix}bench.relay.{i}" for i in range(3)]
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 3, 1) for n in names])
    finally:
        await admin.close()
    stop = asyncio.Event()

    async def hop(source: str, sink: str) -> None:
        consumer = AIOKafkaConsumer(
            source,
            **kafka.aiokafka_kwargs(),
            group_id=f"bare-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=500,
        )
        producer = AIOKafkaProducer(
            **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
        )
        await consumer.start()
        await producer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=500)
                futures = [
                    await producer.send(sink, r.value, key=r.key)
                    for records in batch.values()
                    for r in records
                ]
                if futures:
                    await asyncio.gather(*futures)
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()

    out = AIOKafkaConsumer(
        names[2],
        **kafka.aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await out.start()
    hops = [
        asyncio.create_task(hop(names[0], names[1])),
        asyncio.create_task(hop(names[1], names[2])),
    ]
    producer = AIOKafkaProducer(
        **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
    )
    await producer.start()
    try:
        await asyncio.sleep(2)  # the relays joined their groups
        began = time.perf_counter()
        for i, payload in enumerate(payloads):
            await producer.send(names[0], payload, key=str(i % 50).encode())
        await producer.flush()
        got, last = 0, began
        deadline = began + 90
        while got < len(payloads) and time.perf_counter() < deadline:
            batch = await out.getmany(timeout_ms=200)
            n = sum(len(r) for r in batch.values())
            if n:
                got += n
                last = time.perf_counter()
        return round(got / (last - began), 1) if last > began else 0.0
    finally:
        stop.set()
        await producer.stop()
        for task in hops:
            with contextlib.suppress(BaseException):
                await task
        await out.stop()


async def direct(suite: Suite, users: list[SuiteUser], orders: Orders, count: int) -> float:
    """Orders per second straight to the sandbox: one signed HTTP call per order."""
    from shared.opex import OrderType, Side, TimeInForce

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            key = suite.keys[users[i % len(users)].user_id]
            orders.n += 1
            price = (orders.tracker.market.last * Decimal("0.96")).quantize(CENT, ROUND_DOWN)
            price -= Decimal(orders.n % 2000) * CENT
            await suite.opex.place_order(
                key, "BTC_USDT", Side.BUY, OrderType.LIMIT, Decimal("0.001"), price, TimeInForce.GTC
            )
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(DIRECT_CONCURRENCY)))
    return round(done / (time.perf_counter() - began), 1)


async def pipeline(kafka_bootstrap: str, database_url: str, say: Any) -> dict[str, Any]:
    options = SuiteOptions(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        log_dir=REPO / ".bench" / "pipeline-logs",
        partitions=6,
    )
    suite = Suite(options)
    say("starting the suite (sandbox, user_sync, risk_engine, order_gateway, notifier) ...")
    async with suite:
        users = await suite.provision(USERS)
        say(f"{len(users)} users provisioned by user_sync; funding them on the sandbox")
        await suite.fund(users, FUNDS)
        await suite.wait_ready(users, {"USDT": FUNDS["USDT"]})
        say("the risk engine knows every balance, instruments and tickers flow")
        tracker = Tracker()
        stop, ready = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(tracker.run(suite, stop, ready))
        await ready.wait()
        ws = WsClients(suite, users[:WS_USERS], tracker)
        await ws.start()
        producer = AIOKafkaProducer(
            **suite.kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
        )
        await producer.start()
        orders = Orders(tracker)
        ids = [u.user_id for u in users]
        rest_ids = ids[WS_USERS:]
        steps: list[Step] = []
        meter = meter_for(suite)
        try:
            warm, _ = await _drive(suite, producer, tracker, orders, ids, 100, 2)
            await _drain(tracker, warm, DRAIN_S)
            quiet = meter.sample()
            await asyncio.sleep(IDLE_S)
            idle = idle_cost(quiet, meter.sample())
            say(f"  idle for {IDLE_S:.0f} s: {idle['total']:.2f} cores busy with no orders")
            for rate in STEPS:
                before = meter.sample()
                cids, _ = await _drive(suite, producer, tracker, orders, rest_ids, rate, STEP_S)
                await _drain(tracker, cids, DRAIN_S)
                step = _step(tracker, rate, cids)
                used = limits(before, meter.sample(), step.accepted)
                step.cpu_ms_per_order = used["cpu_ms_per_order"]
                step.machine_busy = used["machine_busy"]
                steps.append(step)
                say(
                    f"  offered {rate:>5}/s: {step.accepted}/{step.sent} accepted, {step.per_s}/s end to end, p99 {step.p99_ms} ms, {step.cpu_ms_per_order.get('total')} CPU ms/order"
                )
                if step.accepted < step.sent or step.per_s < 0.8 * rate:
                    break
            say(
                f"paced run at {PACED_RATE:.0f}/s for {PACED_S:.0f} s (1 in 10 crossing, WebSocket users)"
            )
            before = meter.sample()
            cids, crossing = await _drive(
                suite,
                producer,
                tracker,
                orders,
                rest_ids,
                PACED_RATE,
                PACED_S,
                crossing_users=ids[:WS_USERS],
            )
            await _drain(tracker, cids, PACED_DRAIN_S)
            deadline = time.perf_counter() + 15
            while time.perf_counter() < deadline and not all(  # noqa: ASYNC110
                c in tracker.ws_filled for c in crossing
            ):
                await asyncio.sleep(0.1)
            paced_cpu = limits(before, meter.sample(), sum(c in tracker.accepted for c in cids))
            paced = [
                (tracker.accepted[c] - tracker.sent[c]) * 1000
                for c in cids
                if c in tracker.accepted
            ]
            ws_lat = [
                (tracker.ws_filled[c] - tracker.sent[c]) * 1000
                for c in crossing
                if c in tracker.ws_filled
            ]
            say("bare aiokafka relay over two hops, same messages ...")
            payloads = [orders.resting(ids[i % len(ids)])[1] for i in range(RELAY_MESSAGES)]
            relay = await bare_relay(suite.kafka, suite.prefix, payloads)
            say("the same orders straight to the sandbox, one HTTP call each ...")
            direct_per_s = await direct(suite, users, orders, DIRECT_ORDERS)
        finally:
            stop.set()
            await ws.stop()
            await producer.stop()
            with contextlib.suppress(BaseException):
                await reader
        best = max(steps, key=lambda s: s.per_s) if steps else None
        return {
            **_limit_figures(idle, paced_cpu),
            "orders_per_s": best.per_s if best else 0.0,
            "accepted_p50_ms": pct(paced, 0.5),
            "accepted_p99_ms": pct(paced, 0.99),
            "accepted_p999_ms": pct(paced, 0.999),
            "ws_p99_ms": pct(ws_lat, 0.99),
            "bare_relay_per_s": relay,
            "direct_orders_per_s": direct_per_s,
            "ratio_to_bare_relay": round(best.per_s / relay, 3) if best and relay else None,
            "paced_rate_per_s": PACED_RATE,
            "paced_sent": len(cids),
            "paced_accepted": len(paced),
            "ws_p50_ms": pct(ws_lat, 0.5),
            "ws_fills_sent": len(crossing),
            "ws_fills_seen": len(ws_lat),
            "steps": [s.__dict__ for s in steps],
            "users": USERS,
            "partitions": options.partitions,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "targets": {
                "orders_per_s": 2000,
                "accepted_p99_ms": 50,
                "ws_p99_ms": 100,
                "ratio_to_bare_relay": 0.5,
            },
        }


def _limit_figures(idle: dict[str, float], paced_cpu: dict[str, Any]) -> dict[str, Any]:
    """What limits the pipeline on this machine: CPU per order in the 500/s run (offered
    more than the suite answers, so it runs saturated) and the throughput all cores
    could give at that cost."""
    cores = os.cpu_count() or 1
    total = paced_cpu["cpu_ms_per_order"].get("total")
    return {
        "cores": cores,
        "idle_cores_busy": idle,
        "paced_cpu_ms_per_order": paced_cpu["cpu_ms_per_order"],
        "paced_machine_busy": paced_cpu["machine_busy"],
        "cpu_bound_orders_per_s": round(cores * 1000 / total, 1) if total else None,
    }


def service_benches(env: dict[str, str], timeout: float, say: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target, module, name in SERVICE_BENCHES:
        say(f"make {target} ({module}) ...")
        path = REPO / ".bench" / name
        before = path.stat().st_mtime if path.exists() else None
        began = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", module],
                cwd=REPO,
                env=env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
            tail = (proc.stdout + proc.stderr).decode(errors="replace")[-600:]
        except subprocess.TimeoutExpired:
            status, tail = f"timeout after {timeout:.0f}s", ""
        entry: dict[str, Any] = {"status": status, "seconds": round(time.monotonic() - began, 1)}
        if path.exists() and path.stat().st_mtime != before:
            entry["result"] = json.loads(path.read_text())
        elif status == "ok":
            entry["status"] = "ok, but no new JSON"
        if status != "ok":
            entry["output_tail"] = tail
        out[target] = entry
        say(f"  {target}: {entry['status']} in {entry['seconds']} s")
    return out


def _table(result: dict[str, Any]) -> str:
    rows = [
        ("end-to-end orders/s (PlaceOrder → OrderAccepted)", result.get("orders_per_s"), ">= 2000"),
        (
            "orders answered in the 500/s run",
            f"{result.get('paced_accepted')}/{result.get('paced_sent')}",
            "",
        ),
        ("p50 to OrderAccepted at 500/s (ms)", result.get("accepted_p50_ms"), ""),
        ("p99 to OrderAccepted at 500/s (ms)", result.get("accepted_p99_ms"), "< 50"),
        ("p99.9 to OrderAccepted at 500/s (ms)", result.get("accepted_p999_ms"), ""),
        (
            "fills seen on the WebSocket in the 500/s run",
            f"{result.get('ws_fills_seen')}/{result.get('ws_fills_sent')}",
            "",
        ),
        ("p99 to a fill on the WebSocket (ms)", result.get("ws_p99_ms"), "< 100"),
        ("bare aiokafka relay, 2 hops (msg/s)", result.get("bare_relay_per_s"), ""),
        ("pipeline / bare relay", result.get("ratio_to_bare_relay"), ">= 0.5"),
        ("direct to the sandbox, HTTP per order (orders/s)", result.get("direct_orders_per_s"), ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"  {'figure':<{width}}  {'measured':>10}  target"]
    lines += [f"  {name:<{width}}  {value!s:>10}  {target}" for name, value, target in rows]
    busy = result.get("paced_machine_busy")
    per_order = result.get("paced_cpu_ms_per_order") or {}
    if per_order:
        lines.append(
            f"  what limits it: in the 500/s run the machine was {busy:.0%} busy and each order "
            f"cost {per_order.get('total')} CPU ms over all processes, so {result.get('cores')} "
            f"cores give at most {result.get('cpu_bound_orders_per_s')} orders/s:"
            if busy is not None
            else "  CPU per order in the 500/s run:"
        )
        idle = result.get("idle_cores_busy") or {}
        for name, ms in per_order.items():
            if name != "total":
                lines.append(
                    f"    {name:<16} {ms:>8} ms/order   idle: {idle.get(name, 0.0):.0%} of a core"
                )
    for step in result.get("steps", []):
        lines.append(
            f"  step {step['rate']:>5}/s: {step['accepted']}/{step['sent']} accepted, "
            f"{step['per_s']}/s, p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, "
            f"refused {step['refused']}"
        )
    for target, entry in (result.get("services") or {}).items():
        lines.append(f"  make {target}: {entry['status']} ({entry['seconds']} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the per-service benchmarks")
    parser.add_argument(
        "--service-timeout", type=float, default=600.0, help="seconds per service benchmark"
    )
    args = parser.parse_args(argv)
    configure_logging("bench_pipeline", level="WARNING")

    def say(line: str) -> None:
        print(line, flush=True)

    stack: Any = None
    started: Any = None
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL")):
        stack = load_stack()
        started = stack.ensure_up()
        os.environ.update(stack.endpoints())
    try:
        began = time.monotonic()
        result = asyncio.run(
            pipeline(os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], say)
        )
        result["pipeline_seconds"] = round(time.monotonic() - began, 1)
        if not args.quick:
            result["services"] = service_benches(dict(os.environ), args.service_timeout, say)
    finally:
        if started is not None:
            stack.stop(started)
    out = REPO / ".bench" / "pipeline.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("\npipeline benchmark (whole suite as processes, real Kafka + PostgreSQL, 127.0.0.1)")
    print(_table(result))
    print(f"written to {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
