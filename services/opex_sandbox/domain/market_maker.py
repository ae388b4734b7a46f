"""A deterministic market maker that keeps pairs liquid around a random-walk mid price.

Each `step(now)` moves every configured pair's mid by a seeded random number of price steps,
then makes the house user's book match the target ladder: `levels` bids below and `levels` asks
above the mid, each of `level_quantity`. Orders already at a target price with their full
quantity stay (they keep their time priority); the rest are canceled and the gaps filled.
The house user is funded with a huge deposit at construction. Integers and Decimals only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from .engine import MatchingEngine, PlaceResult
from .errors import OpexError
from .orders import Order, OrderType, Side, TimeInForce

HOUSE_USER = "00000000-0000-0000-0000-00000000a0a0"
DEFAULT_FUNDING = Decimal(10) ** 12


@dataclass(frozen=True, slots=True)
class MarketMakerConfig:
    symbol: str
    mid_price: Decimal
    level_quantity: Decimal
    levels: int = 5
    spread_steps: int = 10  # distance from mid to the first level, in price steps
    level_gap_steps: int = 10  # distance between levels, in price steps
    max_move_steps: int = 20  # per step the mid moves by a uniform integer in [-max, +max]


@dataclass(slots=True)
class MarketMakerStep:
    now: int
    mids: dict[str, Decimal] = field(default_factory=dict)
    canceled: list[Order] = field(default_factory=list)
    placed: list[PlaceResult] = field(default_factory=list)
    errors: list[tuple[str, OpexError]] = field(default_factory=list)


class MarketMaker:
    def __init__(
        self,
        engine: MatchingEngine,
        configs: list[MarketMakerConfig],
        *,
        seed: int = 0,
        user: str = HOUSE_USER,
        funding: Decimal = DEFAULT_FUNDING,
        enabled: bool = True,
    ) -> None:
        self.engine = engine
        self.configs = {c.symbol: c for c in configs}
        self.user = user
        self.enabled = enabled
        self.last_step: int | None = None
        self._rng = random.Random(seed)
        self.mids: dict[str, Decimal] = {}
        wallets = engine.wallets
        wallets.create_user(user)
        funded: set[str] = set()
        for c in configs:
            pair = engine.pairs.get(c.symbol)
            if c.levels < 0 or c.spread_steps < 1 or c.level_gap_steps < 1:
                raise ValueError(f"{c.symbol}: need levels >= 0, spread and gap >= 1 step")
            self.mids[c.symbol] = self._floor_mid(c, c.mid_price.quantize(pair.price_step))
            for asset in (pair.base, pair.quote):
                if asset not in funded:
                    wallets.deposit(user, asset, funding)
                    funded.add(asset)

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        self.enabled = False

    def _floor_mid(self, c: MarketMakerConfig, mid: Decimal) -> Decimal:
        step = self.engine.pairs.get(c.symbol).price_step
        lowest = step * (c.spread_steps + c.level_gap_steps * max(c.levels - 1, 0) + 1)
        return mid if mid >= lowest else lowest

    def targets(self, symbol: str) -> tuple[list[Decimal], list[Decimal]]:
        """(bid prices, ask prices) the ladder should have around the current mid."""
        c = self.configs[symbol]
        step = self.engine.pairs.get(symbol).price_step
        mid = self.mids[symbol]
        offsets = [step * (c.spread_steps + i * c.level_gap_steps) for i in range(c.levels)]
        return [mid - o for o in offsets], [mid + o for o in offsets]

    def step(self, now: int) -> MarketMakerStep:
        """Move the mids and refresh the ladders; does nothing while disabled."""
        report = MarketMakerStep(now)
        if not self.enabled:
            return report
        self.last_step = now
        for symbol, c in self.configs.items():
            step = self.engine.pairs.get(symbol).price_step
            move = self._rng.randint(-c.max_move_steps, c.max_move_steps)
            self.mids[symbol] = self._floor_mid(c, self.mids[symbol] + step * move)
            report.mids[symbol] = self.mids[symbol]
            self._refresh(symbol, c, report)
        return report

    def _refresh(self, symbol: str, c: MarketMakerConfig, report: MarketMakerStep) -> None:
        bids, asks = self.targets(symbol)
        wanted = {(Side.BUY, p) for p in bids} | {(Side.SELL, p) for p in asks}
        kept: set[tuple[Side, Decimal]] = set()
        for order in self.engine.open_orders(self.user, symbol):
            key = (order.side, order.price)
            if key in wanted and key not in kept and order.remaining_qty == c.level_quantity:
                kept.add(key)
                continue
            report.canceled.append(self.engine.cancel(self.user, symbol, order.order_id))
        # asks then bids, nearest the mid first
        for side, prices in ((Side.SELL, asks), (Side.BUY, bids)):
            for price in prices:
                if (side, price) in kept:
                    continue
                try:
                    report.placed.append(
                        self.engine.place(
                            self.user,
                            symbol,
                            side,
                            OrderType.LIMIT,
                            TimeInForce.GTC,
                            c.level_quantity,
                            price,
                        )
                    )
                except OpexError as exc:
                    report.errors.append((symbol, exc))
