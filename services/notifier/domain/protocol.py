"""The WebSocket protocol: channels, the frames a client may send, the control frames
the server sends, and the close codes (README.md, Protocol).

Pure: no sockets, no clock but the one passed in.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.contracts import format_timestamp, normalize_symbol

__all__ = [
    "ACCOUNT",
    "ALL_USER_CHANNELS",
    "ORDERS",
    "POSITIONS",
    "USER_CHANNELS",
    "Auth",
    "ChannelSet",
    "ClientFrame",
    "CloseCode",
    "ErrorCode",
    "Ping",
    "ProtocolError",
    "Subscribe",
    "Unsubscribe",
    "authenticated_frame",
    "control_frame",
    "error_frame",
    "parse_channels",
    "parse_client_frame",
    "pong_frame",
    "subscribed_frame",
    "token_expiring_frame",
    "unsubscribed_frame",
]

ORDERS = 1
POSITIONS = 2
ACCOUNT = 4
USER_CHANNELS: dict[str, int] = {"orders": ORDERS, "positions": POSITIONS, "account": ACCOUNT}
"""The per-user channels, as bits of a mask."""
ALL_USER_CHANNELS = ORDERS | POSITIONS | ACCOUNT
TICKER_PREFIX = "ticker:"
MAX_TOKEN_CHARS = 8192
MAX_PING_ID_CHARS = 64


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses. 1xxx are the standard ones; 44xx mean the
    client must change something before it reconnects; 45xx mean reconnect (with
    ``since``) after a short backoff."""

    NORMAL = 1000
    GOING_AWAY = 1001
    SERVICE_RESTART = 1012
    BAD_REQUEST = 4400
    INVALID_TOKEN = 4401
    TOKEN_EXPIRED = 4402
    FORBIDDEN = 4403
    AUTH_TIMEOUT = 4408
    MESSAGE_TOO_BIG = 4413
    TOO_MANY_CONNECTIONS = 4429
    SLOW_CONSUMER = 4500
    UNAVAILABLE = 4503

    @property
    def reason(self) -> str:
        """The close reason sent with the code (also the metrics label)."""
        return self.name.lower()

    @property
    def terminal(self) -> bool:
        """True when reconnecting unchanged cannot help (a new token or a fixed client
        is needed)."""
        return self in (
            CloseCode.BAD_REQUEST,
            CloseCode.INVALID_TOKEN,
            CloseCode.FORBIDDEN,
            CloseCode.MESSAGE_TOO_BIG,
        )


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``error`` frame (the connection stays open)."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_CHANNEL = "unknown_channel"
    TOO_MANY_CHANNELS = "too_many_channels"
    ALREADY_AUTHENTICATED = "already_authenticated"
    UNAVAILABLE = "unavailable"


