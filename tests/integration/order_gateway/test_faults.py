"""The gateway as a child process (``python -m services.order_gateway``) through every
fault mode of the sandbox — latency, 5xx, taken-but-not-answered (held and dropped),
an outage, slow listings — SIGKILLed and restarted while orders flow. At the end OPEX
holds exactly one order per order the gateway reported accepted, none that nobody
claimed, and every approved command has exactly one terminal event."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts import Envelope
from shared.credentials import SecretBox, generate_key
from shared.messaging import KafkaSettings
from tests.integration.order_gateway.support import (
    ADMIN_KEY,
    ADMIN_SECRET,
    Sandbox,
    User,
    approved,
    cancel_approved,
    decoded,
    provision,
    send,
)
from tests.support.kafka import Tally

REPO = Path(__file__).resolve().parents[3]
TERMINAL = {"FILLED", "CANCELED", "EXPIRED", "REJECTED", "FAILED"}
ORDERS = 1200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secrets_key() -> str:
    return generate_key()


def _env(
    *,
    database_url: str,
    kafka: KafkaSettings,
    schemas: tuple[str, str],
    prefix: str,
    sandbox: Sandbox,
    key: str,
    port: int,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDER_GATEWAY_", "OPEX_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "OPEXBRIDGE_TOPIC_PREFIX": prefix,
            "OPEXBRIDGE_SECRETS_KEY": key,
            "ORDER_GATEWAY_SCHEMA": schemas[0],
            "ORDER_GATEWAY_CREDENTIALS_SCHEMA": schemas[1],
            "ORDER_GATEWAY_GROUP": f"gw-{prefix}",
            "ORDER_GATEWAY_INSTANCE": f"gw-{prefix}",
            "ORDER_GATEWAY_PORT": str(port),
            "ORDER_GATEWAY_MARKET_DATA_INTERVAL_MS": "500",
            "ORDER_GATEWAY_LISTING_GRACE_MS": "300",
            "ORDER_GATEWAY_QUERY_INTERVAL_MS": "300",
            "ORDER_GATEWAY_FAILED_AFTER_MS": "4000",
            "ORDER_GATEWAY_CORRELATION_WINDOW_MS": "8000",
            "ORDER_GATEWAY_POLL_INTERVAL_MS": "400",
            "ORDER_GATEWAY_BREAKER_COOL_DOWN_MS": "500",
            "OPEX_API_URL": sandbox.url,
            "OPEX_API_KEY": ADMIN_KEY,
            "OPEX_API_SECRET": ADMIN_SECRET,
            "OPEX_TIMEOUT": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


class Child:
    """The gateway process, restartable, SIGKILLable."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.order_gateway"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, timeout: float = 90.0) -> None:
        url = f"http://127.0.0.1:{self.env['ORDER_GATEWAY_PORT']}/health"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await http.get(url)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def child_log(tmp_path: Path) -> Path:
    return tmp_path / "gateway.log"


def _orders(users: list[User], count: int, seed: int) -> list[Envelope[Any]]:
    """Resting limits far from the market, crossing IOC limits and market orders, with
    terms that rarely repeat (identical ones wait for each other, which is tested too)."""
    rng = random.Random(seed)
    out: list[Envelope[Any]] = []
    for n in range(count):
        user = users[n % len(users)]
        qty = f"0.{rng.randint(1, 40):03d}"
        kind = rng.random()
        if kind < 0.5:
            out.append(approved(user, price=str(20000 + rng.randint(0, 4000)), quantity=qty))
        elif kind < 0.8:
            side = rng.choice(("buy", "sell"))
            price = "32000" if side == "buy" else "28000"
            out.append(approved(user, side=side, price=price, quantity=qty, time_in_force="IOC"))
        else:
            out.append(approved(user, type="market", price=None, quantity=qty))
    return out


def _latest(events: list[Envelope[Any]]) -> dict[str, Envelope[Any]]:
    latest: dict[str, Envelope[Any]] = {}
    for event in events:
        cid = getattr(event.data, "client_order_id", None)
        if cid is not None and hasattr(event.data, "status"):
            latest[cid] = event
    return latest


