from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.protocol import (
    ACCOUNT,
    ORDERS,
    POSITIONS,
    Auth,
    ChannelSet,
    CloseCode,
    ErrorCode,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    error_frame,
    parse_channels,
    parse_client_frame,
    parse_resume,
    pong_frame,
    subscribed_frame,
    token_expiring_frame,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def parse(frame: dict[str, object] | str) -> object:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return parse_client_frame(text, max_channels=8)


def test_parse_channels_when_query_string_then_user_mask_and_normalised_tickers() -> None:
    channels = parse_channels("orders, positions,ticker:btcusdt,,ticker:ETH-USDT", max_channels=8)
    assert channels == ChannelSet(ORDERS | POSITIONS, frozenset({"BTC_USDT", "ETH_USDT"}))
    assert channels.names == ["orders", "positions", "ticker:BTC_USDT", "ticker:ETH_USDT"]


def test_parse_channels_when_list_with_account_then_account_bit() -> None:
    assert parse_channels(["account"], max_channels=8).user == ACCOUNT


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (["trades"], ErrorCode.UNKNOWN_CHANNEL),
        (["ticker:NOPE"], ErrorCode.UNKNOWN_CHANNEL),
        ([42], ErrorCode.UNKNOWN_CHANNEL),
        ("orders," * 20, ErrorCode.TOO_MANY_CHANNELS),
        ({"orders": True}, ErrorCode.BAD_REQUEST),
    ],
)
def test_parse_channels_when_not_channels_then_refused(raw: object, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_channels(raw, max_channels=8)
    assert refused.value.code is code


def test_parse_client_frame_when_each_type_then_its_frame() -> None:
    assert parse({"type": "auth", "token": "abc"}) == Auth("abc")
    assert parse({"type": "ping"}) == Ping(None)
    assert parse({"type": "ping", "id": 7}) == Ping(7)
    assert parse({"type": "subscribe", "channels": ["orders"]}) == Subscribe(ChannelSet(ORDERS))
    assert parse(
        {"type": "subscribe", "channels": ["orders"], "since": 12, "epoch": "e1"}
    ) == Subscribe(ChannelSet(ORDERS), 12, "e1")
    assert parse({"type": "unsubscribe", "channels": ["ticker:BTC_USDT"]}) == Unsubscribe(
        ChannelSet(0, frozenset({"BTC_USDT"}))
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", ErrorCode.BAD_REQUEST),
        ("[1, 2]", ErrorCode.BAD_REQUEST),
        ("[" * 100_000, ErrorCode.BAD_REQUEST),
        ({"type": "shout"}, ErrorCode.UNKNOWN_TYPE),
        ({"no": "type"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "auth"}, ErrorCode.BAD_REQUEST),
        ({"type": "auth", "token": ""}, ErrorCode.BAD_REQUEST),
        ({"type": "auth", "token": "x" * 9000}, ErrorCode.BAD_REQUEST),
        ({"type": "ping", "id": {"a": 1}}, ErrorCode.BAD_REQUEST),
        ({"type": "ping", "id": "x" * 65}, ErrorCode.BAD_REQUEST),
        ({"type": "subscribe", "channels": ["orders"], "since": 3}, ErrorCode.BAD_REQUEST),
        (
            {"type": "subscribe", "channels": ["orders"], "since": -1, "epoch": "e"},
            ErrorCode.BAD_REQUEST,
        ),
        (
            {"type": "subscribe", "channels": ["orders"], "since": True, "epoch": "e"},
            ErrorCode.BAD_REQUEST,
        ),
        (
            {"type": "subscribe", "channels": ["orders"], "since": 1.5, "epoch": "e"},
            ErrorCode.BAD_REQUEST,
        ),
    ],
)
def test_parse_client_frame_when_invalid_then_typed_refusal(
    frame: dict[str, object] | str, code: ErrorCode
) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse(frame)
    assert refused.value.code is code


@given(st.text(max_size=200))
def test_parse_client_frame_when_any_text_then_frame_or_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse(text)


def test_parse_resume_when_query_strings_then_ints() -> None:
    assert parse_resume("17", "abc") == (17, "abc")
    assert parse_resume(None, None) == (None, None)
    with pytest.raises(ProtocolError):
        parse_resume("17", None)
    with pytest.raises(ProtocolError):
        parse_resume("1e3", "abc")


def test_subscribed_frame_when_user_channels_then_stream_position() -> None:
    frame = json.loads(
        subscribed_frame(
            ChannelSet(ORDERS), epoch="e1", seq=5, resume="not_recovered", reason="too_old", now=NOW
        )
    )
    assert frame == {
        "type": "subscribed",
        "data": {
            "channels": ["orders"],
            "epoch": "e1",
            "seq": 5,
            "resume": "not_recovered",
            "reason": "too_old",
        },
        "timestamp": "2026-01-01T12:00:00.000Z",
    }
    public = json.loads(
        subscribed_frame(ChannelSet(0, frozenset({"BTC_USDT"})), epoch=None, seq=None, resume=None)
    )
    assert public["data"] == {"channels": ["ticker:BTC_USDT"]}


def test_control_frames_when_built_then_platform_shape() -> None:
    assert json.loads(error_frame("bad_request", "no", now=NOW)) == {
        "type": "error",
        "data": {"code": "bad_request", "message": "no"},
        "timestamp": "2026-01-01T12:00:00.000Z",
    }
    assert json.loads(pong_frame("p1", seq=3, epoch="e", now=NOW))["data"] == {
        "id": "p1",
        "seq": 3,
        "epoch": "e",
    }
    expiring = json.loads(token_expiring_frame(datetime(2026, 1, 1, 12, 1, tzinfo=UTC), now=NOW))
    assert expiring["data"] == {
        "expires_at": "2026-01-01T12:01:00.000Z",
        "seconds_left": 60.0,
        "close_code": 4402,
    }


def test_close_codes_when_classified_then_terminal_only_for_client_faults() -> None:
    assert CloseCode.INVALID_TOKEN.terminal
    assert CloseCode.BAD_REQUEST.terminal
    assert not CloseCode.SLOW_CONSUMER.terminal
    assert not CloseCode.TOKEN_EXPIRED.terminal
    assert CloseCode.SLOW_CONSUMER.reason == "slow_consumer"
    assert {int(c) for c in CloseCode} >= {4400, 4401, 4402, 4408, 4413, 4429, 4500, 4503}
