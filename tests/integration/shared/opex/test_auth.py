"""Credentials the sandbox refuses, refused at the client as OPEX refuses them."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from shared.opex import (
    ApiKey,
    Bearer,
    LegacyApiKey,
    OpexBadSignature,
    OpexBadTimestamp,
    OpexClient,
    OpexForbidden,
    OpexUnauthenticated,
    Surface,
    system_clock,
)
from tests.integration.shared.opex.support import Sandbox, new_user, settings_for

SYMBOL = "BTC_USDT"
MINUTE_MS = 60_000


class RewriteHeaders(httpx.AsyncBaseTransport):
    """Changes headers after the client signed the request (what a broken proxy might do)."""

    def __init__(self, **headers: str) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._headers = headers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for name, value in self._headers.items():
            request.headers[name.replace("_", "-")] = value
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.mark.parametrize("surface", ["v3", "opex"])
async def test_wrong_signature_is_1025(opex: OpexClient, surface: Surface) -> None:
    user = await new_user(opex)
    forged = ApiKey(user.key.key, SecretStr("not-the-secret"))
    with pytest.raises(OpexBadSignature) as refused:
        await opex.using(surface).open_orders(forged, SYMBOL)
    assert (refused.value.code, refused.value.http_status) == (1025, 400)
    assert refused.value.name == "InvalidSignature"


@pytest.mark.parametrize("skew_ms", [-6 * MINUTE_MS, 6 * MINUTE_MS])
async def test_stale_timestamp_is_1025(sandbox: Sandbox, opex: OpexClient, skew_ms: int) -> None:
    user = await new_user(opex)
    async with OpexClient(settings_for(sandbox), clock=lambda: system_clock() + skew_ms) as skewed:
        with pytest.raises(OpexBadSignature) as refused:
            await skewed.account(user.key)
    assert refused.value.code == 1025


async def test_timestamp_within_five_minutes_is_accepted(
    sandbox: Sandbox, opex: OpexClient
) -> None:
    user = await new_user(opex, usdt=Decimal(5))
    async with OpexClient(
        settings_for(sandbox), clock=lambda: system_clock() - 4 * MINUTE_MS
    ) as skewed:
        assert (await skewed.account(user.key)).balance("USDT").free == 5


async def test_non_numeric_timestamp_is_1026(sandbox: Sandbox, opex: OpexClient) -> None:
    user = await new_user(opex)
    transport = RewriteHeaders(X_API_TIMESTAMP="soon")
    async with OpexClient(settings_for(sandbox), transport=transport) as broken:
        with pytest.raises(OpexBadTimestamp) as refused:
            await broken.account(user.key)
    assert (refused.value.code, refused.value.http_status) == (1026, 400)


async def test_key_outside_its_endpoints_is_1004(sandbox: Sandbox, opex: OpexClient) -> None:
    user = await new_user(opex, allowed_endpoints=["/api/v3/account"])
    await opex.account(user.key)  # the signed path is /api + the route
    with pytest.raises(OpexForbidden) as refused:
        await opex.open_orders(user.key, SYMBOL)
    assert (refused.value.code, refused.value.http_status) == (1004, 403)
    # the same through the proxy's /api, given either way
    for settings in (
        settings_for(sandbox, path_prefix="/api"),
        settings_for(sandbox, api_url=f"{sandbox.url}/api"),
    ):
        async with OpexClient(settings) as proxied:
            await proxied.account(user.key)
            with pytest.raises(OpexForbidden):
                await proxied.open_orders(user.key, SYMBOL)


async def test_key_from_a_disallowed_ip(opex: OpexClient) -> None:
    user = await new_user(opex)
    bearer = user.bearer
    restricted = await opex.create_api_key(bearer, "far away", allowed_ips=["203.0.113.9"])
    with pytest.raises(OpexForbidden) as refused:
        await opex.account(restricted.credentials())
    assert refused.value.code == 1004
    # the legacy path ignores such a key instead: nobody is logged in
    with pytest.raises(OpexUnauthenticated):
        await opex.account(LegacyApiKey(restricted.api_key_id, restricted.secret))


async def test_missing_admin_role_is_an_empty_403(opex: OpexClient) -> None:
    user = await new_user(opex)
    with pytest.raises(OpexForbidden) as refused:
        await opex.deposit(user.key, Decimal(1), "USDT", user.uuid)
    assert refused.value.code is None
    assert refused.value.http_status == 403


@pytest.mark.parametrize(
    "creds",
    [
        ApiKey("no-such-key", SecretStr("s")),
        LegacyApiKey("no-such-key", SecretStr("s")),
        Bearer(SecretStr("not.a.token")),
    ],
    ids=["signed", "legacy", "bearer"],
)
async def test_unknown_credentials_are_an_empty_401(
    opex: OpexClient, creds: ApiKey | LegacyApiKey | Bearer
) -> None:
    with pytest.raises(OpexUnauthenticated) as refused:
        await opex.open_orders(creds, SYMBOL)
    assert refused.value.code is None
    assert refused.value.http_status == 401


async def test_legacy_key_with_a_wrong_secret_is_ignored(opex: OpexClient) -> None:
    user = await new_user(opex)
    with pytest.raises(OpexUnauthenticated):
        await opex.account(LegacyApiKey(user.key.key, SecretStr("wrong")))


async def test_public_routes_need_no_credential(sandbox: Sandbox) -> None:
    async with OpexClient(settings_for(sandbox, api_key="", api_secret="")) as anonymous:
        assert anonymous.admin is None
        assert await anonymous.depth(SYMBOL, 5)
        assert await anonymous.exchange_info()
