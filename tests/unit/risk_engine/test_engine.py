"""The engine: commands, trading states, order events, positions and the replay."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

from services.risk_engine.config import LimitOverrides, RiskLimits
from services.risk_engine.domain import (
    DAY_MS,
    ENGINE_ACTOR,
    Approved,
    CancelPassed,
    CancelRefused,
    Outgoing,
    Rejected,
    RiskEngine,
    position_id,
)
from shared.contracts import (
    BalanceSource,
    BalancesUpdated,
    CancelApproved,
    CancelOrder,
    ClosePosition,
    Message,
    OrderCanceled,
    OrderExpired,
    OrderFailed,
    OrderRejected,
    OrderType,
    PositionUpdated,
    ReasonCode,
    RejectReason,
    RejectSource,
    Side,
    TradingScope,
    TradingState,
    TradingStateChanged,
    UserProvisioned,
)
from tests.unit.risk_engine.scenario import BTC, ETH, OTHER, USER, World, instrument, ready_world

D = Decimal
M = TypeVar("M", bound=Message)
COMMAND_ID = UUID("00000000-0000-4000-8000-000000000001")


def long_btc(world: World, quantity: str = "1", price: str = "50000") -> Approved:
    """USER buys ``quantity`` BTC at ``price``, filled in full; the clock moves on."""
    bought = world.approved(Side.BUY, quantity, price)
    world.clock.advance(10)
    world.fill(bought, quantity, price)
    world.clock.advance(10)
    return bought


def messages(out: Iterable[Outgoing], kind: type[M]) -> list[M]:
    return [item.message for item in out if isinstance(item.message, kind)]


# ---------------------------------------------------------------------- trading states


def test_cancel_when_halted_globally_then_passes() -> None:
    world = ready_world()
    placed = world.approved()
    world.engine.set_trading_state(TradingState.HALTED, changed_by="ops:alice", reason="x")

    decision = world.engine.decide_cancel(USER, world.cancel(placed.command.client_order_id))

    assert isinstance(decision, CancelPassed)


def test_cancel_when_user_halted_then_passes() -> None:
    world = ready_world()
    placed = world.approved()
    world.engine.set_trading_state(TradingState.HALTED, changed_by="ops", reason="x", user_id=USER)

    decision = world.engine.decide_cancel(USER, world.cancel(placed.command.client_order_id))

    assert isinstance(decision, CancelPassed)


def test_place_when_reducing_and_order_shrinks_the_position_then_approved() -> None:
    world = ready_world()
    long_btc(world)
    world.engine.set_trading_state(TradingState.REDUCING, changed_by="ops", reason="wind down")

    assert isinstance(world.place(Side.SELL, "0.4", "50000"), Approved)
    assert world.rejected(Side.BUY, "0.1", "50000").code is RejectReason.TRADING_REDUCING
    assert world.rejected(Side.SELL, "0.7", "50000").code is RejectReason.TRADING_REDUCING


def test_place_when_global_active_but_user_reducing_then_stricter_state_applies() -> None:
    world = ready_world()
    world.engine.set_trading_state(
        TradingState.REDUCING, changed_by="ops", reason="r", user_id=USER
    )

    assert world.rejected().code is RejectReason.TRADING_REDUCING


def test_set_trading_state_when_changed_then_event_names_who_and_why() -> None:
    world = ready_world()

    out = world.engine.set_trading_state(
        TradingState.HALTED, changed_by="ops:alice", reason="exchange incident"
    )

    assert out is not None
    assert out.user_id is None
    assert out.message == TradingStateChanged(
        scope=TradingScope.GLOBAL,
        state=TradingState.HALTED,
        previous_state=TradingState.ACTIVE,
        reason="exchange incident",
        changed_by="ops:alice",
    )


def test_set_trading_state_when_per_user_then_event_keyed_by_the_user() -> None:
    world = ready_world()

    out = world.engine.set_trading_state(
        TradingState.REDUCING, changed_by="ops", reason="r", user_id=USER
    )

    assert out is not None
    assert out.user_id == USER
    assert isinstance(out.message, TradingStateChanged)
    assert out.message.scope is TradingScope.USER


def test_set_trading_state_when_unchanged_then_no_event() -> None:
    world = ready_world()

    assert world.engine.set_trading_state(TradingState.ACTIVE, changed_by="o", reason="r") is None


def test_resume_when_halted_then_next_command_passes() -> None:
    world = ready_world()
    world.engine.set_trading_state(TradingState.HALTED, changed_by="ops", reason="x")
    world.rejected()

    world.engine.set_trading_state(TradingState.ACTIVE, changed_by="ops", reason="over")

    assert isinstance(world.place(), Approved)


def test_ticker_when_day_loss_reaches_the_limit_then_user_goes_reducing_by_itself() -> None:
    world = ready_world()
    long_btc(world)
    world.clock.advance(2_000)

    out = world.price(BTC, "39000")  # unrealised -11,000

    changes = messages(out, TradingStateChanged)
    assert changes == [
        TradingStateChanged(
            scope=TradingScope.USER,
            state=TradingState.REDUCING,
            previous_state=TradingState.ACTIVE,
            reason="daily loss 11000.00 USDT reached the limit 10000",
            changed_by=ENGINE_ACTOR,
        )
    ]
    assert [item.user_id for item in out if isinstance(item.message, TradingStateChanged)] == [USER]
    assert world.rejected(Side.BUY, "0.01", "39000").code is RejectReason.DAILY_LOSS_LIMIT
    assert isinstance(world.place(Side.SELL, "0.5", "39000"), Approved)


def test_fill_when_realised_loss_reaches_the_limit_then_user_goes_reducing() -> None:
    world = ready_world(USDT="200000")
    long_btc(world, "1", "50000")
    assert world.price(BTC, "42000") == []  # -8,000: within the limit
    sold = world.approved(Side.SELL, "1", "40000")
    world.clock.advance(10)

    out = world.fill(sold, "1", "40000")  # realises -10,000

    assert [m.state for m in messages(out, TradingStateChanged)] == [TradingState.REDUCING]


def test_place_when_day_loss_breached_but_state_not_yet_flipped_then_rejection_flips_it() -> None:
    world = ready_world()
    long_btc(world)
    world.engine.state.references[BTC] = world.engine.state.references[BTC].__class__(
        D(39000), world.clock.now
    )  # a price that arrived without the ticker handler

    rejected = world.rejected(Side.BUY, "0.01", "39000")

    assert rejected.code is RejectReason.DAILY_LOSS_LIMIT
    assert [m.state for m in messages(rejected.events, TradingStateChanged)] == [
        TradingState.REDUCING
    ]


def test_new_utc_day_when_reducing_was_automatic_then_active_again() -> None:
    world = ready_world()
    long_btc(world)
    world.clock.advance(2_000)
    world.price(BTC, "39000")
    world.clock.now = (world.clock.now // DAY_MS + 1) * DAY_MS + 1

    out = world.engine.on_timer()

    assert [m.state for m in messages(out, TradingStateChanged)] == [TradingState.ACTIVE]
    world.price(BTC, "39000")
    assert isinstance(world.place(Side.BUY, "0.01", "39000"), Approved)


def test_new_utc_day_when_reducing_was_set_by_ops_then_it_stays() -> None:
    world = ready_world()
    world.engine.set_trading_state(
        TradingState.REDUCING, changed_by="ops", reason="r", user_id=USER
    )
    world.place()
    world.clock.now = (world.clock.now // DAY_MS + 1) * DAY_MS + 1
    world.price(BTC, "50000")

    assert messages(world.engine.on_timer(), TradingStateChanged) == []
    assert world.rejected().code is RejectReason.TRADING_REDUCING


def test_new_utc_day_when_losses_were_yesterday_then_day_pnl_starts_at_zero() -> None:
    world = ready_world()
    long_btc(world)
    world.price(BTC, "41000")  # -9,000 today
    world.clock.now = (world.clock.now // DAY_MS + 1) * DAY_MS + 1
    world.price(BTC, "41000")
    world.engine.on_timer()

    world.price(BTC, "40000")  # -1,000 on the new day

    assert isinstance(world.place(Side.BUY, "0.01", "40000"), Approved)


# --------------------------------------------------------------------- limits at run time


def test_place_when_user_limit_changed_at_run_time_then_next_command_uses_it() -> None:
    world = ready_world()
    world.approved(Side.BUY, "0.1", "50000")

    world.limits.set_user(USER, LimitOverrides(max_order_notional=D(1000)))

    assert world.rejected(Side.BUY, "0.1", "50000").code is RejectReason.MAX_NOTIONAL
    world.limits.set_user(USER, None)
    assert isinstance(world.place(Side.BUY, "0.1", "50000"), Approved)


def test_place_when_global_limit_changed_at_run_time_then_every_user_uses_it() -> None:
    world = ready_world()

    world.limits.set_global(RiskLimits(max_order_notional=D(1000)))

    assert world.rejected(Side.BUY, "0.1", "50000").code is RejectReason.MAX_NOTIONAL


# ------------------------------------------------------------------------------- cancels


def test_cancel_when_order_open_then_passed_with_its_client_order_id() -> None:
    world = ready_world()
    placed = world.approved()
    world.accept(placed, order_id="777")

    decision = world.engine.decide_cancel(USER, CancelOrder(symbol=BTC, order_id="777"))

    assert isinstance(decision, CancelPassed)
    message = decision.to_message()
    assert isinstance(message, CancelApproved)
    assert message.command.client_order_id == placed.command.client_order_id


def test_cancel_when_order_of_another_user_then_order_not_found() -> None:
    world = ready_world()
    placed = world.approved()
    world.provision(OTHER)

    decision = world.engine.decide_cancel(OTHER, world.cancel(placed.command.client_order_id))

    assert isinstance(decision, CancelRefused)
    assert decision.code is RejectReason.ORDER_NOT_FOUND


def test_cancel_when_order_never_existed_then_order_not_found() -> None:
    world = ready_world()

    decision = world.engine.decide_cancel(USER, world.cancel("nope"))

    assert isinstance(decision, CancelRefused)
    assert decision.code is RejectReason.ORDER_NOT_FOUND
    rejected = decision.to_message()
    assert (rejected.source, rejected.reason_code) == (RejectSource.RISK, "ORDER_NOT_FOUND")


def test_cancel_when_order_already_closed_then_order_not_open() -> None:
    world = ready_world()
    placed = world.approved()
    world.close(placed, OrderCanceled)

    decision = world.engine.decide_cancel(USER, world.cancel(placed.command.client_order_id))

    assert isinstance(decision, CancelRefused)
    assert decision.code is RejectReason.ORDER_NOT_OPEN


def test_cancel_when_symbol_differs_then_order_not_found() -> None:
    world = ready_world()
    placed = world.approved()

    decision = world.engine.decide_cancel(
        USER, world.cancel(placed.command.client_order_id, symbol=ETH)
    )

    assert isinstance(decision, CancelRefused)
    assert decision.code is RejectReason.ORDER_NOT_FOUND


def test_cancel_when_ids_name_two_different_orders_then_order_not_found() -> None:
    world = ready_world()
    first, second = world.approved(), world.approved()
    world.accept(first, order_id="1")

    decision = world.engine.decide_cancel(
        USER,
        CancelOrder(symbol=BTC, client_order_id=second.command.client_order_id, order_id="1"),
    )

    assert isinstance(decision, CancelRefused)


# ------------------------------------------------------------------------ close position


def test_close_position_when_long_then_reduce_only_market_sell_of_all_of_it() -> None:
    world = ready_world()
    long_btc(world, "0.5")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Approved)
    order = decision.command
    assert (order.side, order.type, order.quantity, order.reduce_only) == (
        Side.SELL,
        OrderType.MARKET,
        D("0.5"),
        True,
    )
    assert order.client_order_id == f"close-{COMMAND_ID.hex}"


def test_close_position_when_part_then_that_quantity() -> None:
    world = ready_world()
    long_btc(world, "0.5")

    decision = world.engine.decide_close_position(
        USER,
        ClosePosition(symbol=BTC, quantity=D("0.2"), client_order_id="mine"),
        command_id=COMMAND_ID,
    )

    assert isinstance(decision, Approved)
    assert (decision.command.quantity, decision.command.client_order_id) == (D("0.2"), "mine")


def test_close_position_when_short_then_market_buy() -> None:
    world = ready_world(USDT="100000", BTC="1")
    sold = world.approved(Side.SELL, "0.3", "50000")
    world.clock.advance(10)
    world.fill(sold, "0.3", "50000")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Approved)
    assert (decision.command.side, decision.command.quantity) == (Side.BUY, D("0.3"))


def test_close_position_when_part_already_closing_then_only_the_rest() -> None:
    world = ready_world()
    long_btc(world, "0.5")
    world.approved(Side.SELL, "0.2", "50000")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Approved)
    assert decision.command.quantity == D("0.3")


def test_close_position_when_more_than_held_then_refused() -> None:
    world = ready_world()
    long_btc(world, "0.5")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC, quantity=D("0.6")), command_id=COMMAND_ID
    )

    assert isinstance(decision, Rejected)
    assert decision.code is ReasonCode.INVALID_FIELD


def test_close_position_when_flat_then_refused() -> None:
    world = ready_world()

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Rejected)
    assert decision.code is ReasonCode.INVALID_FIELD
    assert decision.to_message().quantity == D("0.0001")  # one step stands in


def test_close_position_when_halted_then_trading_halted() -> None:
    world = ready_world()
    long_btc(world, "0.5")
    world.engine.set_trading_state(TradingState.HALTED, changed_by="ops", reason="x")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Rejected)
    assert decision.code is RejectReason.TRADING_HALTED


def test_close_position_when_reducing_then_approved() -> None:
    world = ready_world()
    long_btc(world, "0.5")
    world.engine.set_trading_state(TradingState.REDUCING, changed_by="ops", reason="x")

    decision = world.engine.decide_close_position(
        USER, ClosePosition(symbol=BTC), command_id=COMMAND_ID
    )

    assert isinstance(decision, Approved)


# -------------------------------------------------------------------------- order events


def account_reserved(world: World, user: str = USER) -> dict[str, Decimal]:
    return dict(world.engine.state.accounts[user].reserved)


def test_exchange_rejection_when_order_open_then_reservation_released() -> None:
    world = ready_world()
    placed = world.approved()
    assert account_reserved(world) == {"USDT": D("5010")}

    world.close(placed, OrderRejected)

    assert account_reserved(world) == {}
    assert world.engine.state.accounts[USER].open_orders == {}


def test_failure_when_order_open_then_reservation_released() -> None:
    world = ready_world()
    placed = world.approved()

    world.close(placed, OrderFailed)

    assert account_reserved(world) == {}


def test_partial_fill_then_expiry_releases_exactly_the_rest() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.3", "50000")  # 15,030 reserved
    world.clock.advance(10)
    world.fill(placed, "0.1", "49900")
    assert account_reserved(world) == {"USDT": D("10020")}

    world.close(placed, OrderExpired, filled=D("0.1"), avg_price=D("49900"))

    assert account_reserved(world) == {}
    assert world.engine.state.accounts[USER].totals == {"USDT": D("95010"), "BTC": D("2.1")}


def test_own_rejection_echoed_on_orders_events_then_ignored() -> None:
    world = ready_world()
    rejected = world.rejected(symbol="SOL_USDT")

    assert world.engine.on_order_event(USER, rejected.to_message(), world.clock.now) == []


def test_fill_when_trade_seen_before_then_ignored() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.3", "50000")
    world.clock.advance(10)
    world.fill(placed, "0.1", "50000", trade_id="T1")

    again = world.fill(placed, "0.1", "50000", trade_id="T1", filled_before=D("0.1"))

    assert again == []
    assert world.engine.state.accounts[USER].positions[BTC].quantity == D("0.1")


def test_fill_when_event_older_than_order_state_then_ignored() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.3", "50000")
    world.clock.advance(10)
    world.fill(placed, "0.1", "50000", trade_id="T1")
    world.fill(placed, "0.1", "50000", trade_id="T2", filled_before=D("0.1"))

    stale = world.fill(placed, "0.1", "50000", trade_id="T3")  # says 0.1 filled in all

    assert stale == []
    assert world.engine.state.accounts[USER].positions[BTC].quantity == D("0.2")


def test_fill_when_an_earlier_fill_was_missed_then_cumulative_state_catches_up() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.3", "50000")
    world.clock.advance(10)

    # the event of a first fill of 0.1 at 49,000 never came; this one says 0.2 at avg 49,500
    world.fill(placed, "0.1", "50000", filled_before=D("0.1"), avg_price=D("49500"))

    position = world.engine.state.accounts[USER].positions[BTC]
    assert position.quantity == D("0.2")
    assert position.avg_entry == D("49500")
    assert account_reserved(world) == {"USDT": D("5010")}


def test_terminal_event_when_it_reports_unseen_fills_then_they_are_applied() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.3", "50000")
    world.clock.advance(10)

    out = world.close(placed, OrderCanceled, filled=D("0.2"), avg_price=D("49000"))

    assert world.engine.state.accounts[USER].positions[BTC].quantity == D("0.2")
    assert account_reserved(world) == {}
    assert len(messages(out, PositionUpdated)) == 1


def test_self_trade_when_both_sides_share_a_trade_id_then_both_count() -> None:
    world = ready_world()
    buy = world.approved(Side.BUY, "0.1", "50000")
    sell = world.approved(Side.SELL, "0.1", "50000")
    world.clock.advance(10)

    world.fill(buy, "0.1", "50000", trade_id="T9")
    world.fill(sell, "0.1", "50000", trade_id="T9")

    account = world.engine.state.accounts[USER]
    assert account.positions[BTC].quantity == 0
    assert account.reserved == {}


def test_event_when_order_unknown_then_ignored_and_counted() -> None:
    world = ready_world()
    other = ready_world()
    placed = other.approved()

    assert world.accept(placed) == []
    assert world.engine.state.ignored_events == 1


# ---------------------------------------------------------------------------- positions


def test_fill_then_position_updated_with_pnl_at_the_latest_mark() -> None:
    world = ready_world()
    placed = world.approved(Side.BUY, "0.2", "50000")
    world.clock.advance(10)

    out = world.fill(placed, "0.2", "50000", fee="10", fee_asset="USDT")

    assert [item.user_id for item in out] == [USER]
    assert out[0].message == PositionUpdated(
        position_id=f"{BTC}:{USER}",
        symbol=BTC,
        quantity=D("0.2"),
        avg_entry_price=D(50000),
        realized_pnl=D(-10),
        unrealized_pnl=D(0),
        mark_price=D(50000),
    )


def test_ticker_when_mark_moves_enough_then_position_updated_throttled() -> None:
    world = ready_world()
    long_btc(world, "0.2")
    world.clock.advance(2_000)

    first = world.price(BTC, "51000")
    assert [m.unrealized_pnl for m in messages(first, PositionUpdated)] == [D(200)]

    world.clock.advance(100)
    assert messages(world.price(BTC, "52000"), PositionUpdated) == []  # throttled

    world.clock.advance(1_000)
    flushed = world.engine.on_timer()
    assert [m.unrealized_pnl for m in messages(flushed, PositionUpdated)] == [D(400)]


def test_ticker_when_mark_moves_less_than_the_threshold_then_nothing() -> None:
    world = ready_world()
    long_btc(world, "0.2")
    world.clock.advance(2_000)

    assert world.price(BTC, "50040") == []  # 0.08 % < 0.1 %


def test_position_id_when_user_id_has_odd_characters_then_hashed() -> None:
    assert position_id("42", BTC) == "BTC_USDT:42"
    odd = position_id("user@example.com", BTC)
    assert odd.startswith("BTC_USDT:")
    assert "@" not in odd


# ------------------------------------------------------------------------------ balances


def test_balances_when_engine_view_published_then_own_snapshot_ignored() -> None:
    world = ready_world()
    world.approved()
    view = world.engine.balances_view(USER)
    assert view is not None
    assert view.source is BalanceSource.RISK
    assert {b.asset: (b.free, b.locked) for b in view.balances} == {
        "BTC": (D(2), D(0)),
        "USDT": (D(94990), D(5010)),
    }

    assert world.engine.on_balances(USER, view, world.clock.now + 1) == []
    assert world.engine.state.accounts[USER].balances_as_of_ms == world.clock.now


def test_balances_when_opex_disagrees_then_drift_reported_and_counted() -> None:
    world = ready_world()
    world.clock.advance(10)

    drifts = world.engine.on_balances(
        USER,
        BalancesUpdated.model_validate(
            {
                "balances": [{"asset": "USDT", "free": "100001"}, {"asset": "BTC", "free": "2"}],
                "source": "opex",
            }
        ),
        world.clock.now,
    )

    assert [(d.asset, d.difference) for d in drifts] == [("USDT", D(1))]
    assert world.engine.state.drift_count == 1


def test_balances_when_first_opex_snapshot_after_seeded_wallets_then_no_drift() -> None:
    world = World()
    world.engine.on_user_provisioned(
        USER,
        UserProvisioned.model_validate(
            {"opex_user_id": str(UUID(int=42)), "wallets": [{"asset": "USDT", "free": "0"}]}
        ),
        world.clock.now,
    )
    assert world.engine.state.accounts[USER].totals == {"USDT": D(0)}
    world.clock.advance(10)

    world.fund(USDT="500")

    assert world.engine.state.drift_count == 0
    assert world.engine.state.accounts[USER].totals == {"USDT": D(500)}


# -------------------------------------------------------------------------------- replay


def test_replay_when_history_replayed_then_state_rebuilt() -> None:
    world = ready_world()
    history: list[tuple[str | None, Message, int]] = []

    history.append((None, instrument(), world.clock.now))
    history.append((None, instrument(ETH), world.clock.now))
    live = world.engine
    placed = world.approved(Side.BUY, "0.3", "50000")
    history.append((USER, placed.to_message(), world.clock.now))
    rejected = world.rejected(symbol="SOL_USDT", coid="bad")
    history.append((USER, rejected.to_message(), world.clock.now))

    rebuilt = RiskEngine(clock=world.clock)
    rebuilt.replay(USER, UserProvisioned(opex_user_id=UUID(int=42)), world.clock.now)
    rebuilt.replay(
        USER,
        BalancesUpdated.model_validate(
            {
                "balances": [{"asset": "USDT", "free": "100000"}, {"asset": "BTC", "free": "2"}],
                "source": "opex",
            }
        ),
        world.clock.now,
    )
    for user_id, message, at_ms in history:
        rebuilt.replay(user_id, message, at_ms)

    old, new = live.state.accounts[USER], rebuilt.state.accounts[USER]
    assert new.reserved == old.reserved
    assert new.open_orders.keys() == old.open_orders.keys()
    assert new.seen_client_order_ids == old.seen_client_order_ids
    assert new.positions[BTC].open_buy == old.positions[BTC].open_buy
    assert new.provisioned


def test_replay_when_trading_state_changes_recorded_then_restored() -> None:
    world = ready_world()
    out = world.engine.set_trading_state(TradingState.HALTED, changed_by="ops", reason="x")
    assert out is not None

    rebuilt = RiskEngine(clock=world.clock)
    rebuilt.replay(out.user_id, out.message, world.clock.now)

    assert rebuilt.state.global_trading.state is TradingState.HALTED
