"""Admin operations: the manual deposit (api `DepositAdminController`) and the pair settings
of OPEX's matching gateway (`PairSettingController`, `PUT /pair-setting`, admin role)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.opex_sandbox.domain import OrderType
from services.opex_sandbox.domain.errors import (
    InvalidRequestParam,
    PairNotFound,
    WalletOwnerNotFound,
)
from services.opex_sandbox.web import ADMIN, PUBLIC, begin, json_response

from .market import order_types_text

router = APIRouter()

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PRECISION = Decimal("0.00000001")
_ENGINE_TYPES = {"LIMIT_ORDER": OrderType.LIMIT, "MARKET_ORDER": OrderType.MARKET}


def _amount(currency: str, amount: Decimal) -> dict[str, Any]:
    return {"currency": {"symbol": currency, "precision": _PRECISION}, "amount": amount}


@router.post("/opex/v1/admin/deposit/manually/{amount_symbol:str}/{receiver:str}")
async def deposit_manually(request: Request) -> Response:
    call = await begin(request, ADMIN)
    amount_text, sep, symbol = request.path_params["amount_symbol"].rpartition("_")
    receiver: str = request.path_params["receiver"]
    if not sep or not _DECIMAL.fullmatch(amount_text):
        raise InvalidRequestParam("amount")
    amount = Decimal(amount_text)
    body = call.json("request")  # ManualTransferRequest: ref and gatewayUuid are required
    for field in ("ref", "gatewayUuid"):
        if not isinstance(body.get(field), str):
            raise InvalidRequestParam("request")
    wallets = call.sandbox.wallets
    if not wallets.has_user(receiver):
        raise WalletOwnerNotFound(f"No wallet owner {receiver}")
    symbol = symbol.upper()
    before = wallets.balance(receiver, symbol).free if symbol in wallets.currencies else None
    balance = wallets.deposit(receiver, symbol, amount)
    admin = call.user.user
    return json_response(
        {
            "date": call.sandbox.clock(),
            "sourceUuid": admin,
            "sourceWalletType": "MAIN",
            "sourceBalanceBeforeAction": _amount(symbol, Decimal(0)),
            "sourceBalanceAfterAction": _amount(symbol, Decimal(0)),
            "amount": _amount(symbol, amount),
            "destUuid": receiver,
            "destWalletType": "MAIN",
            "receivedAmount": _amount(symbol, amount),
            "destBalanceBeforeAction": _amount(symbol, before or Decimal(0)),
            "destBalanceAfterAction": _amount(symbol, balance.free),
        }
    )


def _setting(call_pairs: Any, symbol: str) -> dict[str, Any]:
    pair = call_pairs.get(symbol)
    return {
        "pair": pair.symbol,
        "isAvailable": pair.is_available,
        "minOrder": pair.min_order,
        "maxOrder": pair.max_order,
        "orderTypes": order_types_text(pair),
        "updateDate": None,
    }


@router.get("/pair-setting")
async def pair_settings(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    pairs = call.sandbox.pairs
    return json_response([_setting(pairs, s) for s in pairs.symbols()])


@router.get("/pair-setting/{pair:str}")
async def pair_setting(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    symbol = request.path_params["pair"]
    if symbol not in call.sandbox.pairs:
        raise PairNotFound()
    return json_response(_setting(call.sandbox.pairs, symbol))


@router.put("/pair-setting")
async def update_pair_setting(request: Request) -> Response:
    call = await begin(request, ADMIN)
    body = call.json("pairSetting")
    symbol = body.get("pair")
    if not isinstance(symbol, str):
        raise InvalidRequestParam("pairSetting")
    available = body.get("isAvailable", body.get("available"))
    if not isinstance(available, bool):
        raise InvalidRequestParam("pairSetting")
    bounds: list[Decimal] = []
    for field in ("minOrder", "maxOrder"):
        value = body.get(field)
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise InvalidRequestParam("pairSetting")
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise InvalidRequestParam("pairSetting")
        bounds.append(Decimal(value))
    types_text = body.get("orderTypes")
    if not isinstance(types_text, str):
        raise InvalidRequestParam("pairSetting")
    # OPEX splits on "," and compares names exactly: anything else allows nothing
    types = {_ENGINE_TYPES[t] for t in types_text.split(",") if t in _ENGINE_TYPES}
    sandbox = call.sandbox
    if symbol not in sandbox.pairs:
        raise PairNotFound()
    sandbox.pairs.configure(
        symbol,
        is_available=available,
        min_order=bounds[0],
        max_order=bounds[1],
        order_types=types,
    )
    return json_response(_setting(sandbox.pairs, symbol) | {"updateDate": sandbox.clock()})
