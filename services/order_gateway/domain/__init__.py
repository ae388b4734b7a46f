"""The order gateway's pure domain: the order state machine, correlation of submissions
with OPEX's listings, in-flight resolution, market pricing, held stops, request pacing,
the circuit breaker and reconciliation. No HTTP, no Kafka, no database, no asyncio;
time comes from an injected `Clock`.

See README.md beside this file for the transition table and how the service uses each
piece.
"""

from .breaker import BreakerState, CircuitBreaker
from .clock import Clock, ManualClock, system_clock
from .correlation import Correlation, Intent, correlate, may_submit
from .inflight import Claim, GiveUp, QueryWindow, Resolution, WaitForListing, resolve
from .limits import RateLimitBackoff, RequestLimiter, UserThrottle
from .observations import ExchangeStatus, ListedOrder, ListedTrade
from .orders import (
    OPEX_REFUSAL_REASONS,
    CancelDecision,
    CancelDeferred,
    CancelDone,
    CancelRefused,
    Fingerprint,
    GatewayOrder,
    Outcome,
    SendCancel,
    average_price,
    refuse_unknown_cancel,
)
from .pricing import BestPrices, PriceRefusal, marketable_limit_price, round_to_step
from .reconcile import Reconciliation, reconcile
from .states import (
    ALLOWED,
    LATE_FILL,
    OPEN,
    TERMINAL,
    IllegalTransition,
    Transition,
    can_transition,
    transition,
)
from .stops import HeldStop, StopBook

__all__ = [
    "ALLOWED",
    "LATE_FILL",
    "OPEN",
    "OPEX_REFUSAL_REASONS",
    "TERMINAL",
    "BestPrices",
    "BreakerState",
    "CancelDecision",
    "CancelDeferred",
    "CancelDone",
    "CancelRefused",
    "CircuitBreaker",
    "Claim",
    "Clock",
    "Correlation",
    "ExchangeStatus",
    "Fingerprint",
    "GatewayOrder",
    "GiveUp",
    "HeldStop",
    "IllegalTransition",
    "Intent",
    "ListedOrder",
    "ListedTrade",
    "ManualClock",
    "Outcome",
    "PriceRefusal",
    "QueryWindow",
    "RateLimitBackoff",
    "Reconciliation",
    "RequestLimiter",
    "Resolution",
    "SendCancel",
    "StopBook",
    "Transition",
    "UserThrottle",
    "WaitForListing",
    "average_price",
    "can_transition",
    "correlate",
    "marketable_limit_price",
    "may_submit",
    "reconcile",
    "refuse_unknown_cancel",
    "resolve",
    "round_to_step",
    "system_clock",
    "transition",
]
