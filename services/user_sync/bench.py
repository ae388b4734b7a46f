"""user_sync benchmark: ``make bench-users`` (``python -m services.user_sync.bench``).

Against the local Kafka and PostgreSQL (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``),
with a private topic prefix and schema that are removed afterwards, it starts the OPEX
sandbox (``python -m services.opex_sandbox``, rate limits and market maker off) and
``python -m services.user_sync`` as child processes on 127.0.0.1, publishes
``--users`` UserRegistered (1,000 by default) at once, and reads ``users.events`` until
each user's UserProvisioned arrived. It reports:

- ``users``: users provisioned;
- ``seconds``: from the first UserRegistered sent to the last UserProvisioned read;
- ``users_per_s``: ``users / seconds``;
- ``p50_ms``, ``p99_ms``: per user, from its UserRegistered being sent to its
  UserProvisioned being read (a burst: the last users wait for the first ones);
- ``failed``: users that got UserProvisioningFailed instead;
- ``service_cpu_s``, ``sandbox_cpu_s``: CPU time the two processes used meanwhile (the
  machine may be shared: CPU per user is the steadier number);
- ``paced``: the same figures for a second wave at a steady rate below capacity
  (``--paced`` users at ``--paced-rate`` a second), where the latency is the time one
  user takes, not the time it queued behind a burst.

Everything runs on this machine, bounded in count and time; the result is printed and
written to ``.bench/user_sync.json``. The target is 1,000 users in under a minute.
The OPEX client gets 4 pooled connections here (``OPEX_MAX_CONNECTIONS``; the sandbox
answers in about a millisecond and every pooled connection costs CPU on each request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from shared.contracts import UserRegistered, encode, new_message
from shared.credentials import generate_key
from shared.db import DatabaseSettings, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = Path(__file__).with_name("migrations") / "versions"
OUTPUT = REPO / ".bench" / "user_sync.json"
TOPICS = ("users.events", "users.events.dlq", "opexbridge.outbox")
ADMIN_KEY = "bench-admin-key"
ADMIN_SECRET = "bench-admin-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "opexbridge-pycache")
    env["PYTHONPATH"] = str(REPO)
    env.update(values)
    return env


def _start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )


def _cpu_seconds(child: subprocess.Popen[bytes] | None) -> float | None:
    """User + system CPU time the child used so far (Linux ``/proc``), or None."""
    if child is None or child.poll() is not None:
        return None
    try:
        fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(child: subprocess.Popen[bytes] | None) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


async def _healthy(url: str, child: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(f"{url} exited with {child.returncode} before it was ready")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} was not ready in {timeout:.0f} s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class _Probe:
    """Publishes UserRegistered and reads users.events for the outcomes."""

    def __init__(self, kafka: KafkaSettings, prefix: str) -> None:
        self.topic = prefix + "users.events"
        self.consumer = AIOKafkaConsumer(
            self.topic,
            **kafka.aiokafka_kwargs(),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            group_id=None,
            fetch_max_wait_ms=20,
        )
        self.producer = AIOKafkaProducer(
            **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=5
        )
        self.sent: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.failed: set[str] = set()
        self._run = uuid.uuid4().hex[:8]

    async def __aenter__(self) -> _Probe:
        await self.consumer.start()
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def _send(self, user_id: str) -> None:
        message = encode(
            new_message(
                UserRegistered(email=f"{user_id}@bench.example.com", first_name="Bench"),
                user_id=user_id,
            )
        )
        self.sent[user_id] = time.monotonic()
        await self.producer.send(self.topic, message, key=user_id.encode())

    async def _read(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=50)
        now = time.monotonic()
        for records in batch.values():
            for record in records:
                user_id = record.key.decode() if record.key else ""
                if user_id not in self.sent:
                    continue
                kind = dict(record.headers or ()).get("x-message-type")
                if kind == b"UserProvisioned":
                    self.done.setdefault(user_id, now)
                elif kind == b"UserProvisioningFailed":
                    self.failed.add(user_id)

    async def wave(
        self, name: str, users: int, timeout: float, rate: float | None = None
    ) -> dict[str, Any]:
        """``users`` registrations, all at once (``rate`` None) or ``rate`` a second;
        wait for their outcomes."""
        ids = [f"bench-{self._run}-{name}-{i}" for i in range(users)]
        started = time.monotonic()
        deadline = started + timeout
        for i, user_id in enumerate(ids):
            if rate is not None:
                while time.monotonic() < started + i / rate:
                    await self._read()
            await self._send(user_id)
        await self.producer.flush()
        while time.monotonic() < deadline:
            if all(u in self.done or u in self.failed for u in ids):
                break
            await self._read()
        done = [u for u in ids if u in self.done]
        finished = max((self.done[u] for u in done), default=time.monotonic())
        latencies = [(self.done[u] - self.sent[u]) * 1000 for u in done]
        seconds = finished - started
        return {
            "users": len(done),
            "seconds": round(seconds, 3),
            "users_per_s": round(len(done) / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": round(_percentile(latencies, 0.50), 1) if latencies else None,
            "p99_ms": round(_percentile(latencies, 0.99), 1) if latencies else None,
            "failed": sum(1 for u in ids if u in self.failed),
            "requested": users,
        }


async def run(
    users: int,
    concurrency: int,
    timeout: float,
    output: Path,
    *,
    paced: int = 100,
    paced_rate: float = 10.0,
) -> dict[str, Any]:
    kafka = KafkaSettings()
    database_url = DatabaseSettings().database_url
    tag = uuid.uuid4().hex[:8]
    prefix, schema = f"bench{tag}.", f"user_sync_bench_{tag}"
    specs = [s for s in topic_specs(prefix=prefix) if s.name.removeprefix(prefix) in TOPICS]
    admin = AIOKafkaAdminClient(**kafka.aiokafka_kwargs())
    await admin.start()
    output.parent.mkdir(parents=True, exist_ok=True)
    log = output.with_suffix(".log")
    log.write_bytes(b"")
    sandbox: subprocess.Popen[bytes] | None = None
    service: subprocess.Popen[bytes] | None = None
    try:
        await apply_topics(admin, specs)
        migrate(database_url, schema, MIGRATIONS)
        sandbox_port, service_port = _free_port(), _free_port()
        sandbox = _start(
            "services.opex_sandbox",
            _child_env(
                SANDBOX_HOST="127.0.0.1",
                SANDBOX_PORT=str(sandbox_port),
                SANDBOX_RATE_LIMIT_ENABLED="false",
                SANDBOX_MARKET_MAKER="false",
                OPEX_API_KEY=ADMIN_KEY,
                OPEX_API_SECRET=ADMIN_SECRET,
            ),
            log,
        )
        await _healthy(f"http://127.0.0.1:{sandbox_port}/actuator/health", sandbox)
        service = _start(
            "services.user_sync",
            _child_env(
                DATABASE_URL=database_url,
                KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
                OPEXBRIDGE_TOPIC_PREFIX=prefix,
                OPEXBRIDGE_SECRETS_KEY=generate_key(),
                OPEX_API_URL=f"http://127.0.0.1:{sandbox_port}",
                OPEX_API_KEY=ADMIN_KEY,
                OPEX_API_SECRET=ADMIN_SECRET,
                USER_SYNC_SCHEMA=schema,
                USER_SYNC_INSTANCE_ID=schema,
                USER_SYNC_GROUP_ID=f"user_sync-{schema}",
                USER_SYNC_PORT=str(service_port),
                USER_SYNC_MIGRATE="false",
                USER_SYNC_CONCURRENCY=str(concurrency),
                USER_SYNC_DB_POOL="20",
                # a local OPEX answers in a millisecond: a few pooled connections carry
                # the load, and each one the pool holds costs CPU on every request
                OPEX_MAX_CONNECTIONS=os.environ.get("OPEX_MAX_CONNECTIONS", "4"),
                OPEX_MAX_KEEPALIVE_CONNECTIONS=os.environ.get(
                    "OPEX_MAX_KEEPALIVE_CONNECTIONS", "4"
                ),
            ),
            log,
        )
        await _healthy(f"http://127.0.0.1:{service_port}/health", service)
        async with _Probe(kafka, prefix) as probe:
            cpu = (_cpu_seconds(service), _cpu_seconds(sandbox))
            result = await probe.wave("burst", users, timeout)
            for name, child, before in (
                ("service", service, cpu[0]),
                ("sandbox", sandbox, cpu[1]),
            ):
                after = _cpu_seconds(child)
                if before is not None and after is not None:
                    result[f"{name}_cpu_s"] = round(after - before, 2)
            if paced:
                steady = await probe.wave("paced", paced, timeout, rate=paced_rate)
                result["paced"] = {"rate_per_s": paced_rate, **steady}
    finally:
        _stop(service)
        _stop(sandbox)
        with contextlib.suppress(Exception):
            await admin.delete_topics([s.name for s in specs])
        await admin.close()
        engine = create_engine(database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            engine.dispose()
    result["concurrency"] = concurrency
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--paced", type=int, default=100, help="users of the paced wave (0: none)")
    parser.add_argument("--paced-rate", type=float, default=10.0, help="users a second")
    args = parser.parse_args()
    result = asyncio.run(
        run(
            args.users,
            args.concurrency,
            args.timeout,
            args.output,
            paced=args.paced,
            paced_rate=args.paced_rate,
        )
    )
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"user_sync: {result['users']} users provisioned in {result['seconds']} s "
        f"({result['users_per_s']}/s), p99 {result['p99_ms']} ms from UserRegistered to "
        f"UserProvisioned in the burst"
        + (
            f", {result['paced']['p99_ms']} ms at {result['paced']['rate_per_s']:g} users/s"
            if "paced" in result
            else ""
        )
        + f"; written to {args.output}"
    )
    if result["users"] < result["requested"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
