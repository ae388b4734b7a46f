"""Trading REST API benchmark: ``make bench-api`` (``python -m services.notifier.bench_api``).

Against the local Kafka and PostgreSQL (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``),
with a private topic prefix and schema removed afterwards, it starts
``python -m services.notifier`` on 127.0.0.1 and, with a lean keep-alive HTTP/1.1
client (so the client's own CPU stays small next to the server's), measures:

1. ``posts_per_s``: a bounded burst of ``POST /api/trading/orders`` (``--burst``, over
   ``--connections`` keep-alive connections, as fast as they are answered): accepted
   (202) POSTs divided by the time from the first send to the last answer;
2. ``p99_ms`` (and ``p50_ms``): POST latency at a paced ``--rate`` (500/s) for
   ``--seconds``, measured from each request's scheduled time (no coordinated
   omission), once the burst's commands are all on ``orders.commands`` (the steady
   rate, not the tail of the burst's relay work);
3. ``published``: every accepted command read back from ``orders.commands``
   (read_committed), so "accepted" is not a promise the relay failed to keep;
4. the baseline in the same run: a bare aiokafka producer (acks=all, idempotent)
   ``send_and_wait`` of the same encoded PlaceOrders with the same concurrency
   (``baseline_sends_per_s``) and at the same paced rate (``baseline_p99_ms``).

Printed and written to ``.bench/rest_api.json``. Bounded in count and time; 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from shared.contracts import PlaceOrder, encode, new_message
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(__file__).with_name("migrations") / "versions"
OUTPUT = REPO / ".bench" / "rest_api.json"
SECRET = "bench-api-secret-0123456789abcdef0123"  # noqa: S105 - a throwaway bench key
BODY = json.dumps(
    {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.001, "price": 45000.0}
).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, token: str) -> int:
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    return time.process_time()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drop_schema(database_url: str, schema: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


Send = Callable[[int], Awaitable[bool]]


async def saturate(sends: Sequence[Send], count: int) -> tuple[int, float]:
    """``count`` requests over the workers in ``sends``, each worker one at a time;
    (accepted, seconds)."""
    next_index = 0
    accepted = 0

    async def worker(send: Send) -> None:
        nonlocal next_index, accepted
        while next_index < count:
            index = next_index
            next_index += 1
            if await send(index):
                accepted += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in sends))
    return accepted, time.perf_counter() - started


async def paced(sends: Sequence[Send], rate: float, seconds: float, offset: int) -> list[float]:
    """Requests at ``rate``/s for ``seconds``; latency (ms) of each accepted one from
    its scheduled time. A free worker takes the next due request."""
    total = int(rate * seconds)
    free: asyncio.Queue[Send] = asyncio.Queue()
    for send in sends:
        free.put_nowait(send)
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05

    async def one(index: int, due: float) -> None:
        send = await free.get()
        try:
            if await send(offset + index):
                latencies.append((time.perf_counter() - due) * 1000)
        finally:
            free.put_nowait(send)

    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    return latencies


async def count_published(kafka: KafkaSettings, topic: str, expected: int) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    ids: set[bytes] = set()
    try:
        deadline = time.monotonic() + 30
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            got = 0
            for records in batches.values():
                for record in records:
                    ids.add(dict(record.headers).get("x-message-id", b""))
                    got += 1
            if got:
                quiet_since = time.monotonic()
            elif len(ids) >= expected and time.monotonic() - quiet_since > 1.0:
                break
    finally:
        await consumer.stop()
    return len(ids)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kafka = KafkaSettings()
    database_url = DatabaseSettings().database_url
    run_id = uuid.uuid4().hex[:8]
    prefix, schema = f"bench{run_id}.", f"notifier_bench_{run_id}"
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    await apply_topics(admin, topic_specs(partitions=args.partitions, prefix=prefix))
    await asyncio.to_thread(migrate, database_url, schema, MIGRATIONS)
    port = _free_port()
    env = {
        **os.environ,
        "NOTIFIER_HOST": "127.0.0.1",
        "NOTIFIER_PORT": str(port),
        "NOTIFIER_SCHEMA": schema,
        "NOTIFIER_MIGRATE": "false",
        "NOTIFIER_INSTANCE_ID": f"bench-{run_id}",
        "NOTIFIER_SERVICE_HEALTH_URLS": "{}",
        "OPEXBRIDGE_TOPIC_PREFIX": prefix,
        "JWT_SECRET": SECRET,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.notifier",
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    connections: list[Connection] = []
    producer: AIOKafkaProducer | None = None
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            deadline = time.monotonic() + 60
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"the notifier exited with {proc.returncode}")
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the notifier did not become healthy")
                await asyncio.sleep(0.2)
        tokens = [
            jwt.encode(
                {"sub": f"bench-{i}", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256"
            )
            for i in range(args.users)
        ]
        connections = [await Connection.open(port) for _ in range(args.connections)]
        rejected: list[int] = []

        def http_send(conn: Connection) -> Send:
            async def send(index: int) -> bool:
                status = await conn.post("/api/trading/orders", BODY, tokens[index % len(tokens)])
                if status != 202:
                    rejected.append(status)
                return status == 202

            return send

        api_sends = [http_send(c) for c in connections]
        await saturate(api_sends, 200)  # warm-up (JIT-free Python, but pools and caches)
        server_cpu, client_cpu = process_cpu_s(proc.pid), own_cpu_s()
        accepted, seconds = await saturate(api_sends, args.burst)
        server_cpu = process_cpu_s(proc.pid) - server_cpu
        client_cpu = own_cpu_s() - client_cpu
        # the burst's outbox relayed first: the paced run measures 500/s itself
        settled = await count_published(kafka, prefix + "orders.commands", 200 + accepted)
        paced_cpu = process_cpu_s(proc.pid)
        latencies = await paced(api_sends, args.rate, args.seconds, offset=args.burst)
        paced_cpu = process_cpu_s(proc.pid) - paced_cpu
        api_total = 200 + accepted + len(latencies)
        published = await count_published(kafka, prefix + "orders.commands", api_total)

        # -- baseline: the same encoded PlaceOrders straight to Kafka, acks=all
        producer = AIOKafkaProducer(
            **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=1
        )
        await producer.start()
        envelopes = [
            new_message(
                PlaceOrder(
                    client_order_id=uuid.uuid4().hex,
                    symbol="BTC_USDT",
                    side="buy",
                    type="limit",
                    quantity="0.001",
                    price="45000",
                ),
                user_id=f"bench-{i % args.users}",
            )
            for i in range(512)
        ]
        payloads = [(encode(e), (e.user_id or "").encode()) for e in envelopes]
        baseline_topic = prefix + "orders.commands"
        kafka_producer = producer

        async def kafka_send(index: int) -> bool:
            value, key = payloads[index % len(payloads)]
            await kafka_producer.send_and_wait(baseline_topic, value, key=key)
            return True

        kafka_sends = [kafka_send for _ in range(args.connections)]
        base_accepted, base_seconds = await saturate(kafka_sends, args.burst)
        base_latencies = await paced(kafka_sends, args.rate, args.seconds, offset=0)
    finally:
        for conn in connections:
            conn.close()
        if producer is not None:
            await producer.stop()
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        existing = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if existing:
            await admin.delete_topics(existing)
        await admin.close()
        await asyncio.to_thread(_drop_schema, database_url, schema)
    return {
        "posts_per_s": round(accepted / seconds, 1),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "burst": args.burst,
        "burst_accepted": accepted,
        "burst_seconds": round(seconds, 3),
        "paced_rate": args.rate,
        "published_before_paced": settled,
        "paced_accepted": len(latencies),
        "refused": len(rejected),
        "server_cpu_us_per_post": round(server_cpu / max(accepted, 1) * 1e6, 1),
        "client_cpu_us_per_post": round(client_cpu / max(accepted, 1) * 1e6, 1),
        "server_cpu_share_at_rate": round(paced_cpu / args.seconds, 3),
        "accepted_total": api_total,
        "published": published,
        "connections": args.connections,
        "baseline_sends_per_s": round(base_accepted / base_seconds, 1),
        "baseline_p99_ms": round(_percentile(base_latencies, 0.99), 2),
        "baseline_p50_ms": round(_percentile(base_latencies, 0.50), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target": {"posts_per_s": 3000, "p99_ms": 20},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=6000, help="POSTs in the saturating burst")
    parser.add_argument("--rate", type=float, default=500.0, help="paced POSTs per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the paced run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
