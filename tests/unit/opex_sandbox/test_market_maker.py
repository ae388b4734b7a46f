from __future__ import annotations

from decimal import Decimal

import pytest

from services.opex_sandbox.domain import (
    HOUSE_USER,
    ManualClock,
    MarketMaker,
    MarketMakerConfig,
    MatchingEngine,
    OrderType,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)
from services.opex_sandbox.domain.errors import PairIsNotAvailable

D = Decimal
BTC = "BTC_USDT"
ALICE = "00000000-0000-0000-0000-0000000a11ce"


def make(
    seed: int = 1, max_move: int = 20, levels: int = 3
) -> tuple[MatchingEngine, MarketMaker, ManualClock]:
    clock = ManualClock()
    engine = MatchingEngine(PairRegistry.with_defaults(), Wallets(), clock)
    mm = MarketMaker(
        engine,
        [
            MarketMakerConfig(
                BTC,
                mid_price=D(30000),
                level_quantity=D("0.05"),
                levels=levels,
                spread_steps=100,
                level_gap_steps=50,
                max_move_steps=max_move,
            ),
            MarketMakerConfig(
                "ETH_USDT", mid_price=D(2000), level_quantity=D("0.5"), max_move_steps=max_move
            ),
        ],
        seed=seed,
    )
    return engine, mm, clock


def test_init_when_created_then_house_user_funded_and_conserved() -> None:
    engine, _, _ = make()
    w = engine.wallets
    assert w.balance(HOUSE_USER, "BTC").free == D(10) ** 12
    assert w.balance(HOUSE_USER, "USDT").free == D(10) ** 12
    assert w.is_conserved()


def test_step_when_enabled_then_levels_each_side_of_configured_size() -> None:
    engine, mm, clock = make(max_move=0)
    report = mm.step(clock())
    depth = engine.depth(BTC)
    assert depth.bids == [(D(29999), D("0.05")), (D("29998.5"), D("0.05")), (D(29998), D("0.05"))]
    assert depth.asks == [(D(30001), D("0.05")), (D("30001.5"), D("0.05")), (D(30002), D("0.05"))]
    assert len(report.placed) == 3 * 2 + 5 * 2
    assert report.mids == {BTC: D(30000), "ETH_USDT": D(2000)}
    assert engine.audit() == []


def test_step_when_mid_unchanged_then_existing_orders_kept() -> None:
    engine, mm, clock = make(max_move=0)
    mm.step(clock())
    before = [o.order_id for o in engine.open_orders(HOUSE_USER, BTC)]
    report = mm.step(clock.advance(1000))
    assert report.canceled == []
    assert report.placed == []
    assert [o.order_id for o in engine.open_orders(HOUSE_USER, BTC)] == before


def test_step_when_same_seed_then_same_mids_and_orders() -> None:
    runs = []
    for _ in range(2):
        engine, mm, clock = make(seed=42)
        mids = [mm.step(clock.advance(1000)).mids[BTC] for _ in range(20)]
        runs.append((mids, engine.depth(BTC)))
    assert runs[0] == runs[1]
    assert len(set(runs[0][0])) > 1  # it does move


def test_step_when_different_seed_then_different_walk() -> None:
    _, mm1, _ = make(seed=1)
    _, mm2, _ = make(seed=2)
    walk1 = [mm1.step(t).mids[BTC] for t in range(30)]
    walk2 = [mm2.step(t).mids[BTC] for t in range(30)]
    assert walk1 != walk2


def test_step_when_mid_moves_then_ladder_follows_and_book_never_crossed() -> None:
    engine, mm, clock = make(seed=3, max_move=300)
    for _ in range(50):
        report = mm.step(clock.advance(1000))
        bids, asks = mm.targets(BTC)
        depth = engine.depth(BTC)
        assert [p for p, _ in depth.bids] == bids
        assert [p for p, _ in depth.asks] == asks
        assert depth.bids[0][0] < report.mids[BTC] < depth.asks[0][0]
    assert engine.audit() == []


def test_step_when_user_takes_liquidity_then_level_refilled() -> None:
    engine, mm, clock = make(max_move=0)
    mm.step(clock())
    w = engine.wallets
    w.create_user(ALICE)
    w.deposit(ALICE, "USDT", D(10_000))
    engine.place(ALICE, BTC, Side.BUY, OrderType.LIMIT, TimeInForce.IOC, D("0.07"), D(30001.5))
    assert engine.depth(BTC).asks[0] == (D("30001.5"), D("0.03"))
    report = mm.step(clock.advance(1000))
    assert len(report.canceled) == 1  # the partially filled level is replaced
    assert engine.depth(BTC).asks[:2] == [(D(30001), D("0.05")), (D("30001.5"), D("0.05"))]
    assert w.balance(ALICE, "BTC").free == D("0.07") * (1 - D("0.002"))
    assert engine.audit() == []


def test_step_when_disabled_then_nothing_happens() -> None:
    engine, mm, clock = make()
    mm.disable()
    report = mm.step(clock())
    assert (report.placed, report.canceled, report.mids) == ([], [], {})
    assert engine.depth(BTC).bids == []
    assert mm.last_step is None
    mm.enable()
    mm.step(clock())
    assert len(engine.depth(BTC).bids) == 3


def test_step_when_pair_unavailable_then_errors_reported_not_raised() -> None:
    engine, mm, clock = make()
    engine.pairs.configure(BTC, is_available=False)
    report = mm.step(clock())
    assert report.errors
    assert all(isinstance(e, PairIsNotAvailable) for _, e in report.errors)
    assert len(engine.depth("ETH_USDT").bids) == 5


def test_step_when_mid_would_go_below_ladder_then_floored_positive() -> None:
    clock = ManualClock()
    engine = MatchingEngine(PairRegistry.with_defaults(), Wallets(), clock)
    engine.pairs.configure(BTC, min_order=D(0))
    mm = MarketMaker(
        engine,
        [
            MarketMakerConfig(
                BTC,
                mid_price=D("0.5"),
                level_quantity=D(1),
                levels=2,
                spread_steps=1,
                level_gap_steps=1,
                max_move_steps=5,
            )
        ],
    )
    for t in range(30):
        mm.step(t)
        assert min(p for p, _ in engine.depth(BTC).bids) > 0


def test_init_when_config_invalid_then_value_error() -> None:
    engine = MatchingEngine(PairRegistry.with_defaults(), Wallets(), ManualClock())
    with pytest.raises(ValueError, match="spread"):
        MarketMaker(engine, [MarketMakerConfig(BTC, D(1), D(1), spread_steps=0)])
