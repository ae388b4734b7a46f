"""``opexbridge publish``: put one valid command on Kafka, the way an upstream app would.

``publish place|cancel|close`` build PlaceOrder / CancelOrder / ClosePosition from flags;
``publish --file cmd.json`` reads either a body (the command's ``data`` fields plus
``type`` and ``user_id``, optionally ``version``; a PlaceOrder body gives its order type
as ``order_type``, since ``type`` names the message) or a full envelope (with ``data``).
Whatever the source, the message is validated by :mod:`shared.contracts` (a refusal
names the field and exits with code 2), keyed by its user, sent with ``acks=all`` from
an idempotent producer with the outbox's headers, and its id is printed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from opexbridge._kafka import full_topic, safe_producer
from shared.contracts import (
    ContractError,
    Envelope,
    InvalidMessage,
    decode,
    encode,
    format_timestamp,
    partition_key,
)
from shared.messaging import KafkaSettings
from shared.messaging._outbox import message_headers

app = typer.Typer(help="Publish one command (from flags or a JSON file).")
console = Console(stderr=True)


@dataclass(frozen=True)
class Published:
    id: str
    type: str
    topic: str
    partition: int
    offset: int
    key: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
        }


def envelope_from(document: dict[str, Any]) -> Envelope[Any]:
    """A validated envelope from a body (``type``, ``user_id`` and the data's fields) or
    a full envelope (one with ``data``): missing ``id``, ``version``, ``occurred_at``
    and ``correlation_id`` are filled in. `ContractError` when it is not valid."""
    if "data" in document:
        doc = dict(document)
    else:
        body = dict(document)
        doc = {
            "type": body.pop("type", None),
            "version": body.pop("version", 1),
            "user_id": body.pop("user_id", None),
        }
        if "order_type" in body:  # a PlaceOrder body: ``type`` names the message
            body["type"] = body.pop("order_type")
        doc["data"] = body
    doc.setdefault("version", 1)
    message_id = doc.setdefault("id", str(uuid.uuid4()))
    doc.setdefault("correlation_id", message_id)
    doc.setdefault("occurred_at", format_timestamp(datetime.now(UTC)))
    if doc.get("user_id") is not None and not isinstance(doc["user_id"], str):
        doc["user_id"] = str(doc["user_id"])
    return decode(json.dumps(doc, default=str))


def command(type_: str, user_id: str, **fields: Any) -> Envelope[Any]:
    """A command envelope from flags (fields that are None are left out)."""
    data = {k: v for k, v in fields.items() if v is not None}
    return envelope_from({"type": type_, "user_id": user_id, "data": data})


def load_file(path: Path) -> Envelope[Any]:
    """The message in a JSON file (see `envelope_from`)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"cannot read {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ContractError(f"{path} does not hold a JSON object")
    return envelope_from(document)


async def publish(
    settings: KafkaSettings, envelope: Envelope[Any], *, prefix: str | None = None
) -> Published:
    """Send ``envelope`` to its topic, keyed by its user (or symbol)."""
    topic = full_topic(envelope.topic.value, prefix)
    key = partition_key(envelope)
    headers = [(k, v.encode()) for k, v in message_headers(envelope).items()]
    async with safe_producer(settings) as producer:
        meta = await producer.send_and_wait(topic, encode(envelope), key=key, headers=headers)
    return Published(
        str(envelope.id), envelope.type, topic, meta.partition, meta.offset, key.decode()
    )


def describe_error(error: ContractError) -> list[str]:
    """One line per refused field (``data.quantity: ...``), or the error itself."""
    if isinstance(error, InvalidMessage) and error.errors:
        return [f"{e.path}: {e.message} ({e.code})" for e in error.errors]
    return [str(error)]


def _refuse(error: ContractError) -> NoReturn:
    for line in describe_error(error):
        console.print(f"[red]invalid:[/] {line}", highlight=False)
    raise typer.Exit(2)


def _send(build: Any, prefix: str | None, as_json: bool) -> None:
    try:
        envelope = build()
    except ContractError as exc:
        _refuse(exc)
    published = asyncio.run(publish(KafkaSettings(), envelope, prefix=prefix))
    if as_json:
        typer.echo(json.dumps(published.as_dict()))
    else:
        typer.echo(published.id)
        console.print(
            f"published {published.type} to {published.topic} "
            f"(partition {published.partition}, offset {published.offset}, key {published.key})",
            highlight=False,
        )


PREFIX = typer.Option(None, "--prefix", help="Topic name prefix (default OPEXBRIDGE_TOPIC_PREFIX).")
JSON = typer.Option(False, "--json", help="Print where it went as JSON.")
USER = typer.Option(..., "--user", help="The user id (the Kafka key).")
SYMBOL = typer.Option(..., "--symbol", help="BTCUSDT or BTC_USDT.")


@app.callback(invoke_without_command=True)
def publish_file(
    ctx: typer.Context,
    file: Path | None = typer.Option(
        None, "--file", "-f", help="A JSON body (type, user_id, data fields) or envelope."
    ),
    prefix: str | None = PREFIX,
    as_json: bool = JSON,
) -> None:
    """Publish a command from a JSON file, or (subcommands) from flags."""
    if ctx.invoked_subcommand is not None:
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    _send(lambda: load_file(file), prefix, as_json)


@app.command("place")
def place(
    user: str = USER,
    symbol: str = SYMBOL,
    side: str = typer.Option(..., "--side", help="buy or sell."),
    type_: str = typer.Option(..., "--type", help="market, limit, stop, stop_limit."),
    quantity: str = typer.Option(..., "--quantity"),
    price: str | None = typer.Option(None, "--price"),
    stop_price: str | None = typer.Option(None, "--stop-price"),
    time_in_force: str | None = typer.Option(None, "--time-in-force", help="GTC, IOC, FOK."),
    leverage: str | None = typer.Option(None, "--leverage"),
    reduce_only: bool = typer.Option(False, "--reduce-only"),
    client_order_id: str | None = typer.Option(
        None, "--client-order-id", help="Default: a new random one."
    ),
    prefix: str | None = PREFIX,
    as_json: bool = JSON,
) -> None:
    """PlaceOrder."""
    _send(
        lambda: command(
            "PlaceOrder",
            user,
            client_order_id=client_order_id or f"cli-{uuid.uuid4().hex[:16]}",
            symbol=symbol,
            side=side,
            type=type_,
            quantity=quantity,
            price=price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            leverage=leverage,
            reduce_only=reduce_only,
        ),
        prefix,
        as_json,
    )


@app.command("cancel")
def cancel(
    user: str = USER,
    symbol: str = SYMBOL,
    client_order_id: str | None = typer.Option(None, "--client-order-id"),
    order_id: str | None = typer.Option(None, "--order-id", help="OPEX's order id."),
    prefix: str | None = PREFIX,
    as_json: bool = JSON,
) -> None:
    """CancelOrder (by client order id or OPEX order id)."""
    _send(
        lambda: command(
            "CancelOrder", user, symbol=symbol, client_order_id=client_order_id, order_id=order_id
        ),
        prefix,
        as_json,
    )


@app.command("close")
def close(
    user: str = USER,
    symbol: str = SYMBOL,
    quantity: str | None = typer.Option(None, "--quantity", help="Default: all of it."),
    client_order_id: str | None = typer.Option(None, "--client-order-id"),
    prefix: str | None = PREFIX,
    as_json: bool = JSON,
) -> None:
    """ClosePosition."""
    _send(
        lambda: command(
            "ClosePosition",
            user,
            symbol=symbol,
            quantity=quantity,
            client_order_id=client_order_id,
        ),
        prefix,
        as_json,
    )
