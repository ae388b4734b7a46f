"""What the demo does, as data: its users, the scripted orders each one places, and the
gentle stream of orders that follows. Pure: no broker, no clock, no network.

Prices are chosen when a step is sent, from the latest market (`Market`), so a script
that runs for a minute still places its orders where it means to (a resting limit a
little below the market, a marketable one a little above it, a stop the next ticker
crosses, and so on).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from shared.contracts import CancelOrder, ClosePosition, PlaceOrder

__all__ = [
    "DEFAULT_FUNDING",
    "NAMES",
    "DemoUser",
    "Market",
    "Step",
    "Stream",
    "demo_users",
    "script",
]

Command = PlaceOrder | CancelOrder | ClosePosition

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
SYMBOLS = ("BTC_USDT", "ETH_USDT")
DEFAULT_FUNDING: Mapping[str, Decimal] = {
    "USDT": Decimal(100_000),
    "BTC": Decimal(2),
    "ETH": Decimal(30),
}
BASE_QUANTITY = {"BTC_USDT": Decimal("0.01"), "ETH_USDT": Decimal("0.1")}
MAX_ORDER_VALUE = Decimal(1_000_000)
"""OPEX's (and the sandbox's) maxOrder for both pairs, until market.instruments says."""


@dataclass(frozen=True)
class DemoUser:
    name: str
    user_id: str
    email: str
    symbol: str


def demo_users(run_id: str, count: int = 4) -> list[DemoUser]:
    """``count`` users (at most ``len(NAMES)``), new for each run: the sandbox forgets
    its accounts when it stops while user_sync's database remembers the users, so a
    user id is never reused across runs."""
    if not 1 <= count <= len(NAMES):
        raise ValueError(f"between 1 and {len(NAMES)} demo users")
    return [
        DemoUser(
            name=name,
            user_id=f"demo-{run_id}-{name}",
            email=f"{name}.{run_id}@demo.opexbridge.dev",
            symbol=SYMBOLS[index % len(SYMBOLS)],
        )
        for index, name in enumerate(NAMES[:count])
    ]


@dataclass(frozen=True)
class Market:
    """One pair as the demo last saw it (steps from market.instruments, prices from
    market.tickers)."""

    symbol: str
    price_step: Decimal
    quantity_step: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    max_order_value: Decimal = MAX_ORDER_VALUE

    @property
    def reference(self) -> Decimal:
        """The last trade, else the mid, else either side (the risk engine's rule)."""
        if self.last is not None:
            return self.last
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        side = self.bid if self.bid is not None else self.ask
        if side is None:
            raise LookupError(f"no price for {self.symbol} yet")
        return side

    def price(self, factor: Decimal | str, *, up: bool = False) -> Decimal:
        """``reference x factor`` on the price step (rounded down, or up)."""
        raw = self.reference * Decimal(factor) / self.price_step
        steps = raw.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
        return (steps * self.price_step).normalize()

    def quantity_for(self, value: Decimal) -> Decimal:
        """The smallest quantity on the step worth more than ``value`` at the reference."""
        raw = value / self.reference / self.quantity_step
        steps = raw.to_integral_value(rounding=ROUND_CEILING) + 1
        return (steps * self.quantity_step).normalize()


@dataclass(frozen=True)
class Step:
    """One command of the script and what it should come to."""

    user: DemoUser
    label: str
    build: Callable[[Market], Command] = field(repr=False)
    expect: str
    """The final outcome (`opexbridge.demo.view.Row.outcome`): ``filled``, ``canceled``,
    ``open``, ``held``, ``rejected CODE``, ``cancel refused CODE``."""
    symbol: str = ""

    def command(self, market: Market) -> Command:
        return self.build(market)


def _place(coid: str, symbol: str, side: str, type_: str, quantity: Decimal, **extra: Any) -> Any:
    fields = {k: v for k, v in extra.items() if v is not None}
    return PlaceOrder.model_validate(
        {
            "client_order_id": coid,
            "symbol": symbol,
            "side": side,
            "type": type_,
            "quantity": quantity,
            **fields,
        }
    )


def script(user: DemoUser, run_id: str, index: int) -> list[Step]:
    """The scripted orders of one user: every order type, cancels, a close-position, and
    (spread over the users) orders the risk engine must refuse."""
    s = user.symbol
    q = BASE_QUANTITY[s]
    coid = f"{run_id}-{user.name}".replace("_", "-")

    def c(n: int) -> str:
        return f"{coid}-{n}"

    steps = [
        Step(
            user,
            "limit buy 1% under the market: rests on the book",
            lambda m: _place(c(1), s, "buy", "limit", q, price=m.price("0.99")),
            "canceled",
        ),
        Step(user, "market buy", lambda m: _place(c(2), s, "buy", "market", q), "filled"),
        Step(
            user,
            "limit buy above the ask: fills at once",
            lambda m: _place(c(3), s, "buy", "limit", q, price=m.price("1.003", up=True)),
            "filled",
        ),
        Step(
            user,
            "take-profit limit sell 2% over: rests",
            lambda m: _place(c(4), s, "sell", "limit", q, price=m.price("1.02", up=True)),
            "canceled",
        ),
        Step(
            user,
            "cancel the resting buy",
            lambda _m: CancelOrder(symbol=s, client_order_id=c(1)),
            "canceled",
        ),
        Step(
            user,
            "protective stop sell 2% under: held by the gateway",
            lambda m: _place(c(6), s, "sell", "stop", q, stop_price=m.price("0.98")),
            "canceled",
        ),
        Step(
            user,
            "stop sell at the market: the next ticker triggers it",
            lambda m: _place(c(7), s, "sell", "stop", q, stop_price=m.price("1.001", up=True)),
            "filled",
        ),
        Step(
            user,
            "cancel the held stop",
            lambda _m: CancelOrder(symbol=s, client_order_id=c(6)),
            "canceled",
        ),
        Step(
            user,
            "cancel the take-profit",
            lambda _m: CancelOrder(symbol=s, client_order_id=c(4)),
            "canceled",
        ),
        Step(
            user,
            "close the position",
            lambda _m: ClosePosition(symbol=s, client_order_id=c(10)),
            "filled",
        ),
    ]
    refusals: list[Step] = []
    if index % 4 == 0:
        refusals.append(
            Step(
                user,
                "too big: above OPEX's largest order value",
                lambda m: _place(
                    c(11), s, "buy", "limit", m.quantity_for(m.max_order_value), price=m.price("1")
                ),
                "rejected ORDER_VALUE_OUT_OF_BOUNDS",
            )
        )
        refusals.append(
            Step(
                user,
                "unknown symbol",
                lambda _m: _place(c(12), "DOGE_USDT", "buy", "limit", Decimal(100), price="0.1"),
                "rejected INSTRUMENT_UNKNOWN",
                symbol="DOGE_USDT",
            )
        )
    elif index % 4 == 1:
        refusals.append(
            Step(
                user,
                "bad step: a price between two ticks",
                lambda m: _place(
                    c(11), s, "buy", "limit", q, price=m.price("0.99") + m.price_step / 2
                ),
                "rejected PRICE_STEP",
            )
        )
        refusals.append(
            Step(
                user,
                "more than the account holds",
                lambda m: _place(
                    c(12),
                    s,
                    "buy",
                    "limit",
                    m.quantity_for(DEFAULT_FUNDING["USDT"] * 2),
                    price=m.price("1"),
                ),
                "rejected INSUFFICIENT_BALANCE",
            )
        )
    elif index % 4 == 2:
        refusals.append(
            Step(
                user,
                "bad step: a quantity between two lots",
                lambda m: _place(
                    c(11), s, "buy", "limit", q + m.quantity_step / 2, price=m.price("0.99")
                ),
                "rejected QUANTITY_STEP",
            )
        )
    else:
        refusals.append(
            Step(
                user,
                "too big: above OPEX's largest order value",
                lambda m: _place(c(11), s, "sell", "market", m.quantity_for(m.max_order_value)),
                "rejected ORDER_VALUE_OUT_OF_BOUNDS",
            )
        )
    # a refusal early on (before the trading) and the rest at the end
    return [refusals[0], *steps, *refusals[1:]]


def _with_symbol(steps: Sequence[Step]) -> list[Step]:
    return [
        step
        if step.symbol
        else Step(step.user, step.label, step.build, step.expect, step.user.symbol)
        for step in steps
    ]


def full_script(users: Sequence[DemoUser], run_id: str) -> list[Step]:
    """Every user's script, interleaved one step at a time (so the users trade side by
    side, as a platform's would)."""
    per_user = [_with_symbol(script(user, run_id, i)) for i, user in enumerate(users)]
    out: list[Step] = []
    for round_ in range(max(len(s) for s in per_user)):
        for steps in per_user:
            if round_ < len(steps):
                out.append(steps[round_])
    return out


@dataclass
class Stream:
    """After the script: a slow, endless mix of orders around the market for the same
    users, keeping each user's book and position small."""

    users: Sequence[DemoUser]
    run_id: str
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    counter: int = 0
    canceled: set[str] = field(default_factory=set)
    """Orders this stream asked to cancel: never asked twice."""

    def next(
        self,
        market: Callable[[str], Market | None],
        open_orders: Callable[[str], Sequence[str]],
        position: Callable[[str, str], Decimal],
    ) -> tuple[DemoUser, str, Command] | None:
        """The next command (user, label, command), or None when no market is known.
        ``open_orders(user_id)`` lists the user's open client order ids (oldest first);
        ``position(user_id, symbol)`` the signed quantity."""
        user = self.rng.choice(list(self.users))
        m = market(user.symbol)
        if m is None:
            return None
        self.counter += 1
        cid = f"{self.run_id}-{user.name}-s{self.counter}"
        q = BASE_QUANTITY[user.symbol] * self.rng.choice((1, 1, 2, 3))
        opened = [cid for cid in open_orders(user.user_id) if cid not in self.canceled]
        held = position(user.user_id, user.symbol)
        if len(opened) >= 3:
            return (
                user,
                "cancel the oldest open order",
                CancelOrder(symbol=user.symbol, client_order_id=opened[0]),
            )
        if abs(held) >= BASE_QUANTITY[user.symbol] * 6:
            return (
                user,
                "close the position",
                ClosePosition(symbol=user.symbol, client_order_id=cid),
            )
        roll = self.rng.random()
        side = self.rng.choice(("buy", "sell"))
        if roll < 0.35:
            away = Decimal(self.rng.choice(("0.997", "0.995", "0.99")))
            factor = away if side == "buy" else 2 - away
            price = m.price(factor, up=side == "sell")
            return (
                user,
                f"limit {side} away from the market",
                _place(cid, user.symbol, side, "limit", q, price=price),
            )
        if roll < 0.7:
            return user, f"market {side}", _place(cid, user.symbol, side, "market", q)
        if roll < 0.85:
            factor = Decimal("1.002") if side == "buy" else Decimal("0.998")
            return (
                user,
                f"marketable limit {side}",
                _place(cid, user.symbol, side, "limit", q, price=m.price(factor, up=side == "buy")),
            )
        if opened:
            return (
                user,
                "cancel an open order",
                CancelOrder(symbol=user.symbol, client_order_id=self.rng.choice(opened)),
            )
        return user, f"market {side}", _place(cid, user.symbol, side, "market", q)
