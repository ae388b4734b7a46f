"""The whole suite as child processes, on 127.0.0.1, in a private namespace: the harness
behind ``make bench`` (`opexbridge.bench_pipeline`) and ``make chaos`` (`opexbridge.chaos`).

`Suite` starts the sandbox, user_sync, the risk engine, the order gateway and the
notifier (``python -m services.<name>``) with a private topic prefix
(``OPEXBRIDGE_TOPIC_PREFIX``), a private schema per service (``*_SCHEMA``), free ports
and the settings a test or a benchmark wants. It provisions users through the real path
(UserRegistered on ``users.events`` → user_sync → UserProvisioned), funds them with the
sandbox's admin deposit, and waits until the risk engine has committed past their
balances (the gateway publishes BalancesUpdated for provisioned users), an instrument and
a fresh ticker. It can SIGKILL and restart any service and set the sandbox's faults.

`PrivateStack` is a second local Kafka and PostgreSQL (deploy/local/stack.py) on other
ports with its own data folder, so that ``make chaos`` can restart the broker and the
database without touching the shared ones other people use on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from opexbridge.devrun import load_stack
from shared.contracts import UserRegistered, encode, new_message
from shared.credentials import CredentialStore, SecretBox, generate_key
from shared.db import Database, migrate
from shared.messaging import KafkaSettings, apply_topics, topic_specs
from shared.opex import ApiKey, OpexClient, OpexSettings

__all__ = [
    "ADMIN_KEY",
    "ADMIN_SECRET",
    "REPO",
    "SERVICES",
    "Exit",
    "PrivateStack",
    "Suite",
    "SuiteOptions",
    "SuiteUser",
    "free_port",
]

REPO = Path(__file__).resolve().parent.parent
ADMIN_KEY = "suite-admin-key"
ADMIN_SECRET = "suite-admin-secret"  # noqa: S105 - the sandbox's test admin, local only
SERVICES = ("opex_sandbox", "user_sync", "risk_engine", "order_gateway", "notifier")
MIGRATED = ("user_sync", "risk_engine", "order_gateway", "notifier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_pair() -> int:
    """A port whose next port is free too (Kafka's controller listens on port + 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65000:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")


# --------------------------------------------------------------------------- private stack


class PrivateStack:
    """deploy/local/stack.py's Kafka and PostgreSQL under another root and other ports.

    The stack script keeps everything under ``repo_root()/.run`` and reads its ports from
    the environment; this loads a private copy of the module with both replaced, so the
    broker and cluster it starts (and restarts) are this run's alone. The broker jars and
    the JVM's class-data archive are shared with the main checkout (symlinks).
    """

    def __init__(self, root: Path, kafka_port: int | None = None, pg_port: int | None = None):
        self.root = root
        self.kafka_port = kafka_port or _free_pair()
        self.pg_port = pg_port or free_port()
        self.module: Any = self._load()

    def _load(self) -> ModuleType:
        (self.root / "deploy" / "local").mkdir(parents=True, exist_ok=True)
        (self.root / ".cache" / "kafka").mkdir(parents=True, exist_ok=True)
        links = {
            self.root / "deploy" / "local" / "kafka": REPO / "deploy" / "local" / "kafka",
            self.root / ".cache" / "kafka" / "libs": REPO / ".cache" / "kafka" / "libs",
            self.root / ".cache" / "kafka" / "cds": REPO / ".cache" / "kafka" / "cds",
        }
        (REPO / ".cache" / "kafka" / "cds").mkdir(parents=True, exist_ok=True)
        for link, target in links.items():
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
        module: Any = load_stack()
        root, kafka_port, pg_port = self.root, self.kafka_port, self.pg_port
        module.repo_root = lambda: root
        module.kafka_port = lambda: kafka_port
        module.pg_port = lambda: pg_port
        return module  # type: ignore[no-any-return]

    @property
    def env(self) -> dict[str, str]:
        return dict(self.module.endpoints())

    async def up(self) -> dict[str, str]:
        main_stack: Any = load_stack()
        await asyncio.to_thread(main_stack.resolve_kafka_jars)  # a fresh clone: Maven, once
        await asyncio.to_thread(self.module.ensure_up, True, True, 120.0)
        return self.env

    async def restart_kafka(self, down_s: float = 3.0) -> float:
        """Stop the broker (SIGTERM), wait, start it again; seconds it was gone."""
        began = time.monotonic()
        await asyncio.to_thread(self.module.stop, ["kafka"])
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.module.ensure_up, True, False, 120.0)
        return time.monotonic() - began

    async def restart_pg(self, down_s: float = 3.0) -> float:
        """Stop PostgreSQL (pg_ctl stop -m fast: every connection is cut), start it again."""
        began = time.monotonic()
        await asyncio.to_thread(self.module.stop, ["pg"])
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.module.ensure_up, False, True, 120.0)
        return time.monotonic() - began

    async def destroy(self) -> None:
        """Stop both and delete their data (the shared jars are only unlinked)."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.module.reset)
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    """One service process: started, SIGKILLed, restarted, stopped."""

    name: str
    env: dict[str, str]
    health_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    starts: int = 0
    killing: bool = False
    """Set while `Suite.kill` has it down on purpose (the supervisor leaves it alone)."""

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.health_url)).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s:\n{self.tail()}")


# --------------------------------------------------------------------------- the suite


@dataclass
class SuiteOptions:
    kafka_bootstrap: str
    database_url: str
    log_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 3
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    secrets_key: str = field(default_factory=generate_key)
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Extra environment per service name (overrides the defaults below)."""
    keep: bool = False
    """Keep topics and schemas at the end (for a post-mortem)."""

    @property
    def prefix(self) -> str:
        return f"suite{self.run_id}."

    def schema(self, service: str) -> str:
        return f"s{self.run_id}_{service}"


