"""Helpers of user_sync's integration tests: the sandbox served by uvicorn in a thread (its
in-process state readable, every secret it hands out recorded), UserRegistered
messages, and reads of what the service published."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.opex_sandbox.app import create_app as create_sandbox
from services.opex_sandbox.config import SandboxConfig
from services.user_sync.config import UserSyncSettings
from shared.contracts import Envelope, UserRegistered, decode, encode, new_message
from shared.messaging import KafkaSettings
from shared.opex import OpexSettings
from tests.support.asgi import serve_in_thread
from tests.support.kafka import produce

ADMIN_KEY = "us-it-admin-key"
ADMIN_SECRET = "us-it-admin-secret"


@dataclass
class SecretsSeen:
    """Every secret the sandbox handed out (OTPs, register tokens, access and refresh
    tokens, API-key secrets) while it runs: none may ever show up in a log line, a
    message or an error."""

    values: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *values: object) -> None:
        with self.lock:
            for value in values:
                if isinstance(value, str) and len(value) >= 6:
                    self.values.add(value)

    def snapshot(self) -> set[str]:
        with self.lock:
            return set(self.values)


@dataclass
class Sandbox:
    url: str
    state: Any  # services.opex_sandbox.sandbox.Sandbox
    seen: SecretsSeen

    def opex_settings(self, **changes: Any) -> OpexSettings:
        values: dict[str, Any] = {
            "api_url": self.url,
            "api_key": ADMIN_KEY,
            "api_secret": ADMIN_SECRET,
            "timeout": 5,
            **changes,
        }
        return OpexSettings(**values)

    # -- what OPEX holds ----------------------------------------------------------------

    def users_named(self, email: str) -> list[Any]:
        users = self.state.users
        return [u for u in users.by_uuid.values() if u.username.lower() == email.lower()]

    def keys_of(self, user_uuid: str) -> list[Any]:
        return [k for k in self.state.users.api_keys.values() if k.user == user_uuid]

    def faults(self, **settings: Any) -> None:
        self.state.faults.update(settings)

    def clear_faults(self) -> None:
        self.state.faults.clear()


def _record_secrets(state: Any, seen: SecretsSeen) -> None:
    users, tokens = state.users, state.tokens
    register, verify, create_key, issue = (
        users.register,
        users.verify,
        users.create_api_key,
        tokens.issue,
    )

    def recorded_register(*args: Any, **kwargs: Any) -> Any:
        otp = register(*args, **kwargs)
        seen.add(otp)
        return otp

    def recorded_verify(*args: Any, **kwargs: Any) -> Any:
        token = verify(*args, **kwargs)
        seen.add(token)
        return token

    def recorded_create_key(*args: Any, **kwargs: Any) -> Any:
        record = create_key(*args, **kwargs)
        seen.add(record.secret)
        return record

    def recorded_issue(*args: Any, **kwargs: Any) -> Any:
        answer = issue(*args, **kwargs)
        seen.add(answer.get("access_token"), answer.get("refresh_token"))
        return answer

    users.register = recorded_register
    users.verify = recorded_verify
    users.create_api_key = recorded_create_key
    tokens.issue = recorded_issue


@contextmanager
def serve_sandbox() -> Iterator[Sandbox]:
    """The sandbox on 127.0.0.1 (a free port): rate limits and market maker off."""
    config = SandboxConfig(
        host="127.0.0.1",
        port=0,
        market_maker=False,
        rate_limit_enabled=False,
        admin_api_key=ADMIN_KEY,
        admin_api_secret=ADMIN_SECRET,
    )
    app = create_sandbox(config)
    state = app.state.sandbox
    seen = SecretsSeen()
    _record_secrets(state, seen)
    with serve_in_thread(app) as url:
        yield Sandbox(url=url, state=state, seen=seen)


# ------------------------------------------------------------------------------- messages


def new_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def registered(user_id: str, email: str, **names: str) -> Envelope[UserRegistered]:
    return new_message(UserRegistered(email=email, **names), user_id=user_id)


async def publish(
    kafka: KafkaSettings, prefix: str, messages: Iterable[tuple[str, bytes | Envelope[Any]]]
) -> None:
    """``(key, message)`` pairs to ``<prefix>users.events`` (envelopes are encoded)."""
    await produce(
        kafka,
        prefix + "users.events",
        [
            (key.encode(), value if isinstance(value, bytes) else encode(value))
            for key, value in messages
        ],
    )


async def collect(
    kafka: KafkaSettings,
    topic: str,
    keep: Callable[[ConsumerRecord[Any, Any]], bool],
    *,
    expect: int,
    timeout: float = 20.0,
    idle: float = 0.5,
) -> list[ConsumerRecord[Any, Any]]:
    """The committed records of ``topic`` (from the start) that ``keep`` accepts: once
    ``expect`` of them arrived and ``idle`` seconds passed without more, or at
    ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.aiokafka_kwargs(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        group_id=None,
    )
    await consumer.start()
    kept: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + timeout
    reached: float | None = None
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for part in batch.values():
                kept.extend(r for r in part if keep(r))
            if len(kept) >= expect:
                reached = reached or time.monotonic()
                if time.monotonic() - reached >= idle:
                    break
    finally:
        await consumer.stop()
    return kept


