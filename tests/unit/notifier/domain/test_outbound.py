from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.outbound import Outbound


def test_push_when_within_budget_then_fifo_and_bytes_accounted() -> None:
    out: Outbound[str] = Outbound(100)
    assert out.push("a", 40)
    assert out.push("b", 60)
    assert out.queued_bytes == 100
    assert out.pop() == ("a", None)
    assert out.queued_bytes == 60
    assert out.pop() == ("b", None)
    assert out.pop() == (None, None)
    assert out.queued_bytes == 0


def test_push_when_over_budget_then_refused_and_nothing_queued() -> None:
    out: Outbound[str] = Outbound(100)
    assert out.push("a", 90)
    assert not out.push("b", 11)
    assert len(out) == 1
    assert out.queued_bytes == 90


def test_push_ticker_when_same_symbol_again_then_conflated_to_latest() -> None:
    out: Outbound[str] = Outbound(1000)
    assert out.push_ticker("BTC_USDT", "old") == (True, False)
    assert out.push_ticker("BTC_USDT", "newer") == (True, True)
    assert out.push_ticker("ETH_USDT", "eth") == (True, False)
    assert out.queued_bytes == len("newer") + len("eth")
    assert out.push("user", 10)
    # tickers first, latest only
    assert out.pop() == (None, "newer")
    assert out.pop() == (None, "eth")
    assert out.pop() == ("user", None)
    assert out.queued_bytes == 0


def test_push_ticker_when_over_budget_then_refused() -> None:
    out: Outbound[str] = Outbound(10)
    assert out.push_ticker("BTC_USDT", "x" * 11) == (False, False)
    assert len(out) == 0


def test_clear_when_items_then_all_dropped_and_counted() -> None:
    out: Outbound[str] = Outbound(1000)
    out.push("a", 1)
    out.push("b", 1)
    out.push_ticker("BTC_USDT", "t")
    assert out.clear() == 3
    assert (len(out), out.queued_bytes) == (0, 0)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50)), max_size=200))
def test_outbound_when_any_pushes_and_pops_then_bytes_never_exceed_budget(
    ops: list[tuple[bool, int]],
) -> None:
    out: Outbound[int] = Outbound(200)
    expected = 0
    for push, size in ops:
        if push:
            if out.push(size, size):
                expected += size
        else:
            item, _ = out.pop()
            if item is not None:
                expected -= item
        assert out.queued_bytes == expected <= 200