async def test_faults_and_kills_leave_one_opex_order_per_accepted_order(
    sandbox: Sandbox,
    opex: Any,
    database_url: str,
    kafka_settings: KafkaSettings,
    schemas: tuple[str, str],
    topic_prefix: str,
    secrets_key: str,
    child_log: Path,
) -> None:
    box = SecretBox([secrets_key])
    users = [
        await provision(opex, database_url=database_url, schema=schemas[1], box=box)
        for _ in range(4)
    ]
    env = _env(
        database_url=database_url,
        kafka=kafka_settings,
        schemas=schemas,
        prefix=topic_prefix,
        sandbox=sandbox,
        key=secrets_key,
        port=_free_port(),
    )
    child = Child(env, child_log)
    orders = _orders(users, ORDERS, seed=7)
    by_cid = {o.data.command.client_order_id: o for o in orders}
    faults: list[dict[str, Any]] = [
        {"latency_ms": 40},
        {"error_rate": 0.2},
        {"take_no_answer_rate": 0.2, "take_no_answer_mode": "delay", "take_no_answer_delay_s": 2},
        {"take_no_answer_rate": 0.2, "take_no_answer_mode": "drop"},
        {"outage": True},
        {"listing_delay_ms": 1500},
        {},
    ]
    chunks = [orders[i :: len(faults)] for i in range(len(faults))]
    child.start()
    try:
        await child.ready()
        async with Tally(kafka_settings, topic_prefix + "orders.events") as tally:
            for phase, (fault, chunk) in enumerate(zip(faults, chunks, strict=True)):
                sandbox.clear_faults()
                sandbox.faults(**fault)
                for part in range(0, len(chunk), 50):
                    await send(kafka_settings, topic_prefix, chunk[part : part + 50])
                    await asyncio.sleep(0.15)
                    if phase in (1, 3, 5) and part == 50:
                        child.kill()  # mid-flow, with requests and polls in the air
                        child.start()
                        await child.ready()
                await asyncio.sleep(1.5 if fault.get("outage") else 0.5)
            sandbox.clear_faults()

            def settled(records: list[Any]) -> bool:
                latest = _latest(decoded(records))
                return len(latest) == len(by_cid) and all(
                    e.data.status.value in TERMINAL
                    or e.data.status.value == "ACCEPTED"
                    or e.data.status.value == "PARTIALLY_FILLED"
                    for e in latest.values()
                )

            await tally.reach(settled, timeout=120)
            child.kill()  # once more, after everything is in: the restart must add nothing
            child.start()
            await child.ready()
            resting = [
                cid
                for cid, e in _latest(decoded(tally.records)).items()
                if e.data.status.value not in TERMINAL
            ]
            await send(
                kafka_settings,
                topic_prefix,
                [
                    cancel_approved(
                        next(u for u in users if u.user_id == by_cid[cid].user_id),
                        client_order_id=cid,
                    )
                    for cid in resting
                ],
            )

            def all_terminal(records: list[Any]) -> bool:
                latest = _latest(decoded(records))
                return len(latest) == len(by_cid) and all(
                    e.data.status.value in TERMINAL for e in latest.values()
                )

            await tally.reach(all_terminal, timeout=120)
            await asyncio.sleep(1.0)  # anything extra would show up now
            events = decoded(tally.records)
    finally:
        child.stop()
        sandbox.clear_faults()

    assert child.kills == 4
    terminal = Counter(
        e.data.client_order_id
        for e in events
        if hasattr(e.data, "status") and e.data.status.value in TERMINAL
    )
    assert set(terminal) == set(by_cid)
    assert [cid for cid, n in terminal.items() if n != 1] == []
    assert len({e.id for e in events}) == len(events)
    accepted: dict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.type == "OrderAccepted":
            accepted[e.data.order_id].append(e.data.client_order_id)
    assert [ids for ids in accepted.values() if len(ids) > 1] == []
    on_opex = {str(o.order_id) for user in users for o in sandbox.orders_of(user.opex_user_id)}
    unclaimed = [
        (str(o.order_id), str(o.side), str(o.price), str(o.orig_qty), o.time, str(o.status))
        for user in users
        for o in sandbox.orders_of(user.opex_user_id)
        if str(o.order_id) not in accepted
    ]
    assert unclaimed == [], "OPEX holds orders nobody claimed (placed twice, or given up early)"
    assert on_opex == set(accepted), "OPEX holds an order nobody claimed, or lost one"
    outcomes = Counter(_latest(events)[cid].data.status.value for cid in by_cid)
    print(f"\noutcomes of {len(by_cid)} orders: {dict(outcomes)}; kills: {child.kills}")
    assert outcomes["FAILED"] < len(by_cid) // 4
