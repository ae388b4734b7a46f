"""``opexbridge dlq``: browse, replay and purge dead letters (``<topic>.dlq``).

A dead letter is the original message, byte for byte and with its original key and
headers, plus the ``x-dlq-*`` headers :class:`shared.messaging.DeadLetters` adds
(error, error code, service, attempts, original topic/partition/offset, failed at).

Replay
    produces the original bytes and key to ``x-dlq-original-topic`` with the original
    headers minus ``x-dlq-*``, plus ``x-dlq-replayed-from: <dlq topic>@<offset>``, from
    an idempotent producer with ``acks=all``. Entries are chosen by offset
    (``3,5-7``), by error code, by a substring of the error, or all of them (criteria
    combine with AND).

    What was replayed is recorded as the committed offset of the consumer group
    ``opexbridge-dlq-replay`` on the DLQ partition: the offset is a watermark below
    which every entry was replayed, and the offset's metadata lists replayed entries
    above it as ranges (``"12-14,20"``). A second replay of the same selection skips
    those entries, and ``opexbridge top`` shows the group's lag as the dead letters not
    yet replayed. The ledger is committed after the broker acknowledged every replayed
    message; a crash in between can replay an entry again on the next run, which the
    consumer's inbox turns into a no-op (the message id is the same), so each replayed
    message is still processed exactly once.

Purge
    Kafka cannot delete single records: ``purge`` deletes every record of the DLQ below
    an offset (``AIOKafkaAdminClient.delete_records``), all of them by default, and
    only with a confirmation flag.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import typer
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from aiokafka.structs import OffsetAndMetadata
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from opexbridge._kafka import admin_client, dlq_of, partitions_of, raw_consumer, safe_producer
from shared.contracts import ContractError, decode
from shared.messaging import DLQ_HEADERS, KafkaSettings

REPLAY_GROUP = "opexbridge-dlq-replay"
REPLAYED_FROM = "x-dlq-replayed-from"
DLQ_HEADER_PREFIX = "x-dlq-"
_MAX_LEDGER_METADATA = 3500  # the broker's offset.metadata.max.bytes is 4096 by default

app = typer.Typer(help="Dead letters: list, show, replay, purge.", no_args_is_help=True)
console = Console()


@dataclass(frozen=True)
class DeadLetter:
    """One record of a ``.dlq`` topic."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def error(self) -> str:
        return self.header(DLQ_HEADERS.ERROR) or ""

    @property
    def error_code(self) -> str:
        return self.header(DLQ_HEADERS.ERROR_CODE) or ""

    @property
    def original_topic(self) -> str | None:
        return self.header(DLQ_HEADERS.TOPIC)

    @property
    def message_type(self) -> str | None:
        found = self.header("x-message-type")
        if found is None:
            try:
                found = decode(self.value).type
            except ContractError:
                return None
        return found

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (no ``x-dlq-*``) and where the replay came from."""
        kept = [(k, v) for k, v in self.headers if not k.startswith(DLQ_HEADER_PREFIX)]
        origin = (
            f"{self.topic}@{self.offset}"
            if self.partition == 0
            else (f"{self.topic}@{self.partition}:{self.offset}")
        )
        return [*kept, (REPLAYED_FROM, origin.encode())]

    def as_dict(self, *, payload: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "type": self.message_type,
            "error_code": self.error_code,
            "error": self.error,
            "service": self.header(DLQ_HEADERS.SERVICE),
            "attempts": self.header(DLQ_HEADERS.ATTEMPTS),
            "original_topic": self.original_topic,
            "original_partition": self.header(DLQ_HEADERS.PARTITION),
            "original_offset": self.header(DLQ_HEADERS.OFFSET),
            "failed_at": self.header(DLQ_HEADERS.FAILED_AT),
            "size": len(self.value),
        }
        if payload:
            found["headers"] = {k: v.decode("utf-8", "replace") for k, v in self.headers}
            text = self.value.decode("utf-8", "replace")
            try:
                found["payload"] = json.loads(text)
            except ValueError:
                found["payload"] = text
        return found


def parse_offsets(text: str) -> frozenset[int]:
    """``"3,5-7"`` → {3, 5, 6, 7}; ``ValueError`` on anything else."""
    found: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"not an offset or range: {part!r}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"empty range: {part!r}")
        found.update(range(first, last + 1))
    if not found:
        raise ValueError("no offsets given")
    return frozenset(found)


def format_ranges(offsets: Iterable[int]) -> str:
    """{3, 5, 6, 7} → ``"3,5-7"``."""
    ordered = sorted(set(offsets))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class Selector:
    """Which dead letters to replay: every given criterion must match; ``everything``
    alone selects all of them."""

    offsets: frozenset[int] | None = None
    error_code: str | None = None
    error_contains: str | None = None
    everything: bool = False

    def __post_init__(self) -> None:
        if not self.everything and not (self.offsets or self.error_code or self.error_contains):
            raise ValueError("choose dead letters by offset, error code, error text, or all")

    def matches(self, letter: DeadLetter) -> bool:
        if self.offsets is not None and letter.offset not in self.offsets:
            return False
        if self.error_code is not None and letter.error_code != self.error_code:
            return False
        return self.error_contains is None or self.error_contains.lower() in letter.error.lower()


@dataclass
class Ledger:
    """What was replayed from one DLQ partition: every offset below ``watermark``, and
    ``above`` it (kept as the group offset and its metadata)."""

    watermark: int = 0
    above: set[int] = field(default_factory=set)

    @classmethod
    def from_commit(cls, committed: OffsetAndMetadata | None) -> Ledger:
        if committed is None or committed.offset < 0:
            return cls()
        metadata = committed.metadata or ""
        return cls(committed.offset, set(parse_offsets(metadata)) if metadata else set())

    def replayed(self, offset: int) -> bool:
        return offset < self.watermark or offset in self.above

    def add(self, offsets: Iterable[int]) -> None:
        self.above.update(o for o in offsets if o >= self.watermark)
        while self.watermark in self.above:
            self.above.discard(self.watermark)
            self.watermark += 1

    def to_commit(self) -> OffsetAndMetadata:
        metadata = format_ranges(self.above)
        if len(metadata) > _MAX_LEDGER_METADATA:
            raise ValueError("too many scattered replays to record; replay a range instead")
        return OffsetAndMetadata(self.watermark, metadata)


@dataclass
class ReplayReport:
    dlq_topic: str
    dry_run: bool
    selected: list[DeadLetter] = field(default_factory=list)
    replayed: list[DeadLetter] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)
    unreplayable: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dlq_topic": self.dlq_topic,
            "dry_run": self.dry_run,
            "selected": [d.offset for d in self.selected],
            "replayed": [d.offset for d in self.replayed],
            "already_replayed": [d.offset for d in self.already_replayed],
            "unreplayable": [d.offset for d in self.unreplayable],
        }


@dataclass
class PurgeReport:
    dlq_topic: str
    before: dict[int, int]
    """Per partition: the log start offset before the purge."""
    after: dict[int, int]
    """Per partition: the log start offset after the purge (or that it would have)."""
    dry_run: bool

    @property
    def deleted(self) -> int:
        return sum(self.after[p] - self.before[p] for p in self.before)


async def dlq_entries(
    settings: KafkaSettings, topic: str, *, prefix: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """Every dead letter of ``topic`` (``orders.commands`` or ``orders.commands.dlq``),
    oldest first, up to the end the topic had when the read started."""
    name = dlq_of(topic, prefix)
    found: list[DeadLetter] = []
    tps = await partitions_of(settings, name)
    async with raw_consumer(settings) as consumer:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        found.append(
                            DeadLetter(
                                r.topic,
                                r.partition,
                                r.offset,
                                r.timestamp,
                                r.key,
                                r.value or b"",
                                tuple(r.headers),
                            )
                        )
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    found.sort(key=lambda d: (d.partition, d.offset))
    return found[:limit] if limit is not None else found


async def _ledgers(settings: KafkaSettings, name: str) -> dict[int, Ledger]:
    async with admin_client(settings) as admin:
        committed = await admin.list_consumer_group_offsets(REPLAY_GROUP)
    return {
        tp.partition: Ledger.from_commit(meta) for tp, meta in committed.items() if tp.topic == name
    }


async def _commit_ledgers(settings: KafkaSettings, name: str, ledgers: dict[int, Ledger]) -> None:
    tps = {TopicPartition(name, p): ledger.to_commit() for p, ledger in ledgers.items()}
    async with raw_consumer(settings, group_id=REPLAY_GROUP) as consumer:
        consumer.assign(list(tps))
        await consumer.commit(tps)


async def replay(
    settings: KafkaSettings,
    topic: str,
    selector: Selector,
    *,
    dry_run: bool = False,
    prefix: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Replay the chosen dead letters of ``topic`` to their original topics (see the
    module's doc), skipping those already replayed."""
    name = dlq_of(topic, prefix)
    report = ReplayReport(name, dry_run)
    letters = await dlq_entries(settings, name)
    ledgers = await _ledgers(settings, name)
    todo: list[DeadLetter] = []
    for letter in letters:
        if not selector.matches(letter):
            continue
        report.selected.append(letter)
        if ledgers.get(letter.partition, Ledger()).replayed(letter.offset):
            report.already_replayed.append(letter)
        elif not letter.original_topic:
            report.unreplayable.append(letter)
        else:
            todo.append(letter)
    if dry_run or not todo:
        report.replayed = todo if dry_run else []
        return report
    async with safe_producer(settings) as producer:
        for done, letter in enumerate(todo, start=1):
            assert letter.original_topic is not None
            await producer.send_and_wait(
                letter.original_topic,
                letter.value,
                key=letter.key,
                headers=letter.replay_headers(),
            )
            report.replayed.append(letter)
            if on_progress is not None:
                on_progress(done, len(todo))
    for letter in todo:
        ledgers.setdefault(letter.partition, Ledger()).add([letter.offset])
    await _commit_ledgers(settings, name, ledgers)
    return report


