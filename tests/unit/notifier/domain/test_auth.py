from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.notifier.domain.auth import (
    AuthError,
    AuthFailure,
    CachingVerifier,
    Identity,
    KeyUnavailable,
    TokenVerifier,
    UnknownKey,
)

SECRET = "unit-secret-0123456789abcdef0123456789"
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ROGUE = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Keys:
    """A key resolver over a fixed set of public keys by kid."""

    def __init__(self, *, unavailable: bool = False) -> None:
        self.unavailable = unavailable
        self.keys: dict[str, Any] = {"rsa-1": RSA.public_key(), "ec-1": EC.public_key()}

    async def key_for(self, token: str) -> Any:
        if self.unavailable:
            raise KeyUnavailable("down")
        kid = jwt.get_unverified_header(token).get("kid")
        if kid not in self.keys:
            raise UnknownKey(str(kid))
        return self.keys[kid]


def claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sub": "42",
        "exp": int(time.time()) + 300,
        "aud": "opex-bridge",
        "iss": "opex-platform",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def hs(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def verifier(**kwargs: Any) -> TokenVerifier:
    options: dict[str, Any] = {
        "hs256_secret": SECRET,
        "keys": Keys(),
        "audience": "opex-bridge",
        "issuer": "opex-platform",
    }
    options.update(kwargs)
    return TokenVerifier(**options)


async def refused(token: str, **kwargs: Any) -> AuthError:
    with pytest.raises(AuthError) as error:
        await verifier(**kwargs).verify(token)
    if token:
        assert token not in error.value.message
    return error.value


async def test_verify_when_valid_hs256_then_identity_with_expiry() -> None:
    exp = int(time.time()) + 300
    identity = await verifier().verify(hs(exp=exp))
    assert identity.user_id == "42"
    assert int(identity.expires_at.timestamp()) == exp


@pytest.mark.parametrize(("alg", "key", "kid"), [("RS256", RSA, "rsa-1"), ("ES256", EC, "ec-1")])
async def test_verify_when_valid_asymmetric_from_key_set_then_identity(
    alg: str, key: Any, kid: str
) -> None:
    token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
    assert (await verifier().verify(token)).user_id == "42"


async def test_verify_when_alg_none_then_invalid() -> None:
    token = jwt.encode(claims(), "", algorithm="none")
    assert (await refused(token)).failure is AuthFailure.INVALID


async def test_verify_when_alg_none_with_forged_header_then_invalid() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    assert (await refused(f"{header}.{body}.")).failure is AuthFailure.INVALID


async def test_verify_when_wrong_secret_then_invalid() -> None:
    token = jwt.encode(claims(), "another-secret-0123456789abcdef0123", algorithm="HS256")
    error = await refused(token)
    assert (error.failure, error.message) == (AuthFailure.INVALID, "bad signature")


async def test_verify_when_signed_by_a_key_outside_the_set_then_invalid() -> None:
    token = jwt.encode(claims(), ROGUE, algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await refused(token)).message == "bad signature"


async def test_verify_when_unknown_kid_then_invalid() -> None:
    token = jwt.encode(claims(), ROGUE, algorithm="RS256", headers={"kid": "rogue"})
    assert (await refused(token)).message == "unknown signing key"


async def test_verify_when_hs256_signed_with_the_public_key_then_invalid() -> None:
    """Algorithm confusion: an HS256 token whose "secret" is the RSA public key."""
    pem = RSA.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(
        hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    token = b".".join([header, body, signature]).decode()
    assert (await refused(token)).failure is AuthFailure.INVALID
    # and with JWKS only, HS256 is not accepted at all
    assert (await refused(hs(), hs256_secret=None)).message == "algorithm not accepted"


async def test_verify_when_expired_then_expired() -> None:
    error = await refused(hs(exp=int(time.time()) - 10))
    assert error.failure is AuthFailure.EXPIRED


async def test_verify_when_expired_within_leeway_then_accepted() -> None:
    identity = await verifier(leeway_s=60).verify(hs(exp=int(time.time()) - 10))
    assert identity.user_id == "42"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "someone-else"}, "wrong issuer"),
        ({"aud": None}, "missing claim aud"),
        ({"iss": None}, "missing claim iss"),
        ({"exp": None}, "missing claim exp"),
        ({"sub": None}, "missing claim sub"),
        ({"sub": "has space"}, "sub is not a user id"),
        ({"sub": "x" * 65}, "sub is not a user id"),
        ({"nbf": "in ten minutes"}, "invalid token"),
    ],
)
async def test_verify_when_claims_wrong_then_invalid(
    overrides: dict[str, Any], message: str
) -> None:
    if overrides.get("nbf") == "in ten minutes":  # computed now, not at collection
        overrides = {"nbf": int(time.time()) + 600}
    error = await refused(hs(**overrides))
    assert (error.failure, error.message) == (AuthFailure.INVALID, message)


