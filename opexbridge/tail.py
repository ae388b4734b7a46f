"""``opexbridge tail TOPIC``: a topic's messages, decoded and filtered.

Starts at the end of the topic (or ``--from-beginning``), decodes every record with
:func:`shared.contracts.decode` (a record that does not decode is shown raw, with the
error), keeps those of ``--user`` (the key or the envelope's ``user_id``) and
``--type``, and stops after ``--limit`` matches, or, with ``--no-follow``, at the end the
topic had when the tail started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import typer
from aiokafka import ConsumerRecord
from rich.console import Console
from rich.markup import escape

from opexbridge._kafka import full_topic, partitions_of, raw_consumer
from shared.contracts import ContractError, Envelope, decode
from shared.messaging import KafkaSettings

console = Console()


@dataclass(frozen=True)
class TailRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: str | None
    headers: dict[str, str]
    envelope: Envelope[Any] | None
    raw: bytes
    error: str | None = None

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> TailRecord:
        raw = record.value or b""
        envelope: Envelope[Any] | None = None
        error: str | None = None
        try:
            envelope = decode(raw)
        except ContractError as exc:
            error = str(exc)
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key.decode("utf-8", "replace") if record.key is not None else None,
            {k: v.decode("utf-8", "replace") for k, v in record.headers},
            envelope,
            raw,
            error,
        )

    @property
    def type(self) -> str | None:
        if self.envelope is not None:
            return self.envelope.type
        return self.headers.get("x-message-type")

    @property
    def user_id(self) -> str | None:
        if self.envelope is not None and self.envelope.user_id is not None:
            return self.envelope.user_id
        return self.headers.get("x-user-id")

    def matches(self, *, user: str | None = None, type_: str | None = None) -> bool:
        if user is not None and user not in (self.key, self.user_id):
            return False
        return type_ is None or (self.type or "").lower() == type_.lower()

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
        }
        if self.envelope is not None:
            found.update(self.envelope.model_dump(mode="json"))
        else:
            found["type"] = self.type
            found["error"] = self.error
            found["raw"] = self.raw.decode("utf-8", "replace")[:2000]
        return found


async def tail(
    settings: KafkaSettings,
    topic: str,
    *,
    prefix: str | None = None,
    from_beginning: bool = False,
    follow: bool = True,
    limit: int | None = None,
    user: str | None = None,
    type_: str | None = None,
) -> AsyncIterator[TailRecord]:
    """The matching records of ``topic``, in arrival order per partition."""
    name = full_topic(topic, prefix)
    if limit is not None and limit <= 0:
        return
    tps = await partitions_of(settings, name)
    async with raw_consumer(settings, isolation_level="read_committed") as consumer:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, ends[tp])
        pending = set(tps)
        seen = 0
        while True:
            if not follow:
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if not pending:
                    return
            batch = await consumer.getmany(timeout_ms=300)
            for tp, records in batch.items():
                for record in records:
                    if not follow and record.offset >= ends[tp]:
                        continue
                    found = TailRecord.from_record(record)
                    if found.matches(user=user, type_=type_):
                        yield found
                        seen += 1
                        if limit is not None and seen >= limit:
                            return


async def collect(settings: KafkaSettings, topic: str, **options: Any) -> list[TailRecord]:
    """Every record ``tail`` yields (give ``follow=False`` or a ``limit``)."""
    return [record async for record in tail(settings, topic, **options)]


def format_line(record: TailRecord) -> str:
    """One compact JSON line."""
    return json.dumps(record.as_dict(), separators=(",", ":"), default=str)


def format_pretty(record: TailRecord) -> str:
    """One human line: where, who, what."""
    where = f"[dim]{record.partition}:{record.offset}[/]"
    if record.envelope is None:
        return f"{where} [red]{escape(record.error or '')}[/] {escape(repr(record.raw[:200]))}"
    data = json.dumps(record.envelope.data.model_dump(mode="json"), separators=(",", ":"))
    return f"{where} user={record.user_id} [bold]{record.type}[/] {escape(data)}"


def tail_command(
    topic: str = typer.Argument(..., help="The topic, e.g. orders.events."),
    user: str | None = typer.Option(None, "--user", help="Only this user (key or user_id)."),
    type_: str | None = typer.Option(None, "--type", help="Only this message type."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Not just new ones."),
    limit: int | None = typer.Option(None, "--limit", help="Stop after N matching messages."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Wait for new messages."),
    pretty: bool = typer.Option(False, "--pretty", help="Human lines instead of JSON lines."),
    prefix: str | None = typer.Option(None, "--prefix", help="Topic name prefix."),
) -> None:
    """Decoded, filtered messages of a topic, as compact JSON lines (one per message)."""

    async def run() -> None:
        async for record in tail(
            KafkaSettings(),
            topic,
            prefix=prefix,
            from_beginning=from_beginning,
            follow=follow,
            limit=limit,
            user=user,
            type_=type_,
        ):
            if pretty:
                console.print(format_pretty(record), highlight=False)
            else:
                typer.echo(format_line(record))

    try:
        asyncio.run(run())
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            console.print("[dim]stopped[/]")
