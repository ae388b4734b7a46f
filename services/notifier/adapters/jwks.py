"""Public keys from the platform's JWKS endpoint (``JWT_JWKS_URL``).

PyJWT's `PyJWKClient` caches the key set (``JWT_JWKS_CACHE_SECONDS``) and refetches it
for an unknown ``kid`` at most once per cooldown, so a flood of forged ``kid`` values
cannot hammer the endpoint. Its HTTP call is blocking, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

from services.notifier.domain.auth import KeyUnavailable, UnknownKey

__all__ = ["JwksKeys"]


class JwksKeys:
    """A `KeyResolver` over a JWKS URL."""

    def __init__(self, url: str, *, cache_s: float = 300, timeout_s: float = 5.0) -> None:
        self._client = jwt.PyJWKClient(
            url, cache_keys=False, cache_jwk_set=True, lifespan=cache_s, timeout=timeout_s
        )

    async def key_for(self, token: str) -> Any:
        try:
            signing_key = await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as error:
            raise KeyUnavailable(str(error)) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError, jwt.PyJWKError) as error:
            raise UnknownKey(str(error)) from None
        return signing_key.key
