"""Test kit for the notifier against the real broker and database: tokens and a JWKS
server, event builders and a producer, the app served by uvicorn on 127.0.0.1 (in this
process or as a ``python -m services.notifier`` child), and a WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.notifier.adapters.server import uvicorn_config
from services.notifier.app import NotifierApp, create_app
from services.notifier.config import NotifierSettings
from shared.contracts import (
    Balance,
    BalancesUpdated,
    Envelope,
    OrderAccepted,
    PositionUpdated,
    TickerUpdated,
    encode,
    new_message,
    partition_key,
)
from shared.messaging import KafkaSettings
from shared.opex import OpexSettings

REPO = Path(__file__).resolve().parents[3]
SECRET = "integration-secret-0123456789abcdef"
AUDIENCE = "opex-bridge"
ISSUER = "opex-platform"


# ----------------------------------------------------------------------------- tokens


def hs_token(
    user: str,
    *,
    ttl: float = 300,
    secret: str = SECRET,
    claims: dict[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> str:
    payload: dict[str, Any] = {
        "sub": user,
        "exp": int(time.time() + ttl),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": int(time.time()),
    }
    payload.update(claims or {})
    for name in drop:
        payload.pop(name, None)
    return jwt.encode(payload, secret, algorithm="HS256")


def none_token(user: str) -> str:
    """An unsigned token (``alg: none``)."""
    payload = {"sub": user, "exp": int(time.time() + 300), "aud": AUDIENCE, "iss": ISSUER}
    return jwt.encode(payload, "", algorithm="none")


@dataclass
class KeySet:
    """An RSA and an EC key published in the JWKS, and an RSA key that is not."""

    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    rogue_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, alg, key in (
            ("rsa-1", "RS256", self.rsa_key.public_key()),
            ("ec-1", "ES256", self.ec_key.public_key()),
        ):
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key))
            jwk.update({"kid": kid, "use": "sig", "alg": alg})
            keys.append(jwk)
        return {"keys": keys}

    def token(
        self,
        user: str,
        *,
        alg: str = "RS256",
        kid: str | None = None,
        rogue: bool = False,
        ttl: float = 300,
    ) -> str:
        key: Any = self.rogue_key if rogue else (self.ec_key if alg == "ES256" else self.rsa_key)
        payload = {"sub": user, "exp": int(time.time() + ttl), "aud": AUDIENCE, "iss": ISSUER}
        headers = {"kid": kid or ("ec-1" if alg == "ES256" else "rsa-1")}
        return jwt.encode(payload, key, algorithm=alg, headers=headers)


# ------------------------------------------------------------------------ servers


def _bound_port(server: uvicorn.Server) -> int:
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server has no socket")


class InProcessServer:
    """An ASGI app served by uvicorn on 127.0.0.1:<free port> in this event loop."""

    def __init__(self, config: uvicorn.Config) -> None:
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 30
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            await asyncio.sleep(0.02)
        self.port = _bound_port(self._server)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


async def jwks_server(keys: KeySet) -> InProcessServer:
    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(keys.jwks())

    app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = InProcessServer(config)
    await server.start()
    return server


def notifier_settings(schema: str, prefix: str, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "schema_name": schema,
        "topic_prefix": prefix,
        "group_id": f"notifier-{schema}",
        "instance_id": schema,  # a private outbox relay (transactional id) per test module
        "service_health_urls": {},
        "jwt_secret": SECRET,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "batch_timeout_ms": 5,
        "prune_interval_s": 3600,
    }
    values.update(overrides)
    return NotifierSettings(**values)


class Notifier:
    """The notifier app served in this process."""

    def __init__(
        self,
        settings: NotifierSettings,
        kafka: KafkaSettings,
        database_url: str,
        opex: OpexSettings | None = None,
    ) -> None:
        self.settings = settings
        self.app: NotifierApp = create_app(
            settings, kafka=kafka, database_url=database_url, opex=opex
        )
        self._server = InProcessServer(uvicorn_config(self.app, settings, port=0))

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    @property
    def port(self) -> int:
        return self._server.port

    def ws_url(self, **query: Any) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{params}" if params else "")

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotifierProcess:
    """``python -m services.notifier`` as a child process (killable)."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.notifier"],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"notifier exited with {self.proc.returncode}")
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{self.port}/health")
                    ).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("notifier did not become healthy")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def ws_url(self, **query: Any) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{params}" if params else "")


