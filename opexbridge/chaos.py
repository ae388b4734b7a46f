"""``make chaos``: the whole suite under faults, then proof that nothing was lost or done
twice.

The suite runs as child processes (`opexbridge.suite`) on a private Kafka and PostgreSQL
(`opexbridge.suite.PrivateStack`: its own ports and data folder, so restarting them
touches nobody else's work). Users are provisioned by user_sync and funded on the
sandbox. Then, while orders from every user flow into ``orders.commands`` (resting limits
on both sides, crossing IOC limits, market orders, stops, orders the risk engine must
refuse, cancels), it SIGKILLs each service several times, restarts the broker and the
database once, makes the sandbox slow, failing, taking-but-not-answering (held and
dropped) and down for a while, and feeds hostile commands in between (malformed JSON,
wrong types, huge, unknown types, wrong topic, empty). At the end resting orders are
canceled, and it checks:

- every PlaceOrder has exactly one terminal event (OrderRejected, OrderFilled FILLED,
  OrderCanceled, OrderExpired, OrderFailed; a late fill re-stating a terminal event with
  a new trade is the documented exception) and no event was published twice;
- OPEX holds exactly one order per order the gateway reported, none unclaimed, none for
  an order the risk engine refused;
- positions (the last PositionUpdated) equal the sum of the fills, and OPEX's balances
  equal the funding plus the fills, less their fees;
- the risk engine's reservations are all released (its state rebuilt from its journal);
- the last BalancesUpdated of each user equals OPEX's balances;
- WebSocket clients of a few users, reconnecting with ``since`` after every drop, saw
  their stream without a gap or a repeat, and a terminal frame for every order;
- every hostile input is in ``orders.commands.dlq``; every refusable order was refused;
- no service died on its own.

It prints each check and writes ``.bench/chaos.json`` (``orders``, ``kills``,
``hostile_inputs``, ``violations``, ``checks``); the exit code is 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from opexbridge.suite import REPO, PrivateStack, Suite, SuiteOptions, SuiteUser, parse
from shared.contracts import CancelOrder, PlaceOrder, UserRegistered, encode, new_message
from shared.observability import configure_logging

SYMBOL = "BTC_USDT"
CENT = Decimal("0.01")
TERMINAL_TYPES = ("OrderRejected", "OrderCanceled", "OrderExpired", "OrderFailed")
RESTING = ("ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL")
KILLED = ("risk_engine", "order_gateway", "notifier", "user_sync")


@dataclass
class ChaosConfig:
    orders: int = 10_000
    users: int = 40
    rate: float = 40.0
    """Offered PlaceOrder per second."""
    kills_per_service: int = 3
    restart_kafka: bool = True
    restart_pg: bool = True
    sandbox_faults: bool = True
    fault_s: float = 8.0
    """How long each sandbox fault lasts."""
    hostile_every: int = 150
    """One hostile input per this many orders."""
    cancel_share: float = 0.3
    """Share of resting orders canceled during the run."""
    settle_timeout_s: float = 420.0
    private_stack: bool = True
    seed: int = 1
    ws_users: int = 3
    """Users with a WebSocket client that reconnects and resumes."""
    funds: dict[str, Decimal] = field(
        default_factory=lambda: {"USDT": Decimal(2_000_000), "BTC": Decimal(50)}
    )


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    violations: list[str] = field(default_factory=list)


@dataclass
class Sent:
    user: str
    cid: str
    kind: str
    expect_reject: bool = False


@dataclass
class Hostile:
    kind: str
    partition: int
    offset: int


@dataclass
class Events:
    """What the suite published, read from the start of each topic."""

    orders: dict[tuple[str, str], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    ids: Counter[str] = field(default_factory=Counter)
    positions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancel_rejected: dict[tuple[str, str], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dlq: set[tuple[str, int, int]] = field(default_factory=set)
    last_price: Decimal = Decimal(30000)

    def add(self, topic: str, body: dict[str, Any], headers: dict[str, bytes]) -> None:
        kind, data, user = body.get("type"), body.get("data") or {}, str(body.get("user_id"))
        if topic.endswith(".dlq"):
            with contextlib.suppress(KeyError, ValueError):
                self.dlq.add(
                    (
                        headers["x-dlq-original-topic"].decode(),
                        int(headers["x-dlq-original-partition"]),
                        int(headers["x-dlq-original-offset"]),
                    )
                )
            return
        if kind == "TickerUpdated" and data.get("symbol") == SYMBOL:
            last = data.get("last_price") or data.get("bid_price")
            if last:
                self.last_price = Decimal(str(last))
            return
        if topic.endswith("orders.events"):
            self.ids[str(body.get("id"))] += 1
            if kind == "CancelRejected":
                self.cancel_rejected[(user, str(data.get("client_order_id")))].append(body)
            elif data.get("client_order_id") is not None:
                self.orders[(user, str(data["client_order_id"]))].append(body)
        elif kind == "PositionUpdated":
            self.positions[(user, str(data.get("symbol")))] = data
        elif kind == "BalancesUpdated" and data.get("source") == "opex":
            self.balances[user] = data

    def latest(self, key: tuple[str, str]) -> dict[str, Any] | None:
        events = self.orders.get(key)
        return events[-1] if events else None


def _is_terminal(body: dict[str, Any]) -> bool:
    kind = body.get("type")
    if kind in TERMINAL_TYPES:
        return True
    return kind == "OrderFilled" and (body.get("data") or {}).get("status") == "FILLED"


class Reader:
    """A live view of the suite's topics (restarted from the start if it fails, e.g.
    across a broker restart)."""

    TOPICS = (
        "orders.events",
        "positions.events",
        "accounts.events",
        "market.tickers",
        "orders.commands.dlq",
    )

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.events = Events()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _forever(self) -> None:
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker restart: read everything again
                await asyncio.sleep(1)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            *(self.suite.topic(t) for t in self.TOPICS),
            **self.suite.kafka.aiokafka_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        events = Events()
        events.last_price = self.events.last_price
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        body = parse(record.value) if not tp.topic.endswith(".dlq") else {}
                        if body is None:
                            continue
                        events.add(tp.topic, body, dict(record.headers or ()))
                self.events = events
        finally:
            await consumer.stop()

    async def snapshot(self, timeout: float = 60.0) -> Events:
        """Everything up to the current end of each topic, read afresh."""
        consumer = AIOKafkaConsumer(
            *(self.suite.topic(t) for t in self.TOPICS),
            **self.suite.kafka.aiokafka_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        events = Events()
        try:
            parts = list(consumer.assignment())
            while not parts:
                await consumer.getmany(timeout_ms=200)
                parts = list(consumer.assignment())
            ends = await consumer.end_offsets(parts)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                for tp, records in batch.items():
                    for record in records:
                        body = parse(record.value) if not tp.topic.endswith(".dlq") else {}
                        if body is not None:
                            events.add(tp.topic, body, dict(record.headers or ()))
                positions = [await _position(consumer, tp) for tp in ends]
                if all(p >= end for p, end in zip(positions, ends.values(), strict=True)):
                    break
        finally:
            await consumer.stop()
        return events


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    with contextlib.suppress(Exception):
        return int(await consumer.position(tp))
    return -1


# --------------------------------------------------------------------------- load


class Load:
    """The orders, cancels and hostile inputs, published with retries (the same bytes,
    so a resend after a broker restart is a duplicate the consumers drop)."""

    def __init__(self, suite: Suite, reader: Reader, users: list[SuiteUser], cfg: ChaosConfig):
        self.suite = suite
        self.reader = reader
        self.users = [u.user_id for u in users]
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.sent: dict[tuple[str, str], Sent] = {}
        self.hostile: list[Hostile] = []
        self.cancels = 0
        self.n = 0
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            **self.suite.kafka.aiokafka_kwargs(),
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=2 * 1024 * 1024,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()

    async def publish(self, payload: bytes, key: bytes) -> tuple[int, int]:
        """(partition, offset); retried until the broker takes it."""
        topic = self.suite.topic("orders.commands")
        while True:
            assert self.producer is not None
            try:
                meta = await self.producer.send_and_wait(topic, payload, key=key)
                return meta.partition, meta.offset
            except Exception:  # the broker is restarting: a new producer
                await asyncio.sleep(1)
                await self.stop()
                with contextlib.suppress(Exception):
                    await self.start()

    def _price(self, factor: str, jitter: int = 0) -> Decimal:
        base = (self.reader.events.last_price * Decimal(factor)).quantize(CENT, ROUND_DOWN)
        return base - Decimal(jitter) * CENT

    def order(self, user: str) -> tuple[Sent, dict[str, Any]]:
        self.n += 1
        r = self.rng.random()
        cid = f"c{self.n}-{uuid.uuid4().hex[:8]}"
        qty = Decimal("0.001") + Decimal(self.rng.randint(0, 2000)) * Decimal("0.000001")
        jitter = self.rng.randint(0, 3000)
        side = self.rng.choice(("buy", "sell"))
        expect_reject = False
        if r < 0.35:
            kind, body = (
                "rest_buy",
                {"side": "buy", "type": "limit", "price": self._price("0.975", jitter)},
            )
        elif r < 0.45:
            kind, body = (
                "rest_sell",
                {"side": "sell", "type": "limit", "price": self._price("1.02", -jitter)},
            )
        elif r < 0.70:
            factor = "1.006" if side == "buy" else "0.994"
            kind = "cross"
            body = {
                "side": side,
                "type": "limit",
                "price": self._price(factor),
                "time_in_force": "IOC",
            }
        elif r < 0.82:
            kind, body = "market", {"side": side, "type": "market"}
        elif r < 0.86:
            kind = "stop"
            body = {"side": "buy", "type": "stop", "stop_price": self._price("1.03")}
        elif r < 0.93:
            kind, expect_reject = "off_step", True
            body = {"side": "buy", "type": "limit", "price": self._price("0.98") + Decimal("0.001")}
        else:
            kind, expect_reject = "unknown_symbol", True
            body = {"side": "buy", "type": "limit", "price": Decimal(100), "symbol": "ZZZ_USDT"}
        data = {"client_order_id": cid, "symbol": SYMBOL, "quantity": qty, **body}
        return Sent(user, cid, kind, expect_reject), data

    async def send_order(self) -> None:
        user = self.users[self.n % len(self.users)]
        sent, data = self.order(user)
        payload = encode(new_message(PlaceOrder.model_validate(data), user_id=user))
        self.sent[(user, sent.cid)] = sent
        await self.publish(payload, user.encode())
        if sent.kind.startswith("rest") and self.rng.random() < self.cfg.cancel_share:
            asyncio.get_running_loop().call_later(
                self.rng.uniform(0.5, 4.0),
                lambda: asyncio.ensure_future(self.cancel(user, sent.cid)),
            )

    async def cancel(self, user: str, cid: str) -> None:
        command = CancelOrder(client_order_id=cid, symbol=SYMBOL)
        await self.publish(encode(new_message(command, user_id=user)), user.encode())
        self.cancels += 1

    def hostile_payload(self, i: int) -> tuple[str, bytes]:
        user = self.users[i % len(self.users)]
        good = json.loads(
            encode(
                new_message(
                    PlaceOrder(
                        client_order_id=f"h{i}",
                        symbol=SYMBOL,
                        side="buy",
                        type="limit",
                        quantity=Decimal("0.001"),
                        price=Decimal(20000),
                    ),
                    user_id=user,
                )
            )
        )
        kinds: list[tuple[str, Callable[[], bytes]]] = [
            ("malformed_json", lambda: b'{"id": "' + uuid.uuid4().hex.encode() + b'", "type": '),
            ("not_an_object", lambda: b"[1, 2, 3]"),
            ("wrong_types", lambda: json.dumps(_with(good, quantity="lots", side=42)).encode()),
            ("unknown_type", lambda: json.dumps({**good, "type": "LaunchRocket"}).encode()),
            ("huge", lambda: json.dumps(_with(good, note="x" * 200_000)).encode()),
            ("negative_quantity", lambda: json.dumps(_with(good, quantity="-1")).encode()),
            ("nan_price", lambda: json.dumps(_with(good, price="NaN")).encode()),
            (
                "wrong_topic",
                lambda: encode(
                    new_message(UserRegistered(email=f"h{i}@example.com"), user_id=user)
                ),
            ),
            ("missing_fields", lambda: json.dumps({"type": "PlaceOrder", "version": 1}).encode()),
            ("empty", lambda: b""),
            ("not_utf8", lambda: b"\xff\xfe\xfa" * 10),
        ]
        kind, make = kinds[i % len(kinds)]
        return kind, make()

    async def send_hostile(self) -> None:
        i = len(self.hostile)
        kind, payload = self.hostile_payload(i)
        key = self.users[i % len(self.users)].encode()
        partition, offset = await self.publish(payload, key)
        self.hostile.append(Hostile(kind, partition, offset))

    async def run(self, stop_at: int) -> None:
        began = time.monotonic()
        for i in range(stop_at):
            delay = began + i / self.cfg.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_order()
            if i % self.cfg.hostile_every == self.cfg.hostile_every // 2:
                await self.send_hostile()


def _with(envelope: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**envelope, "data": {**envelope["data"], **data}}


# --------------------------------------------------------------------------- WebSocket


TERMINAL_STATUSES = ("rejected", "filled", "canceled", "expired", "failed")


class WsWatcher:
    """A browser of one user on the notifier: channels orders, positions and account,
    reconnecting after every drop (a SIGKILLed notifier) with ``since`` + ``epoch``."""

    def __init__(self, suite: Suite, user_id: str) -> None:
        self.suite = suite
        self.user_id = user_id
        self.epoch: str | None = None
        self.last: int | None = None
        self.connects = 0
        self.resumes: Counter[str] = Counter()
        self.gaps: list[str] = []
        self.duplicates: list[int] = []
        self.terminal: dict[str, str] = {}
        self.frames = 0
        self.errors: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _forever(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the notifier went away: reconnect
                self.errors[type(error).__name__] += 1
            await asyncio.sleep(0.5)

    async def _session(self) -> None:
        url = self.suite.notifier_url.replace("http", "ws", 1) + "/ws?token="
        url += self.suite.token(self.user_id) + "&channels=orders,positions,account"
        if self.last is not None and self.epoch is not None:
            url += f"&since={self.last}&epoch={self.epoch}"
        async with websockets.connect(url, max_size=2**22, open_timeout=10) as ws:
            self.connects += 1
            async for raw in ws:
                frame = json.loads(raw)
                data = frame.get("data") or {}
                if frame.get("type") == "subscribed" and "epoch" in data:
                    self.resumes[str(data.get("resume"))] += 1
                    if self.last is None or data.get("resume") != "recovered":
                        self.last = int(data["seq"])
                    self.epoch = str(data["epoch"])
                    continue
                seq = frame.get("seq")
                if seq is None or self.last is None:
                    continue
                if seq <= self.last:
                    self.duplicates.append(int(seq))
                    continue
                if seq != self.last + 1:
                    self.gaps.append(f"{self.last} -> {seq}")
                self.last = int(seq)
                self.frames += 1
                cid = data.get("client_order_id")
                if cid and str(data.get("status", "")).lower() in TERMINAL_STATUSES:
                    self.terminal.setdefault(str(cid), str(data.get("status")))


# --------------------------------------------------------------------------- faults


@dataclass
class FaultLog:
    kills: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    """When Kafka or PostgreSQL was being restarted (monotonic start, end)."""


async def fault_plan(
    suite: Suite,
    stack: PrivateStack | None,
    cfg: ChaosConfig,
    span_s: float,
    log: FaultLog,
    say: Callable[[str], None],
) -> None:
    """Every fault at its time inside the load's span (seconds from now)."""
    began = time.monotonic()
    plan: list[tuple[float, str, Callable[[], Any]]] = []

    def at(fraction: float, what: str, action: Callable[[], Any]) -> None:
        plan.append((fraction * span_s, what, action))

    for s_i, name in enumerate(KILLED):
        for k in range(cfg.kills_per_service):
            fraction = (k + 0.2 + s_i * 0.2) / (cfg.kills_per_service + 0.2)
            at(min(fraction, 0.95), f"SIGKILL {name}", _kill(suite, name, log))
    if cfg.sandbox_faults:
        d = cfg.fault_s
        phases: list[tuple[float, str, dict[str, Any]]] = [
            (0.08, "sandbox slow (latency 400 ms)", {"latency_ms": 400}),
            (0.22, "sandbox failing (30 % 5xx)", {"error_rate": 0.3}),
            (
                0.38,
                "sandbox takes orders but does not answer (held 3 s)",
                {"take_no_answer_rate": 0.3, "take_no_answer_mode": "delay"},
            ),
            (
                0.58,
                "sandbox takes orders, drops the connection",
                {"take_no_answer_rate": 0.3, "take_no_answer_mode": "drop"},
            ),
            (0.75, "sandbox down (outage)", {"outage": True}),
            (0.88, "sandbox lists slowly (1.5 s)", {"listing_delay_ms": 1500}),
        ]
        for fraction, what, settings in phases:
            at(fraction, what, _sandbox(suite, settings, d))
    if stack is not None and cfg.restart_kafka:
        at(0.47, "restart Kafka", _outage(stack.restart_kafka, log))
    if stack is not None and cfg.restart_pg:
        at(0.66, "restart PostgreSQL", _outage(stack.restart_pg, log))
    plan.sort(key=lambda p: p[0])
    tasks = []
    for offset, what, action in plan:
        delay = began + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        say(f"  t+{time.monotonic() - began:5.1f}s  {what}")
        log.lines.append(f"t+{time.monotonic() - began:.1f}s {what}")
        tasks.append(asyncio.create_task(_guard(action(), what, log)))
    await asyncio.gather(*tasks)