@dataclass(frozen=True)
class Exit:
    """A service that exited without being told to."""

    at: float
    name: str
    returncode: int | None
    tail: str


@dataclass(frozen=True)
class SuiteUser:
    user_id: str
    email: str
    opex_user_id: str


SANDBOX_DEFAULTS = {
    "SANDBOX_RATE_LIMIT_ENABLED": "false",
    "SANDBOX_LISTING_DELAY_MS": "5",
    "SANDBOX_CANCEL_DELAY_MS": "5",
    "SANDBOX_MARKET_MAKER": "true",
    "SANDBOX_MARKET_MAKER_INTERVAL_MS": "500",
    "SANDBOX_TAKE_NO_ANSWER_DELAY_S": "3",
}
RISK_DEFAULTS = {
    "RISK_MAX_ORDERS_PER_SECOND": "100000",
    "RISK_MAX_ORDERS_PER_MINUTE": "10000000",
    "RISK_MAX_OPEN_ORDERS": "100000",
    "MAX_POSITION_SIZE": "100000000",
    "RISK_MAX_ORDER_NOTIONAL": "1000000",
    "RISK_REFERENCE_PRICE_MAX_AGE_MS": "60000",
}
GATEWAY_DEFAULTS = {
    "ORDER_GATEWAY_BALANCES_REFRESH_MS": "2000",
    "ORDER_GATEWAY_MARKET_DATA_INTERVAL_MS": "500",
    "ORDER_GATEWAY_PLACE_CONCURRENCY": "32",
}


