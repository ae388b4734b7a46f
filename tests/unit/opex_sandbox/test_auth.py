"""API-key verification (OPEX's APIKeyFilterImpl + HmacVerifier) and the sandbox's tokens.
Signatures are computed here independently of the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac

import jwt
import pytest

from services.opex_sandbox.auth import (
    ApiKeyRecord,
    TokenService,
    authenticate_api_key,
    canonical_string,
    parse_timestamp,
    sign,
    signed_path,
)
from services.opex_sandbox.domain.errors import Forbidden, InvalidSignature, InvalidTime

NOW = 1_700_000_000_000
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="  # a Base64 text, used as is (not decoded)
KEY = ApiKeyRecord(key_id="k1", secret=SECRET, user="u-1")


def expected_signature(method: str, path: str, query: str, body_hash: str, ts: int) -> str:
    message = f"{method}\n{path}\n{query}\n{body_hash}\n{ts}".encode()
    return base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()


def check(
    headers: dict[str, str],
    *,
    key: ApiKeyRecord = KEY,
    method: str = "POST",
    path: str = "/api/v3/order",
    query: str = "symbol=BTCUSDT&side=BUY",
    ip: str | None = "127.0.0.1",
    now: int = NOW,
) -> ApiKeyRecord | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    return authenticate_api_key(
        lowered.get,
        method=method,
        path=path,
        query=query,
        client_ip=ip,
        keys={key.key_id: key},
        now_ms=now,
    )


def signed(
    ts: int = NOW, body_hash: str = "", overrides: dict[str, str] | None = None
) -> dict[str, str]:
    headers = {
        "X-API-KEY": "k1",
        "X-API-TIMESTAMP": str(ts),
        "X-API-SIGNATURE": expected_signature(
            "POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY", body_hash, ts
        ),
    }
    if body_hash:
        headers["X-API-BODY-SHA256"] = body_hash
    return headers | (overrides or {})


def test_sign_when_computed_independently_then_equal() -> None:
    canonical = canonical_string("get", "/api/v3/openOrders", "symbol=BTCUSDT", "", NOW)
    assert canonical == f"GET\n/api/v3/openOrders\nsymbol=BTCUSDT\n\n{NOW}"
    assert sign(SECRET, canonical) == expected_signature(
        "GET", "/api/v3/openOrders", "symbol=BTCUSDT", "", NOW
    )


def test_authenticate_when_signature_valid_then_key_returned() -> None:
    assert check(signed()) is KEY


def test_authenticate_when_body_hash_header_sent_then_it_is_signed_as_given() -> None:
    digest = hashlib.sha256(b"whatever").hexdigest()
    assert check(signed(body_hash=digest)) is KEY
    # OPEX never compares the header with the body; leaving it out of the signature fails
    headers = signed(body_hash=digest)
    headers["X-API-SIGNATURE"] = signed()["X-API-SIGNATURE"]
    with pytest.raises(InvalidSignature):
        check(headers)


@pytest.mark.parametrize("skew_ms", [-300_000, 0, 300_000])
def test_authenticate_when_timestamp_within_five_minutes_then_accepted(skew_ms: int) -> None:
    assert check(signed(NOW + skew_ms)) is KEY


@pytest.mark.parametrize("skew_ms", [-300_001, 300_001, 3_600_000])
def test_authenticate_when_timestamp_over_five_minutes_off_then_1025(skew_ms: int) -> None:
    with pytest.raises(InvalidSignature) as err:
        check(signed(NOW + skew_ms))
    assert (err.value.code, err.value.http_status) == (1025, 400)


def test_authenticate_when_signature_wrong_then_1025() -> None:
    with pytest.raises(InvalidSignature):
        check(signed(overrides={"X-API-SIGNATURE": "AAAA"}))


def test_authenticate_when_path_signed_without_api_prefix_then_1025() -> None:
    headers = signed()
    headers["X-API-SIGNATURE"] = expected_signature(
        "POST", "/v3/order", "symbol=BTCUSDT&side=BUY", "", NOW
    )
    with pytest.raises(InvalidSignature):
        check(headers)


@pytest.mark.parametrize("value", ["abc", "1.5", "1_000", " 12", "", "9223372036854775808"])
def test_authenticate_when_timestamp_not_a_long_then_1026_or_ignored(value: str) -> None:
    headers = signed(overrides={"X-API-TIMESTAMP": value})
    if value.strip():
        with pytest.raises(InvalidTime) as err:
            check(headers)
        assert (err.value.code, err.value.http_status) == (1026, 400)
    else:  # a blank header: not the signed path at all, and no legacy secret either
        assert check(headers) is None


def test_authenticate_when_key_unknown_or_disabled_then_ignored() -> None:
    assert check(signed(overrides={"X-API-KEY": "nope"})) is None
    disabled = ApiKeyRecord(key_id="k1", secret=SECRET, user="u-1", enabled=False)
    assert check(signed(), key=disabled) is None


def test_authenticate_when_ip_not_allowed_then_1004() -> None:
    key = ApiKeyRecord(key_id="k1", secret=SECRET, user="u-1", allowed_ips=frozenset({"10.0.0.1"}))
    with pytest.raises(Forbidden) as err:
        check(signed(), key=key)
    assert (err.value.code, err.value.http_status) == (1004, 403)
    assert check(signed(), key=key, ip="10.0.0.1") is key


def test_authenticate_when_endpoint_not_allowed_then_1004_even_before_the_timestamp() -> None:
    key = ApiKeyRecord(
        key_id="k1", secret=SECRET, user="u-1", allowed_endpoints=frozenset({"/api/v3/order"})
    )
    assert check(signed(), key=key) is key
    with pytest.raises(Forbidden):
        check(signed(overrides={"X-API-TIMESTAMP": "abc"}), key=key, path="/api/v3/account")


def test_authenticate_when_legacy_secret_then_key_or_ignored() -> None:
    assert check({"X-API-KEY": "k1", "X-API-SECRET": SECRET}) is KEY
    assert check({"X-API-KEY": "k1", "X-API-SECRET": "wrong"}) is None
    limited = ApiKeyRecord(
        key_id="k1", secret=SECRET, user="u-1", allowed_ips=frozenset({"1.2.3.4"})
    )
    assert check({"X-API-KEY": "k1", "X-API-SECRET": SECRET}, key=limited) is None
    only_order = ApiKeyRecord(
        key_id="k1", secret=SECRET, user="u-1", allowed_endpoints=frozenset({"/api/v3/order"})
    )  # the legacy path does not look at allowed endpoints
    assert (
        check({"X-API-KEY": "k1", "X-API-SECRET": SECRET}, key=only_order, path="/api/x")
        is not None
    )


def test_authenticate_when_no_key_header_then_none() -> None:
    assert check({}) is None
    assert check({"X-API-SIGNATURE": "x", "X-API-TIMESTAMP": str(NOW)}) is None


def test_signed_path_when_with_or_without_api_prefix_then_api_prefixed() -> None:
    assert signed_path("/v3/order") == "/api/v3/order"
    assert signed_path("/api/v3/order") == "/api/v3/order"
    assert signed_path("/apiary") == "/api/apiary"


def test_parse_timestamp_when_kotlin_long_syntax_then_parsed() -> None:
    assert parse_timestamp("+12") == 12
    assert parse_timestamp("-5") == -5
    assert parse_timestamp("0012") == 12
    assert parse_timestamp("1e3") is None


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_tokens_when_issued_then_verified_with_sub_and_roles() -> None:
    clock = FakeClock(1_700_000_000)
    tokens = TokenService("k" * 32, lifetime_s=60, clock=clock)
    answer = tokens.issue("u-1", "alice@example.com", {"admin"})
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 60
    access = answer["access_token"]
    assert isinstance(access, str)
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["sub"] == "u-1"
    principal = tokens.verify(access)
    assert principal is not None
    assert (principal.user, principal.username, principal.is_admin) == (
        "u-1",
        "alice@example.com",
        True,
    )


def test_tokens_when_expired_tampered_or_foreign_then_rejected() -> None:
    clock = FakeClock(1_700_000_000)
    tokens = TokenService("k" * 32, lifetime_s=60, clock=clock)
    access = tokens.issue("u-1", "a@b.co", set())["access_token"]
    refresh = tokens.issue("u-1", "a@b.co", set())["refresh_token"]
    assert isinstance(access, str)
    assert isinstance(refresh, str)
    forged = jwt.encode({"sub": "u-1", "iat": 0, "exp": 2**40}, "other-key" * 4, algorithm="HS256")
    assert tokens.verify(forged) is None
    assert tokens.verify(access[:-2] + "xx") is None
    assert tokens.verify(refresh) is None  # a refresh token is not an access token
    assert tokens.verify_refresh(refresh) == "u-1"
    assert tokens.verify(access) is not None
    clock.now += 61
    assert tokens.verify(access) is None


def test_token_cache_when_token_expires_then_refused_as_the_full_check_would() -> None:
    clock = FakeClock(1_700_000_000)
    tokens = TokenService("k" * 32, lifetime_s=60, clock=clock)
    access = tokens.issue("u-1", "a@b.co", set())["access_token"]
    assert isinstance(access, str)
    assert tokens.verify(access) is not None  # verified in full, then cached
    assert tokens.verify(access) is not None  # from the cache
    clock.now += 59.999
    assert tokens.verify(access) is not None
    clock.now += 0.001  # exp <= now: the full check refuses it, so must the cache
    assert tokens._decode(access, "Bearer") is None
    assert tokens.verify(access) is None
    assert tokens.verify(access) is None  # and keeps refusing it
    clock.now -= 1  # the cache only ever answers what the full check answers
    assert tokens.verify(access) is not None
    assert tokens._decode(access, "Bearer") is not None


def test_token_cache_when_tampered_copy_of_a_cached_token_then_refused() -> None:
    tokens = TokenService("k" * 32, lifetime_s=60, clock=FakeClock(1_700_000_000))
    access = tokens.issue("u-1", "a@b.co", set())["access_token"]
    assert isinstance(access, str)
    assert tokens.verify(access) is not None
    assert tokens.verify(access + "x") is None
    assert tokens.verify(access[:-1]) is None
