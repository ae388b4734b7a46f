"""Who a token belongs to: JWT validation (README.md, Authentication).

HS256 with the shared secret, or RS256 / ES256 with a key from the platform's JWKS
(`KeyResolver`, adapters/jwks.py). ``exp`` and ``sub`` are required; ``aud`` and
``iss`` are required and checked when configured. Anything else is refused: ``alg:
none``, an algorithm without a configured key source (no HS256 token is checked against
a public key, or the reverse), a wrong key or signature, a malformed token.

The token itself never leaves this module in an error message or a log line.
"""

from __future__ import annotations

import enum
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from jwt.types import Options

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "AuthError",
    "AuthFailure",
    "CachingVerifier",
    "Identity",
    "KeyResolver",
    "KeyUnavailable",
    "TokenVerifier",
    "UnknownKey",
    "Verifier",
]

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
_USER_ID = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)


class AuthFailure(enum.StrEnum):
    INVALID = "invalid_token"
    EXPIRED = "token_expired"
    UNAVAILABLE = "unavailable"


class AuthError(Exception):
    """A token was refused (``failure`` says how); the message never quotes it."""

    def __init__(self, failure: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


class UnknownKey(Exception):
    """The key set has no key for the token's ``kid``."""


class KeyUnavailable(Exception):
    """The key set could not be fetched (not the client's fault: retry later)."""


class KeyResolver(Protocol):
    """Public keys by the token's header (``kid``), e.g. from a JWKS endpoint."""

    async def key_for(self, token: str) -> Any:
        """The verification key for ``token``; `UnknownKey` or `KeyUnavailable`."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: the token's ``sub`` and when the token expires."""

    user_id: str
    expires_at: datetime


class TokenVerifier:
    """Validates tokens against the configured key sources and claims."""

    def __init__(
        self,
        *,
        hs256_secret: str | None = None,
        keys: KeyResolver | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 0.0,
    ) -> None:
        if hs256_secret is None and keys is None:
            raise ValueError("a TokenVerifier needs a secret or a key resolver")
        self._secret = hs256_secret
        self._keys = keys
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_s
        required = ["exp", "sub"]
        if audience is not None:
            required.append("aud")
        if issuer is not None:
            required.append("iss")
        self._options: Options = {
            "require": required,
            "verify_aud": audience is not None,
        }

    @property
    def algorithms(self) -> frozenset[str]:
        algorithms = set(ASYMMETRIC_ALGORITHMS) if self._keys is not None else set()
        if self._secret is not None:
            algorithms.add("HS256")
        return frozenset(algorithms)

    async def verify(self, token: str) -> Identity:
        """The identity in ``token``, or `AuthError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError(AuthFailure.INVALID, "malformed token") from None
        algorithm = header.get("alg")
        key = await self._key(token, algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(AuthFailure.EXPIRED, "token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(AuthFailure.INVALID, "wrong audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError(AuthFailure.INVALID, "wrong issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(AuthFailure.INVALID, f"missing claim {error.claim}") from None
        except jwt.InvalidSignatureError:
            raise AuthError(AuthFailure.INVALID, "bad signature") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise AuthError(AuthFailure.INVALID, "invalid token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not _USER_ID.fullmatch(subject):
            raise AuthError(AuthFailure.INVALID, "sub is not a user id")
        expires = claims.get("exp")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise AuthError(AuthFailure.INVALID, "exp is not a number")
        return Identity(subject, datetime.fromtimestamp(expires, UTC))

    async def _key(self, token: str, algorithm: object) -> Any:
        if algorithm == "HS256" and self._secret is not None:
            return self._secret
        if algorithm in ASYMMETRIC_ALGORITHMS and self._keys is not None:
            try:
                return await self._keys.key_for(token)
            except UnknownKey:
                raise AuthError(AuthFailure.INVALID, "unknown signing key") from None
            except KeyUnavailable:
                raise AuthError(AuthFailure.UNAVAILABLE, "signing keys unavailable") from None
        raise AuthError(AuthFailure.INVALID, "algorithm not accepted")


class Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


class CachingVerifier:
    """`TokenVerifier` with a bounded memory of the tokens it accepted (a REST client
    sends the same token with every request; verifying a signature each time is most of
    an order's cost).

    Keyed by the whole token text, so a hit is exactly a token verified before. An entry
    lives until the token's ``exp`` (never past it: after ``exp`` the token is verified
    again, which refuses it or applies the leeway) and at most ``max_age_s``, so a
    signing key withdrawn from the key set stops being honoured within that time.
    Refusals are not remembered. Least recently used entries go first beyond
    ``max_entries``.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        max_entries: int = 10_000,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._max_entries = max_entries
        self._max_age = max_age_s
        self._clock = clock
        self._accepted: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accepted)

    async def verify(self, token: str) -> Identity:
        """The identity in ``token``, or `AuthError` (as the wrapped verifier)."""
        accepted = self._accepted
        hit = accepted.get(token)
        now = self._clock()
        if hit is not None:
            if now < hit[1]:
                accepted.move_to_end(token)
                return hit[0]
            del accepted[token]
        identity = await self._verifier.verify(token)
        if self._max_entries > 0:
            until = min(identity.expires_at.timestamp(), now + self._max_age)
            if now < until:
                accepted[token] = (identity, until)
                if len(accepted) > self._max_entries:
                    accepted.popitem(last=False)
        return identity
