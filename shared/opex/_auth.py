"""Credentials and OPEX's request signing.

A signed request (OPEX's ``APIKeyFilterImpl`` and ``HmacVerifier``) carries::

    X-API-KEY          the key id
    X-API-TIMESTAMP    epoch milliseconds, within 5 minutes of OPEX's clock
    X-API-BODY-SHA256  hex SHA-256 of the body (only when there is a body)
    X-API-SIGNATURE    Base64(HMAC-SHA256(secret, canonical))

    canonical = METHOD \\n PATH \\n QUERY \\n BODY_SHA256 \\n TIMESTAMP

where PATH is ``"/api"`` + the path the API service receives (OPEX's public proxy strips
``/api``), QUERY the raw query string as sent (empty when none) and BODY_SHA256 the
header's value (empty when none). Signing happens in an `httpx.Auth` on the final
request, so the query string signed is exactly the one sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

__all__ = [
    "SIGNED_PATH_PREFIX",
    "ApiKey",
    "Bearer",
    "Clock",
    "Credentials",
    "LegacyApiKey",
    "OpexAuth",
    "body_sha256",
    "canonical_string",
    "redacted_headers",
    "sign",
    "system_clock",
]

Clock = Callable[[], int]
"""Epoch milliseconds now."""

SIGNED_PATH_PREFIX = "/api"
"""Prepended by OPEX to the path it received before checking a signature."""

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-secret", "x-api-signature", "x-api-key", "cookie"}
)
"""Headers never to print: `redacted_headers` masks them."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def _mask(value: str) -> str:
    return f"{value[:4]}…" if len(value) > 8 else "…"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An OPEX API key signed per request (HMAC-SHA256). ``secret`` is shown once by
    ``POST /v1/api-key``; it never appears in a repr, a log line or an exception."""

    key: str
    secret: SecretStr = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("an API key needs a key id")
        if not self.secret.get_secret_value():
            raise ValueError("an API key needs a secret")

    def __repr__(self) -> str:
        return f"ApiKey(key={_mask(self.key)!r}, secret=SecretStr('**********'))"


@dataclass(frozen=True, slots=True)
class LegacyApiKey:
    """The same key sent OPEX's legacy way: the plain secret in ``X-API-SECRET``."""

    key: str
    secret: SecretStr = field(repr=False)

    def __repr__(self) -> str:
        return f"LegacyApiKey(key={_mask(self.key)!r}, secret=SecretStr('**********'))"


@dataclass(frozen=True, slots=True)
class Bearer:
    """A user's access token (``Authorization: Bearer``), as `login` returns it."""

    token: SecretStr = field(repr=False)

    def __repr__(self) -> str:
        return "Bearer(token=SecretStr('**********'))"


Credentials = ApiKey | LegacyApiKey | Bearer


def body_sha256(body: bytes) -> str:
    """Hex SHA-256 of a request body, for ``X-API-BODY-SHA256``."""
    return hashlib.sha256(body).hexdigest()


def canonical_string(method: str, path: str, query: str, body_hash: str, timestamp_ms: int) -> str:
    """The string OPEX signs: method, path, query, body hash and timestamp, one a line."""
    return f"{method.upper()}\n{path}\n{query}\n{body_hash}\n{timestamp_ms}"


def sign(
    secret: SecretStr | str,
    method: str,
    path: str,
    query: str,
    body_hash: str,
    timestamp_ms: int,
) -> str:
    """``X-API-SIGNATURE`` for one request."""
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    digest = hmac.digest(
        raw.encode(),
        canonical_string(method, path, query, body_hash, timestamp_ms).encode(),
        "sha256",
    )
    return base64.b64encode(digest).decode("ascii")


def redacted_headers(headers: httpx.Headers) -> dict[str, str]:
    """Headers safe to print: the secret ones masked."""
    return {
        name: ("[redacted]" if name.lower() in SECRET_HEADERS else value)
        for name, value in headers.items()
    }


class OpexAuth(httpx.Auth):
    """Adds ``credentials`` to a request, signing it when they are an `ApiKey`.

    ``strip_prefix`` is the part of the URL path in front of OPEX's route (the base URL's
    path plus ``OPEX_PATH_PREFIX``): it is removed and ``/api`` put in its place, which is
    the path OPEX's filter signs whether the request came through the proxy or not.
    """

    requires_request_body = True

    def __init__(
        self, credentials: Credentials, *, strip_prefix: str = "", clock: Clock = system_clock
    ) -> None:
        self._credentials = credentials
        self._strip = strip_prefix.rstrip("/")
        self._clock = clock

    def __repr__(self) -> str:
        return f"OpexAuth({self._credentials!r})"

    def signed_path(self, raw_path: str) -> str:
        path = raw_path
        if self._strip and (path == self._strip or path.startswith(self._strip + "/")):
            path = path[len(self._strip) :]
        return SIGNED_PATH_PREFIX + (path or "/")

    def apply(self, request: httpx.Request) -> None:
        """Put the credential's headers on ``request`` (its URL and body final)."""
        raw_path = request.url.raw_path.split(b"?", 1)[0].decode("ascii")
        query = request.url.query.decode("ascii")
        request.headers.update(self.headers(request.method, raw_path, query, request.content))

    def headers(self, method: str, raw_path: str, query: str, body: bytes | None) -> dict[str, str]:
        """The credential's headers for a request to ``raw_path`` (the URL's path as sent,
        percent-encoded) with the raw ``query`` string and ``body``: what `apply` adds."""
        creds = self._credentials
        if isinstance(creds, Bearer):
            return {"Authorization": f"Bearer {creds.token.get_secret_value()}"}
        if isinstance(creds, LegacyApiKey):
            return {"X-API-KEY": creds.key, "X-API-SECRET": creds.secret.get_secret_value()}
        body_hash = body_sha256(body) if body else ""
        timestamp = self._clock()
        headers = {"X-API-KEY": creds.key, "X-API-TIMESTAMP": str(timestamp)}
        if body_hash:
            headers["X-API-BODY-SHA256"] = body_hash
        headers["X-API-SIGNATURE"] = sign(
            creds.secret, method, self.signed_path(raw_path), query, body_hash, timestamp
        )
        return headers

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.apply(request)
        yield request