async def _guard(action: Any, what: str, log: FaultLog) -> None:
    try:
        await action
    except Exception as error:  # reported; the run goes on
        log.errors.append(f"{what}: {type(error).__name__}: {str(error)[:300]}")


def _outage(restart: Callable[[], Any], log: FaultLog) -> Callable[[], Any]:
    async def run() -> None:
        began = time.monotonic()
        try:
            await restart()
        finally:
            log.outages.append((began, time.monotonic()))

    return run


def check_exits(suite: Suite, log: FaultLog, grace_s: float = 60.0) -> Check:
    """Services restarted by the supervisor: expected while the broker or the database
    was down (or just back), a violation otherwise."""
    bad, tolerated = [], []
    for exit_ in suite.exits:
        during = any(s <= exit_.at <= e + grace_s for s, e in log.outages)
        line = f"{exit_.name} exited with {exit_.returncode}"
        if during:
            tolerated.append(line)
        else:
            last = exit_.tail.strip().splitlines()[-1:] or [""]
            bad.append(f"{line}: {last[0][:300]}")
    detail = (
        f"{len(suite.exits)} exits restarted by the supervisor; "
        f"{len(tolerated)} while Kafka/PostgreSQL was restarting: {tolerated}"
    )
    return Check("no service died on its own", not bad, detail, bad)


