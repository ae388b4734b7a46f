"""``opexbridge top``: the suite at a glance, refreshed in place.

- per topic (``topic_specs(prefix)``): messages in per second (end-offset deltas between
  two samples) and out per second (committed-offset deltas of every consumer group);
- per consumer group and partition: the lag, end offset - committed offset;
- per ``.dlq`` topic: its depth, end - beginning offsets;
- per service: ``/health`` (unreachable is "down", never an error) with its
  ``last_error``, and figures scraped from ``/metrics``: risk decisions by outcome and
  reason, messages consumed by outcome, orders in flight at OPEX and filled (order
  gateway, when it exports them), WebSocket connections on the notifier. Missing
  metrics are shown as ``null``/``-``.

Service URLs default to the local ports, and are overridden by
``OPEXBRIDGE_SERVICE_URLS=name=url,name=url`` or ``--service name=url`` (a base URL:
``/health`` and ``/metrics`` are appended).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import typer
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from opexbridge._kafka import DLQ_SUFFIX, admin_client, partition_counts, raw_consumer
from shared.messaging import KafkaSettings, topic_specs

console = Console()


@dataclass(frozen=True)
class Endpoint:
    name: str
    health_url: str
    metrics_url: str | None


DEFAULT_SERVICES: dict[str, str] = {
    "risk_engine": "http://127.0.0.1:8092",
    "notifier": "http://127.0.0.1:8000",
    "user_sync": "http://127.0.0.1:8091",
    "order_gateway": "http://127.0.0.1:8093",
    "sandbox": "http://127.0.0.1:8082",
}
_HEALTH_PATHS = {"sandbox": "/actuator/health"}
_NO_METRICS = {"sandbox"}

IN_FLIGHT_METRICS = ("opexbridge_gateway_orders_in_flight", "opexbridge_orders_in_flight")
FILLED_METRICS = ("opexbridge_gateway_orders_filled_total", "opexbridge_orders_filled_total")


def endpoints(overrides: Mapping[str, str] | None = None) -> list[Endpoint]:
    """The services to watch: defaults, then ``OPEXBRIDGE_SERVICE_URLS``, then
    ``overrides`` (name → base URL)."""
    urls = dict(DEFAULT_SERVICES)
    urls.update(parse_service_urls(os.environ.get("OPEXBRIDGE_SERVICE_URLS", "")))
    urls.update(overrides or {})
    return [
        Endpoint(
            name,
            base.rstrip("/") + _HEALTH_PATHS.get(name, "/health"),
            None if name in _NO_METRICS else base.rstrip("/") + "/metrics",
        )
        for name, base in urls.items()
    ]


def parse_service_urls(text: str | Iterable[str]) -> dict[str, str]:
    """``"a=http://x,b=http://y"`` (or a list of ``name=url``) → a dict."""
    items = text.split(",") if isinstance(text, str) else list(text)
    found: dict[str, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise ValueError(f"not name=url: {item!r}")
        found[name.strip()] = url.strip()
    return found


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition; nothing when it does not parse."""
    try:
        return [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, TypeError, KeyError, IndexError):
        return []


@dataclass
class SuiteFigures:
    decided: int | None = None
    approved: int | None = None
    rejected: int | None = None
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    in_flight: int | None = None
    filled: int | None = None
    notifier_connections: int | None = None
    consumed: dict[str, int] = field(default_factory=dict)


def _add(current: int | None, value: float) -> int:
    return (current or 0) + round(value)


def suite_figures(samples: Iterable[Sample]) -> SuiteFigures:
    """The suite's own figures from every service's samples (summed)."""
    figures = SuiteFigures()
    by_reason: dict[str, int] = defaultdict(int)
    consumed: dict[str, int] = defaultdict(int)
    for s in samples:
        if s.name == "opexbridge_risk_decisions_total":
            figures.decided = _add(figures.decided, s.value)
            outcome = s.labels.get("outcome", "")
            if outcome == "approved":
                figures.approved = _add(figures.approved, s.value)
            elif outcome == "rejected":
                figures.rejected = _add(figures.rejected, s.value)
                by_reason[s.labels.get("reason") or "?"] += round(s.value)
        elif s.name == "opexbridge_messages_consumed_total":
            consumed[s.labels.get("outcome") or "?"] += round(s.value)
        elif s.name in IN_FLIGHT_METRICS:
            figures.in_flight = _add(figures.in_flight, s.value)
        elif s.name in FILLED_METRICS:
            figures.filled = _add(figures.filled, s.value)
        elif s.name == "notifier_connections":
            figures.notifier_connections = _add(figures.notifier_connections, s.value)
    figures.rejected_by_reason = dict(sorted(by_reason.items()))
    figures.consumed = dict(sorted(consumed.items()))
    return figures