async def purge(
    settings: KafkaSettings,
    topic: str,
    *,
    before: int | None = None,
    dry_run: bool = False,
    prefix: str | None = None,
) -> PurgeReport:
    """Delete every record of the DLQ of ``topic`` below offset ``before`` (all of them
    when None) on every partition."""
    name = dlq_of(topic, prefix)
    tps = await partitions_of(settings, name)
    async with raw_consumer(settings) as consumer:
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
    targets = {
        tp: max(starts[tp], min(ends[tp], before if before is not None else ends[tp])) for tp in tps
    }
    if not dry_run:
        async with admin_client(settings) as admin:
            await admin.delete_records(
                {tp: RecordsToDelete(offset) for tp, offset in targets.items()}, timeout_ms=10_000
            )
    return PurgeReport(
        name,
        {tp.partition: starts[tp] for tp in tps},
        {tp.partition: targets[tp] for tp in tps},
        dry_run,
    )


# ---- the commands -----------------------------------------------------------------

PREFIX = typer.Option(None, "--prefix", help="Topic name prefix (default OPEXBRIDGE_TOPIC_PREFIX).")
TOPIC = typer.Argument(..., help="The topic (orders.commands) or its DLQ (orders.commands.dlq).")


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("list")
def list_command(
    topic: str = TOPIC,
    prefix: str | None = PREFIX,
    limit: int | None = typer.Option(None, help="At most this many, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Dead letters with their error headers, and whether each was replayed."""
    letters = asyncio.run(dlq_entries(_settings(), topic, prefix=prefix, limit=limit))
    ledgers = asyncio.run(_ledgers(_settings(), dlq_of(topic, prefix)))
    if as_json:
        for d in letters:
            replayed = ledgers.get(d.partition, Ledger()).replayed(d.offset)
            typer.echo(json.dumps({**d.as_dict(), "replayed": replayed}))
        return
    table = Table(
        "offset", "key", "type", "error code", "error", "service", "failed at", "replayed"
    )
    for d in letters:
        replayed = ledgers.get(d.partition, Ledger()).replayed(d.offset)
        table.add_row(
            str(d.offset) if d.partition == 0 else f"{d.partition}:{d.offset}",
            (d.key or b"").decode("utf-8", "replace"),
            d.message_type or "?",
            d.error_code,
            _short(d.error),
            d.header(DLQ_HEADERS.SERVICE) or "",
            d.header(DLQ_HEADERS.FAILED_AT) or "",
            "yes" if replayed else "",
        )
    console.print(table)
    console.print(f"{len(letters)} dead letters in {dlq_of(topic, prefix)}")


@app.command("show")
def show_command(
    topic: str = TOPIC,
    offset: int = typer.Argument(..., help="The dead letter's offset in the DLQ."),
    prefix: str | None = PREFIX,
) -> None:
    """One dead letter: every header and the payload, as JSON."""
    letters = asyncio.run(dlq_entries(_settings(), topic, prefix=prefix))
    match = [d for d in letters if d.offset == offset]
    if not match:
        console.print(f"[red]no dead letter at offset {offset} in {dlq_of(topic, prefix)}[/]")
        raise typer.Exit(1)
    typer.echo(json.dumps(match[0].as_dict(payload=True), indent=2, default=str))


@app.command("replay")
def replay_command(
    topic: str = TOPIC,
    offset: str | None = typer.Option(None, "--offset", help="Offsets and ranges: 3,5-7."),
    error_code: str | None = typer.Option(None, "--error-code", help="x-dlq-error-code equals."),
    error: str | None = typer.Option(None, "--error", help="x-dlq-error contains (any case)."),
    everything: bool = typer.Option(False, "--all", help="Every dead letter not yet replayed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be replayed."),
    prefix: str | None = PREFIX,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay dead letters to their original topic, once each, after the cause is fixed."""
    try:
        selector = Selector(
            parse_offsets(offset) if offset else None, error_code, error, everything
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("replaying", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = asyncio.run(
            replay(
                _settings(), topic, selector, dry_run=dry_run, prefix=prefix, on_progress=advance
            )
        )
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    verb = "would replay" if dry_run else "replayed"
    for d in report.replayed:
        console.print(f"{verb} {d.offset} → {d.original_topic} ({d.error_code})")
    for d in report.unreplayable:
        console.print(f"[yellow]no original topic header, skipped {d.offset}[/]")
    console.print(
        f"{len(report.selected)} selected, {len(report.replayed)} {verb}, "
        f"{len(report.already_replayed)} already replayed, {len(report.unreplayable)} unreplayable"
    )


@app.command("purge")
def purge_command(
    topic: str = TOPIC,
    before: int | None = typer.Option(None, "--before", help="Delete offsets below this."),
    yes: bool = typer.Option(False, "--yes", help="Really delete (Kafka cannot undo it)."),
    prefix: str | None = PREFIX,
) -> None:
    """Delete dead letters below an offset (all by default). Needs --yes."""
    report = asyncio.run(purge(_settings(), topic, before=before, dry_run=not yes, prefix=prefix))
    if not yes:
        console.print(
            f"would delete {report.deleted} dead letters from {report.dlq_topic}; "
            "run again with --yes"
        )
        raise typer.Exit(1)
    console.print(f"deleted {report.deleted} dead letters from {report.dlq_topic}")


def _settings() -> KafkaSettings:
    return KafkaSettings()
