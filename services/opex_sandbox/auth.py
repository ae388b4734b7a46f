"""Authentication as OPEX's api service does it: bearer JWTs and API keys.

Bearer tokens are HS256 JWTs the sandbox signs; `sub` is the user's OPEX uuid. OPEX's
tokens come from Keycloak (RS256); a client only ever passes them through.

API keys follow `api-app/.../interceptor/APIKeyFilterImpl.kt` and
`api-app/.../security/HmacVerifier.kt` (opexdev/core):

* `X-API-KEY` + `X-API-SIGNATURE` + `X-API-TIMESTAMP` all present (non-blank): the signed
  path. Unknown or disabled key: ignored (the request goes on unauthenticated, or with its
  own `Authorization`). Then, in this order: source IP outside `allowedIps`: 403 (1004);
  PATH outside `allowedEndpoints`: 403 (1004); timestamp not a number: 400 (1026);
  signature wrong or timestamp more than 5 minutes off: 400 (1025).
  canonical = METHOD \\n PATH \\n QUERY \\n BODY_SHA256 \\n TIMESTAMP, where PATH is "/api" +
  the path the service received, QUERY the raw query string ("" when none), BODY_SHA256 the
  `X-API-BODY-SHA256` header as sent ("" when absent; OPEX never compares it with the body)
  and TIMESTAMP the parsed number; the key is the secret's UTF-8 bytes (the Base64 text, not
  decoded); the signature is Base64 (standard alphabet, padded).
* Else `X-API-KEY` + `X-API-SECRET`: the legacy path; an unknown or disabled key, a wrong
  secret or a disallowed IP are all ignored; `allowedEndpoints` is not checked.

A valid key stands for its user exactly as that user's bearer token would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import jwt

from .domain.errors import Forbidden, InvalidSignature, InvalidTime

__all__ = [
    "ALLOWED_SKEW_MS",
    "AccessDenied",
    "ApiKeyRecord",
    "AuthenticationRequired",
    "Principal",
    "TokenService",
    "authenticate_api_key",
    "canonical_string",
    "parse_timestamp",
    "sign",
    "signed_path",
]

ALLOWED_SKEW_MS = 5 * 60 * 1000
_LONG = re.compile(r"[+-]?[0-9]+")
_LONG_MAX = 2**63 - 1


class AuthenticationRequired(Exception):
    """Spring Security's 401: no (valid) credential on a protected route. Empty body."""


class AccessDenied(Exception):
    """Spring Security's 403: authenticated, but without the route's authority. Empty body."""


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    """The user's OPEX uuid (the token's `sub`)."""
    username: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(slots=True)
class ApiKeyRecord:
    key_id: str
    secret: str
    user: str
    label: str | None = None
    allowed_ips: frozenset[str] | None = None
    allowed_endpoints: frozenset[str] | None = None
    enabled: bool = True
    created_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)


def canonical_string(method: str, path: str, query: str, body_sha256: str, timestamp: int) -> str:
    return f"{method.upper()}\n{path}\n{query}\n{body_sha256}\n{timestamp}"


def sign(secret: str, canonical: str) -> str:
    """Base64(HMAC-SHA256(secret's UTF-8 bytes, canonical's UTF-8 bytes))."""
    digest = hmac.digest(secret.encode(), canonical.encode(), "sha256")
    return base64.b64encode(digest).decode("ascii")


def parse_timestamp(value: str) -> int | None:
    """Kotlin's `String.toLongOrNull()`: an optional sign and decimal digits, in Long range."""
    if not _LONG.fullmatch(value):
        return None
    number = int(value)
    return number if -(2**63) <= number <= _LONG_MAX else None


def signed_path(raw_path: str) -> str:
    """The PATH OPEX signs: "/api" + the path its api service receives. The sandbox serves
    every route at both `/x` and `/api/x`; either way the signed path is `/api/x`."""
    if raw_path == "/api" or raw_path.startswith("/api/"):
        return raw_path
    return "/api" + raw_path


