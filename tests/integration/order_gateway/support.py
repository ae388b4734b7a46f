"""Helpers of the order gateway's integration tests: the sandbox served in a thread,
users provisioned on it with API keys stored the way user_sync stores them, approved
commands, and reads of what the gateway published."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from services.opex_sandbox.app import create_app as create_sandbox
from services.opex_sandbox.config import SandboxConfig
from shared.contracts import (
    CancelApproved,
    CancelOrder,
    Envelope,
    OrderApproved,
    PlaceOrder,
    Reservation,
    decode,
    encode,
    new_message,
)
from shared.credentials import SecretBox, opex_credentials_table
from shared.messaging import KafkaSettings
from shared.opex import OpexClient, OpexSettings
from tests.support.asgi import serve_in_thread
from tests.support.kafka import produce

ADMIN_KEY = "gw-it-admin-key"
ADMIN_SECRET = "gw-it-admin-secret"
LISTING_DELAY_MS = 20
CANCEL_DELAY_MS = 20


@dataclass
class Sandbox:
    url: str
    state: Any  # services.opex_sandbox.sandbox.Sandbox

    def opex_settings(self, **changes: Any) -> OpexSettings:
        values: dict[str, Any] = {
            "api_url": self.url,
            "api_key": ADMIN_KEY,
            "api_secret": ADMIN_SECRET,
            "timeout": 5,
            **changes,
        }
        return OpexSettings(**values)

    def orders_of(self, opex_user_id: str) -> list[Any]:
        """Every order OPEX holds for the user (all pairs)."""
        engine = self.state.engine
        return [
            order
            for symbol in self.state.pairs.symbols()
            for order in engine.all_orders(opex_user_id, symbol, None, None, 1 << 30)
        ]

    def faults(self, **settings: Any) -> None:
        self.state.faults.update(settings)

    def clear_faults(self) -> None:
        self.state.faults.clear()


@contextmanager
def serve_sandbox(**changes: Any) -> Iterator[Sandbox]:
    """The sandbox on 127.0.0.1 (a free port): rate limits off, short listing and cancel
    delays, the market maker on (BTC_USDT around 30,000)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "market_maker": True,
        "market_maker_interval_ms": 200,
        "listing_delay_ms": LISTING_DELAY_MS,
        "cancel_delay_ms": CANCEL_DELAY_MS,
        "rate_limit_enabled": False,
        "admin_api_key": ADMIN_KEY,
        "admin_api_secret": ADMIN_SECRET,
        "take_no_answer_delay_s": 2.0,
        **changes,
    }
    app = create_sandbox(SandboxConfig(**values))
    with serve_in_thread(app) as url:
        yield Sandbox(url=url, state=app.state.sandbox)


@dataclass(frozen=True)
class User:
    user_id: str
    opex_user_id: str


async def provision(
    opex: OpexClient,
    *,
    database_url: str,
    schema: str,
    box: SecretBox,
    user_id: str | None = None,
    usdt: Decimal = Decimal(1_000_000),
    btc: Decimal = Decimal(100),
) -> User:
    """A funded OPEX account with an API key, stored (encrypted) in ``schema``'s
    ``opex_credentials`` as user_sync stores it."""
    user_id = user_id or f"u{uuid.uuid4().hex[:10]}"
    email = f"{user_id}@example.com"
    password = SecretStr(f"Pw-{uuid.uuid4().hex}")
    registration = await opex.register(email)
    assert registration.otp is not None
    action = await opex.verify(email, registration.otp)
    await opex.confirm(action, password)
    token = await opex.login(email, password)
    key = await opex.create_api_key(token.bearer(), "gateway")
    subject = token.subject
    assert subject is not None
    admin = opex.admin
    assert admin is not None
    await opex.deposit(admin, usdt, "USDT", subject)
    await opex.deposit(admin, btc, "BTC", subject)
    table = opex_credentials_table(schema)
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert().values(
                    user_id=user_id,
                    opex_user_id=uuid.UUID(subject),
                    api_key=key.api_key_id,
                    secret_enc=box.encrypt(key.secret),
                    password_enc=box.encrypt(password),
                    key_version="test",
                )
            )
    finally:
        engine.dispose()
    return User(user_id, subject)


def create_credentials_schema(database_url: str, schema: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            opex_credentials_table(schema).create(conn)
    finally:
        engine.dispose()


def drop_schema(database_url: str, schema: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ messages


def approved(
    user: User,
    *,
    side: str = "buy",
    type: str = "limit",
    quantity: str = "0.01",
    price: str | None = "29000",
    stop_price: str | None = None,
    symbol: str = "BTC_USDT",
    time_in_force: str = "GTC",
    client_order_id: str | None = None,
) -> Envelope[OrderApproved]:
    fields: dict[str, Any] = {
        "client_order_id": client_order_id or f"c-{uuid.uuid4().hex[:16]}",
        "symbol": symbol,
        "side": side,
        "type": type,
        "quantity": quantity,
        "time_in_force": "IOC" if type == "market" else time_in_force,
    }
    if price is not None and type in ("limit", "stop_limit"):
        fields["price"] = price
    if stop_price is not None:
        fields["stop_price"] = stop_price
    command = PlaceOrder.model_validate(fields)
    reservation = Reservation(asset="USDT" if side == "buy" else "BTC", amount=Decimal(1))
    return new_message(
        OrderApproved(command=command, reservation=reservation), user_id=user.user_id
    )


def cancel_approved(
    user: User, *, client_order_id: str | None = None, order_id: str | None = None
) -> Envelope[CancelApproved]:
    command = CancelOrder(symbol="BTC_USDT", client_order_id=client_order_id, order_id=order_id)
    return new_message(CancelApproved(command=command), user_id=user.user_id)


async def send(kafka: KafkaSettings, prefix: str, envelopes: Sequence[Envelope[Any]]) -> None:
    await produce(
        kafka,
        prefix + "orders.approved",
        [((e.user_id or "").encode(), encode(e)) for e in envelopes],
    )


def decoded(records: Sequence[ConsumerRecord[Any, Any]]) -> list[Envelope[Any]]:
    out = []
    for record in records:
        topic = record.topic.split(".", 1)[1] if "." in record.topic else record.topic
        out.append(decode(record.value, topic=topic))
    return out


def events_of(envelopes: Sequence[Envelope[Any]], client_order_id: str) -> list[str]:
    """The event types of one order, in order."""
    return [
        e.type for e in envelopes if getattr(e.data, "client_order_id", None) == client_order_id
    ]