# ------------------------------------------------------------------------- events


def order_accepted(user: str, client_order_id: str, *, symbol: str = "BTC_USDT") -> Envelope[Any]:
    return new_message(
        OrderAccepted(
            client_order_id=client_order_id,
            order_id=f"x-{client_order_id}",
            symbol=symbol,
            side="buy",
            order_type="limit",
            quantity=Decimal("0.01"),
            price=Decimal("50000"),
        ),
        user_id=user,
    )


def position_updated(user: str, symbol: str, quantity: str) -> Envelope[Any]:
    return new_message(
        PositionUpdated(
            position_id=f"p-{user}-{symbol}",
            symbol=symbol,
            quantity=Decimal(quantity),
            unrealized_pnl=Decimal("1.5"),
        ),
        user_id=user,
    )


def balances_updated(user: str, free: str) -> Envelope[Any]:
    return new_message(
        BalancesUpdated(balances=(Balance(asset="USDT", free=Decimal(free)),), source="opex"),
        user_id=user,
    )


def ticker(symbol: str, price: str) -> Envelope[Any]:
    from datetime import UTC, datetime

    return new_message(
        TickerUpdated(symbol=symbol, last_price=Decimal(price), at=datetime.now(UTC)), user_id=None
    )


class Producer:
    """One idempotent producer for a test module."""

    def __init__(self, kafka: KafkaSettings, prefix: str) -> None:
        self._producer = AIOKafkaProducer(
            **kafka.aiokafka_kwargs(), acks="all", enable_idempotence=True, linger_ms=1
        )
        self._prefix = prefix

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            await self._producer.send(
                self._prefix + envelope.topic.value, encode(envelope), key=partition_key(envelope)
            )
        await self._producer.flush()

    async def send_raw(self, topic: str, value: bytes, key: bytes) -> None:
        await self._producer.send_and_wait(self._prefix + topic, value, key=key)


# ------------------------------------------------------------------------- clients


class Client:
    """A WebSocket client that keeps every frame it got."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Client:
        return cls(await connect(url, open_timeout=10, **kwargs))

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def expect(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next frame of type ``kind`` (frames before it are kept, not returned)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if frame["type"] == kind:
                return frame

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def user_frames(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """Read until ``count`` frames with a seq have arrived since the client opened."""
        deadline = time.monotonic() + timeout
        while len(self.seq_frames) < count:
            await self.next(max(0.01, deadline - time.monotonic()))
        return self.seq_frames

    @property
    def seq_frames(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f and f["type"] != "subscribed"]

    async def closed_with(self, timeout: float = 10) -> int | None:
        """Read until the server closes; its close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.next(timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class StalledClient:
    """A WebSocket client that stops reading after the handshake: a tiny socket receive
    buffer and a stream reader that pauses almost at once, so the server's writes back
    up as they would to a frozen browser tab. `drain` reads everything later."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str, *, rcvbuf: int = 4096) -> StalledClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def drain(self, timeout: float = 15) -> tuple[list[dict[str, Any]], int | None]:
        """Every text frame until the server's close frame (or EOF), and the close code."""
        frames: list[dict[str, Any]] = []
        code: int | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    head = await self.reader.readexactly(2)
                    opcode, length = head[0] & 0x0F, head[1] & 0x7F
                    if length == 126:
                        length = struct.unpack("!H", await self.reader.readexactly(2))[0]
                    elif length == 127:
                        length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                    payload = await self.reader.readexactly(length)
                    if opcode == 0x1:
                        frames.append(json.loads(payload))
                    elif opcode == 0x8:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                        break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.writer.close()
        return frames, code