def _kill(suite: Suite, name: str, log: FaultLog) -> Callable[[], Any]:
    async def run() -> None:
        child = suite.children[name]
        with contextlib.suppress(Exception):
            await child.healthy(120)  # kill a running service, not one still starting
        await suite.kill(name, down_s=0.5, wait_healthy=False)
        log.kills[name] += 1

    return run


def _sandbox(suite: Suite, settings: dict[str, Any], seconds: float) -> Callable[[], Any]:
    async def run() -> None:
        await suite.faults(**settings)
        await asyncio.sleep(seconds)
        await suite.clear_faults()

    return run


# --------------------------------------------------------------------------- settle + checks


async def settle(
    suite: Suite, reader: Reader, load: Load, timeout: float, say: Callable[[str], None]
) -> None:
    """Wait for the backlog to drain, then cancel what is still open (resting orders,
    held stops, orders in flight) until every command is terminal or ``timeout``."""
    deadline = time.monotonic() + timeout
    last_count, quiet_since = -1, time.monotonic()

    def quiet_s() -> float:
        nonlocal last_count, quiet_since
        count = sum(len(v) for v in reader.events.orders.values())
        if count != last_count:
            last_count, quiet_since = count, time.monotonic()
        return time.monotonic() - quiet_since

    while time.monotonic() < deadline:
        events = reader.events
        open_ = _not_terminal(events, load)
        if not open_:
            return
        waiting = [k for k in open_ if not _resting(events.latest(k))]
        if not waiting or quiet_s() > 15:
            break
        await asyncio.sleep(1)
    canceled: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        events = reader.events
        open_ = _not_terminal(events, load)
        if not open_:
            return
        now, quiet = time.monotonic(), quiet_s()
        due = [
            k
            for k in open_
            if (k in events.orders or quiet > 15) and now - canceled.get(k, -1e9) > 30
        ]
        if due:
            say(f"  canceling {len(due)} of the {len(open_)} orders still open")
            for user, cid in due:
                canceled[(user, cid)] = now
                await load.cancel(user, cid)
        await asyncio.sleep(1)