async def outcomes(
    kafka: KafkaSettings,
    prefix: str,
    user_ids: Iterable[str],
    *,
    expect: int,
    timeout: float = 20.0,
    idle: float = 0.5,
) -> list[Envelope[Any]]:
    """The UserProvisioned / UserProvisioningFailed published for ``user_ids``."""
    wanted = {u.encode() for u in user_ids}

    def keep(record: ConsumerRecord[Any, Any]) -> bool:
        types = dict(record.headers or ())
        return record.key in wanted and types.get("x-message-type") in (
            b"UserProvisioned",
            b"UserProvisioningFailed",
        )

    records = await collect(
        kafka, prefix + "users.events", keep, expect=expect, timeout=timeout, idle=idle
    )
    return [decode(r.value, topic="users.events") for r in records]


async def dead_letters(
    kafka: KafkaSettings,
    prefix: str,
    keys: Iterable[bytes | None],
    *,
    expect: int,
    timeout: float = 20.0,
    idle: float = 0.5,
) -> list[ConsumerRecord[Any, Any]]:
    wanted = set(keys)
    return await collect(
        kafka,
        prefix + "users.events.dlq",
        lambda r: r.key in wanted,
        expect=expect,
        timeout=timeout,
        idle=idle,
    )


async def everything_published(kafka: KafkaSettings, prefix: str) -> str:
    """Every record of ``<prefix>users.events`` and its DLQ (values and headers) as
    text, to look for secrets in."""
    texts: list[str] = []
    for topic in ("users.events", "users.events.dlq"):
        records = await collect(
            kafka, prefix + topic, lambda r: True, expect=10**9, timeout=2.0, idle=0
        )
        for record in records:
            texts.append(bytes(record.value or b"").decode("utf-8", "replace"))
            texts.extend(f"{k}={v.decode('utf-8', 'replace')}" for k, v in record.headers)
    return "\n".join(texts)


def settings_for(schema: str, prefix: str, **changes: Any) -> UserSyncSettings:
    values: dict[str, Any] = {
        "schema_name": schema,
        "topic_prefix": prefix,
        "instance_id": schema,
        "group_id": f"user_sync-{schema}",
        "concurrency": 16,
        "max_attempts": 50,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.3,
        "poll_interval_s": 0.05,
        "reconcile_interval_s": 3600,
        "lease_s": 30,
        **changes,
    }
    return UserSyncSettings(**values)


def matches(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets found in ``text`` (their first characters only, for the message)."""
    return [s[:4] + "…" for s in secrets if s and s in text]
