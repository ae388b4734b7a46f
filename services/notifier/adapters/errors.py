"""One JSON shape for every error of the HTTP API (README.md, REST API, Errors)::

    {"error": {"code": "...", "message": "...", "field": "quantity" | null,
               "details": [{"field": ..., "code": ..., "message": ...}]}}

`install_error_handlers` renders `Refusal`, FastAPI's parameter validation (422, with
the field), Starlette's 404/405, unreachable dependencies (503) and anything else (500)
in that shape. No handler quotes a request's body, header or token.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from services.notifier.domain.refusals import FieldProblem, Refusal, RefusalCode
from shared.opex import OpexError

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "error_response",
    "install_error_handlers",
    "refusal_response",
]

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    field: str
    code: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorInfo


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _described("missing, invalid or expired token"),
    422: _described("a parameter or a field does not validate (the field is named)"),
    503: _described("a dependency (database, key set, OPEX) is unreachable"),
}


def refusal_response(refusal: Refusal) -> JSONResponse:
    headers = dict(refusal.headers)
    if refusal.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(refusal.body(), status_code=refusal.status, headers=headers or None)


_STATUS_CODES = {
    404: RefusalCode.NOT_FOUND,
    405: RefusalCode.METHOD_NOT_ALLOWED,
    503: RefusalCode.UNAVAILABLE,
}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


async def _on_refusal(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return refusal_response(exc)


async def _on_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        FieldProblem(_field(tuple(e.get("loc", ()))), RefusalCode.INVALID_PARAMETER, str(e["msg"]))
        for e in exc.errors()
    ]
    first = problems[0] if problems else FieldProblem("request", RefusalCode.INVALID_PARAMETER, "")
    return refusal_response(
        Refusal(422, first.code, first.message, field=first.field, details=problems)
    )


async def _on_http(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail)
    return refusal_response(
        Refusal(exc.status_code, code, message, headers=dict(exc.headers or {}))
    )


def unavailable_response(exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", error=type(exc).__name__)
    return refusal_response(
        Refusal(
            503,
            RefusalCode.UNAVAILABLE,
            "a dependency is unavailable; retry later",
            headers={"Retry-After": "1"},
        )
    )


def internal_error_response(exc: Exception) -> JSONResponse:
    log.error("request_failed", error=type(exc).__name__)
    return refusal_response(Refusal(500, RefusalCode.INTERNAL_ERROR, "internal error"))


_UNAVAILABLE = (SQLAlchemyError, OSError, OpexError)


def error_response(exc: Exception) -> JSONResponse:
    """What the handlers below answer for ``exc`` raised by an endpoint (for a route
    served outside FastAPI's stack: the same answer as inside it)."""
    if isinstance(exc, Refusal):
        return refusal_response(exc)
    if isinstance(exc, _UNAVAILABLE):
        return unavailable_response(exc)
    return internal_error_response(exc)


async def _on_unavailable(_request: Request, exc: Exception) -> Response:
    return unavailable_response(exc)


async def _on_error(_request: Request, exc: Exception) -> Response:
    return internal_error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, _on_refusal)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(SQLAlchemyError, _on_unavailable)
    app.add_exception_handler(OSError, _on_unavailable)
    app.add_exception_handler(OpexError, _on_unavailable)
    app.add_exception_handler(Exception, _on_error)
