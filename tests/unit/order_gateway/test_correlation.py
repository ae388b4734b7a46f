"""Correlation: one listed order per intent, never two claims, never two identical in
flight."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.order_gateway.domain import (
    Correlation,
    Fingerprint,
    Intent,
    ListedOrder,
    correlate,
    may_submit,
)
from shared.contracts import Side
from tests.unit.order_gateway.factories import SYMBOL, T0, USER, listed, new_order, sent_order

D = Decimal


def _correlate(
    intents: list[Intent], listings: list[ListedOrder], claimed: Iterable[str] = ()
) -> Correlation:
    return correlate(intents, listings, claimed_ids=claimed, skew_ms=5_000, window_ms=65_000)


def _intent(cid: str, *, price: str = "100", at: int = T0, side: Side = Side.BUY) -> Intent:
    return Intent(cid, Fingerprint(USER, SYMBOL, side, D(price), D(1)), at)


def test_may_submit_when_identical_in_flight_then_wait() -> None:
    first = sent_order("c1")
    assert first.fingerprint is not None
    assert not may_submit([first], first.fingerprint, "c2")
    assert may_submit([first], first.fingerprint, "c1")


def test_may_submit_when_first_correlated_then_go() -> None:
    first = sent_order("c1")
    print_ = first.fingerprint
    assert print_ is not None
    first.on_listed(listed())
    assert may_submit([first], print_, "c2")


def test_may_submit_when_different_price_then_go() -> None:
    first = sent_order("c1")
    other = Fingerprint(USER, SYMBOL, Side.BUY, D(101), D(1))
    assert may_submit([first, new_order("c3")], other, "c2")


def test_correlate_when_one_match_then_claimed() -> None:
    result = _correlate([_intent("c1")], [listed("1")])
    assert result.claims["c1"].order_id == "1"
    assert result.ambiguous == ()


def test_correlate_when_already_claimed_then_not_claimed_again() -> None:
    result = _correlate([_intent("c1")], [listed("1")], ["1"])
    assert result.claims == {}


def test_correlate_when_outside_window_then_no_match() -> None:
    early = listed("1", time_ms=T0 - 6_000)
    late = listed("2", time_ms=T0 + 66_000)
    assert _correlate([_intent("c1")], [early, late]).claims == {}


def test_correlate_when_two_candidates_then_earliest_and_flagged_never_both() -> None:
    result = _correlate(
        [_intent("c1")], [listed("2", time_ms=T0 + 20), listed("1", time_ms=T0 + 10)]
    )
    assert result.claims["c1"].order_id == "1"
    assert result.ambiguous == ("c1",)


def test_correlate_when_two_intents_one_listing_then_oldest_intent_only() -> None:
    result = _correlate(
        [_intent("c2", at=T0 + 5), _intent("c1", at=T0)], [listed("1", time_ms=T0 + 10)]
    )
    assert set(result.claims) == {"c1"}


_ids = st.integers(min_value=1, max_value=30).map(str)
_prices = st.sampled_from([D(100), D(101)])
_sides = st.sampled_from([Side.BUY, Side.SELL])


@settings(max_examples=200, deadline=None)
@given(
    intents=st.lists(
        st.tuples(_prices, _sides, st.integers(0, 5_000)), max_size=6, unique_by=lambda t: t
    ),
    orders=st.lists(
        st.tuples(_ids, _prices, _sides, st.integers(-10_000, 80_000)),
        max_size=10,
        unique_by=lambda t: t[0],
    ),
    claimed=st.sets(_ids, max_size=5),
)
def test_correlate_when_random_then_one_to_one_and_only_on_terms(
    intents: list[tuple[Decimal, Side, int]],
    orders: list[tuple[str, Decimal, Side, int]],
    claimed: set[str],
) -> None:
    wanted = [
        _intent(f"c{index}", price=str(price), side=side, at=T0 + at)
        for index, (price, side, at) in enumerate(intents)
    ]
    listings = [
        ListedOrder(
            order_id=oid, symbol=SYMBOL, side=side, price=price, quantity=D(1), time_ms=T0 + at
        )
        for oid, price, side, at in orders
    ]
    result = _correlate(wanted, listings, claimed)
    again = _correlate(list(reversed(wanted)), list(reversed(listings)), claimed)
    assert result == again  # deterministic, whatever the input order
    ids = [order.order_id for order in result.claims.values()]
    assert len(ids) == len(set(ids))
    assert not set(ids) & claimed
    by_cid = {intent.client_order_id: intent for intent in wanted}
    for cid, order in result.claims.items():
        print_ = by_cid[cid].fingerprint
        assert (order.symbol, order.side, order.price, order.quantity) == (
            print_.symbol,
            print_.side,
            print_.price,
            print_.quantity,
        )
        assert (
            by_cid[cid].submitted_at_ms - 5_000
            <= order.time_ms
            <= by_cid[cid].submitted_at_ms + 65_000
        )
