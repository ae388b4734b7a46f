"""Pure domain of the OPEX sandbox: pairs, wallets, orders, matching, market making.

No I/O, no asyncio; time comes from an injected `Clock` (epoch ms).
"""

from .clock import Clock, ManualClock, system_clock
from .engine import DAY_MS, Depth, MatchingEngine, PlaceResult, Ticker
from .errors import ERRORS_BY_CODE, OpexError
from .market_maker import HOUSE_USER, MarketMaker, MarketMakerConfig, MarketMakerStep
from .orders import Order, OrderStatus, OrderType, Side, TimeInForce, Trade, UserTrade
from .pairs import Pair, PairRegistry, default_pairs
from .wallets import FEE_ACCOUNT, Balance, Wallets

__all__ = [
    "DAY_MS",
    "ERRORS_BY_CODE",
    "FEE_ACCOUNT",
    "HOUSE_USER",
    "Balance",
    "Clock",
    "Depth",
    "ManualClock",
    "MarketMaker",
    "MarketMakerConfig",
    "MarketMakerStep",
    "MatchingEngine",
    "OpexError",
    "Order",
    "OrderStatus",
    "OrderType",
    "Pair",
    "PairRegistry",
    "PlaceResult",
    "Side",
    "Ticker",
    "TimeInForce",
    "Trade",
    "UserTrade",
    "Wallets",
    "default_pairs",
    "system_clock",
]