def _resting(latest: dict[str, Any] | None) -> bool:
    return latest is not None and (latest.get("data") or {}).get("status") in RESTING


def _not_terminal(events: Events, load: Load) -> list[tuple[str, str]]:
    return [
        key for key in load.sent if not any(_is_terminal(e) for e in events.orders.get(key, []))
    ]


def check_terminal(events: Events, load: Load) -> Check:
    bad: list[str] = []
    late = 0
    for key, sent in load.sent.items():
        seq = events.orders.get(key, [])
        terminal = [e for e in seq if _is_terminal(e)]
        if not terminal:
            last = seq[-1]["type"] + "/" + str(seq[-1]["data"].get("status")) if seq else "no event"
            bad.append(f"{key[1]} ({sent.kind}): no terminal event, last {last}")
            continue
        trades = set()
        extra = 0
        for i, e in enumerate(terminal):
            fill = (e.get("data") or {}).get("last_fill")
            trade = fill.get("trade_id") if fill else None
            if i and trade is not None and trade not in trades:
                late += 1  # a late fill re-stated on the terminal event: documented
            elif i:
                extra += 1
            if trade is not None:
                trades.add(trade)
        if extra:
            bad.append(
                f"{key[1]} ({sent.kind}): {len(terminal)} terminal events: "
                + ", ".join(f"{e['type']}/{e['data'].get('status')}" for e in terminal)
            )
    outcomes = Counter(
        f"{e['type']}/{e['data'].get('status')}"
        for key in load.sent
        for e in events.orders.get(key, [])[-1:]
    )
    reasons = Counter(
        str(e["data"].get("reason_code"))
        for key in load.sent
        for e in events.orders.get(key, [])[-1:]
        if e["type"] in ("OrderRejected", "OrderFailed")
    )
    fills = sum(
        1 for key in load.sent for e in events.orders.get(key, []) if e["data"].get("last_fill")
    )
    dup = [i for i, n in events.ids.items() if n > 1]
    if dup:
        bad.append(f"{len(dup)} events published more than once (same id), e.g. {dup[:3]}")
    return Check(
        "one terminal event per command",
        not bad,
        f"{len(load.sent)} commands, {len(bad)} violations, {late} late-fill re-statements, "
        f"{fills} fill events; outcomes {dict(outcomes.most_common())}; "
        f"refusal and failure reasons {dict(reasons.most_common())}",
        bad,
    )


