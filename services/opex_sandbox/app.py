"""The sandbox's composition root: `create_app(config)` builds one `Sandbox`, mounts every
OPEX route at its own path and under `/api` (as behind OPEX's public proxy), the test
controls under `/sandbox`, and wraps it all in the fault layer. The background task that
applies queued orders and steps the market maker lives as long as the app (lifespan)."""

from __future__ import annotations

import decimal
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import AccessDenied, AuthenticationRequired
from .config import SandboxConfig
from .domain.errors import InternalServerError, OpexError
from .faults import ASGIApp, FaultMiddleware, Receive, Scope, Send, opex_path
from .routes import admin, market, orders, sandbox, users
from .sandbox import Sandbox
from .web import (
    PUBLIC,
    UnsupportedMediaType,
    begin,
    error_body,
    json_response,
    sandbox_of,
    spring_error,
)

__all__ = ["create_app"]

log = logging.getLogger("opex_sandbox")

_REASONS = {404: "Not Found", 405: "Method Not Allowed", 415: "Unsupported Media Type"}

Endpoint = Callable[[Request], Awaitable[Response]]


def error_response(request: Request, exc: Exception) -> Response | None:
    """The answer for an exception a handler raised (None: not one of ours)."""
    if isinstance(exc, OpexError):
        return json_response(error_body(exc, sandbox_of(request).clock()), exc.http_status)
    if isinstance(exc, AuthenticationRequired):
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, AccessDenied):
        return Response(status_code=403)
    if isinstance(exc, UnsupportedMediaType):
        return spring_error(415, _REASONS[415], request.scope["path"], sandbox_of(request).clock())
    if isinstance(exc, decimal.DecimalException):
        # OPEX's longValueExact() and friends fail with an unmapped ArithmeticException
        return json_response(error_body(InternalServerError(), sandbox_of(request).clock()), 500)
    return None


class FastDispatch:
    """Routes requests for fixed paths straight to their endpoint, past FastAPI's router
    (which scans every route, twice as many with the `/api` mounts, at some 5 us each);
    everything else (paths with parameters, docs, lifespan) goes on to the app."""

    def __init__(self, app: ASGIApp, table: dict[tuple[str, str], Endpoint]) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.table.get((scope["method"], scope["path"]))
            if endpoint is not None:
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    answer = error_response(request, exc)
                    if answer is None:
                        log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                        answer = json_response(
                            error_body(InternalServerError(), sandbox_of(request).clock()), 500
                        )
                    response = answer
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# OPEX's `permitAll()` paths (binance `SecurityConfig`), plus the sandbox's own
_PUBLIC_PREFIXES = (
    "/actuator/",
    "/v3/ticker/",
    "/v3/currencyInfo/",
    "/opex/v1/oauth/protocol/openid-connect/",
    "/opex/v1/user/public/",
    "/opex/v1/market/",
    "/pair-setting",
    "/sandbox/",
)
_PUBLIC_PATHS = frozenset({"/v3/depth", "/v3/trades", "/v3/exchangeInfo", "/v3/klines"})


def _public(path: str) -> bool:
    return path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)


def _mount(
    app: FastAPI, router: APIRouter, prefix: str, table: dict[tuple[str, str], Endpoint]
) -> None:
    """Include `router` under `prefix` and list its fixed paths for `FastDispatch`."""
    app.include_router(router, prefix=prefix)
    for route in router.routes:
        if isinstance(route, APIRoute) and "{" not in route.path:
            for method in route.methods or ():
                table.setdefault((method, prefix + route.path), route.endpoint)


class SandboxApp(FastAPI):
    """FastAPI, entered through the fault layer and `FastDispatch` first: the fixed-path
    OPEX routes skip FastAPI's own middleware and router (some 200 us a request here)."""

    entry: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self.entry(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or SandboxConfig()
    state = Sandbox(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = SandboxApp(
        title="OPEX sandbox",
        description="A local OPEX Core: OPEX's routes at their paths and under /api.",
        lifespan=lifespan,
        openapi_url="/sandbox/openapi.json",
        docs_url="/sandbox/docs",
        redoc_url=None,
    )
    app.state.sandbox = state

    table: dict[tuple[str, str], Endpoint] = {}
    for router in (sandbox.health_router, orders.router, market.router, users.router, admin.router):
        _mount(app, router, "", table)
        _mount(app, router, "/api", table)
    _mount(app, sandbox.router, "", table)

    async def on_error(request: Request, exc: Exception) -> Response:
        answer = error_response(request, exc)
        if answer is None:  # pragma: no cover - only our own exception types are registered
            raise exc
        return answer

    for kind in (
        OpexError,
        AuthenticationRequired,
        AccessDenied,
        UnsupportedMediaType,
        decimal.DecimalException,
    ):
        app.add_exception_handler(kind, on_error)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # OPEX's catch-all: 500 with code 1001 (Starlette still logs the exception)
        return json_response(error_body(InternalServerError(), sandbox_of(request).clock()), 500)

    app.add_exception_handler(Exception, on_unexpected)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.scope["path"]
        if not _public(opex_path(path)):
            # Spring Security runs before routing: no route, but no credential either, is 401
            try:
                anonymous = (await begin(request, PUBLIC)).principal is None
            except Exception as auth_error:
                answer = error_response(request, auth_error)
                if answer is None:
                    raise
                return answer
            if anonymous:
                return error_response(request, AuthenticationRequired()) or Response(
                    status_code=401
                )
        reason = _REASONS.get(exc.status_code, "Error")
        return spring_error(exc.status_code, reason, path, sandbox_of(request).clock())

    app.entry = FaultMiddleware(FastDispatch(app._inner, table), state.faults, state.clock)
    return app
