"""Test doubles for code that uses `OpexClient`, in httpx's style (a `MockTransport`).

::

    from shared.opex.testing import MockOpex, opex_error

    mock = MockOpex()
    mock.on("POST", "/v3/order", json={"symbol": "BTCUSDT", "orderId": -1})
    mock.on("GET", "/v3/openOrders", response=opex_error(7002, "SymbolNotFound", status=404))
    mock.on("DELETE", "/v3/order", raises=httpx.ReadTimeout)
    async with mock.client() as opex:
        ...
    assert mock.requests[0].url.params["symbol"] == "BTCUSDT"

Routes match on method and URL path (the base URL's path included); the last one added
wins, so a test can override a default. Unmatched requests get a 404 with an OPEX
error body. JSON answers may hold `Decimal` values; they are written as JSON numbers, as
OPEX writes BigDecimal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from shared.opex._auth import Clock, system_clock
from shared.opex._client import OpexClient
from shared.opex._settings import OpexSettings, Surface

__all__ = ["MockOpex", "opex_error", "opex_json"]

Handler = Callable[[httpx.Request], httpx.Response]


def _dump(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(key))}:{_dump(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    return json.dumps(value)


def opex_json(data: Any) -> bytes:
    """``data`` as OPEX would write it: `Decimal` as an exact JSON number."""
    return _dump(data).encode()


def opex_error(
    code: int,
    name: str,
    message: str | None = None,
    *,
    status: int = 400,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """OPEX's error answer (``DefaultExceptionResponse``): ``{error, code, message}``."""
    body = {"error": name, "code": code, "message": message, "timestamp": "2026-01-01T00:00:00Z"}
    return httpx.Response(
        status,
        content=opex_json(body),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    handler: Handler


class MockOpex:
    """A fake OPEX behind an `httpx.MockTransport`, recording every request it gets."""

    def __init__(self, settings: OpexSettings | None = None) -> None:
        self.settings = settings or OpexSettings(api_url="http://opex.test")
        self.requests: list[httpx.Request] = []
        self._routes: list[_Route] = []
        self.transport = httpx.MockTransport(self._handle)

    def on(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        status: int = 200,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        response: httpx.Response | None = None,
        raises: type[httpx.TransportError] | None = None,
        handler: Handler | None = None,
    ) -> None:
        """Answer ``method path`` with JSON, raw content, a ready response, a transport
        error (raised as if the network failed) or a function of the request."""
        if handler is None:
            handler = self._canned(json, status, content, headers, response, raises)
        self._routes.append(_Route(method.upper(), path, handler))

    @staticmethod
    def _canned(
        data: Any,
        status: int,
        content: bytes | None,
        headers: dict[str, str] | None,
        response: httpx.Response | None,
        raises: type[httpx.TransportError] | None,
    ) -> Handler:
        def handle(request: httpx.Request) -> httpx.Response:
            if raises is not None:
                raise raises(f"mock {raises.__name__}", request=request)
            if response is not None:
                return httpx.Response(
                    response.status_code, content=response.content, headers=response.headers
                )
            if content is not None:
                return httpx.Response(status, content=content, headers=headers)
            return httpx.Response(
                status,
                content=opex_json(data) if data is not None else b"",
                headers={"Content-Type": "application/json", **(headers or {})},
            )

        return handle

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for route in reversed(self._routes):
            if route.method == request.method and route.path == request.url.path:
                return route.handler(request)
        return opex_error(
            1020, "NotFound", f"no mock for {request.method} {request.url.path}", status=404
        )

    @property
    def last(self) -> httpx.Request:
        """The last request received."""
        return self.requests[-1]

    def client(self, *, surface: Surface | None = None, clock: Clock = system_clock) -> OpexClient:
        """An `OpexClient` talking to this mock."""
        return OpexClient(self.settings, transport=self.transport, clock=clock, surface=surface)