def check_refusals(events: Events, load: Load) -> Check:
    bad = []
    for key, sent in load.sent.items():
        if not sent.expect_reject:
            continue
        seq = events.orders.get(key, [])
        if not seq or seq[-1]["type"] != "OrderRejected":
            bad.append(f"{key[1]} ({sent.kind}) was not refused: {[e['type'] for e in seq]}")
    count = sum(1 for s in load.sent.values() if s.expect_reject)
    return Check("refusable orders refused with a reason", not bad, f"{count} such orders", bad)


def check_hostile(events: Events, load: Load, topic: str) -> Check:
    missing = [
        f"{h.kind} at {topic}[{h.partition}]@{h.offset}"
        for h in load.hostile
        if (topic, h.partition, h.offset) not in events.dlq
    ]
    return Check(
        "every hostile input in the DLQ",
        not missing,
        f"{len(load.hostile)} hostile inputs, {len(load.hostile) - len(missing)} dead-lettered",
        missing,
    )


async def check_opex(suite: Suite, events: Events, load: Load) -> tuple[Check, Check, Check]:
    """OPEX's orders vs the events; positions and OPEX balances vs the fills."""
    claimed: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for (owner, cid), seq in events.orders.items():
        for e in seq:
            oid = (e.get("data") or {}).get("order_id")
            if oid is not None:
                claimed[owner][str(oid)].add(cid)
    order_bad: list[str] = []
    pos_bad: list[str] = []
    bal_bad: list[str] = []
    refused = {
        key
        for key, seq in events.orders.items()
        if seq and seq[0]["type"] == "OrderRejected" and seq[0]["data"].get("source") == "risk"
    }
    for refused_key in refused:
        if any((e.get("data") or {}).get("order_id") for e in events.orders[refused_key]):
            order_bad.append(f"{refused_key[1]} refused by the risk engine but has an OPEX order")
    funds = load.cfg.funds
    for user in suite.users:
        uid = user.user_id
        api_key = suite.keys[uid]
        listed = await suite.opex.all_orders(api_key, SYMBOL, limit=1000)
        on_opex = {str(o.order_id) for o in listed}
        mine = claimed.get(uid, {})
        for oid in sorted(on_opex - set(mine)):
            order_bad.append(f"{uid}: OPEX order {oid} claimed by no command")
        for oid in sorted(set(mine) - on_opex):
            order_bad.append(f"{uid}: order {oid} reported by the gateway is not on OPEX")
        for oid, cids in mine.items():
            if len(cids) > 1:
                order_bad.append(f"{uid}: OPEX order {oid} claimed by {sorted(cids)}")
        if len(listed) >= 1000:
            order_bad.append(f"{uid}: 1000 orders listed, the check is incomplete")
        # fills, from the events (distinct trades per order)
        qty = Decimal(0)
        usdt = funds.get("USDT", Decimal(0))
        btc = funds.get("BTC", Decimal(0))
        for (u, _cid), seq in events.orders.items():
            if u != uid:
                continue
            seen: set[str] = set()
            for e in seq:
                fill = (e.get("data") or {}).get("last_fill")
                if not fill or str(fill["trade_id"]) in seen:
                    continue
                seen.add(str(fill["trade_id"]))
                q, p = Decimal(str(fill["quantity"])), Decimal(str(fill["price"]))
                sign = 1 if e["data"]["side"] == "buy" else -1
                qty += sign * q
                btc += sign * q
                usdt -= sign * q * p
                fee = Decimal(str(fill.get("fee") or 0))
                if fill.get("fee_asset") == "BTC":
                    btc -= fee
                elif fill.get("fee_asset") == "USDT":
                    usdt -= fee
        position = events.positions.get((uid, SYMBOL))
        reported = Decimal(str(position["quantity"])) if position else Decimal(0)
        if reported != qty:
            pos_bad.append(f"{uid}: PositionUpdated says {reported}, the fills add up to {qty}")
        balances = {b.asset: b for b in await suite.opex.balances(api_key)}
        for asset, expected in (("BTC", btc), ("USDT", usdt)):
            have = balances[asset].total if asset in balances else Decimal(0)
            if have != expected:
                bal_bad.append(
                    f"{uid}: OPEX {asset} {have}, funding + fills - fees = {expected} "
                    f"(diff {have - expected})"
                )
    return (
        Check(
            "OPEX holds one order per reported order, none unclaimed",
            not order_bad,
            f"{sum(len(v) for v in claimed.values())} orders reported by the gateway",
            order_bad,
        ),
        Check(
            "positions equal the sum of fills", not pos_bad, f"{len(suite.users)} users", pos_bad
        ),
        Check(
            "OPEX balances equal funding + fills - fees",
            not bal_bad,
            f"{len(suite.users)} users",
            bal_bad,
        ),
    )


