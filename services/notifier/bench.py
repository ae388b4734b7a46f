"""Notifier benchmark: ``make bench-notifier`` (``python -m services.notifier.bench``).

Against the local Kafka and PostgreSQL (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``),
with a private topic prefix and schema that are removed afterwards, it starts
``python -m services.notifier`` as a child process on 127.0.0.1 and measures:

1. ``connections``, ``bytes_per_idle_connection``: N authenticated, subscribed, idle
   WebSocket connections (one user each) held by the one notifier process; the
   process's RSS growth divided by N.
2. ``p50_ms``, ``p99_ms``: order events published at a steady rate (5,000/s by
   default) for a few seconds to users with an active connection; the time from the
   producer's ``send`` to the client reading the frame.
3. ``events_per_s``: a burst of events published as fast as the producer goes; events
   delivered to clients divided by the time from the first send to the last receipt.

Everything is bounded in count and time, and 127.0.0.1 only. The clients are a
minimal asyncio WebSocket client (handshake, frame parser, pong), so that the bench
process's own memory and CPU stay small next to the server's. Results are printed and
written to ``.bench/notifier.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from shared.contracts import OrderAccepted, encode, new_message
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(__file__).with_name("migrations") / "versions"
OUTPUT = REPO / ".bench" / "notifier.json"
SECRET = "bench-secret-0123456789abcdef0123"


# ------------------------------------------------------------------ a lean client


def _mask(payload: bytes, opcode: int) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class LeanClient(asyncio.Protocol):
    """A WebSocket client in a few hundred bytes: handshake, server frames, pongs."""

    __slots__ = ("buffer", "closed", "on_text", "ready", "transport", "upgraded", "url_path")

    def __init__(
        self, url_path: str, ready: asyncio.Future[None], on_text: Callable[[bytes], None] | None
    ) -> None:
        self.url_path = url_path
        self.ready = ready
        self.on_text = on_text
        self.buffer = bytearray()
        self.upgraded = False
        self.closed: int | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.url_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(bytes(self.buffer[:64]).decode("latin-1")))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
        self._frames()

    def _frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = struct.unpack_from("!H", buffer, 2)[0]
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = struct.unpack_from("!Q", buffer, 2)[0]
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if opcode == 0x1:
                self._text(payload)
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(_mask(payload, 0xA))
            elif opcode == 0x8:
                self.closed = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self._fail(ConnectionError(f"closed {self.closed}"))

    def _text(self, payload: bytes) -> None:
        if not self.ready.done() and b'"subscribed"' in payload[:40]:
            self.ready.set_result(None)
        if self.on_text is not None:
            self.on_text(payload)

    def _fail(self, error: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(str(exc)))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_lean(
    port: int, path: str, on_text: Callable[[bytes], None] | None = None, timeout: float = 30
) -> LeanClient:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    _transport, client = await loop.create_connection(
        lambda: LeanClient(path, ready, on_text), "127.0.0.1", port
    )
    await asyncio.wait_for(ready, timeout)
    return client


# ---------------------------------------------------------------------- the run


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


@dataclass
class Receiver:
    """Counts and times the order frames the active clients read."""

    sent_at: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    last_at: float = 0.0

    def on_text(self, payload: bytes) -> None:
        if b'"order_update"' not in payload[:40]:
            return
        now = time.perf_counter()
        frame = orjson.loads(payload)  # the frame is parsed in full, in C
        index = int(frame["data"]["id"][1:])
        sent = self.sent_at.pop(index, None)
        if sent is not None:
            self.latencies.append((now - sent) * 1000)
        self.received += 1
        self.last_at = now


def order_bytes(user: str, index: int) -> bytes:
    return encode(
        new_message(
            OrderAccepted(
                client_order_id=f"b{index}",
                order_id=str(index),
                symbol="BTC_USDT",
                side="buy",
                order_type="limit",
                quantity=Decimal("0.01"),
                price=Decimal("50000"),
            ),
            user_id=user,
        )
    )


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    receiver: Receiver,
    first_index: int,
    rate: float | None,
) -> float:
    """Send ``messages`` (at ``rate`` per second, or as fast as possible); returns the
    time of the first send."""
    started = time.perf_counter()
    tick = 0.01
    per_tick = max(1, int(rate * tick)) if rate else len(messages)
    for start in range(0, len(messages), per_tick):
        if rate:
            target = started + (start / per_tick) * tick
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        for offset, (key, value) in enumerate(messages[start : start + per_tick]):
            receiver.sent_at[first_index + start + offset] = time.perf_counter()
            await producer.send(topic, value, key=key)
    await producer.flush()
    return started


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def start_server(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m services.notifier`` in its own session, logging to ``log_path``."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "services.notifier"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kafka = KafkaSettings()
    database_url = DatabaseSettings().database_url
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench{run_id}."
    schema = f"notifier_bench_{run_id}"
    port = free_port()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)

    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    await asyncio.wait_for(
        apply_topics(admin, topic_specs(partitions=args.partitions, prefix=prefix)), 60
    )
    migrate(database_url, schema, MIGRATIONS)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": database_url,
        "NOTIFIER_HOST": "127.0.0.1",
        "NOTIFIER_PORT": str(port),
        "NOTIFIER_SCHEMA": schema,
        "NOTIFIER_GROUP_ID": f"notifier-{schema}",
        "OPEXBRIDGE_TOPIC_PREFIX": prefix,
        "JWT_SECRET": SECRET,
        "NOTIFIER_MAX_CONNECTIONS": str(args.connections + 1000),
        "NOTIFIER_MIGRATE": "false",
        "NOTIFIER_DB_POOL": "20",
    }
    server = start_server(env, OUTPUT.parent / "notifier-bench.log")
    producer = AIOKafkaProducer(
        **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=2
    )
    idle: list[LeanClient] = []
    active: list[LeanClient] = []
    try:
        await _healthy(port, server)
        await producer.start()
        topic = prefix + "orders.events"
        results: dict[str, Any] = {}

        # -- 1. idle connections and their memory
        await asyncio.sleep(1.0)
        before = rss_bytes(server.pid)
        semaphore = asyncio.Semaphore(200)

        async def one_idle(i: int) -> None:
            async with semaphore:
                user = f"idle-{run_id}-{i}"
                path = f"/ws?token={token(user)}&channels=orders,positions,account"
                idle.append(await open_lean(port, path))

        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(one_idle(i) for i in range(args.connections)), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        connect_s = time.perf_counter() - started
        await asyncio.sleep(2.0)
        after = rss_bytes(server.pid)
        results["connections"] = len(idle)
        results["bytes_per_idle_connection"] = round((after - before) / max(1, len(idle)))
        results["connect_seconds"] = round(connect_s, 1)
        results["connect_failures"] = len(failures)
        results["server_rss_mb"] = round(after / 2**20, 1)
        _say(
            f"idle: {len(idle)} connections in {connect_s:.1f}s, "
            f"{results['bytes_per_idle_connection']} B each (RSS {after / 2**20:.0f} MB)"
        )

        # -- active clients (one per user) for latency and throughput
        receiver = Receiver()
        users = [f"active-{run_id}-{i}" for i in range(args.users)]
        for user in users:
            active.append(
                await open_lean(port, f"/ws?token={token(user)}&channels=orders", receiver.on_text)
            )

        def messages(first: int, count: int) -> list[tuple[bytes, bytes]]:
            return [
                (users[i % len(users)].encode(), order_bytes(users[i % len(users)], i))
                for i in range(first, first + count)
            ]

        # warm-up: the consumer's first batches, the clients' first frames
        warm = messages(0, 500)
        await publish(producer, topic, warm, receiver, 0, rate=2000)
        await wait_until(lambda: receiver.received >= len(warm), 30)
        receiver.latencies.clear()

        # -- 2. latency at steady rates: the 5,000/s, and a gentler 1,000/s that
        #    shows the pipeline's own latency when it is not saturated
        async def reach(count: int, timeout: float = 120) -> bool:
            return await wait_until(lambda: receiver.received >= count, timeout)

        first = len(warm)
        for rate, seconds, suffix in (
            (args.rate, args.latency_seconds, ""),
            (args.low_rate, args.latency_seconds, f"_at_{args.low_rate}"),
        ):
            await reach(first)
            receiver.latencies.clear()
            count = int(rate * seconds)
            batch = messages(first, count)
            expected = first + count
            cpu_before = cpu_seconds(server.pid)
            await publish(producer, topic, batch, receiver, first, rate=rate)
            await reach(expected)
            results[f"server_cpu_us_per_event{suffix}"] = round(
                (cpu_seconds(server.pid) - cpu_before) / count * 1e6, 1
            )
            first = expected
            results[f"p50_ms{suffix}"] = round(percentile(receiver.latencies, 0.50), 1)
            results[f"p99_ms{suffix}"] = round(percentile(receiver.latencies, 0.99), 1)
            _say(
                f"latency at {rate}/s: p50 {results[f'p50_ms{suffix}']} ms, "
                f"p99 {results[f'p99_ms{suffix}']} ms ({len(receiver.latencies)} events)"
            )
        results["rate_for_latency"] = args.rate

        # -- 3. throughput: a burst, delivered events per second
        await reach(first)
        burst = messages(first, args.burst)
        baseline = receiver.received
        cpu_before, own_before = cpu_seconds(server.pid), time.process_time()
        sent_from = await publish(producer, topic, burst, receiver, first, rate=None)
        complete = await wait_until(lambda: receiver.received >= baseline + len(burst), 120)
        delivered = receiver.received - baseline
        results["server_cpu_us_per_event"] = round(
            (cpu_seconds(server.pid) - cpu_before) / max(1, delivered) * 1e6, 1
        )
        results["bench_cpu_us_per_event"] = round(
            (time.process_time() - own_before) / max(1, delivered) * 1e6, 1
        )
        elapsed = max(1e-6, receiver.last_at - sent_from)
        results["events_per_s"] = round(delivered / elapsed)
        results["burst_events"] = len(burst)
        results["burst_delivered"] = delivered
        results["burst_complete"] = complete
        _say(
            f"throughput: {delivered} of {len(burst)} events in {elapsed:.1f}s = "
            f"{results['events_per_s']}/s"
        )
        results["cpus"] = os.cpu_count()
        return results
    finally:
        for client in idle + active:
            client.close()
        await producer.stop()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        existing = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if existing:
            await admin.delete_topics(existing)
        await admin.close()
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _healthy(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the notifier exited ({server.returncode}); see .bench/")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the notifier did not become healthy")
            await asyncio.sleep(0.2)


def _say(line: str) -> None:
    print(f"  {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100, help="active clients")
    parser.add_argument("--rate", type=int, default=5000, help="events/s for the latency phase")
    parser.add_argument("--low-rate", type=int, default=1000, help="a second, gentler rate")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=60_000, help="events in the throughput burst")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args(argv)
    print(f"notifier bench: {args.connections} idle connections, {args.users} active users")
    results = asyncio.run(run(args))
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