class ProtocolError(Exception):
    """A client frame the server refuses; becomes an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------------- channels


@dataclass(frozen=True, slots=True)
class ChannelSet:
    """Channels named by a client: a mask of user channels and a set of ticker symbols."""

    user: int = 0
    tickers: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        names = [name for name, bit in USER_CHANNELS.items() if self.user & bit]
        return names + [TICKER_PREFIX + symbol for symbol in sorted(self.tickers)]


def parse_channels(raw: object, *, max_channels: int) -> ChannelSet:
    """Channels from a subscribe frame (a list) or the ``channels`` query parameter (a
    comma-separated string). Symbols are normalised (``ticker:btcusdt`` is
    ``ticker:BTC_USDT``)."""
    if isinstance(raw, str):
        items: list[object] = [part for part in raw.split(",") if part.strip()]
    elif isinstance(raw, list):
        items = list(raw)
    else:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "channels is a list of channel names")
    if len(items) > max_channels:
        raise ProtocolError(ErrorCode.TOO_MANY_CHANNELS, f"at most {max_channels} channels")
    mask = 0
    tickers: set[str] = set()
    for item in items:
        if not isinstance(item, str) or len(item) > 40:
            raise ProtocolError(ErrorCode.UNKNOWN_CHANNEL, "a channel is a short string")
        name = item.strip()
        bit = USER_CHANNELS.get(name.lower())
        if bit is not None:
            mask |= bit
        elif name.lower().startswith(TICKER_PREFIX):
            try:
                tickers.add(normalize_symbol(name[len(TICKER_PREFIX) :]))
            except ValueError:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_CHANNEL, f"{name!r} does not name a symbol"
                ) from None
        else:
            raise ProtocolError(
                ErrorCode.UNKNOWN_CHANNEL,
                f"{name!r} is not a channel: orders, positions, account or ticker:<SYMBOL>",
            )
    return ChannelSet(mask, frozenset(tickers))


# -------------------------------------------------------------------- client frames


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    channels: ChannelSet
    since: int | None = None
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channels: ChannelSet


@dataclass(frozen=True, slots=True)
class Ping:
    id: str | int | None = None


ClientFrame = Auth | Subscribe | Unsubscribe | Ping


def parse_resume(since: object, epoch: object) -> tuple[int | None, str | None]:
    """``since`` (the last seq the client holds) and ``epoch``, both or neither."""
    if since is None and epoch is None:
        return None, None
    if isinstance(since, str) and since.isdigit() and len(since) <= 19:
        since = int(since)
    if type(since) is not int or not 0 <= since < 2**63:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "since is the last seq received (an int >= 0)")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= 64:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "since needs the epoch it belongs to")
    return since, epoch


def parse_client_frame(text: str, *, max_channels: int) -> ClientFrame:
    """A client frame from its JSON text; `ProtocolError` for anything else. The size
    limit is enforced before this, on the raw frame."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a frame is a JSON object") from None
    if not isinstance(document, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a frame is a JSON object")
    kind = document.get("type")
    if kind == "ping":
        ping_id = document.get("id")
        if ping_id is not None and not (
            (isinstance(ping_id, str) and len(ping_id) <= MAX_PING_ID_CHARS)
            or (type(ping_id) is int and abs(ping_id) < 2**53)
        ):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "a ping id is a short string or an int")
        return Ping(ping_id)
    if kind == "subscribe":
        channels = parse_channels(document.get("channels"), max_channels=max_channels)
        since, epoch = parse_resume(document.get("since"), document.get("epoch"))
        return Subscribe(channels, since, epoch)
    if kind == "unsubscribe":
        return Unsubscribe(parse_channels(document.get("channels"), max_channels=max_channels))
    if kind == "auth":
        token = document.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "an auth frame carries a token")
        return Auth(token)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "type is one of auth, subscribe, unsubscribe, ping")


# -------------------------------------------------------------------- server frames


def now_timestamp(now: datetime | None = None) -> str:
    return format_timestamp(now if now is not None else datetime.now(UTC))


def control_frame(kind: str, data: dict[str, Any], *, now: datetime | None = None) -> str:
    """``{"type": kind, "data": {...}, "timestamp": ...}`` as JSON text."""
    return json.dumps(
        {"type": kind, "data": data, "timestamp": now_timestamp(now)}, separators=(",", ":")
    )


def authenticated_frame(user_id: str, expires_at: datetime, *, now: datetime | None = None) -> str:
    return control_frame(
        "authenticated",
        {"user_id": user_id, "expires_at": format_timestamp(expires_at)},
        now=now,
    )


def subscribed_frame(
    channels: ChannelSet,
    *,
    epoch: str | None,
    seq: int | None,
    resume: str | None,
    reason: str | None = None,
    now: datetime | None = None,
) -> str:
    """The answer to a subscribe: the channels now active and, when user channels are
    among them, where the stream continues: every following user frame has a ``seq``
    above ``seq``. ``resume`` is ``live`` (no ``since`` asked), ``recovered`` (the
    missed frames follow, from ``since + 1``) or ``not_recovered`` (reload the REST
    snapshots; ``reason`` says why)."""
    data: dict[str, Any] = {"channels": channels.names}
    if seq is not None:
        data.update({"epoch": epoch, "seq": seq, "resume": resume})
        if reason is not None:
            data["reason"] = reason
    return control_frame("subscribed", data, now=now)


def unsubscribed_frame(channels: ChannelSet, *, now: datetime | None = None) -> str:
    return control_frame("unsubscribed", {"channels": channels.names}, now=now)


def pong_frame(
    ping_id: str | int | None, *, seq: int | None, epoch: str | None, now: datetime | None = None
) -> str:
    return control_frame("pong", {"id": ping_id, "seq": seq, "epoch": epoch}, now=now)


def error_frame(code: str, message: str, *, now: datetime | None = None) -> str:
    return control_frame("error", {"code": code, "message": message}, now=now)


def token_expiring_frame(expires_at: datetime, *, now: datetime | None = None) -> str:
    current = now if now is not None else datetime.now(UTC)
    return control_frame(
        "token_expiring",
        {
            "expires_at": format_timestamp(expires_at),
            "seconds_left": max(0.0, round((expires_at - current).total_seconds(), 3)),
            "close_code": int(CloseCode.TOKEN_EXPIRED),
        },
        now=current,
    )
