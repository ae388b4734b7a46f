"""Decimal arithmetic for the risk engine: exact where money is counted, bounded where it
is divided, rounded only at the edge, for messages.

- `EXACT` is the decimal context every `RiskEngine` entry point runs in (`exact`): 100
  significant digits, so ``+``, ``-`` and ``x`` on contract amounts (below 10**15, at
  most 18 decimals) and on 40-digit quotients never round, and a result that would have
  to raises `decimal.Inexact` instead of drifting. Reservations, balances and position
  quantities rely on it: what is reserved is released to the last digit. The domain's
  functions use plain operators, so they are exact in it (and in the default 28-digit
  context too for everyday amounts, which is how the unit tests call them).
- `PNL` divides (average entry prices, implied fill prices, ratios) at 40 digits; a
  division is always written ``PNL.divide(a, b)``, never ``a / b``.
- `to_wire` and `to_wire_ceiling` round to the 18 decimals a message may carry.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import (
    ROUND_CEILING,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from functools import wraps
from typing import ParamSpec, TypeVar

__all__ = [
    "EXACT",
    "ONE",
    "PNL",
    "ZERO",
    "exact",
    "is_multiple",
    "to_wire",
    "to_wire_ceiling",
]

ZERO = Decimal(0)
ONE = Decimal(1)
EXACT = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
"""The engine's arithmetic: exact +, -, x; `decimal.Inexact` rather than a rounding."""
PNL = Context(prec=40, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Division and other rounded arithmetic (prices, ratios)."""

_WIRE_QUANTUM = Decimal(1).scaleb(-18)
_WIRE = Context(prec=60, traps=[InvalidOperation, Overflow])

P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` in the `EXACT` context."""

    @wraps(function)
    def in_exact_context(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(EXACT):
            return function(*args, **kwargs)

    return in_exact_context


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """``value`` is an exact multiple of ``step`` (> 0)."""
    return not value % step


def to_wire(value: Decimal) -> Decimal:
    """``value`` rounded half-even to 18 decimals, as a message amount."""
    return value.quantize(_WIRE_QUANTUM, rounding=ROUND_HALF_EVEN, context=_WIRE).normalize(_WIRE)


def to_wire_ceiling(value: Decimal) -> Decimal:
    """``value`` rounded up to 18 decimals (a reservation is never published short)."""
    return value.quantize(_WIRE_QUANTUM, rounding=ROUND_CEILING, context=_WIRE).normalize(_WIRE)
