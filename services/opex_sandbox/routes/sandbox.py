"""The sandbox's own test controls (not OPEX routes; no auth, never affected by faults) and
OPEX's health endpoint."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.opex_sandbox.domain.errors import InvalidRequestParam
from services.opex_sandbox.web import json_response, sandbox_of

router = APIRouter(prefix="/sandbox")
health_router = APIRouter()


@health_router.get("/actuator/health")
async def health(request: Request) -> Response:
    """Spring Boot's health: `{"status":"UP"}` (an outage answers 503 DOWN, see faults)."""
    return json_response({"status": "UP"})


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidRequestParam("body", "The body is not JSON") from None


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    return json_response(sandbox_of(request).faults.settings.model_dump())


@router.put("/faults")
async def put_faults(request: Request) -> Response:
    changes = await _json(request)
    if not isinstance(changes, dict):
        raise InvalidRequestParam("body", "Expected a JSON object")
    try:
        settings = sandbox_of(request).faults.update(changes)
    except ValidationError as exc:
        raise InvalidRequestParam("body", exc.errors()[0]["msg"]) from None
    return json_response(settings.model_dump())


@router.delete("/faults")
async def delete_faults(request: Request) -> Response:
    return json_response(sandbox_of(request).faults.clear().model_dump())


@router.post("/market-maker/{state:str}")
async def market_maker(request: Request) -> Response:
    state = request.path_params["state"]
    if state not in ("on", "off"):
        raise InvalidRequestParam("state", "Use on or off")
    sandbox = sandbox_of(request)
    sandbox.set_market_maker(state == "on")
    return json_response({"marketMaker": sandbox.maker.enabled})


@router.get("/audit")
async def audit(request: Request) -> Response:
    """The engine's invariant check: an empty list when everything adds up."""
    return json_response(sandbox_of(request).engine.audit())


@router.get("/state")
async def state(request: Request) -> Response:
    return json_response(sandbox_of(request).state())


@router.post("/flush")
async def flush(request: Request) -> Response:
    """Apply every queued placement and cancel now (tests that do not want to wait)."""
    sandbox = sandbox_of(request)
    sandbox.apply_due(1 << 62)
    return json_response(sandbox.state())


@router.post("/reset")
async def reset(request: Request) -> Response:
    """Forget every user, order, trade and balance (the admin and its key are re-created)."""
    sandbox = sandbox_of(request)
    sandbox.reset()
    return json_response(sandbox.state())


class NewPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    priceStep: Decimal = Field(gt=0)
    quantityStep: Decimal = Field(gt=0)


@router.post("/pairs")
async def add_pair(request: Request) -> Response:
    """Add a pair the way OPEX does: unavailable, minOrder = maxOrder = 1, until an admin
    sets it with `PUT /pair-setting`."""
    try:
        spec = NewPair.model_validate(await _json(request))
    except ValidationError as exc:
        raise InvalidRequestParam("body", exc.errors()[0]["msg"]) from None
    sandbox = sandbox_of(request)
    pair = sandbox.engine.add_pair(spec.symbol, spec.priceStep, spec.quantityStep)
    return json_response({"symbol": pair.symbol, "alias": pair.binance_symbol})
