"""Registration, login, API keys (api `PublicAuthController`, `AuthController`,
`APIKeyController`) and the account and wallet reads (`/v3/account`,
`/opex/v1/wallet/asset`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.opex_sandbox.domain.errors import (
    BadRequest,
    InvalidRequestParam,
    InvalidToken,
    UserNotFound,
)
from services.opex_sandbox.users import username_type
from services.opex_sandbox.web import ADMIN, PUBLIC, USER, Call, begin, json_response

router = APIRouter()


def _string(body: dict[str, Any], name: str, param: str, *, required: bool = True) -> str | None:
    """A string field of a JSON body; a missing required one fails the whole body (Jackson:
    1020 naming the controller's parameter)."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequestParam(param)
        return None
    if not isinstance(value, str):
        raise InvalidRequestParam(param)
    return value


def _strings(body: dict[str, Any], name: str, param: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestParam(param)
    return list(value)


@router.post("/opex/v1/user/public/register")
async def register(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    body = call.json("request")
    username = _string(body, "username", "request")
    _string(body, "captchaCode", "request")  # required by OPEX; any value passes here
    assert username is not None
    otp = call.sandbox.users.register(
        username,
        _string(body, "firstName", "request", required=False),
        _string(body, "lastName", "request", required=False),
    )
    kind = "EMAIL" if username_type(username) == "EMAIL" else "SMS"
    return json_response(
        {
            "otp": otp if call.sandbox.config.otp_in_response else None,
            "otpReceiver": {"receiver": username, "type": kind},
        }
    )


@router.post("/opex/v1/user/public/register/verify")
async def verify_register(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    body = call.json("request")
    username = _string(body, "username", "request")
    otp = _string(body, "otp", "request")
    assert username is not None
    assert otp is not None
    return json_response({"token": call.sandbox.users.verify(username, otp)})


@router.post("/opex/v1/user/public/register/confirm")
async def confirm_register(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    body = call.json("request")
    password = _string(body, "password", "request")
    token = _string(body, "token", "request")
    client_id = _string(body, "clientId", "request", required=False)
    client_secret = _string(body, "clientSecret", "request", required=False)
    assert password is not None
    assert token is not None
    sandbox = call.sandbox
    user = sandbox.users.confirm(token, password)
    if not client_id or not client_secret:
        # OPEX only logs the new user in when both clientId and clientSecret are given
        return Response(status_code=200)
    return json_response(sandbox.tokens.issue(user.uuid, user.username, user.roles))


@router.post("/opex/v1/oauth/protocol/openid-connect/token")
async def login(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    body = call.json("tokenRequest")
    username = _string(body, "username", "tokenRequest")
    password = _string(body, "password", "tokenRequest")
    _string(body, "clientId", "tokenRequest")
    _string(body, "captchaCode", "tokenRequest", required=False)
    assert username is not None
    assert password is not None
    sandbox = call.sandbox
    user = sandbox.users.login(username, password)
    token = sandbox.tokens.issue(user.uuid, user.username, user.roles)
    if body.get("rememberMe") is False:
        token["refresh_token"] = None
    return json_response({"token": token, "otp": None, "otpCode": None})


@router.post("/opex/v1/oauth/protocol/openid-connect/refresh")
async def refresh(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    body = call.json("tokenRequest")
    _string(body, "clientId", "tokenRequest")
    refresh_token = _string(body, "refreshToken", "tokenRequest")
    assert refresh_token is not None
    sandbox = call.sandbox
    user_uuid = sandbox.tokens.verify_refresh(refresh_token)
    user = sandbox.users.get(user_uuid) if user_uuid else None
    if user is None or not user.enabled:
        raise InvalidToken()
    token = sandbox.tokens.issue(user.uuid, user.username, user.roles)
    return json_response({"token": token, "otp": None, "otpCode": None})


def _key_view(call: Call, key_id: str, *, secret: str | None) -> dict[str, Any]:
    record = call.sandbox.users.api_keys[key_id]
    owner = call.sandbox.users.get(record.user)
    return {
        "apiKeyId": record.key_id,
        "label": record.label,
        "enabled": record.enabled,
        "allowedIps": sorted(record.allowed_ips) if record.allowed_ips else None,
        "allowedEndpoints": sorted(record.allowed_endpoints) if record.allowed_endpoints else None,
        "keycloakUsername": owner.username if owner else None,
        "secret": secret,
    }


@router.post("/v1/api-key")
async def create_api_key(request: Request) -> Response:
    call = await begin(request, USER)
    body = call.json("req")
    sandbox = call.sandbox
    user = sandbox.users.get(call.user.user)
    if user is None:
        raise UserNotFound()
    record = sandbox.users.create_api_key(
        user,
        label=_string(body, "label", "req", required=False),
        allowed_ips=_strings(body, "allowedIps", "req"),
        allowed_endpoints=_strings(body, "allowedEndpoints", "req"),
        key_id=_string(body, "apiKeyId", "req", required=False),
    )
    return json_response(_key_view(call, record.key_id, secret=record.secret))


@router.get("/v1/api-key")
async def list_api_keys(request: Request) -> Response:
    call = await begin(request, ADMIN)
    return json_response(
        [_key_view(call, key_id, secret=None) for key_id in call.sandbox.users.api_keys]
    )


@router.put("/v1/api-key/{api_key_id:str}")
async def update_api_key(request: Request) -> Response:
    """Admin: change a key's label, enabled flag and allow-lists (OPEX's UpdateApiKeyRequest;
    absent fields stay)."""
    call = await begin(request, ADMIN)
    body = call.json("req")
    record = call.sandbox.users.api_keys.get(request.path_params["api_key_id"])
    if record is None:
        raise BadRequest("API key not found")
    if "label" in body:
        record.label = _string(body, "label", "req", required=False)
    enabled = body.get("enabled")
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise InvalidRequestParam("req")
        record.enabled = enabled
    if "allowedIps" in body:
        ips = _strings(body, "allowedIps", "req")
        record.allowed_ips = frozenset(ips) if ips else None
    if "allowedEndpoints" in body:
        endpoints = _strings(body, "allowedEndpoints", "req")
        record.allowed_endpoints = frozenset(endpoints) if endpoints else None
    return json_response(_key_view(call, record.key_id, secret=None))


@router.delete("/v1/api-key/{api_key_id:str}")
async def delete_api_key(request: Request) -> Response:
    call = await begin(request, ADMIN)
    call.sandbox.users.api_keys.pop(request.path_params["api_key_id"], None)
    return Response(status_code=200)


@router.get("/v3/account")
async def v3_account(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    call.long("recvWindow")
    call.long("timestamp", required=True)
    sandbox = call.sandbox
    balances = sandbox.wallets.balances(call.user.user)
    return json_response(
        {
            "makerCommission": 0,
            "takerCommission": 0,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "updateTime": sandbox.clock(),
            "accountType": "SPOT",
            "balances": [
                {"asset": b.asset, "free": b.free, "locked": b.locked, "withdraw": 0}
                for b in balances
            ],
            "permissions": ["SPOT"],
        }
    )


@router.get("/opex/v1/wallet/asset")
async def opex_assets(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.text("symbol")
    wallets = call.sandbox.wallets
    user = call.user.user
    if symbol is not None:
        balances = [wallets.balance(user, symbol.upper())]
    else:
        balances = wallets.balances(user)
    return json_response(
        [{"asset": b.asset, "free": b.free, "locked": b.locked, "withdrawing": 0} for b in balances]
    )
