"""REST snapshots of the same state the stream carries (the platform's paths).

Each answer names the stream position it reflects, ``{"seq": S, "epoch": E, ...}``:
subscribe with ``since=S`` and ``epoch=E`` and the stream continues at ``S + 1``, with
nothing missed and nothing doubled. ``Authorization: Bearer <jwt>``, the same tokens as
the WebSocket.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
# routes defined inside `rest_router` at run time, and those name local dependencies.

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.notifier.adapters.errors import ERROR_RESPONSES
from services.notifier.adapters.store import AccountSnapshot, Snapshot
from services.notifier.domain.auth import AuthError, AuthFailure, Identity
from services.notifier.domain.refusals import Refusal, RefusalCode
from shared.contracts import OrderStatus, normalize_symbol

__all__ = [
    "SnapshotReader",
    "authenticate",
    "bearer_identity",
    "bearer_token",
    "rest_router",
    "symbol_param",
]


class SnapshotReader(Protocol):
    async def orders_snapshot(
        self,
        user_id: str,
        *,
        symbol: str | None = None,
        statuses: list[str] | None = None,
        terminal: bool | None = None,
        limit: int = 100,
    ) -> Snapshot: ...

    async def positions_snapshot(self, user_id: str, *, symbol: str | None = None) -> Snapshot: ...

    async def account_snapshot(self, user_id: str) -> AccountSnapshot: ...


class _Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


def symbol_param(value: str | None, *, field: str = "symbol") -> str | None:
    """A symbol parameter in any spelling as ``BTC_USDT``; 422 naming ``field``."""
    if value is None or value == "":
        return None
    try:
        return normalize_symbol(value)
    except ValueError as error:
        raise Refusal(422, RefusalCode.INVALID_SYMBOL, str(error), field=field) from None


_symbol = symbol_param
_BEARER = HTTPBearer(auto_error=False, description="the platform's JWT; its `sub` is the user")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value, read as FastAPI's
    `HTTPBearer` reads it; ``""`` when there is none."""
    if not authorization:
        return ""
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return ""
    return credentials.strip()


async def authenticate(verifier: _Verifier, token: str) -> Identity:
    """The caller's `Identity`; 401 ``invalid_token`` / ``token_expired``, 503
    ``unavailable`` (key set down)."""
    if not token:
        raise Refusal(401, RefusalCode.INVALID_TOKEN, "send Authorization: Bearer <token>")
    try:
        return await verifier.verify(token)
    except AuthError as error:
        if error.failure is AuthFailure.UNAVAILABLE:
            raise Refusal(503, RefusalCode.UNAVAILABLE, error.message) from None
        raise Refusal(401, error.failure.value, error.message) from None


def bearer_identity(verifier: _Verifier) -> Callable[..., Awaitable[Identity]]:
    """A FastAPI dependency: the caller's `Identity` from ``Authorization: Bearer``
    (`authenticate`)."""

    async def identity(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Identity:
        token = credentials.credentials.strip() if credentials is not None else ""
        return await authenticate(verifier, token)

    return identity


def order_filter(status: str | None) -> tuple[list[str] | None, bool | None]:
    """``status``: ``open`` (not terminal), ``closed`` (terminal), ``all`` / none, or one
    order status (``filled``, ``CANCELED``...)."""
    if status is None or status.lower() in ("", "all"):
        return None, None
    lowered = status.lower()
    if lowered == "open":
        return None, False
    if lowered == "closed":
        return None, True
    try:
        return [OrderStatus(status).value.lower()], None
    except ValueError:
        raise Refusal(
            422,
            RefusalCode.INVALID_STATUS,
            "status is open, closed, all or an order status",
            field="status",
        ) from None


def rest_router(store: SnapshotReader, verifier: _Verifier) -> APIRouter:
    router = APIRouter(prefix="/api/trading", tags=["snapshots"], responses=ERROR_RESPONSES)
    User = Annotated[Identity, Depends(bearer_identity(verifier))]

    @router.get("/orders")
    async def orders(
        user: User,
        symbol: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The user's orders, most recently changed first, with the stream position."""
        statuses, terminal = order_filter(status)
        snapshot = await store.orders_snapshot(
            user.user_id, symbol=_symbol(symbol), statuses=statuses, terminal=terminal, limit=limit
        )
        return snapshot.as_dict()

    @router.get("/positions")
    async def positions(user: User, symbol: str | None = None) -> dict[str, Any]:
        """The user's open positions, with the stream position."""
        return (await store.positions_snapshot(user.user_id, symbol=_symbol(symbol))).as_dict()

    @router.get("/account")
    async def account(user: User) -> dict[str, Any]:
        """The user's balances and trading state, with the stream position."""
        return (await store.account_snapshot(user.user_id)).as_dict()

    return router
