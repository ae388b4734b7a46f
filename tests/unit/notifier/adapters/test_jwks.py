from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.notifier.adapters.jwks import JwksKeys
from services.notifier.domain.auth import KeyUnavailable, UnknownKey

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    return {"keys": [jwk]}


def token(kid: str) -> str:
    return jwt.encode(
        {"sub": "1", "exp": int(time.time()) + 60}, KEY, algorithm="RS256", headers={"kid": kid}
    )


async def test_key_for_when_kid_published_then_public_key_and_set_cached() -> None:
    keys = JwksKeys("http://127.0.0.1:9/jwks.json")
    fetches = []

    def fetch() -> Any:
        fetches.append(1)
        return jwks()

    keys._client.fetch_data = fetch  # type: ignore[method-assign]
    first = await keys.key_for(token("k1"))
    await keys.key_for(token("k1"))
    assert first.public_numbers() == KEY.public_key().public_numbers()
    assert len(fetches) == 1


async def test_key_for_when_kid_unknown_then_unknown_key() -> None:
    keys = JwksKeys("http://127.0.0.1:9/jwks.json")
    keys._client.fetch_data = jwks  # type: ignore[method-assign]
    with pytest.raises(UnknownKey):
        await keys.key_for(token("nope"))


async def test_key_for_when_endpoint_unreachable_then_unavailable() -> None:
    keys = JwksKeys("http://127.0.0.1:9/jwks.json", timeout_s=0.5)
    with pytest.raises(KeyUnavailable):
        await keys.key_for(token("k1"))
