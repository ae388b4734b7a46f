from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from websockets.frames import Frame, Opcode

from services.notifier.adapters.server import (
    CorkedTransport,
    NotifierHttpProtocol,
    NotifierWebSocketProtocol,
    TokenFilter,
    install_token_filter,
    text_frame,
    uvicorn_config,
)
from services.notifier.config import NotifierSettings


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_token_filter_when_token_in_message_or_args_then_redacted() -> None:
    line = record(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:5", "/ws?token=eyJabc.def.ghi&channels=orders"
    )
    assert TokenFilter().filter(line)
    assert (
        line.getMessage()
        == '127.0.0.1:5 - "WebSocket /ws?token=[redacted]&channels=orders" [accepted]'
    )
    direct = record("GET /ws?TOKEN=secret HTTP/1.1")
    TokenFilter().filter(direct)
    assert "secret" not in direct.getMessage()


def test_install_token_filter_when_called_twice_then_one_filter() -> None:
    install_token_filter()
    install_token_filter()
    filters = logging.getLogger("uvicorn.error").filters
    assert sum(isinstance(f, TokenFilter) for f in filters) == 1


def test_uvicorn_config_when_built_then_lean_websockets_and_own_protocol() -> None:
    config = uvicorn_config(object(), NotifierSettings(port=8123, max_frame_bytes=4096))
    assert isinstance(config.ws, type)
    assert issubclass(config.ws, NotifierWebSocketProtocol)
    assert config.ws.send_buffer == 0
    assert config.ws_per_message_deflate is False
    assert config.ws_max_size == 64 * 1024
    assert (config.host, config.port) == ("127.0.0.1", 8123)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70_001])
def test_text_frame_when_any_length_then_what_websockets_writes(length: int) -> None:
    text = "é" * (length // 2) + "a" * (length % 2)
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert text_frame(text) == expected


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_corked_transport_when_writes_in_one_turn_then_one_write_in_order() -> None:
    raw = Transport()
    corked = CorkedTransport(cast(Any, raw), asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    corked.write(b"{}")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 202 Accepted\r\n\r\n{}"]
    corked.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]
    assert corked.get_extra_info("peername") == "info:peername"


async def test_corked_transport_when_closed_then_pending_written_first_and_later_dropped() -> None:
    raw = Transport()
    corked = CorkedTransport(cast(Any, raw), asyncio.get_running_loop())
    corked.write(b"last")
    corked.close()
    assert raw.writes == [b"last"]
    assert corked.is_closing()
    corked.write(b"too late")
    await asyncio.sleep(0)
    assert raw.writes == [b"last"]


def test_uvicorn_config_when_built_then_corked_http_protocol() -> None:
    config = uvicorn_config(object(), NotifierSettings())
    assert config.http is NotifierHttpProtocol
