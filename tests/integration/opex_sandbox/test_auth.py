"""Authentication over HTTP: both API-key modes, bearer tokens, and each failure as OPEX
answers it."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.integration.opex_sandbox.conftest import MakeApi
from tests.integration.opex_sandbox.support import ADMIN, Api

QUERY = "symbol=BTCUSDT&timestamp=1"


async def open_orders(api: Api, headers: dict[str, str], path: str = "/v3/openOrders") -> int:
    r = await api.http.get(f"{path}?{QUERY}", headers=headers)
    return r.status_code


@pytest.mark.parametrize("path", ["/v3/openOrders", "/api/v3/openOrders"])
async def test_signed_request_when_valid_then_accepted_on_both_mounts(api: Api, path: str) -> None:
    alice = await api.new_user()
    assert await open_orders(api, alice.signed("GET", path, QUERY), path) == 200


async def test_signed_request_when_body_hash_sent_then_signed_as_given(api: Api) -> None:
    alice = await api.new_user()
    digest = hashlib.sha256(b"{}").hexdigest()
    assert (
        await open_orders(api, alice.signed("GET", "/v3/openOrders", QUERY, body_hash=digest))
        == 200
    )


async def test_legacy_key_when_secret_right_then_accepted_and_wrong_then_401(api: Api) -> None:
    alice = await api.new_user()
    assert await open_orders(api, alice.legacy) == 200
    r = await api.http.get(
        f"/v3/openOrders?{QUERY}", headers={"X-API-KEY": alice.key_id, "X-API-SECRET": "nope"}
    )
    assert (r.status_code, r.content) == (401, b"")


async def test_bearer_when_valid_then_accepted_and_when_forged_then_empty_401(api: Api) -> None:
    alice = await api.new_user()
    assert await open_orders(api, alice.bearer) == 200
    r = await api.http.get(
        f"/v3/openOrders?{QUERY}", headers={"Authorization": f"Bearer {alice.access_token}x"}
    )
    assert (r.status_code, r.content) == (401, b"")


@pytest.mark.parametrize(
    ("case", "code"),
    [("wrong signature", 1025), ("stale timestamp", 1025), ("timestamp not a number", 1026)],
)
async def test_signed_request_when_bad_then_400_with_opex_code(
    api: Api, case: str, code: int
) -> None:
    alice = await api.new_user()
    if case == "wrong signature":
        headers = alice.signed("GET", "/v3/openOrders", "symbol=ETHUSDT&timestamp=1")
    elif case == "stale timestamp":
        stale = int(time.time() * 1000) - 5 * 60 * 1000 - 5000
        headers = alice.signed("GET", "/v3/openOrders", QUERY, ts=stale)
    else:
        headers = alice.signed("GET", "/v3/openOrders", QUERY) | {"X-API-TIMESTAMP": "soon"}
    r = await api.http.get(f"/v3/openOrders?{QUERY}", headers=headers)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == code
    assert body["error"] == {1025: "InvalidSignature", 1026: "InvalidTime"}[code]


async def test_signed_request_when_path_signed_without_api_prefix_then_1025(api: Api) -> None:
    alice = await api.new_user()
    headers = alice.signed("GET", "/v3/openOrders", QUERY, sign_path="/v3/openOrders")
    r = await api.http.get(f"/v3/openOrders?{QUERY}", headers=headers)
    assert (r.status_code, r.json()["code"]) == (400, 1025)


async def test_signed_request_when_key_unknown_then_ignored_and_401_empty(api: Api) -> None:
    alice = await api.new_user()
    headers = alice.signed("GET", "/v3/openOrders", QUERY) | {"X-API-KEY": "unknown"}
    r = await api.http.get(f"/v3/openOrders?{QUERY}", headers=headers)
    assert (r.status_code, r.content) == (401, b"")
    # ignored, not refused: public routes still answer
    r = await api.http.get("/v3/depth?symbol=BTCUSDT", headers=headers)
    assert r.status_code == 200


async def test_signed_request_when_ip_not_allowed_then_403_1004(api: Api) -> None:
    alice = await api.new_user(allowed_ips=["10.1.2.3"])
    r = await api.http.get(
        f"/v3/openOrders?{QUERY}", headers=alice.signed("GET", "/v3/openOrders", QUERY)
    )
    assert (r.status_code, r.json()["code"]) == (403, 1004)


async def test_signed_request_when_endpoint_not_allowed_then_403_1004(api: Api) -> None:
    alice = await api.new_user(allowed_endpoints=["/api/v3/order"])
    r = await api.http.get(
        f"/v3/openOrders?{QUERY}", headers=alice.signed("GET", "/v3/openOrders", QUERY)
    )
    assert (r.status_code, r.json()["code"]) == (403, 1004)
    query = "symbol=BTCUSDT&orderId=1&timestamp=1"
    r = await api.http.get(f"/v3/order?{query}", headers=alice.signed("GET", "/v3/order", query))
    assert (r.status_code, r.json()["code"]) == (404, 7001)  # allowed: got past auth


async def test_protected_route_when_no_credential_then_401_empty(api: Api) -> None:
    for method, path in (
        ("GET", "/v3/openOrders"),
        ("POST", "/v3/order"),
        ("GET", "/v3/account"),
        ("GET", "/opex/v1/wallet/asset"),
        ("POST", "/v1/api-key"),
    ):
        r = await api.http.request(method, f"{path}?{QUERY}")
        assert (r.status_code, r.content) == (401, b""), path


async def test_admin_route_when_not_admin_then_403_empty_and_admin_key_both_modes_work(
    api: Api,
) -> None:
    alice = await api.new_user()
    path = f"/opex/v1/admin/deposit/manually/5_USDT/{alice.uuid}"
    body = {"ref": "r", "gatewayUuid": "manually"}
    r = await api.http.post(path, json=body, headers=alice.bearer)
    assert (r.status_code, r.content) == (403, b"")
    r = await api.http.put(
        "/pair-setting",
        json={
            "pair": "BTC_USDT",
            "isAvailable": False,
            "minOrder": 1,
            "maxOrder": 2,
            "orderTypes": "",
        },
        headers=alice.legacy,
    )
    assert (r.status_code, r.content) == (403, b"")
    assert (await api.http.post(path, json=body, headers=ADMIN)).status_code == 200
    # the admin key signed (HMAC) too
    from tests.integration.opex_sandbox.support import User

    admin = User("", "", "", "", "it-admin-key", "it-admin-secret")
    raw = b'{"ref":"r2","gatewayUuid":"manually"}'
    headers = admin.signed("POST", path, "", body_hash=hashlib.sha256(raw).hexdigest())
    r = await api.http.post(
        path, content=raw, headers=headers | {"Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text


async def test_admin_credential_when_env_names_used_then_configured(make_api: MakeApi) -> None:
    async with make_api(admin_api_key="other-key", admin_api_secret="other-secret") as api:
        r = await api.http.get(
            "/v1/api-key", headers={"X-API-KEY": "other-key", "X-API-SECRET": "other-secret"}
        )
        assert r.status_code == 200
        assert [k["apiKeyId"] for k in r.json()] == ["other-key"]
        assert all(k["secret"] is None for k in r.json())


def test_config_when_opex_api_key_env_set_then_admin_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.opex_sandbox.config import SandboxConfig

    monkeypatch.setenv("OPEX_API_KEY", "from-env")
    monkeypatch.setenv("OPEX_API_SECRET", "env-secret")
    monkeypatch.setenv("SANDBOX_PORT", "9999")
    cfg = SandboxConfig()
    assert (cfg.admin_api_key, cfg.admin_api_secret.get_secret_value(), cfg.port) == (
        "from-env",
        "env-secret",
        9999,
    )


async def test_api_key_when_disabled_or_deleted_by_admin_then_ignored(api: Api) -> None:
    alice = await api.new_user()
    assert await open_orders(api, alice.signed("GET", "/v3/openOrders", QUERY)) == 200
    r = await api.http.put(f"/v1/api-key/{alice.key_id}", json={"enabled": False}, headers=ADMIN)
    assert (r.status_code, r.json()["enabled"]) == (200, False)
    r = await api.http.get(
        f"/v3/openOrders?{QUERY}", headers=alice.signed("GET", "/v3/openOrders", QUERY)
    )
    assert (r.status_code, r.content) == (401, b"")
    r = await api.http.put(f"/v1/api-key/{alice.key_id}", json={"enabled": True}, headers=ADMIN)
    assert await open_orders(api, alice.legacy) == 200
    assert (await api.http.delete(f"/v1/api-key/{alice.key_id}", headers=ADMIN)).status_code == 200
    assert await open_orders(api, alice.legacy) == 401
    r = await api.http.put(f"/v1/api-key/{alice.key_id}", json={}, headers=alice.bearer)
    assert (r.status_code, r.content) == (403, b"")