@dataclass
class TopicFigures:
    topic: str
    partitions: int
    messages: int
    """End offsets summed over partitions (messages ever written)."""
    in_per_s: float
    out_per_s: float


@dataclass
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass
class ServiceStatus:
    name: str
    up: bool
    status: str
    last_error: str | None = None


@dataclass
class TopSnapshot:
    taken_at: str
    interval_s: float
    topics: list[TopicFigures]
    lag: list[PartitionLag]
    dlq_depth: dict[str, int]
    services: list[ServiceStatus]
    suite: SuiteFigures

    def group_lag(self) -> dict[str, int]:
        """Total lag per consumer group."""
        totals: dict[str, int] = defaultdict(int)
        for item in self.lag:
            totals[item.group] += item.lag
        return dict(totals)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["lag"] = [{**asdict(item), "lag": item.lag} for item in self.lag]
        found["group_lag"] = self.group_lag()
        return found


def rate(before: int, after: int, seconds: float) -> float:
    """Messages per second between two offset sums (0 for no time or a reset)."""
    if seconds <= 0 or after <= before:
        return 0.0
    return round((after - before) / seconds, 2)


async def _group_offsets(
    settings: KafkaSettings, topics: set[str], group_filter: str | None
) -> dict[tuple[str, TopicPartition], int]:
    """Committed offsets on ``topics`` of every consumer group (whose id contains
    ``group_filter``)."""
    async with admin_client(settings) as admin:
        listed = await admin.list_consumer_groups()
        groups = sorted({g[0] for g in listed if not group_filter or group_filter in g[0]})
        limit = asyncio.Semaphore(16)

        async def offsets_of(group: str) -> dict[tuple[str, TopicPartition], int]:
            async with limit:
                try:
                    committed = await admin.list_consumer_group_offsets(group)
                except Exception:  # a group that vanished meanwhile
                    return {}
            return {
                (group, tp): meta.offset
                for tp, meta in committed.items()
                if tp.topic in topics and meta.offset >= 0
            }

        found: dict[tuple[str, TopicPartition], int] = {}
        for part in await asyncio.gather(*(offsets_of(g) for g in groups)):
            found.update(part)
        return found


async def _health(client: httpx.AsyncClient, endpoint: Endpoint) -> tuple[ServiceStatus, str]:
    try:
        response = await client.get(endpoint.health_url)
    except httpx.HTTPError as exc:
        return ServiceStatus(endpoint.name, False, "down", type(exc).__name__), ""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    status = str(body.get("status") or response.status_code)
    up = response.status_code < 400 and status.lower() in ("ok", "up", "200")
    error = body.get("last_error")
    metrics = ""
    if endpoint.metrics_url is not None:
        try:
            scraped = await client.get(endpoint.metrics_url)
            if scraped.status_code == 200:
                metrics = scraped.text
        except httpx.HTTPError:
            pass
    return ServiceStatus(endpoint.name, up, status, str(error) if error else None), metrics


async def service_statuses(
    services: list[Endpoint], *, client: httpx.AsyncClient | None = None, timeout: float = 1.0
) -> tuple[list[ServiceStatus], SuiteFigures]:
    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    try:
        results = await asyncio.gather(*(_health(http, e) for e in services))
    finally:
        if own:
            await http.aclose()
    samples = [s for _, text in results for s in parse_metrics(text)]
    return [status for status, _ in results], suite_figures(samples)


