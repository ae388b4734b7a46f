"""Every refusal of the HTTP API, typed: a `Refusal` carries its HTTP status, a code
(`RefusalCode`, or a contract `ReasonCode` in lower case for a field that does not
validate), a message, and the field it is about.

The HTTP layer renders each one the same way (README.md, REST API, Errors)::

    {"error": {"code": "non_positive_amount", "message": "...", "field": "quantity",
               "details": [{"field": "quantity", "code": "...", "message": "..."}]}}

Pure: no framework import, so the domain can refuse without knowing about HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.contracts import InvalidMessage

__all__ = ["FieldProblem", "Refusal", "RefusalCode", "from_invalid_message"]


class RefusalCode(enum.StrEnum):
    """Codes of refusals that are not a contract's field error."""

    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a code, not a secret
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    MALFORMED_JSON = "malformed_json"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_SYMBOL = "invalid_symbol"
    INVALID_STATUS = "invalid_status"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    ORDER_NOT_FOUND = "order_not_found"
    ORDER_NOT_OPEN = "order_not_open"
    POSITION_NOT_FOUND = "position_not_found"
    POSITION_NOT_OPEN = "position_not_open"
    TICKER_NOT_FOUND = "ticker_not_found"
    MARKET_NOT_FOUND = "market_not_found"
    MARKET_DATA_UNAVAILABLE = "market_data_unavailable"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field that did not validate."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class Refusal(Exception):
    """A request refused with ``status``; ``code`` is stable and machine-readable."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: Sequence[FieldProblem] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = tuple(details)
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            error["details"] = [problem.as_dict() for problem in self.details]
        return {"error": error}


def _field_path(loc: Sequence[str | int], strip: int) -> str:
    return ".".join(str(part) for part in loc[strip:]) or "body"


def from_invalid_message(error: InvalidMessage, *, strip: int = 0) -> Refusal:
    """A 422 naming each field of a contract refusal (``strip`` leading path parts,
    e.g. ``("data",)`` when the error came from an envelope)."""
    problems = tuple(
        FieldProblem(_field_path(e.loc, strip), e.code.value.lower(), e.message)
        for e in error.errors
    )
    first = problems[0] if problems else None
    return Refusal(
        422,
        first.code if first else error.code.value.lower(),
        first.message if first else error.message,
        field=first.field if first else None,
        details=problems,
    )
