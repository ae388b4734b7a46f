"""The risk engine's pure domain: pre-trade checks, reservations, balances, positions and
trading states. No broker, no database, no asyncio; time comes from an injected `Clock`.

    engine = RiskEngine(RiskState(), Limits(RiskSettings().limits()), system_clock)
    engine.on_instrument(instrument)            # market.instruments
    engine.on_ticker(ticker)                    # market.tickers -> PositionUpdated...
    engine.on_user_provisioned(user, event, at) # users.events
    engine.on_balances(user, snapshot, at)      # accounts.events -> drifts to log
    decision = engine.decide_place(user, place) # Approved | Rejected
    decision.to_message()                       # OrderApproved | OrderRejected
    engine.on_order_event(user, event, at)      # orders.events -> PositionUpdated...

See README.md beside this file for the check order, the formulas and the states.
"""

from .amounts import EXACT, PNL
from .balances import BalanceDrift
from .checks import EXCHANGE_ORDER_TYPES, PLACE_CHECKS, CheckContext, Refusal
from .clock import DAY_MS, Clock, ManualClock, system_clock
from .decisions import (
    Approved,
    CancelDecision,
    CancelPassed,
    CancelRefused,
    Outgoing,
    PlaceDecision,
    Rejected,
)
from .engine import ENGINE_ACTOR, RiskEngine, epoch_ms, position_id
from .limits import Limits
from .positions import Position
from .reservations import ReservationPlan
from .state import Account, Instrument, OpenOrder, ReferencePrice, RiskState, TradingStatus

__all__ = [
    "DAY_MS",
    "ENGINE_ACTOR",
    "EXACT",
    "EXCHANGE_ORDER_TYPES",
    "PLACE_CHECKS",
    "PNL",
    "Account",
    "Approved",
    "BalanceDrift",
    "CancelDecision",
    "CancelPassed",
    "CancelRefused",
    "CheckContext",
    "Clock",
    "Instrument",
    "Limits",
    "ManualClock",
    "OpenOrder",
    "Outgoing",
    "PlaceDecision",
    "Position",
    "ReferencePrice",
    "Refusal",
    "Rejected",
    "ReservationPlan",
    "RiskEngine",
    "RiskState",
    "TradingStatus",
    "epoch_ms",
    "position_id",
    "system_clock",
]
