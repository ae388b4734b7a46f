"""A notifier restart that clients recover from: ``python -m services.notifier`` as a
child process, stopped gracefully (clients get 1012) and killed outright (SIGKILL, no
goodbye), with events published while it is down. Each time the client reconnects
with its last seq and gets exactly what it missed."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest

from shared.messaging import KafkaSettings
from tests.integration.notifier.helpers import (
    AUDIENCE,
    ISSUER,
    SECRET,
    Client,
    NotifierProcess,
    Producer,
    free_port,
    hs_token,
    order_accepted,
    unique,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def process(
    kafka_settings: KafkaSettings, database_url: str, topic_prefix: str, schema: str
) -> AsyncIterator[NotifierProcess]:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "DATABASE_URL": database_url,
        "NOTIFIER_HOST": "127.0.0.1",
        "NOTIFIER_PORT": str(port),
        "NOTIFIER_SCHEMA": schema,
        "NOTIFIER_GROUP_ID": f"notifier-restart-{schema}",
        "OPEXBRIDGE_TOPIC_PREFIX": topic_prefix,
        "JWT_SECRET": SECRET,
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ISSUER": ISSUER,
        "NOTIFIER_BATCH_TIMEOUT_MS": "5",
        "NOTIFIER_MIGRATE": "false",  # the fixture migrated the schema
    }
    child = NotifierProcess(env, port)
    try:
        yield child
    finally:
        child.kill()


async def test_restart_when_stopped_or_killed_then_clients_resume_without_loss_or_doubles(
    process: NotifierProcess, producer: Producer
) -> None:
    user = unique("restart")
    token = hs_token(user)
    sent: list[str] = []

    async def publish(*names: str) -> None:
        sent.extend(names)
        await producer.send(*(order_accepted(user, name) for name in names))

    await process.start()
    client = await Client.open(process.ws_url(token=token, channels="orders"))
    epoch = (await client.expect("subscribed"))["data"]["epoch"]
    await publish("a1", "a2", "a3")
    received = list(await client.user_frames(3))

    # 1. a graceful stop: the client is told the service restarts
    assert process.proc is not None
    os.killpg(process.proc.pid, signal.SIGTERM)
    assert await client.closed_with(timeout=20) == 1012
    process.proc.wait(20)
    await publish("b1", "b2")  # while it is down
    await process.start()
    client = await Client.open(
        process.ws_url(token=token, channels="orders", since=received[-1]["seq"], epoch=epoch)
    )
    assert (await client.expect("subscribed"))["data"]["resume"] == "recovered"
    received += await client.user_frames(2)
    await publish("c1")
    received += (await client.user_frames(3))[2:]

    # 2. a crash: SIGKILL, no close frame, events published before and after
    await publish("d1", "d2")
    process.kill()
    assert await client.closed_with(timeout=10) in (1006, None)
    await publish("e1", "e2")
    await process.start()
    client = await Client.open(
        process.ws_url(token=token, channels="orders", since=received[-1]["seq"], epoch=epoch)
    )
    try:
        subscribed = await client.expect("subscribed")
        missed = len(sent) - len(received)
        received += await client.user_frames(missed)
    finally:
        await client.close()
    assert subscribed["data"]["resume"] == "recovered"
    assert subscribed["data"]["epoch"] == epoch
    assert [f["seq"] for f in received] == list(range(1, len(sent) + 1))
    assert [f["data"]["id"] for f in received] == sent
