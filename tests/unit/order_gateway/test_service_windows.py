"""`GatewayService`'s pure parts, without a database or OPEX: how far back a listing
read looks (`_window_start`, the clock offset learnt from listings), which reads may
prove an in-flight order absent, unchanged tickers not republished, and the balances
loop woken when someone's balances are due."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

import pytest

from services.order_gateway.config import GatewayConfig
from services.order_gateway.domain.book import Tracked
from services.order_gateway.handlers import GatewayService, _Poll
from shared.contracts import OrderStatus, UserProvisioned, new_message
from shared.credentials import CredentialStore
from shared.db import Database
from shared.opex import OpexClient, Ticker
from tests.unit.order_gateway.factories import SYMBOL, T0, USER, listed, new_order, sent_order

S = OrderStatus
SKEW = 5_000
GRACE = 2_000
MARGIN = 250


class _Opex:
    """Just what the service calls here."""

    def __init__(self) -> None:
        self.tickers: list[Ticker] = []

    def using(self, _surface: str) -> _Opex:
        return self

    async def ticker_24h(self) -> list[Ticker]:
        return self.tickers


class _Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _service(clock: _Clock, opex: _Opex | None = None, **kwargs: Any) -> GatewayService:
    return GatewayService(
        config=GatewayConfig(clock_skew_ms=SKEW, listing_grace_ms=GRACE, poll_interval_ms=1_000),
        db=cast(Database, None),
        opex=cast(OpexClient, opex or _Opex()),
        credentials=cast(CredentialStore, None),
        clock=clock,
        listing_margin_ms=MARGIN,
        publish_market_data=False,
        **kwargs,
    )


def _add(service: GatewayService, tracked: Tracked) -> Tracked:
    service.book.add(tracked, service.clock())
    return tracked


def test_narrow_when_nothing_learnt_then_the_whole_clock_skew() -> None:
    service = _service(_Clock())
    assert service._narrow_ms() == -SKEW


def test_narrow_when_listings_seen_then_their_offset_less_the_margin() -> None:
    clock = _Clock(T0 + 1_000)
    service = _service(clock)
    # stamped by OPEX 40 ms before our read ended: OPEX's clock is at least 40 ms behind
    service._learn_offset([listed(time_ms=T0 + 960), listed(time_ms=T0 + 100)], T0 + 1_000)
    assert service._offset_low == -40
    assert service._narrow_ms() == -40 - MARGIN
    service._learn_offset([listed(time_ms=T0 + 990)], T0 + 1_000)  # a tighter bound wins
    assert service._offset_low == -10
    service._learn_offset([listed(time_ms=T0 + 500)], T0 + 2_000)  # a looser one does not
    assert service._offset_low == -10


def test_narrow_when_bound_is_a_minute_old_then_renewed_from_the_next_read() -> None:
    """A step of either clock is forgotten: the bound is renewed every minute."""
    service = _service(_Clock())
    service._learn_offset([listed(time_ms=T0)], T0)
    service._learn_offset([listed(time_ms=T0 + 60_001 - 3_000)], T0 + 60_001)
    assert service._offset_low == -3_000


def test_narrow_when_offset_beyond_the_configured_skew_then_the_skew() -> None:
    service = _service(_Clock())
    service._learn_offset([listed(time_ms=T0 - 60_000)], T0)
    assert service._narrow_ms() == -SKEW


def test_learn_offset_when_update_time_listed_then_it_counts() -> None:
    """``allOrders`` filters on update time: that is the clock that matters."""
    service = _service(_Clock())
    item = listed(time_ms=T0 - 5_000)
    item = type(item)(**{**_fields(item), "update_time_ms": T0 - 20})
    service._learn_offset([item], T0)
    assert service._offset_low == -20


def _fields(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


def test_window_when_first_read_then_from_the_oldest_open_order_less_the_skew() -> None:
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    old = _add(service, Tracked(sent_order("a", at=T0)))
    young = _add(service, Tracked(sent_order("b", at=T0 + 9_990)))
    start, rest = service._window_start(USER, SYMBOL, [old, young], clock.now)
    assert (start, rest) == (T0 - SKEW, True)


def test_window_when_young_order_in_flight_then_narrow() -> None:
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    service._cursors[(USER, SYMBOL)] = clock.now - 100  # the resting read is not due
    service._learn_offset([listed(time_ms=clock.now - 30)], clock.now)
    young = _add(service, Tracked(sent_order("b", at=clock.now - 20)))
    start, rest = service._window_start(USER, SYMBOL, [young], clock.now)
    assert rest is False
    assert start == clock.now - 20 - 30 - MARGIN


def test_window_when_in_flight_order_older_than_the_grace_then_the_whole_skew() -> None:
    """Such a read can prove the order absent, so it covers what the deadline rule
    assumes: the request time less the clock skew."""
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    service._cursors[(USER, SYMBOL)] = clock.now - 100
    service._learn_offset([listed(time_ms=clock.now)], clock.now)
    old = _add(service, Tracked(sent_order("a", at=clock.now - GRACE)))
    young = _add(service, Tracked(sent_order("b", at=clock.now - 5)))
    start, _ = service._window_start(USER, SYMBOL, [old, young], clock.now)
    assert start == clock.now - GRACE - SKEW


def test_window_when_only_resting_orders_and_read_recently_then_no_read() -> None:
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    service._cursors[(USER, SYMBOL)] = clock.now - 999
    resting = _add(service, Tracked(_accepted("a")))
    assert service._window_start(USER, SYMBOL, [resting], clock.now) == (None, False)


def test_window_when_resting_read_due_then_from_the_cursor_less_the_grace() -> None:
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    cursor = clock.now - 1_000
    service._cursors[(USER, SYMBOL)] = cursor
    resting = _add(service, Tracked(_accepted("a")))
    # nothing learnt: as far back as the clock skew allows
    assert service._window_start(USER, SYMBOL, [resting], clock.now) == (cursor - SKEW, True)
    service._learn_offset([listed(time_ms=clock.now)], clock.now)
    start, rest = service._window_start(USER, SYMBOL, [resting], clock.now)
    assert rest is True
    assert start == cursor - MARGIN - GRACE


def test_window_when_cancel_sent_then_from_the_cancel_with_the_offset() -> None:
    clock = _Clock(T0 + 10_000)
    service = _service(clock)
    service._cursors[(USER, SYMBOL)] = clock.now - 100
    service._learn_offset([listed(time_ms=clock.now)], clock.now)
    tracked = _add(service, Tracked(_accepted("a")))
    tracked.order.request_cancel()
    assert tracked.order.status is S.PENDING_CANCEL
    assert service._window_start(USER, SYMBOL, [tracked], clock.now) == (None, False)
    tracked.cancel_sent_ms = clock.now - 50
    start, _ = service._window_start(USER, SYMBOL, [tracked], clock.now)
    assert start == clock.now - 50 - MARGIN


def _accepted(cid: str) -> Any:
    order = sent_order(cid)
    order.on_listed(listed(f"9{cid}", time_ms=T0 + 10))
    assert order.status is S.ACCEPTED
    return order


@pytest.mark.parametrize(("wide", "given_up"), [(False, False), (True, True)])
def test_give_up_when_past_deadline_then_only_a_read_over_the_whole_skew_proves_it(
    wide: bool, given_up: bool
) -> None:
    config = GatewayConfig(
        clock_skew_ms=SKEW, listing_grace_ms=100, failed_after_ms=1_000, query_interval_ms=100
    )
    clock = _Clock(T0 + 5_000)
    service = GatewayService(
        config=config,
        db=cast(Database, None),
        opex=cast(OpexClient, _Opex()),
        credentials=cast(CredentialStore, None),
        clock=clock,
    )
    tracked = _add(service, Tracked(sent_order("a", at=T0)))
    tracked.request_done_ms = T0 + 10
    start = T0 - SKEW if wide else T0 - 100
    read = _Poll(SYMBOL, listed=[], started_ms=clock.now - 10, start_ms=start)
    changed: dict[str, Tracked] = {}
    outgoing: list[Any] = []
    service._apply_read(USER, read, clock.now, changed, outgoing)
    assert (tracked.order.status is S.FAILED) is given_up
    assert [e.type for e in outgoing] == (["OrderFailed"] if given_up else [])


def _ticker(last: str) -> Ticker:
    return Ticker.model_validate(
        {
            "symbol": SYMBOL,
            "lastPrice": last,
            "bidPrice": "99",
            "askPrice": "101",
            "volume": "5",
        }
    )


async def test_tickers_when_unchanged_then_published_only_at_the_heartbeat() -> None:
    clock = _Clock()
    opex = _Opex()
    service = _service(clock, opex, market_heartbeat_ms=3_000)
    opex.tickers = [_ticker("100")]
    assert await service.publish_tickers() == 1
    clock.now += 1_000
    assert await service.publish_tickers() == 0
    opex.tickers = [_ticker("100.5")]
    assert await service.publish_tickers() == 1
    clock.now += 2_999
    assert await service.publish_tickers() == 0
    clock.now += 1
    assert await service.publish_tickers() == 1


def test_balances_when_user_provisioned_then_the_loop_is_woken() -> None:
    service = _service(_Clock())
    assert not service._balances_wake.is_set()
    opex_user = "6f1c2f8e-0b1e-4d8e-9c51-1f2a3b4c5d6e"
    service.on_users([new_message(UserProvisioned(opex_user_id=opex_user), user_id="7")])
    assert service._balances_wake.is_set()
    assert "7" in service._balances_due


def test_new_order_is_not_in_flight_until_its_intent() -> None:
    """Guard for the windows above: an order not yet submitted needs no listing."""
    clock = _Clock(T0 + 10)
    service = _service(clock)
    service._cursors[(USER, SYMBOL)] = clock.now
    pending = _add(service, Tracked(new_order("a")))
    assert pending.order.status is S.PENDING_SUBMIT
    assert service._window_start(USER, SYMBOL, [pending], clock.now) == (None, False)
    assert Decimal(0) == pending.order.filled_quantity


class _Store:
    """A credential store that counts its reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.invalidated: list[str | None] = []

    async def get(self, user_id: str) -> Any:
        self.reads += 1
        await asyncio.sleep(0.01)
        return f"creds-of-{user_id}"

    def invalidate(self, user_id: str | None = None) -> None:
        self.invalidated.append(user_id)


async def test_credentials_when_many_ask_at_once_then_read_once_and_kept() -> None:
    store = _Store()
    service = GatewayService(
        config=GatewayConfig(),
        db=cast(Database, None),
        opex=cast(OpexClient, _Opex()),
        credentials=cast(CredentialStore, store),
        clock=_Clock(),
    )
    answers: list[Any] = await asyncio.gather(*(service._credentials("7") for _ in range(20)))
    assert set(answers) == {"creds-of-7"}
    assert store.reads == 1
    assert str(await service._credentials("7")) == "creds-of-7"
    assert store.reads == 1
    service._forget_credentials("7")  # an auth error: read again
    assert str(await service._credentials("7")) == "creds-of-7"
    assert store.reads == 2
    service.credentials_ttl_s = 0.0  # expired: read again
    assert str(await service._credentials("7")) == "creds-of-7"
    assert store.reads == 3
