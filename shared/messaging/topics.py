"""Every topic of the suite, declared once, and the command that makes a cluster match.

User-keyed topics get ``OPEXBRIDGE_TOPIC_PARTITIONS`` partitions (12 by default);
market topics are keyed by symbol; every consumed topic has a ``.dlq`` twin.
``apply_topics`` creates what is missing and reports drift in what exists (and, with
``fix=True``, adds partitions and resets configs; partitions are never removed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

DAY_MS = 24 * 60 * 60 * 1000
TOPIC_ALREADY_EXISTS = 36

ORDERS_COMMANDS = "orders.commands"
ORDERS_APPROVED = "orders.approved"
ORDERS_EVENTS = "orders.events"
POSITIONS_EVENTS = "positions.events"
ACCOUNTS_EVENTS = "accounts.events"
USERS_EVENTS = "users.events"
MARKET_INSTRUMENTS = "market.instruments"
MARKET_TICKERS = "market.tickers"

OUTBOX_PROGRESS = "opexbridge.outbox"

Key = Literal["user_id", "symbol", "original", "none"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    key: Key
    retention_ms: int
    compacted: bool = False
    replication_factor: int = 1
    description: str = ""
    extra_configs: tuple[tuple[str, str], ...] = field(default=())

    def configs(self) -> dict[str, str]:
        configs = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(self.retention_ms),
        }
        if self.replication_factor >= 3:
            configs["min.insync.replicas"] = "2"
        configs.update(self.extra_configs)
        return configs


def dlq_name(topic: str) -> str:
    return topic + ".dlq"


def topic_specs(
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
    prefix: str | None = None,
) -> list[TopicSpec]:
    """The suite's topics. Defaults come from ``OPEXBRIDGE_TOPIC_PARTITIONS`` (12),
    ``OPEXBRIDGE_TOPIC_REPLICATION`` (1) and ``OPEXBRIDGE_TOPIC_PREFIX`` (none; tests
    use one to get a private set)."""
    n = partitions or int(os.environ.get("OPEXBRIDGE_TOPIC_PARTITIONS", "12"))
    rf = replication_factor or int(os.environ.get("OPEXBRIDGE_TOPIC_REPLICATION", "1"))
    pre = prefix if prefix is not None else os.environ.get("OPEXBRIDGE_TOPIC_PREFIX", "")
    market_partitions = max(1, min(n, 6))
    base = [
        TopicSpec(ORDERS_COMMANDS, n, "user_id", 7 * DAY_MS, description="PlaceOrder, CancelOrder, ClosePosition"),
        TopicSpec(ORDERS_APPROVED, n, "user_id", 7 * DAY_MS, description="approved commands with reservations"),
        TopicSpec(ORDERS_EVENTS, n, "user_id", 30 * DAY_MS, description="order lifecycle events"),
        TopicSpec(POSITIONS_EVENTS, n, "user_id", 30 * DAY_MS, description="PositionUpdated"),
        TopicSpec(ACCOUNTS_EVENTS, n, "user_id", 30 * DAY_MS, description="BalancesUpdated, TradingStateChanged"),
        TopicSpec(USERS_EVENTS, n, "user_id", 365 * DAY_MS, description="user registration and provisioning"),
        TopicSpec(MARKET_INSTRUMENTS, market_partitions, "symbol", -1, compacted=True, description="OPEX pair rules, latest per symbol"),
        TopicSpec(MARKET_TICKERS, market_partitions, "symbol", 1 * DAY_MS, description="TickerUpdated"),
    ]  # fmt: skip
    specs: list[TopicSpec] = []
    for spec in base:
        specs.append(
            TopicSpec(
                pre + spec.name,
                spec.partitions,
                spec.key,
                spec.retention_ms,
                spec.compacted,
                rf,
                spec.description,
            )
        )
        specs.append(
            TopicSpec(
                pre + dlq_name(spec.name),
                1,
                "original",
                30 * DAY_MS,
                False,
                rf,
                f"dead letters of {spec.name}",
            )
        )
    specs.append(
        TopicSpec(
            pre + OUTBOX_PROGRESS,
            1,
            "none",
            1 * DAY_MS,
            False,
            rf,
            "no messages: outbox relays commit their progress as group offsets here",
        )
    )
    return specs


@dataclass(frozen=True)
class Drift:
    topic: str
    what: str
    expected: str
    actual: str
    fixable: bool = True

    def __str__(self) -> str:
        return f"{self.topic}: {self.what} is {self.actual}, spec says {self.expected}"


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    fixed: list[Drift] = field(default_factory=list)


def _topic_configs(response: Any) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for resource in response.resources:
        error_code, _msg, _rtype, name, entries = resource[:5]
        if error_code:
            continue
        found[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return found


async def describe(
    admin: AIOKafkaAdminClient, names: Sequence[str], *, with_configs: bool = True
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    partitions: dict[str, int] = {}
    for topic in await admin.describe_topics(list(names)):
        if not topic.get("error_code") and topic["partitions"]:
            partitions[topic["topic"]] = len(topic["partitions"])
    configs: dict[str, dict[str, str]] = {}
    if partitions and with_configs:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in partitions]
        )
        for response in responses:
            configs.update(_topic_configs(response))
    return partitions, configs


def drift_of(spec: TopicSpec, partitions: int, configs: dict[str, str]) -> list[Drift]:
    drift: list[Drift] = []
    if partitions != spec.partitions:
        drift.append(
            Drift(
                spec.name,
                "partitions",
                str(spec.partitions),
                str(partitions),
                partitions < spec.partitions,
            )
        )
    for key, expected in spec.configs().items():
        actual = configs.get(key, "<unset>")
        if actual != expected:
            drift.append(Drift(spec.name, key, expected, actual))
    return drift


async def apply_topics(
    admin: AIOKafkaAdminClient, specs: Iterable[TopicSpec], *, fix: bool = False
) -> TopicReport:
    """Create missing topics; report (and with ``fix`` repair) drift in existing ones."""
    specs = list(specs)
    report = TopicReport()
    existing = set(await admin.list_topics())
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    spec.partitions,
                    spec.replication_factor,
                    topic_configs=spec.configs(),
                )
                for spec in missing
            ]
        )
        for name, code, *_ in response.topic_errors:
            if code == TOPIC_ALREADY_EXISTS:  # created a moment ago, not yet in metadata
                existing.add(name)
            elif code:
                raise RuntimeError(f"could not create topic {name}: Kafka error {code}")
            else:
                report.created.append(name)
        await _wait_visible(admin, report.created)
    present = [spec for spec in specs if spec.name in existing]
    if not present:
        return report
    partitions, configs = await describe(admin, [spec.name for spec in present])
    for spec in present:
        drift = drift_of(spec, partitions.get(spec.name, 0), configs.get(spec.name, {}))
        if not drift:
            report.unchanged.append(spec.name)
            continue
        report.drift.extend(drift)
        if fix:
            report.fixed.extend(await _fix(admin, spec, drift))
    return report


async def _wait_visible(
    admin: AIOKafkaAdminClient, names: list[str], timeout: float = 15.0
) -> None:
    """Wait until the broker's metadata shows every partition of new topics."""
    deadline = asyncio.get_running_loop().time() + timeout
    while names:
        partitions, _ = await describe(admin, names, with_configs=False)
        if all(partitions.get(name) for name in names):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"new topics not visible after {timeout}s: {names}")
        await asyncio.sleep(0.1)


async def _fix(admin: AIOKafkaAdminClient, spec: TopicSpec, drift: list[Drift]) -> list[Drift]:
    fixed: list[Drift] = []
    if any(d.what == "partitions" and d.fixable for d in drift):
        await admin.create_partitions({spec.name: NewPartitions(spec.partitions)})
        fixed.extend(d for d in drift if d.what == "partitions")
    config_drift = [d for d in drift if d.what != "partitions"]
    if config_drift:
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.configs())]
        )
        fixed.extend(config_drift)
    return fixed