def authenticate_api_key(
    header: Callable[[str], str | None],
    *,
    method: str,
    path: str,
    query: str,
    client_ip: str | None,
    keys: Mapping[str, ApiKeyRecord],
    now_ms: int,
) -> ApiKeyRecord | None:
    """The key a request authenticates with, or None (no key, or one OPEX ignores). Raises
    `Forbidden` (1004), `InvalidTime` (1026) or `InvalidSignature` (1025). `path` is the
    signed path (`signed_path`), `query` the raw query string."""
    key_id = header("x-api-key")
    if not key_id or not key_id.strip():
        return None
    signature = header("x-api-signature")
    ts_header = header("x-api-timestamp")
    if signature and signature.strip() and ts_header and ts_header.strip():
        entry = keys.get(key_id)
        if entry is None or not entry.enabled:
            return None
        if entry.allowed_ips and (client_ip is None or client_ip not in entry.allowed_ips):
            raise Forbidden("API key used from a disallowed IP")
        if entry.allowed_endpoints and path not in entry.allowed_endpoints:
            raise Forbidden("API key used on a disallowed endpoint")
        ts = parse_timestamp(ts_header)
        if ts is None:
            raise InvalidTime("X-API-TIMESTAMP is not a number")
        if abs(now_ms - ts) > ALLOWED_SKEW_MS:
            raise InvalidSignature("X-API-TIMESTAMP is more than 5 minutes off")
        expected = sign(
            entry.secret,
            canonical_string(method, path, query, header("x-api-body-sha256") or "", ts),
        )
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise InvalidSignature("Invalid signature")
        return entry
    secret = header("x-api-secret")
    if not secret:
        return None
    entry = keys.get(key_id)
    if entry is None or not entry.enabled:
        return None
    if entry.allowed_ips and (client_ip is None or client_ip not in entry.allowed_ips):
        return None
    if not hmac.compare_digest(secret.encode(), entry.secret.encode()):
        return None
    return entry


class TokenService:
    """Signs and verifies the sandbox's access and refresh tokens (HS256 JWTs)."""

    ISSUER = "opex-sandbox"

    def __init__(
        self,
        key: str,
        *,
        lifetime_s: int = 3600,
        refresh_lifetime_s: int = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.lifetime_s = lifetime_s
        self.refresh_lifetime_s = refresh_lifetime_s
        self._clock = clock
        self._cache: dict[str, tuple[Principal, float]] = {}

    def issue(self, user: str, username: str, roles: Collection[str]) -> dict[str, object]:
        """OPEX's `Token` (Keycloak's token answer)."""
        now = int(self._clock())
        session = hashlib.sha256(f"{user}:{now}:{time.perf_counter_ns()}".encode()).hexdigest()
        claims = {
            "sub": user,
            "username": username,
            "preferred_username": username,
            "roles": sorted(roles),
            "permissions": ["order:write"],
            "iat": now,
            "exp": now + self.lifetime_s,
            "iss": self.ISSUER,
            "typ": "Bearer",
            "sid": session[:32],
        }
        refresh = {
            "sub": user,
            "iat": now,
            "exp": now + self.refresh_lifetime_s,
            "iss": self.ISSUER,
            "typ": "Refresh",
            "sid": session[:32],
        }
        return {
            "access_token": jwt.encode(claims, self._key, algorithm="HS256"),
            "expires_in": self.lifetime_s,
            "refresh_expires_in": self.refresh_lifetime_s,
            "refresh_token": jwt.encode(refresh, self._key, algorithm="HS256"),
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": session[:32],
            "scope": "openid profile email",
        }

    def _decode(self, token: str, typ: str) -> dict[str, object] | None:
        """Claims of a token this service signed, of type `typ`, unexpired by its clock."""
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=self.ISSUER,
                options={
                    "require": ["sub", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock():
            return None
        if claims.get("typ") != typ or not isinstance(claims.get("sub"), str):
            return None
        return claims

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unexpired access token; None otherwise."""
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            del self._cache[token]
            return None
        claims = self._decode(token, "Bearer")
        if claims is None:
            return None
        roles = claims.get("roles")
        principal = Principal(
            user=str(claims["sub"]),
            username=str(claims.get("username") or ""),
            roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        )
        exp = claims["exp"]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (principal, float(exp) if isinstance(exp, int | float) else now)
        return principal

    def verify_refresh(self, token: str) -> str | None:
        """The user of a valid refresh token; None otherwise."""
        claims = self._decode(token, "Refresh")
        return None if claims is None else str(claims["sub"])
