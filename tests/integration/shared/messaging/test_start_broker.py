"""start_broker: a service started while Kafka is unreachable waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import warnings

import pytest

from shared.messaging import KafkaSettings, create_broker, start_broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _forward(port: int, target: tuple[str, int]) -> asyncio.Server:
    """A TCP forwarder on ``port`` to ``target`` (Kafka comes back there)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_start_broker_when_kafka_comes_up_late_then_started(
    kafka_settings: KafkaSettings,
) -> None:
    host, _, port = kafka_settings.bootstrap_servers.split(",")[0].rpartition(":")
    late = _free_port()
    broker = create_broker(KafkaSettings(bootstrap_servers=f"127.0.0.1:{late}"), service="t")
    starting = asyncio.create_task(start_broker(broker, timeout_s=60, first_delay_s=0.2))
    await asyncio.sleep(1.0)
    assert not starting.done()  # still waiting, not exited
    server = await _forward(late, (host, int(port)))
    try:
        await asyncio.wait_for(starting, 30)
        assert await broker.ping(5.0)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await broker.stop()
        server.close()
        await server.wait_closed()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_start_broker_when_kafka_never_comes_then_raises_after_timeout() -> None:
    from aiokafka.errors import KafkaConnectionError

    broker = create_broker(
        KafkaSettings(bootstrap_servers=f"127.0.0.1:{_free_port()}"), service="t"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(KafkaConnectionError):
        await start_broker(broker, timeout_s=1.5, first_delay_s=0.2)
    assert loop.time() - started >= 1.0  # it retried before giving up
