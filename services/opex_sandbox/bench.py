"""Matching-engine throughput: `uv run python -m services.opex_sandbox.bench [N]`.

A realistic mix on BTC_USDT from 50 funded users: limit orders scattered around a slowly
drifting mid, about 30% of them priced to cross the spread (IOC or GTC), a few MARKET IOC
orders, and cancels of resting orders (about 10% of operations). The operations are generated
up front with a fixed seed; only their execution is timed, in CPU time of this process (so
that other load on the machine distorts the figure less). Returns operations per CPU second.
"""

from __future__ import annotations

import gc
import random
import sys
import time
from decimal import Decimal

from services.opex_sandbox.domain import (
    ManualClock,
    MatchingEngine,
    Order,
    OrderStatus,
    OrderType,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)

SYMBOL = "BTC_USDT"
_Op = tuple[str, Side, OrderType, TimeInForce, Decimal, Decimal | None] | tuple[int]


def _operations(n: int, users: list[str], seed: int) -> list[_Op]:
    rng = random.Random(seed)
    mid = 30_000_00  # in cents
    ops: list[_Op] = []
    for _ in range(n):
        mid += rng.randint(-5, 5)
        r = rng.random()
        user = rng.choice(users)
        qty = Decimal(rng.randint(1, 100)) / 1000
        if r < 0.10:
            ops.append((rng.randint(0, 1 << 30),))
            continue
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        if r < 0.13:
            price = Decimal(mid + sign * 2000) / 100
            ops.append((user, side, OrderType.MARKET, TimeInForce.IOC, qty, price))
        elif r < 0.48:  # crossing: reaches through the best few levels of the other side
            price = Decimal(mid + sign * rng.randint(100, 1000)) / 100
            tif = TimeInForce.IOC if rng.random() < 0.5 else TimeInForce.GTC
            ops.append((user, side, OrderType.LIMIT, tif, qty, price))
        else:  # passive: rests on its own side
            price = Decimal(mid - sign * rng.randint(50, 5000)) / 100
            ops.append((user, side, OrderType.LIMIT, TimeInForce.GTC, qty, price))
    return ops


def _run(n: int, seed: int) -> tuple[float, dict[str, int]]:
    clock = ManualClock()
    wallets = Wallets()
    engine = MatchingEngine(PairRegistry.with_defaults(), wallets, clock)
    users = [f"00000000-0000-0000-0000-{i:012d}" for i in range(50)]
    for u in users:
        wallets.create_user(u)
        wallets.deposit(u, "BTC", Decimal(10) ** 9)
        wallets.deposit(u, "USDT", Decimal(10) ** 13)
    ops = _operations(n, users, seed)
    resting: list[Order] = []
    place = engine.place
    cancel = engine.cancel
    working = {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}
    places = crossing = trades = cancels = 0

    # The pre-generated operations are the harness's, not the engine's: keep them out of the
    # cyclic GC's way. Everything the engine allocates while timed is collected as usual.
    gc.collect()
    gc.freeze()
    start = time.process_time()
    for op in ops:
        clock.now += 1
        if len(op) == 1:
            if resting:
                i = op[0] % len(resting)
                order = resting[i]
                resting[i] = resting[-1]
                resting.pop()
                if order.status in working:  # else filled meanwhile
                    cancel(order.user, SYMBOL, order.order_id)
                    cancels += 1
            continue
        user, side, otype, tif, qty, price = op
        result = place(user, SYMBOL, side, otype, tif, qty, price)
        places += 1
        if result.trades:
            crossing += 1
            trades += len(result.trades)
        if result.order.status in working:
            resting.append(result.order)
    elapsed = time.process_time() - start
    gc.unfreeze()
    problems = engine.audit()
    assert not problems, problems[:5]
    bids, asks = engine.resting_orders(SYMBOL)
    stats = {
        "places": places,
        "crossing": crossing,
        "trades": trades,
        "cancels": cancels,
        "resting": len(bids) + len(asks),
    }
    return n / elapsed, stats


def bench_matching(n: int = 200_000, seed: int = 7) -> float:
    """Run `n` operations (places and cancels) and return operations per CPU second."""
    return _run(n, seed)[0]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rate, stats = _run(n, 7)
    print(f"{rate:,.0f} orders/s ({n:,} operations: places and cancels, one core, CPU time)")
    print(
        "mix: {places:,} places, {crossing:,} of them traded ({pct:.0f}%), {trades:,} trades, "
        "{cancels:,} cancels, {resting:,} orders resting at the end".format(
            pct=100 * stats["crossing"] / max(stats["places"], 1), **stats
        )
    )


if __name__ == "__main__":
    main()
