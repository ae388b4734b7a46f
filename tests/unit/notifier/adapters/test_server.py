from __future__ import annotations

import logging

import pytest
from websockets.frames import Frame, Opcode

from services.notifier.adapters.server import (
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
