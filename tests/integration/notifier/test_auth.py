"""Authentication with a real WebSocket client: every kind of refusal gets its close
code; tokens in the query or in a first ``auth`` frame; refresh in place; expiry;
limits. Tokens never reach a log line."""

from __future__ import annotations

import asyncio
import logging
import time

import jwt
import pytest

from tests.integration.notifier.helpers import (
    SECRET,
    Client,
    KeySet,
    Notifier,
    hs_token,
    none_token,
    unique,
)

pytestmark = pytest.mark.integration


async def close_code(notifier: Notifier, token: str | None, **query: str) -> int | None:
    client = await Client.open(notifier.ws_url(token=token, **query))
    return await client.closed_with()


async def test_connect_when_token_valid_in_query_then_authenticated_and_subscribed(
    notifier: Notifier,
) -> None:
    user = unique("u")
    client = await Client.open(notifier.ws_url(token=hs_token(user), channels="orders"))
    try:
        authenticated = await client.expect("authenticated")
        subscribed = await client.expect("subscribed")
    finally:
        await client.close()
    assert authenticated["data"]["user_id"] == user
    assert subscribed["data"]["channels"] == ["orders"]
    assert subscribed["data"]["seq"] == 0
    assert len(subscribed["data"]["epoch"]) == 12


async def test_connect_when_token_in_first_auth_frame_then_authenticated(
    notifier: Notifier,
) -> None:
    user = unique("u")
    client = await Client.open(notifier.ws_url())
    try:
        await client.send({"type": "auth", "token": hs_token(user)})
        assert (await client.expect("authenticated"))["data"]["user_id"] == user
        await client.send({"type": "subscribe", "channels": ["positions", "account"]})
        subscribed = await client.expect("subscribed")
        await client.send({"type": "ping", "id": 1})
        pong = await client.expect("pong")
    finally:
        await client.close()
    assert subscribed["data"]["channels"] == ["positions", "account"]
    assert pong["data"] == {"id": 1, "seq": 0, "epoch": subscribed["data"]["epoch"]}


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda u: "not-a-jwt", 4401),
        (lambda u: none_token(u), 4401),
        (lambda u: hs_token(u, secret="wrong-secret-0123456789abcdef0123"), 4401),
        (lambda u: hs_token(u, claims={"aud": "someone-else"}), 4401),
        (lambda u: hs_token(u, claims={"iss": "someone-else"}), 4401),
        (lambda u: hs_token(u, drop=["exp"]), 4401),
        (lambda u: hs_token(u, drop=["sub"]), 4401),
        (lambda u: hs_token(u, claims={"exp": int(time.time()) - 30}), 4402),
        (
            lambda u: jwt.encode(
                {"sub": u, "exp": int(time.time()) + 60}, SECRET * 2, algorithm="HS512"
            ),
            4401,
        ),
    ],
    ids=[
        "malformed",
        "alg-none",
        "wrong-secret",
        "wrong-aud",
        "wrong-iss",
        "no-exp",
        "no-sub",
        "expired",
        "hs512",
    ],
)
async def test_connect_when_token_refused_then_close_code(
    notifier: Notifier, make_token: object, code: int
) -> None:
    token = make_token(unique("u"))  # type: ignore[operator]
    assert await close_code(notifier, token, channels="orders") == code


async def test_connect_when_token_refused_in_auth_frame_then_same_close_code(
    notifier: Notifier,
) -> None:
    client = await Client.open(notifier.ws_url())
    await client.send({"type": "auth", "token": none_token(unique("u"))})
    assert await client.closed_with() == 4401


async def test_connect_when_jwks_keys_then_rs256_and_es256_accepted_others_refused(
    notifier: Notifier, keys: KeySet
) -> None:
    for alg in ("RS256", "ES256"):
        user = unique(alg)
        client = await Client.open(notifier.ws_url(token=keys.token(user, alg=alg)))
        try:
            assert (await client.expect("authenticated"))["data"]["user_id"] == user
        finally:
            await client.close()
    assert await close_code(notifier, keys.token(unique("u"), rogue=True)) == 4401
    assert await close_code(notifier, keys.token(unique("u"), kid="unknown", rogue=True)) == 4401


async def test_connect_when_no_auth_in_time_then_4408(notifier: Notifier) -> None:
    started = time.monotonic()
    assert await close_code(notifier, None) == 4408
    assert time.monotonic() - started < 5


async def test_connect_when_first_frame_is_not_auth_then_4400(notifier: Notifier) -> None:
    client = await Client.open(notifier.ws_url())
    await client.send({"type": "subscribe", "channels": ["orders"]})
    assert await client.closed_with() == 4400