class Suite:
    """Start with `start()` (or ``async with``), stop with `stop()`."""

    def __init__(self, options: SuiteOptions) -> None:
        self.options = options
        self.kafka = KafkaSettings(bootstrap_servers=options.kafka_bootstrap)
        self.prefix = options.prefix
        self.ports = {name: free_port() for name in SERVICES}
        self.sandbox_url = f"http://127.0.0.1:{self.ports['opex_sandbox']}"
        self.notifier_url = f"http://127.0.0.1:{self.ports['notifier']}"
        options.log_dir.mkdir(parents=True, exist_ok=True)
        self.children: dict[str, Child] = {
            name: Child(name, self._env(name), self._health(name), options.log_dir / f"{name}.log")
            for name in SERVICES
        }
        self.users: list[SuiteUser] = []
        self.keys: dict[str, ApiKey] = {}
        self.exits: list[Exit] = []
        self._opex: OpexClient | None = None
        self._creds: CredentialStore | None = None
        self._creds_db: Database | None = None

    # -- configuration --------------------------------------------------------------

    def _health(self, name: str) -> str:
        port = self.ports[name]
        path = "/actuator/health" if name == "opex_sandbox" else "/health"
        return f"http://127.0.0.1:{port}{path}"

    def _env(self, name: str) -> dict[str, str]:
        o = self.options
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("ORDER_GATEWAY_", "RISK_", "USER_SYNC_", "NOTIFIER_", "SANDBOX_", "OPEX_")
            )
        }
        base.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": o.kafka_bootstrap,
                "DATABASE_URL": o.database_url,
                "OPEXBRIDGE_TOPIC_PREFIX": self.prefix,
                "OPEXBRIDGE_SECRETS_KEY": o.secrets_key,
                "OPEX_API_URL": self.sandbox_url,
                "OPEX_MARKET_URL": self.sandbox_url,
                "OPEX_API_KEY": ADMIN_KEY,
                "OPEX_API_SECRET": ADMIN_SECRET,
                "OPEX_TIMEOUT": "2",
                "JWT_SECRET": o.jwt_secret,
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        port = str(self.ports[name])
        if name == "opex_sandbox":
            base.update(SANDBOX_DEFAULTS)
            base.update({"SANDBOX_HOST": "127.0.0.1", "SANDBOX_PORT": port})
        elif name == "user_sync":
            base.update(
                {
                    "USER_SYNC_PORT": port,
                    "USER_SYNC_SCHEMA": o.schema("user_sync"),
                    "USER_SYNC_GROUP_ID": f"{o.run_id}-user_sync",
                    "USER_SYNC_BACKOFF_BASE": "0.2",
                    "USER_SYNC_BACKOFF_MAX": "2",
                    "USER_SYNC_LEASE": "5",
                }
            )
        elif name == "risk_engine":
            base.update(RISK_DEFAULTS)
            base.update(
                {
                    "RISK_ENGINE_PORT": port,
                    "RISK_ENGINE_SCHEMA": o.schema("risk_engine"),
                    "RISK_ENGINE_GROUP": f"{o.run_id}-risk",
                }
            )
        elif name == "order_gateway":
            base.update(GATEWAY_DEFAULTS)
            base.update(
                {
                    "ORDER_GATEWAY_PORT": port,
                    "ORDER_GATEWAY_SCHEMA": o.schema("order_gateway"),
                    "ORDER_GATEWAY_GROUP": f"{o.run_id}-gateway",
                    "ORDER_GATEWAY_CREDENTIALS_SCHEMA": o.schema("user_sync"),
                }
            )
        elif name == "notifier":
            base.update(
                {
                    "NOTIFIER_PORT": port,
                    "NOTIFIER_SCHEMA": o.schema("notifier"),
                    "NOTIFIER_GROUP_ID": f"{o.run_id}-notifier",
                    "NOTIFIER_SERVICE_HEALTH_URLS": json.dumps(
                        {
                            "risk_engine": self._health("risk_engine"),
                            "user_sync": self._health("user_sync"),
                            "order_gateway": self._health("order_gateway"),
                        }
                    ),
                }
            )
        base.update(o.env.get(name, {}))
        return base

    @property
    def risk_groups(self) -> tuple[str, str]:
        """The risk engine's consumer groups: user topics, market topics."""
        group = self.children["risk_engine"].env["RISK_ENGINE_GROUP"]
        return (
            group,
            f"{group}-market-{self.children['risk_engine'].env.get('RISK_ENGINE_INSTANCE', '0')}",
        )

    def topic(self, name: str) -> str:
        return self.prefix + name

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Suite:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(**self.kafka.aiokafka_kwargs())
        await admin.start()
        try:
            await apply_topics(
                admin, topic_specs(partitions=self.options.partitions, prefix=self.prefix)
            )
        finally:
            await admin.close()
        for service in MIGRATED:
            versions = REPO / "services" / service / "migrations" / "versions"
            await asyncio.to_thread(
                migrate, self.options.database_url, self.options.schema(service), versions
            )
        sandbox = self.children["opex_sandbox"]
        sandbox.start()
        await sandbox.healthy()
        rest = [self.children[name] for name in SERVICES if name != "opex_sandbox"]
        for child in rest:
            child.start()
        await asyncio.gather(*(child.healthy(180) for child in rest))
        self._opex = OpexClient(
            OpexSettings(
                api_url=self.sandbox_url,
                api_key=ADMIN_KEY,
                api_secret=ADMIN_SECRET,
                timeout=10,
                max_keepalive_connections=40,
            )
        )
        self._creds_db = Database(self.options.database_url, self.options.schema("user_sync"))
        self._creds = CredentialStore(
            self._creds_db,
            SecretBox([self.options.secrets_key]),
            schema=self.options.schema("user_sync"),
        )

    async def stop(self) -> None:
        for child in reversed(self.children.values()):
            await asyncio.to_thread(child.stop)
        if self._opex is not None:
            await self._opex.aclose()
        if self._creds_db is not None:
            await self._creds_db.dispose()
        if not self.options.keep:
            await self.cleanup()

    async def cleanup(self) -> None:
        """Delete this run's topics and schemas (best effort: the broker or database may
        be gone already)."""
        with contextlib.suppress(Exception):
            admin = AIOKafkaAdminClient(**self.kafka.aiokafka_kwargs())
            await admin.start()
            try:
                mine = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
                if mine:
                    await admin.delete_topics(mine)
            finally:
                await admin.close()
        with contextlib.suppress(Exception):
            engine = create_async_engine(self.options.database_url)
            try:
                async with engine.begin() as conn:
                    for service in MIGRATED:
                        schema = self.options.schema(service)
                        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            finally:
                await engine.dispose()

    # -- faults ----------------------------------------------------------------------

    async def kill(self, name: str, down_s: float = 0.0, wait_healthy: bool = True) -> None:
        """SIGKILL a service, leave it dead ``down_s``, start it again."""
        child = self.children[name]
        child.killing = True
        try:
            await asyncio.to_thread(child.kill)
            if down_s:
                await asyncio.sleep(down_s)
            child.start()
        finally:
            child.killing = False
        if wait_healthy:
            await child.healthy(120)

    async def supervise(self, interval_s: float = 1.0) -> None:
        """Restart any service that exited by itself (as Kubernetes or systemd would),
        recording each exit in `exits` (time, name, exit code, last log lines)."""
        while True:
            await asyncio.sleep(interval_s)
            for name, child in self.children.items():
                if child.killing or child.proc is None or child.proc.poll() is None:
                    continue
                self.exits.append(
                    Exit(time.monotonic(), name, child.proc.returncode, child.tail(1500))
                )
                child.start()

    async def faults(self, **settings: Any) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.put(self.sandbox_url + "/sandbox/faults", json=settings)).raise_for_status()

    async def clear_faults(self) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.delete(self.sandbox_url + "/sandbox/faults")).raise_for_status()

    async def sandbox_get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(self.sandbox_url + path)
            answer.raise_for_status()
            return answer.json()

    def dead(self) -> list[str]:
        """Services whose process ended without being told to."""
        return [name for name, child in self.children.items() if not child.alive]

    # -- users -----------------------------------------------------------------------

    @property
    def opex(self) -> OpexClient:
        assert self._opex is not None, "the suite is not started"
        return self._opex

    def token(self, user_id: str, ttl_s: int = 3600) -> str:
        now = int(time.time())
        return jwt.encode(
            {"sub": user_id, "iat": now, "exp": now + ttl_s},
            self.options.jwt_secret,
            algorithm="HS256",
        )

    async def api_key(self, user: SuiteUser) -> ApiKey:
        assert self._creds is not None
        creds = await self._creds.get(user.user_id)
        if creds is None:
            raise RuntimeError(f"no OPEX credentials stored for {user.user_id}")
        return creds.api_key

    async def provision(self, count: int, timeout: float = 180.0) -> list[SuiteUser]:
        """Publish UserRegistered for ``count`` new users; wait for each UserProvisioned."""
        ids = [f"u{self.options.run_id}-{len(self.users) + i}" for i in range(count)]
        emails = {uid: f"{uid}@suite.example.com" for uid in ids}
        consumer = AIOKafkaConsumer(
            self.topic("users.events"),
            **self.kafka.aiokafka_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        producer = AIOKafkaProducer(**self.kafka.aiokafka_kwargs(), acks="all")
        await consumer.start()
        await producer.start()
        found: dict[str, str] = {}
        try:
            for uid in ids:
                envelope = new_message(UserRegistered(email=emails[uid]), user_id=uid)
                await producer.send(self.topic("users.events"), encode(envelope), key=uid.encode())
            await producer.flush()
            deadline = time.monotonic() + timeout
            while len(found) < len(ids):
                if time.monotonic() > deadline:
                    missing = sorted(set(ids) - set(found))
                    raise TimeoutError(f"{len(missing)} users not provisioned: {missing[:5]}")
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        body = _json(record.value)
                        if body and body.get("type") == "UserProvisioned":
                            uid = str(body.get("user_id"))
                            if uid in emails:
                                found[uid] = str(body["data"]["opex_user_id"])
                        elif body and body.get("type") == "UserProvisioningFailed":
                            raise RuntimeError(f"provisioning failed: {body}")
        finally:
            await consumer.stop()
            await producer.stop()
        users = [SuiteUser(uid, emails[uid], found[uid]) for uid in ids]
        self.users.extend(users)
        for user in users:
            self.keys[user.user_id] = await self.api_key(user)
        return users

    async def fund(self, users: Iterable[SuiteUser], amounts: dict[str, Decimal]) -> None:
        admin = self.opex.admin
        assert admin is not None
        sem = asyncio.Semaphore(8)

        async def one(user: SuiteUser, asset: str, amount: Decimal) -> None:
            async with sem:
                await self.opex.deposit(admin, amount, asset, user.opex_user_id)

        await asyncio.gather(
            *(one(u, asset, amount) for u in users for asset, amount in amounts.items())
        )

    async def wait_ready(
        self,
        users: list[SuiteUser],
        funded: dict[str, Decimal],
        symbols: Iterable[str] = ("BTC_USDT",),
        timeout: float = 120.0,
    ) -> None:
        """Until the gateway published each user's funded balances (BalancesUpdated,
        source opex), an instrument and a ticker of each symbol, and the risk engine's
        consumer groups committed past all of them."""
        wanted = {u.user_id for u in users}
        symbols = set(symbols)
        topics = [
            self.topic(t) for t in ("accounts.events", "market.instruments", "market.tickers")
        ]
        consumer = AIOKafkaConsumer(
            *topics,
            **self.kafka.aiokafka_kwargs(),
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        need: dict[TopicPartition, int] = {}
        balances_seen: set[str] = set()
        instruments: set[str] = set()
        tickers: set[str] = set()
        deadline = time.monotonic() + timeout
        try:
            while not (balances_seen >= wanted and instruments >= symbols and tickers >= symbols):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not ready: balances {len(balances_seen)}/{len(wanted)}, "
                        f"instruments {sorted(instruments)}, tickers {sorted(tickers)}"
                    )
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        body = _json(record.value)
                        if not body:
                            continue
                        kind, data = body.get("type"), body.get("data") or {}
                        mark = False
                        if kind == "BalancesUpdated" and body.get("user_id") in wanted:
                            have = {
                                b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
                                for b in data.get("balances", [])
                            }
                            if data.get("source") == "opex" and all(
                                have.get(a, Decimal(0)) >= v for a, v in funded.items()
                            ):
                                balances_seen.add(str(body["user_id"]))
                                mark = True
                        elif kind == "InstrumentUpdated" and data.get("symbol") in symbols:
                            instruments.add(data["symbol"])
                            mark = True
                        elif (
                            kind == "TickerUpdated"
                            and data.get("symbol") in symbols
                            and (data.get("last_price") or data.get("bid_price"))
                        ):
                            tickers.add(data["symbol"])
                            mark = True
                        if mark:
                            need[tp] = max(need.get(tp, 0), record.offset + 1)
        finally:
            await consumer.stop()
        await self.wait_committed(need, deadline)

    async def wait_committed(self, need: dict[TopicPartition, int], deadline: float) -> None:
        """Until one of the risk engine's groups committed at or past each offset."""
        admin = AIOKafkaAdminClient(**self.kafka.aiokafka_kwargs())
        await admin.start()
        try:
            while True:
                committed: dict[TopicPartition, int] = {}
                for group in self.risk_groups:
                    with contextlib.suppress(Exception):
                        offsets = await admin.list_consumer_group_offsets(group)
                        for tp, meta in offsets.items():
                            committed[tp] = max(committed.get(tp, -1), meta.offset)
                behind = [tp for tp, off in need.items() if committed.get(tp, -1) < off]
                if not behind:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the risk engine has not read {behind[:4]}")
                await asyncio.sleep(0.5)
        finally:
            await admin.close()


def _json(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse(raw: bytes | None) -> dict[str, Any] | None:
    """A record's JSON object, or None (not JSON, not an object)."""
    return _json(raw)


Progress = Callable[[str], None]