async def check_balances(suite: Suite, reader: Reader, timeout: float = 30.0) -> Check:
    """The last BalancesUpdated (source opex) of each user equals OPEX's balances."""
    deadline = time.monotonic() + timeout
    bad: list[str] = []
    while True:
        bad = []
        events = reader.events
        for user in suite.users:
            opex = {b.asset: b for b in await suite.opex.balances(suite.keys[user.user_id])}
            last = events.balances.get(user.user_id)
            if last is None:
                bad.append(f"{user.user_id}: no BalancesUpdated")
                continue
            view = {b["asset"]: b for b in last.get("balances", [])}
            for asset in ("USDT", "BTC"):
                o = opex.get(asset)
                v = view.get(asset)
                ofree, olocked = (o.free, o.locked) if o else (Decimal(0), Decimal(0))
                vfree = Decimal(str(v["free"])) if v else Decimal(0)
                vlocked = Decimal(str(v["locked"])) if v else Decimal(0)
                if (ofree, olocked) != (vfree, vlocked):
                    bad.append(
                        f"{user.user_id} {asset}: OPEX free {ofree} locked {olocked}, "
                        f"suite free {vfree} locked {vlocked}"
                    )
        if not bad or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    return Check(
        "balances on OPEX equal the suite's view", not bad, f"{len(suite.users)} users", bad
    )