async def test_frame_when_larger_than_limit_then_4413(notifier: Notifier) -> None:
    client = await Client.open(notifier.ws_url(token=hs_token(unique("u"))))
    await client.expect("authenticated")
    await client.ws.send('{"type": "ping", "id": "' + "x" * 5000 + '"}')
    assert await client.closed_with() == 4413


async def test_frame_when_invalid_then_error_frame_and_connection_stays(notifier: Notifier) -> None:
    client = await Client.open(notifier.ws_url(token=hs_token(unique("u"))))
    try:
        await client.expect("authenticated")
        await client.ws.send("{nope")
        malformed = await client.expect("error")
        await client.send({"type": "subscribe", "channels": ["trades"]})
        unknown = await client.expect("error")
        await client.send({"type": "ping"})
        await client.expect("pong")
    finally:
        await client.close()
    assert malformed["data"]["code"] == "bad_request"
    assert unknown["data"]["code"] == "unknown_channel"


async def test_connections_when_over_per_user_limit_then_4429(notifier: Notifier) -> None:
    user = unique("u")
    held = [await Client.open(notifier.ws_url(token=hs_token(user))) for _ in range(3)]
    try:
        for client in held:
            await client.expect("authenticated")
        assert await close_code(notifier, hs_token(user)) == 4429
    finally:
        for client in held:
            await client.close()


async def test_token_when_expiring_then_told_to_refresh_then_closed_4402(
    notifier: Notifier,
) -> None:
    client = await Client.open(notifier.ws_url(token=hs_token(unique("u"), ttl=2)))
    await client.expect("authenticated")
    notice = await client.expect("token_expiring")
    assert notice["data"]["close_code"] == 4402
    assert await client.closed_with(timeout=5) == 4402


async def test_token_when_refreshed_in_place_then_connection_outlives_first_token(
    notifier: Notifier,
) -> None:
    user = unique("u")
    client = await Client.open(notifier.ws_url(token=hs_token(user, ttl=2)))
    try:
        await client.expect("authenticated")
        await client.expect("token_expiring")
        await client.send({"type": "auth", "token": hs_token(user, ttl=300)})
        refreshed = await client.expect("authenticated")
        await asyncio.sleep(2.5)
        await client.send({"type": "ping", "id": "still-here"})
        assert (await client.expect("pong"))["data"]["id"] == "still-here"
    finally:
        await client.close()
    assert refreshed["data"]["user_id"] == user


async def test_token_when_refreshed_with_another_users_token_then_4403(notifier: Notifier) -> None:
    client = await Client.open(notifier.ws_url(token=hs_token(unique("u"))))
    await client.expect("authenticated")
    await client.send({"type": "auth", "token": hs_token(unique("intruder"))})
    assert await client.closed_with() == 4403


async def test_rest_when_token_missing_or_forged_then_401(notifier: Notifier) -> None:
    async with notifier.http() as http:
        missing = await http.get("/api/trading/orders")
        forged = await http.get(
            "/api/trading/positions", headers={"Authorization": f"Bearer {none_token('x')}"}
        )
        good = await http.get(
            "/api/trading/account", headers={"Authorization": f"Bearer {hs_token(unique('u'))}"}
        )
    assert (missing.status_code, forged.status_code, good.status_code) == (401, 401, 200)


async def test_logs_when_tokens_used_then_no_token_in_any_line(
    notifier: Notifier, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = hs_token(unique("u")), hs_token(unique("u"), secret="x" * 32)
    client = await Client.open(notifier.ws_url(token=good, channels="orders"))
    await client.expect("subscribed")
    await client.close()
    await close_code(notifier, bad)
    async with notifier.http() as http:
        await http.get("/api/trading/orders", headers={"Authorization": f"Bearer {bad}"})
    await asyncio.sleep(0.1)
    out = capsys.readouterr()
    client_side = ("websockets.client", "httpx", "httpcore")  # this test's own clients
    server_lines = [
        record.getMessage() for record in caplog.records if not record.name.startswith(client_side)
    ]
    text = "\n".join(server_lines) + out.out + out.err
    assert "auth_refused" in text
    assert any("/ws?token=[redacted]" in line for line in server_lines)
    for token in (good, bad):
        assert token not in text
        assert token.split(".")[2] not in text


async def test_health_and_metrics_when_running_then_checks_and_counters(notifier: Notifier) -> None:
    async with notifier.http() as http:
        health = await http.get("/health")
        metrics = await http.get("/metrics")
    assert health.status_code == 200
    assert health.json()["checks"] == {"database": True, "kafka": True}
    for name in (
        "notifier_connections",
        "notifier_messages_pushed_total",
        "notifier_disconnects_total",
        "notifier_kafka_lag_seconds",
        "notifier_messages_dropped_total",
    ):
        assert name in metrics.text