async def snapshot(
    settings: KafkaSettings,
    *,
    prefix: str | None = None,
    interval: float = 1.0,
    services: list[Endpoint] | None = None,
    group_filter: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> TopSnapshot:
    """One snapshot; rates are measured over ``interval`` seconds."""
    specs = topic_specs(prefix=prefix)
    counts = await partition_counts(settings, [s.name for s in specs])
    names = [s.name for s in specs if s.name in counts]
    tps = [TopicPartition(name, p) for name in names for p in range(counts[name])]
    async with raw_consumer(settings) as consumer:
        topics = set(names)
        started = time.monotonic()
        ends_1, committed_1 = await asyncio.gather(
            consumer.end_offsets(tps), _group_offsets(settings, topics, group_filter)
        )
        health = asyncio.ensure_future(service_statuses(services or endpoints(), client=http))
        await asyncio.sleep(interval)
        ends_2, committed_2 = await asyncio.gather(
            consumer.end_offsets(tps), _group_offsets(settings, topics, group_filter)
        )
        seconds = time.monotonic() - started
        starts = await consumer.beginning_offsets(
            [tp for tp in tps if tp.topic.endswith(DLQ_SUFFIX)]
        )
        statuses, suite = await health
    figures: list[TopicFigures] = []
    for name in names:
        mine = [tp for tp in tps if tp.topic == name]
        out_1 = sum(o for (_, tp), o in committed_1.items() if tp.topic == name)
        out_2 = sum(o for (_, tp), o in committed_2.items() if tp.topic == name)
        figures.append(
            TopicFigures(
                name,
                len(mine),
                sum(ends_2[tp] for tp in mine),
                rate(sum(ends_1[tp] for tp in mine), sum(ends_2[tp] for tp in mine), seconds),
                rate(out_1, out_2, seconds),
            )
        )
    lag = [
        PartitionLag(group, tp.topic, tp.partition, offset, ends_2.get(tp, offset))
        for (group, tp), offset in sorted(
            committed_2.items(), key=lambda kv: (kv[0][0], kv[0][1].topic, kv[0][1].partition)
        )
    ]
    depth = {
        name: sum(ends_2[tp] - starts[tp] for tp in tps if tp.topic == name)
        for name in names
        if name.endswith(DLQ_SUFFIX)
    }
    return TopSnapshot(
        datetime.now(UTC).isoformat(timespec="milliseconds"),
        round(seconds, 3),
        figures,
        lag,
        depth,
        statuses,
        suite,
    )


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(snap: TopSnapshot, *, all_topics: bool = False) -> Group:
    """The snapshot as rich tables."""
    topics = Table("topic", "partitions", "messages", "in/s", "out/s", title="topics")
    for t in snap.topics:
        if t.topic.endswith(DLQ_SUFFIX) and not all_topics:
            continue
        topics.add_row(
            t.topic, str(t.partitions), str(t.messages), f"{t.in_per_s:g}", f"{t.out_per_s:g}"
        )
    dlq = Table("dead-letter topic", "depth", title="DLQ")
    for name, depth in snap.dlq_depth.items():
        if depth or all_topics:
            dlq.add_row(name, f"[red]{depth}[/]" if depth else "0")
    lag = Table("group", "topic", "partition", "committed", "end", "lag", title="consumer lag")
    for item in snap.lag:
        lag.add_row(
            item.group,
            item.topic,
            str(item.partition),
            str(item.committed),
            str(item.end),
            f"[yellow]{item.lag}[/]" if item.lag else "0",
        )
    services = Table("service", "health", "last error", title="services")
    for s in snap.services:
        services.add_row(
            s.name, "[green]up[/]" if s.up else f"[red]{s.status}[/]", s.last_error or ""
        )
    f = snap.suite
    suite = Table("figure", "value", title="suite")
    suite.add_row("orders decided", _dash(f.decided))
    suite.add_row("approved", _dash(f.approved))
    suite.add_row("rejected", _dash(f.rejected))
    for reason, count in f.rejected_by_reason.items():
        suite.add_row(f"  {reason}", str(count))
    suite.add_row("in flight at OPEX", _dash(f.in_flight))
    suite.add_row("filled", _dash(f.filled))
    suite.add_row("notifier connections", _dash(f.notifier_connections))
    for outcome, count in f.consumed.items():
        suite.add_row(f"consumed: {outcome}", str(count))
    return Group(
        f"[dim]{snap.taken_at} (rates over {snap.interval_s}s)[/]",
        topics,
        lag,
        dlq,
        services,
        suite,
    )


def top_command(
    once: bool = typer.Option(False, "--once", help="One snapshot, then exit."),
    as_json: bool = typer.Option(False, "--json", help="With --once: the snapshot as JSON."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes."),
    service: list[str] = typer.Option([], "--service", help="name=base URL (repeatable)."),
    group: str | None = typer.Option(None, "--group", help="Only groups whose id contains this."),
    prefix: str | None = typer.Option(None, "--prefix", help="Topic name prefix."),
    all_topics: bool = typer.Option(False, "--all", help="Show empty DLQs too."),
) -> None:
    """Live dashboard: topic rates, consumer lag, DLQ depth, service health, suite figures."""
    try:
        watched = endpoints(parse_service_urls(service))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    settings = KafkaSettings()
    sample = min(interval, 1.0) if once else interval

    async def take() -> TopSnapshot:
        return await snapshot(
            settings, prefix=prefix, interval=sample, services=watched, group_filter=group
        )

    if once:
        snap = asyncio.run(take())
        if as_json:
            typer.echo(json.dumps(snap.as_dict(), default=str))
        else:
            console.print(render(snap, all_topics=all_topics))
        return

    async def live() -> None:
        with Live(console=console, auto_refresh=False, screen=False) as view:
            while True:
                view.update(render(await take(), all_topics=all_topics), refresh=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(live())