async def check_websocket(watchers: list[WsWatcher], events: Events, load: Load) -> Check:
    """Each watcher saw its user's stream without a gap or a repeat across reconnects,
    and a terminal frame for each of its user's commands that ended."""
    bad: list[str] = []
    expected: dict[str, set[str]] = defaultdict(set)
    for (user, cid), seq in events.orders.items():
        if (user, cid) in load.sent and any(_is_terminal(e) for e in seq):
            expected[user].add(cid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(  # noqa: ASYNC110
        expected[w.user_id] - set(w.terminal) for w in watchers
    ):
        await asyncio.sleep(1)
    for w in watchers:
        missing = sorted(expected[w.user_id] - set(w.terminal))
        if missing:
            bad.append(
                f"{w.user_id}: no terminal frame for {len(missing)} orders, e.g. {missing[:3]}"
            )
        if w.gaps:
            bad.append(f"{w.user_id}: seq gaps {w.gaps[:5]}")
        if w.duplicates:
            bad.append(f"{w.user_id}: seqs received twice {w.duplicates[:5]}")
        if w.resumes.get("not_recovered"):
            bad.append(f"{w.user_id}: {w.resumes['not_recovered']} resumes not recovered")
    detail = ", ".join(
        f"{w.user_id}: {w.connects} connections {dict(w.resumes)}, {w.frames} frames"
        for w in watchers
    )
    return Check("WebSocket clients that resumed saw every event once", not bad, detail, bad)


async def check_reservations(suite: Suite) -> Check:
    """The risk engine's state, rebuilt from its journal as a restart would: nothing
    reserved, no open order."""
    from services.risk_engine.app import build
    from services.risk_engine.config import ServiceSettings
    from shared.db import DatabaseSettings
    from shared.messaging import KafkaSettings

    env = suite.children["risk_engine"].env
    settings = ServiceSettings.model_validate(
        {"RISK_ENGINE_SCHEMA": env["RISK_ENGINE_SCHEMA"], "OPEXBRIDGE_TOPIC_PREFIX": suite.prefix}
    )
    app = build(
        settings,
        kafka=KafkaSettings(bootstrap_servers=suite.options.kafka_bootstrap),
        database=DatabaseSettings(database_url=suite.options.database_url),
    )
    bad: list[str] = []
    try:
        rows = await app.service.rebuild(app.db)
        for uid, account in app.service.engine.state.accounts.items():
            held = {a: v for a, v in account.reserved.items() if v != 0}
            if held:
                bad.append(f"{uid}: still reserved {held}")
            if account.open_orders:
                bad.append(f"{uid}: open orders {sorted(account.open_orders)[:5]}")
    finally:
        await app.db.dispose()
    return Check("reservations all released", not bad, f"journal of {rows} rows replayed", bad)


# --------------------------------------------------------------------------- the run


@dataclass
class ChaosResult:
    orders: int
    cancels: int
    kills: dict[str, int]
    hostile_inputs: int
    violations: int
    checks: list[Check]
    faults: list[str]
    fault_errors: list[str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for check in out["checks"]:
            check["violations"] = check["violations"][:50]
        return out


async def run_chaos(
    cfg: ChaosConfig,
    *,
    kafka_bootstrap: str | None = None,
    database_url: str | None = None,
    say: Callable[[str], None] = print,
    log_dir: Path | None = None,
) -> ChaosResult:
    began = time.monotonic()
    stack: PrivateStack | None = None
    if cfg.private_stack:
        stack = PrivateStack(REPO / ".run" / f"chaos-{uuid.uuid4().hex[:6]}")
        say(f"private Kafka on :{stack.kafka_port} and PostgreSQL on :{stack.pg_port} ...")
        env = await stack.up()
        kafka_bootstrap, database_url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    assert kafka_bootstrap
    assert database_url
    options = SuiteOptions(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        log_dir=log_dir or REPO / ".bench" / "chaos-logs",
        partitions=3,
        env={
            "order_gateway": {
                "ORDER_GATEWAY_LISTING_GRACE_MS": "500",
                "ORDER_GATEWAY_QUERY_INTERVAL_MS": "500",
                "ORDER_GATEWAY_FAILED_AFTER_MS": "8000",
                "ORDER_GATEWAY_CORRELATION_WINDOW_MS": "15000",
                "ORDER_GATEWAY_POLL_INTERVAL_MS": "500",
                "ORDER_GATEWAY_BREAKER_COOL_DOWN_MS": "1000",
                "ORDER_GATEWAY_RECONCILE_INTERVAL_MS": "10000",
            },
            "opex_sandbox": {"SANDBOX_SEED": str(cfg.seed)},
        },
    )
    suite = Suite(options)
    reader = Reader(suite)
    log = FaultLog()
    checks: list[Check] = []
    load: Load | None = None
    watchers: list[WsWatcher] = []
    supervisor: asyncio.Task[None] | None = None
    try:
        say("starting the suite ...")
        await suite.start()
        users = await suite.provision(cfg.users)
        say(f"{len(users)} users provisioned; funding {cfg.funds}")
        await suite.fund(users, cfg.funds)
        await suite.wait_ready(users, {"USDT": cfg.funds["USDT"]})
        reader.start()
        watchers = [WsWatcher(suite, u.user_id) for u in users[: cfg.ws_users]]
        for watcher in watchers:
            watcher.start()
        load = Load(suite, reader, users, cfg)
        await load.start()
        supervisor = asyncio.create_task(suite.supervise())
        span = cfg.orders / cfg.rate
        say(f"{cfg.orders} orders at {cfg.rate:.0f}/s (~{span:.0f} s) with faults:")
        faults = asyncio.create_task(fault_plan(suite, stack, cfg, span, log, say))
        await load.run(cfg.orders)
        await faults
        await suite.clear_faults()
        for child in suite.children.values():
            await child.healthy(180)
        say("load done; settling (resting orders are canceled) ...")
        await settle(suite, reader, load, cfg.settle_timeout_s, say)
        await asyncio.sleep(3)
        events = await reader.snapshot()
        checks.append(check_terminal(events, load))
        checks.append(check_refusals(events, load))
        checks.append(check_hostile(events, load, suite.topic("orders.commands")))
        checks.extend(await check_opex(suite, events, load))
        checks.append(await check_balances(suite, reader))
        checks.append(await check_websocket(watchers, events, load))
        try:
            checks.append(await check_reservations(suite))
        except Exception as error:  # reported as a failed check
            checks.append(
                Check(
                    "reservations all released",
                    False,
                    f"could not rebuild: {error!r}",
                    [repr(error)],
                )
            )
        checks.append(check_exits(suite, log))
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(BaseException):
                await supervisor
        for watcher in watchers:
            await watcher.stop()
        await reader.stop()
        if load is not None:
            await load.stop()
        await suite.stop()
        if stack is not None:
            await stack.destroy()
    return ChaosResult(
        orders=len(load.sent) if load else 0,
        cancels=load.cancels if load else 0,
        kills=dict(log.kills),
        hostile_inputs=len(load.hostile) if load else 0,
        violations=sum(len(c.violations) or (0 if c.ok else 1) for c in checks),
        checks=checks,
        faults=log.lines,
        fault_errors=log.errors,
        seconds=round(time.monotonic() - began, 1),
    )


def report(result: ChaosResult, say: Callable[[str], None] = print) -> None:
    say(
        f"\nchaos: {result.orders} orders, {result.cancels} cancels, kills {result.kills}, "
        f"{result.hostile_inputs} hostile inputs, {result.seconds} s"
    )
    for check in result.checks:
        say(f"  [{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        for line in check.violations[:8]:
            say(f"         - {line}")
        if len(check.violations) > 8:
            say(f"         ... and {len(check.violations) - 8} more")
    for error in result.fault_errors:
        say(f"  fault step failed: {error}")
    say(f"violations: {result.violations}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per service")
    parser.add_argument(
        "--shared-stack",
        action="store_true",
        help="use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL; no broker or PG restart",
    )
    args = parser.parse_args(argv)
    configure_logging("chaos", level="WARNING")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the broker restart is planned
    cfg = ChaosConfig(
        orders=args.orders,
        users=args.users,
        rate=args.rate,
        kills_per_service=args.kills,
        private_stack=not args.shared_stack,
    )
    if args.shared_stack:
        cfg.restart_kafka = cfg.restart_pg = False
    result = asyncio.run(
        run_chaos(
            cfg,
            kafka_bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            database_url=os.environ.get("DATABASE_URL"),
            say=lambda line: print(line, flush=True),
        )
    )
    report(result)
    out = REPO / ".bench" / "chaos.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    print(f"written to {out.relative_to(REPO)}")
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
