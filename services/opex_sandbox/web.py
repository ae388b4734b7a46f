"""The HTTP plumbing every route shares: authentication, authorization and rate limiting in
OPEX's order, Spring-style parameter binding, and the answers for errors.

Order of checks for a request (as OPEX's filter chain runs them): API-key filter (1004 / 1025
/ 1026) -> bearer token (an invalid or expired one: 401) -> the route's authority (none: 401,
not enough: 403; both empty bodies) -> rate limit (429, 1024) -> parameter binding (1020) ->
the handler.
"""

from __future__ import annotations

import enum
import json
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, unquote_plus

from fastapi import Request
from fastapi.responses import Response

from .auth import (
    AccessDenied,
    AuthenticationRequired,
    Principal,
    authenticate_api_key,
    signed_path,
)
from .domain.errors import InvalidRequestParam, OpexError, RateLimit
from .faults import opex_path
from .render import dumps

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = [
    "ADMIN",
    "PUBLIC",
    "USER",
    "Access",
    "Call",
    "begin",
    "error_body",
    "json_response",
    "sandbox_of",
    "spring_error",
]

E = TypeVar("E", bound=enum.Enum)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_LONG = re.compile(r"[+-]?[0-9]+")
_FORM = "application/x-www-form-urlencoded"


class Access(enum.Enum):
    PUBLIC = "public"
    USER = "authenticated"
    ADMIN = "ROLE_admin"


PUBLIC, USER, ADMIN = Access.PUBLIC, Access.USER, Access.ADMIN


def sandbox_of(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


def error_body(error: OpexError, now_ms: int) -> dict[str, Any]:
    """OPEX's error body (`DefaultExceptionResponse`, `@JsonInclude(NON_NULL)`)."""
    return {
        "error": error.name,
        "code": error.code,
        "message": error.message,
        "status": error.http_status,
        "timestamp": now_ms,
    }


def spring_error(status: int, reason: str, path: str, now_ms: int) -> Response:
    """Spring Boot's default error body, for what never reaches OPEX's handlers (no route:
    404, wrong method: 405, wrong content type: 415)."""
    body = {
        "timestamp": now_ms,
        "path": path,
        "status": status,
        "error": reason,
        "requestId": f"{now_ms & 0xFFFFFFFF:08x}",
    }
    return Response(dumps(body), status_code=status, media_type="application/json")


class UnsupportedMediaType(Exception):
    pass


class Call:
    """One request after authentication: the principal and the bound parameters."""

    __slots__ = ("_body", "params", "path", "principal", "request", "sandbox")

    def __init__(
        self,
        request: Request,
        sandbox: Sandbox,
        principal: Principal | None,
        params: dict[str, str],
        path: str,
        body: bytes,
    ) -> None:
        self.request = request
        self.sandbox = sandbox
        self.principal = principal
        self.params = params
        self.path = path
        self._body = body

    @property
    def user(self) -> Principal:
        principal = self.principal
        if principal is None:  # routes that need a user never get here without one
            raise AuthenticationRequired
        return principal

    # -- parameters (Spring's @RequestParam binding; any failure is 1020 naming the param) --

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.params.get(name)
        if value is None and required:
            raise InvalidRequestParam(name)
        return value

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            raise InvalidRequestParam(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if not _DECIMAL.fullmatch(value):
            raise InvalidRequestParam(name)
        return Decimal(value)

    def long(self, name: str, *, required: bool = False) -> int | None:
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise InvalidRequestParam(name)
            return None
        if not _LONG.fullmatch(value):
            raise InvalidRequestParam(name)
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise InvalidRequestParam(name)
        return number

    def enum(self, name: str, kind: type[E], *, required: bool = False) -> E | None:
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise InvalidRequestParam(name)
            return None
        try:
            return kind[value.strip()]
        except KeyError:
            raise InvalidRequestParam(name) from None

    def json(self, param: str) -> dict[str, Any]:
        """The JSON object body; anything else is 1020 naming the controller's parameter."""
        try:
            value = json.loads(self._body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequestParam(param) from None
        if not isinstance(value, dict):
            raise InvalidRequestParam(param)
        return value


def _pairs(text: str, params: dict[str, str], *, form: bool) -> None:
    """Add `k=v&...` pairs to `params`, first value winning (Spring's single-valued
    @RequestParam). A query string is only percent-decoded (a `+` stays a `+`, as in
    Spring's query parsing); a form body also turns `+` into a space."""
    decode = unquote_plus if form else unquote
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if "%" in part or (form and "+" in part):
            key, value = decode(key), decode(value)
        if key not in params:
            params[key] = value


def _params(query: str, body: bytes, content_type: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if query:
        _pairs(query, params, form=False)
    if body and content_type is not None and content_type.startswith(_FORM):
        _pairs(body.decode("latin-1"), params, form=True)
    return params


async def begin(request: Request, access: Access, *, consumes_form: bool = False) -> Call:
    """Authenticate, authorize and rate-limit a request; bind its parameters."""
    sandbox = sandbox_of(request)
    scope = request.scope
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path_text = raw_path.decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    # ASGI servers hand header names over in lower case; the first value of each wins.
    # Only the few headers looked at are decoded.
    raw_headers: dict[bytes, bytes] = dict(reversed(scope["headers"]))

    def header(name: str) -> str | None:
        value = raw_headers.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    now_ms = sandbox.clock()

    principal: Principal | None = None
    client = scope.get("client")
    record = authenticate_api_key(
        header,
        method=scope["method"],
        path=signed_path(path_text),
        query=query,
        client_ip=client[0] if client else None,
        keys=sandbox.users.api_keys,
        now_ms=now_ms,
    )
    if record is not None:
        user = sandbox.users.get(record.user)
        if user is not None and user.enabled:
            principal = user.principal()
    else:
        authorization = header("authorization")
        if authorization is not None and authorization[:7].lower() == "bearer ":
            principal = sandbox.tokens.verify(authorization[7:].strip())
            if principal is None:
                raise AuthenticationRequired
    if access is not PUBLIC:
        if principal is None:
            raise AuthenticationRequired
        if access is ADMIN and not principal.is_admin:
            raise AccessDenied

    path = opex_path(scope["path"])
    if principal is not None and sandbox.rate_limit_enabled:
        decision = sandbox.limiter.check(principal.user, scope["method"], path)
        if not decision.allowed:
            raise RateLimit(f"Too many requests; retry in {decision.retry_after_s:.0f} s")

    body = await request.body()
    content_type = header("content-type")
    if consumes_form and body and not (content_type or "").startswith(_FORM):
        raise UnsupportedMediaType
    return Call(request, sandbox, principal, _params(query, body, content_type), path, body)