async def test_verify_when_audience_not_configured_then_aud_not_required() -> None:
    plain = TokenVerifier(hs256_secret=SECRET)
    assert (await plain.verify(hs(aud=None, iss=None))).user_id == "42"
    assert (await plain.verify(hs(aud="whatever"))).user_id == "42"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 500, "eyJhbGciOiJIUzI1NiJ9.e30"])
async def test_verify_when_malformed_then_invalid(token: str) -> None:
    assert (await refused(token)).failure is AuthFailure.INVALID


async def test_verify_when_key_set_unavailable_then_unavailable_not_invalid() -> None:
    token = jwt.encode(claims(), RSA, algorithm="RS256", headers={"kid": "rsa-1"})
    error = await refused(token, keys=Keys(unavailable=True))
    assert error.failure is AuthFailure.UNAVAILABLE


def test_verifier_when_no_key_source_then_refuses_to_build() -> None:
    with pytest.raises(ValueError, match="secret or a key resolver"):
        TokenVerifier()
    assert TokenVerifier(hs256_secret="s").algorithms == {"HS256"}
    assert verifier().algorithms == {"HS256", "RS256", "ES256"}


class CountingVerifier:
    def __init__(self, expires_at: float) -> None:
        self.calls = 0
        self.expires_at = expires_at

    async def verify(self, token: str) -> Identity:
        self.calls += 1
        if token.startswith("bad"):
            raise AuthError(AuthFailure.INVALID, "bad signature")
        return Identity("u-" + token, datetime.fromtimestamp(self.expires_at, UTC))


async def test_caching_verifier_when_same_token_then_verified_once_until_exp() -> None:
    now = [1000.0]
    inner = CountingVerifier(expires_at=1030.0)
    cached = CachingVerifier(inner, max_age_s=60, clock=lambda: now[0])
    assert (await cached.verify("t")).user_id == "u-t"
    assert (await cached.verify("t")).user_id == "u-t"
    assert inner.calls == 1
    now[0] = 1030.0  # at exp: verified again (the inner verifier decides, with its leeway)
    await cached.verify("t")
    assert inner.calls == 2


async def test_caching_verifier_when_older_than_max_age_then_verified_again() -> None:
    now = [1000.0]
    inner = CountingVerifier(expires_at=10_000.0)
    cached = CachingVerifier(inner, max_age_s=60, clock=lambda: now[0])
    await cached.verify("t")
    now[0] = 1059.0
    await cached.verify("t")
    assert inner.calls == 1
    now[0] = 1060.0
    await cached.verify("t")
    assert inner.calls == 2


async def test_caching_verifier_when_refused_then_not_remembered() -> None:
    inner = CountingVerifier(expires_at=10_000.0)
    cached = CachingVerifier(inner, clock=lambda: 1000.0)
    for _ in range(2):
        with pytest.raises(AuthError):
            await cached.verify("bad-token")
    assert inner.calls == 2
    assert len(cached) == 0


async def test_caching_verifier_when_full_then_least_recently_used_forgotten() -> None:
    inner = CountingVerifier(expires_at=10_000.0)
    cached = CachingVerifier(inner, max_entries=2, clock=lambda: 1000.0)
    await cached.verify("a")
    await cached.verify("b")
    await cached.verify("a")  # a is now the most recent
    await cached.verify("c")  # b goes
    assert len(cached) == 2
    calls = inner.calls
    await cached.verify("a")
    assert inner.calls == calls
    await cached.verify("b")
    assert inner.calls == calls + 1


async def test_caching_verifier_when_disabled_then_every_token_verified() -> None:
    inner = CountingVerifier(expires_at=10_000.0)
    cached = CachingVerifier(inner, max_entries=0, clock=lambda: 1000.0)
    await cached.verify("a")
    await cached.verify("a")
    assert inner.calls == 2


async def test_caching_verifier_when_token_already_expired_then_not_remembered() -> None:
    inner = CountingVerifier(expires_at=900.0)  # an inner verifier with leeway let it pass
    cached = CachingVerifier(inner, clock=lambda: 1000.0)
    await cached.verify("a")
    assert len(cached) == 0
