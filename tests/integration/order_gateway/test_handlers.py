"""`GatewayService` driven directly against the sandbox and real PostgreSQL (no Kafka):
commit failures reload the book, an order whose request is out is never given up,
OPEX's refusals, market orders without a fresh price, identical orders, the circuit
breaker, and the per-user rate limit on OPEX's rate-limited surface."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.opex_sandbox.ratelimit import default_rules
from services.order_gateway.adapters import opex as opex_map
from services.order_gateway.adapters import store
from services.order_gateway.config import GatewayConfig, Surface
from services.order_gateway.domain import BreakerState, CircuitBreaker
from shared.contracts import (
    OrderFailed,
    OrderRejected,
    OrderStatus,
    RejectReason,
    RejectSource,
    TickerUpdated,
    new_message,
)
from shared.credentials import SecretBox
from shared.opex import OpexAmbiguous
from tests.integration.order_gateway.conftest import NewUser
from tests.integration.order_gateway.handlers_support import (
    Harness,
    config,
    harness,
    wait_for,
)
from tests.integration.order_gateway.support import Sandbox, approved

pytestmark = pytest.mark.integration

S = OrderStatus
D = Decimal
Make = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def make(
    database_url: str,
    schemas: tuple[str, str],
    sandbox: Sandbox,
    box: SecretBox,
    monkeypatch: pytest.MonkeyPatch,
) -> Make:
    def make(gateway: GatewayConfig | None = None, **service: Any) -> Any:
        return harness(
            database_url=database_url,
            schemas=schemas,
            sandbox=sandbox,
            box=box,
            monkeypatch=monkeypatch,
            gateway=gateway,
            **service,
        )

    return make


def _cid(envelope: Any) -> str:
    return str(envelope.data.command.client_order_id)


def _state(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # read afresh (mypy narrows attribute reads)


def _break_upsert_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next ``store.upsert`` fails (as a lost connection would); returns a counter
    of the failures raised."""
    real = store.upsert
    failed: list[int] = []

    async def upsert(session: Any, items: Any) -> None:
        if not failed:
            failed.append(1)
            raise ConnectionError("the database went away")
        await real(session, items)

    monkeypatch.setattr(store, "upsert", upsert)
    return failed


# ------------------------------------------------------------------ commit failures


async def test_commit_when_intent_write_fails_then_book_reloaded_and_order_sent_later(
    make: Make, new_user: NewUser, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await new_user()
    async with make() as h:
        first = approved(user, price="25000")
        await h.approve([first])
        h.start()
        await wait_for(lambda: h.status(_cid(first)) is S.ACCEPTED, what="first accepted")
        await h.stop_loops()
        second = approved(user, price="25001")
        await h.approve([second])
        book_before = h.service.book
        failed = _break_upsert_once(monkeypatch)
        await h.service.submit_ready()
        assert failed == [1]
        assert h.service.book is not book_before  # reloaded
        await h.assert_memory_is_table()
        reloaded = h.service.book.get(_cid(second))
        assert reloaded is not None
        assert reloaded.order.status is S.PENDING_SUBMIT
        assert reloaded.order.submitted_at_ms is None  # the intent was never committed
        assert len(h.calls) == 1  # ... so nothing went out for it
        h.start()
        await wait_for(lambda: h.status(_cid(second)) is S.ACCEPTED, what="second accepted")
        await h.assert_memory_is_table()
    held = sandbox.orders_of(user.opex_user_id)
    assert sorted(str(o.order_id) for o in held) == sorted(
        [str(h.opex_id(_cid(first))), str(h.opex_id(_cid(second)))]
    )
    assert len(h.calls) == 2


async def test_commit_when_result_write_fails_then_order_resolved_from_listings_not_resent(
    make: Make, new_user: NewUser, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await new_user()
    async with make() as h:
        order = approved(user, price="25000")
        await h.approve([order])
        await h.service.submit_ready()
        await h.placements_done()
        failed = _break_upsert_once(monkeypatch)
        await h.service.apply_results()
        assert failed == [1]
        await h.assert_memory_is_table()
        tracked = h.service.book.get(_cid(order))
        assert tracked is not None
        # the result was lost with the failed write: the committed intent makes it in flight
        assert tracked.order.status is S.PENDING_SUBMIT
        assert tracked.order.is_in_flight
        h.start()
        h.service.schedule_poll(user.user_id, h.service.clock())
        await wait_for(lambda: h.status(_cid(order)) is S.ACCEPTED, what="accepted")
        await h.assert_memory_is_table()
    [held] = sandbox.orders_of(user.opex_user_id)
    assert str(held.order_id) == h.opex_id(_cid(order))
    assert len(h.calls) == 1


# -------------------------------------------------------------- requests still out


IN_FLIGHT = {"failed_after_ms": 300, "listing_grace_ms": 50, "query_interval_ms": 50}


async def test_in_flight_when_request_still_out_then_never_given_up(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    """Polls past ``failed_after_ms`` while the request is out do not give the order up;
    once the request ended (here: ambiguous, and OPEX never got it) they do."""
    user = await new_user()
    async with make(config(**IN_FLIGHT)) as h:
        h.gate = asyncio.Event()
        h.fail_with = lambda: OpexAmbiguous("timed out after the request was sent")
        order = approved(user, price="25000")
        cid = _cid(order)
        await h.approve([order])
        await h.service.submit_ready()
        await wait_for(lambda: len(h.calls) == 1, what="request out")
        assert cid in h.service._sending
        tracked = h.service.book.get(cid)
        assert tracked is not None
        assert tracked.order.submitted_at_ms is not None
        deadline = tracked.order.submitted_at_ms + 3 * IN_FLIGHT["failed_after_ms"]
        polls = 0
        while h.service.clock() < deadline or polls < 5:
            await h.service.poll_user(user.user_id)
            polls += 1
            assert h.status(cid) is S.PENDING_SUBMIT
            await asyncio.sleep(0.02)  # time must pass: the deadline is a wall-clock time
        assert [e.type for e in await h.events_of(cid)] == []
        h.gate.set()
        await h.placements_done()
        released_at = h.service.clock()
        h.start()
        await wait_for(lambda: h.status(cid) is S.FAILED, what="given up after the request")
        events = await h.events_of(cid)
        assert [e.type for e in events] == ["OrderSubmitted", "OrderFailed"]
        failed = events[-1]
        assert isinstance(failed.data, OrderFailed)
        assert failed.data.reason_code is RejectReason.NOT_ACKNOWLEDGED
        assert failed.occurred_at >= datetime.fromtimestamp(released_at / 1000, UTC) - timedelta(
            milliseconds=1
        )
    assert sandbox.orders_of(user.opex_user_id) == []
    assert len(h.calls) == 1


async def test_in_flight_when_slow_request_placed_after_deadline_then_accepted(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    sandbox.faults(listing_delay_ms=300)  # OPEX lists the order 300 ms after taking it
    async with make(config(**IN_FLIGHT)) as h:
        h.gate = asyncio.Event()
        order = approved(user, price="25000")
        cid = _cid(order)
        await h.approve([order])
        h.start()
        await wait_for(lambda: len(h.calls) == 1, what="request out")
        tracked = h.service.book.get(cid)
        assert tracked is not None
        assert tracked.order.submitted_at_ms is not None
        deadline = tracked.order.submitted_at_ms + IN_FLIGHT["failed_after_ms"]
        await wait_for(lambda: h.service.clock() > deadline + 50, what="past the deadline")
        h.gate.set()  # the request goes out now, OPEX takes it and answers
        await wait_for(lambda: h.status(cid) in (S.ACCEPTED, S.FAILED), what="resolved")
        await wait_for(lambda: bool(sandbox.orders_of(user.opex_user_id)), what="OPEX has it")
        [held] = sandbox.orders_of(user.opex_user_id)
        assert held.status.value == "NEW"  # OPEX took the order: it is live
        assert h.status(cid) is S.ACCEPTED, [e.type for e in await h.events_of(cid)]
        assert h.opex_id(cid) == str(held.order_id)


# ----------------------------------------------------------------- OPEX refusals


@pytest.mark.parametrize(
    ("terms", "reason_code", "code"),
    [
        # 200 BTC to sell, the user has 100 (the value, 800,000 USDT, is within bounds)
        (
            {"side": "sell", "quantity": "200", "price": "4000"},
            RejectReason.INSUFFICIENT_BALANCE,
            4001,
        ),
        # 2.5 USDT, below the pair's minimum order value (10)
        ({"quantity": "0.0001", "price": "25000"}, RejectReason.ORDER_VALUE_OUT_OF_BOUNDS, 4003),
        # not a multiple of the price step (0.01): OPEX's 1020, no closer reason
        ({"price": "25000.005"}, RejectReason.EXCHANGE_REJECTED, 1020),
    ],
    ids=["insufficient-balance", "value-out-of-bounds", "price-off-step"],
)
async def test_placement_when_refused_by_opex_then_rejected_by_the_exchange(
    make: Make,
    new_user: NewUser,
    sandbox: Sandbox,
    terms: dict[str, str],
    reason_code: RejectReason,
    code: int,
) -> None:
    user = await new_user()
    async with make() as h:
        order = approved(user, **terms)
        cid = _cid(order)
        await h.approve([order])
        h.start()
        await wait_for(lambda: h.status(cid) is S.REJECTED, what="rejected")
        events = await h.events_of(cid)
        assert [e.type for e in events] == ["OrderRejected"]
        rejected = events[0].data
        assert isinstance(rejected, OrderRejected)
        assert rejected.source is RejectSource.EXCHANGE
        assert rejected.reason_code is reason_code
        assert f"code {code}" in rejected.reason
        assert h.service.breaker.state is BreakerState.CLOSED  # a refusal: OPEX is up
        await h.assert_memory_is_table()
    assert sandbox.orders_of(user.opex_user_id) == []
    assert [c.outcome for c in h.calls] == ["OpexRefused"]


# ---------------------------------------------------------------- market orders


async def _opex_ticker(h: Harness, symbol: str = "BTC_USDT") -> TickerUpdated:
    tickers = await h.opex.ticker_24h()
    return opex_map.ticker(next(t for t in tickers if t.symbol == symbol))


async def test_market_when_no_fresh_best_price_then_failed_no_reference_price(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    async with make(config(best_price_max_age_ms=300)) as h:
        await h.service.publish_instruments()  # the pair's rules are known
        live = await _opex_ticker(h)
        stale = live.model_copy(update={"at": datetime.now(UTC) - timedelta(seconds=5)})
        h.service.on_market([new_message(stale, user_id=None)])
        order = approved(user, type="market", price=None)
        cid = _cid(order)
        await h.approve([order])
        approved_at = h.service.clock()
        h.start()
        await wait_for(lambda: h.status(cid) is S.FAILED, what="failed")
        assert h.service.clock() - approved_at >= 300  # waited for a price that long
        events = await h.events_of(cid)
        assert [e.type for e in events] == ["OrderFailed"]
        assert events[0].data.reason_code is RejectReason.NO_REFERENCE_PRICE
    assert h.calls == []
    assert sandbox.orders_of(user.opex_user_id) == []


async def test_market_when_no_rules_for_the_pair_then_failed_instrument_unknown(
    make: Make, new_user: NewUser
) -> None:
    user = await new_user()
    async with make(config(best_price_max_age_ms=200)) as h:
        order = approved(user, type="market", price=None)
        cid = _cid(order)
        await h.approve([order])
        h.start()
        await wait_for(lambda: h.status(cid) is S.FAILED, what="failed")
        [failed] = await h.events_of(cid)
        assert failed.data.reason_code is RejectReason.INSTRUMENT_UNKNOWN
    assert h.calls == []


async def test_market_when_fresh_best_price_then_ioc_limit_in_the_collar_and_filled(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    async with make(config(best_price_max_age_ms=5_000)) as h:
        await h.service.publish_instruments()
        live = await _opex_ticker(h)
        assert live.ask_price is not None
        h.service.on_market([new_message(live, user_id=None)])
        order = approved(user, type="market", price=None, quantity="0.01")
        cid = _cid(order)
        await h.approve([order])
        h.start()
        await wait_for(lambda: h.status(cid) is S.FILLED, what="filled")
        [call] = h.calls
        assert call.time_in_force == "IOC"
        assert live.ask_price < call.price <= live.ask_price * D("1.02") + D("0.01")
    [held] = sandbox.orders_of(user.opex_user_id)
    assert held.type.value == "LIMIT"


# --------------------------------------------------------------- identical orders


async def test_identical_orders_when_approved_together_then_never_in_flight_together(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    async with make() as h:
        orders = [approved(user, price="25000", quantity="0.01") for _ in range(3)]
        await h.approve(orders)
        h.start()
        cids = [_cid(o) for o in orders]
        await wait_for(
            lambda: all(h.status(cid) is S.ACCEPTED for cid in cids),
            timeout=15,
            what="all accepted",
        )
        opex_ids = [h.opex_id(cid) for cid in cids]
    assert len(h.calls) == 3
    assert [c.in_flight_alike for c in h.calls] == [1, 1, 1]  # only the one being placed
    assert len(set(opex_ids)) == 3
    held = sandbox.orders_of(user.opex_user_id)
    assert sorted(str(o.order_id) for o in held) == sorted(str(i) for i in opex_ids)


# ---------------------------------------------------------------- circuit breaker


async def test_breaker_when_opex_down_then_opens_and_placement_resumes_after_cool_down(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    gateway = config(breaker_failure_threshold=2, breaker_cool_down_ms=300, failed_after_ms=5_000)
    async with make(gateway) as h:
        breaker = h.service.breaker
        sandbox.faults(outage=True)
        orders = [approved(user, price=str(25_000 + i)) for i in range(3)]
        cids = [_cid(o) for o in orders]
        await h.approve(orders)
        h.start()
        await wait_for(lambda: breaker.opened_count >= 2, what="opened, trial failed")
        assert _state(breaker) is not BreakerState.CLOSED
        attempts = len(h.calls)
        # at most the failures that open it, plus one trial per cool-down
        assert attempts <= 3 + 2 * breaker.opened_count
        assert all(c.outcome == "OpexUnavailable" for c in h.calls)
        assert all(h.status(cid) is S.PENDING_SUBMIT for cid in cids)
        sandbox.clear_faults()
        await wait_for(
            lambda: all(h.status(cid) is S.ACCEPTED for cid in cids),
            timeout=10,
            what="all accepted after the outage",
        )
        assert _state(breaker) is BreakerState.CLOSED
        opex_ids = {h.opex_id(cid) for cid in cids}
        await h.assert_memory_is_table()
    held = sandbox.orders_of(user.opex_user_id)
    assert {str(o.order_id) for o in held} == opex_ids
    assert len(held) == 3
    assert [c.outcome for c in h.calls].count("ok") == 3


# ------------------------------------------------------------------- rate limits


async def test_rate_limit_when_more_orders_than_opex_allows_then_queued_without_429(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    """The session sandbox limits POST /opex/v1/order to 10 per user per 60 s (its
    defaults; only on/off can change per test): the gateway's default limit is the same,
    so the 11th and 12th orders wait in the gateway instead of drawing 429s."""
    user = await new_user()
    sandbox.faults(rate_limit_enabled=True)
    gateway = config(order_surface=Surface.OPEX)
    assert gateway.opex_max_requests == 10
    async with make(gateway) as h:
        orders = [approved(user, price=str(25_000 + i)) for i in range(12)]
        cids = [_cid(o) for o in orders]
        await h.approve(orders)
        h.start()
        await wait_for(
            lambda: sum(h.status(cid) is S.ACCEPTED for cid in cids) == 10,
            timeout=15,
            what="ten accepted",
        )
        await h.service.submit_ready()  # one more pass: the two still may not go
        waiting = [cid for cid in cids if h.status(cid) is S.PENDING_SUBMIT]
        assert len(waiting) == 2
        now = h.service.clock()
        for cid in waiting:
            tracked = h.service.book.get(cid)
            assert tracked is not None
            assert tracked.order.submitted_at_ms is None
            assert h.service._to_submit[cid] > now + 50_000  # when the window lets it
    assert len(h.calls) == 10
    assert {c.outcome for c in h.calls} == {"ok"}
    assert len(sandbox.orders_of(user.opex_user_id)) == 10


async def test_rate_limit_when_window_passes_then_queued_orders_go_without_429(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    user = await new_user()
    sandbox.faults(rate_limit_enabled=True)
    window = 1_000
    gateway = config(order_surface=Surface.OPEX, opex_max_requests=3, rate_window_ms=window)
    async with make(gateway) as h:
        orders = [approved(user, price=str(25_000 + i)) for i in range(7)]
        cids = [_cid(o) for o in orders]
        await h.approve(orders)
        h.start()
        await wait_for(
            lambda: all(h.status(cid) is S.ACCEPTED for cid in cids),
            timeout=15,
            what="all accepted",
        )
    starts = sorted(c.started_ms for c in h.calls)
    assert len(starts) == 7
    # three, then three a window later, then the last (request latency aside)
    assert starts[3] - starts[0] >= window - 200
    assert starts[6] - starts[0] >= 2 * window - 200
    assert {c.outcome for c in h.calls} == {"ok"}
    assert len(sandbox.orders_of(user.opex_user_id)) == 7


async def test_rate_limit_when_first_requests_leave_late_then_still_no_429(
    make: Make, new_user: NewUser, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPEX counts requests when they arrive. Here the sandbox's limit is made 3 per
    second for this test (its rules replaced; faults can only switch it on), the
    gateway's is the same, and the first three requests leave 300 ms after their slots
    were taken."""
    user = await new_user()
    window = 1_000
    rules = default_rules(low_requests=3, low_window_s=window / 1000, low_block_steps_s=[1.0])
    monkeypatch.setattr(sandbox.state.limiter, "rules", rules)
    sandbox.faults(rate_limit_enabled=True)
    gateway = config(order_surface=Surface.OPEX, opex_max_requests=3, rate_window_ms=window)
    async with make(gateway) as h:
        h.gate = asyncio.Event()
        orders = [approved(user, price=str(25_000 + i)) for i in range(6)]
        await h.approve(orders)
        h.start()
        await wait_for(lambda: len(h.calls) == 3, what="first three out")
        first = min(c.started_ms for c in h.calls)
        await wait_for(lambda: h.service.clock() >= first + 300, what="300 ms later")
        gate, h.gate = h.gate, None
        gate.set()
        await wait_for(
            lambda: len(h.calls) == 6 and all(c.ended_ms is not None for c in h.calls),
            what="six requests answered",
        )
    sent = sorted(c.sent_ms for c in h.calls if c.sent_ms is not None)
    assert [c.outcome for c in h.calls].count("OpexRateLimited") == 0
    for i, at in enumerate(sent):
        assert sum(at <= s < at + window for s in sent[i:]) <= 3


async def test_rate_limit_when_gateway_limiter_off_then_opex_429_backs_the_user_off(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    """The contrast: without the gateway's limiter the sandbox's limit is drawn (so the
    tests above do test something); a 429'd order is not lost, the user waits."""
    user = await new_user()
    sandbox.faults(rate_limit_enabled=True)
    gateway = config(order_surface=Surface.OPEX, opex_max_requests=None)
    async with make(gateway) as h:
        orders = [approved(user, price=str(25_000 + i)) for i in range(12)]
        cids = [_cid(o) for o in orders]
        await h.approve(orders)
        h.start()
        await wait_for(
            lambda: (
                sum(h.status(cid) is S.ACCEPTED for cid in cids) == 10
                and sum(c.outcome is not None for c in h.calls) == len(h.calls)
            ),
            timeout=15,
            what="ten accepted",
        )
        await h.service.apply_results()
        limited = [c for c in h.calls if c.outcome == "OpexRateLimited"]
        assert limited
        assert all(h.status(cid) in (S.ACCEPTED, S.PENDING_SUBMIT) for cid in cids)
        waiting = [cid for cid in cids if h.status(cid) is S.PENDING_SUBMIT]
        assert len(waiting) == 2
        now = h.service.clock()
        assert all(h.service._to_submit[cid] >= now + 50_000 for cid in waiting)
    assert len(sandbox.orders_of(user.opex_user_id)) == 10


# ---------------------------------------------------------------------- stopping


@pytest.mark.parametrize(
    ("loop", "wake"),
    [
        ("submit_forever", "_submit_wake"),
        ("cancel_forever", "_cancel_wake"),
        ("poll_forever", "_poll_wake"),
    ],
)
async def test_loop_when_cancelled_as_it_is_woken_then_it_ends(
    make: Make, loop: str, wake: str
) -> None:
    async with make() as h:
        task = asyncio.create_task(getattr(h.service, loop)())
        for _ in range(5):  # into its wait for a wake-up
            await asyncio.sleep(0)
        getattr(h.service, wake).set()
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
        ended = task.done()
        while not task.done():  # leave nothing running
            task.cancel()
            await asyncio.wait([task], timeout=0.5)
    assert ended, f"{loop} swallowed its cancel and kept running"


# ------------------------------------------------------------ shared commits


async def test_polls_when_results_and_many_users_wait_then_one_commit_applies_them(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    """Placement results and the listing reads of several users waiting for the lock
    are applied by whoever takes it first, in one transaction; every order is
    accepted once, and memory is what the table holds."""
    users = [await new_user() for _ in range(3)]
    async with make() as h:
        orders = [approved(u, price="25000", quantity="0.01") for u in users]
        await h.approve(orders)
        await h.service.submit_ready()
        await h.placements_done()
        cids = [_cid(o) for o in orders]
        assert len(h.service._results) == 3  # answered, not applied yet
        commits: list[int] = []
        real = h.service._commit

        async def counted(changed: Any, outgoing: Any, why: str) -> bool:
            commits.append(len(changed))
            return bool(await real(changed, outgoing, why))

        h.service._commit = counted  # type: ignore[method-assign]
        await asyncio.sleep(0.05)  # OPEX lists an order a moment after answering
        async with h.service.lock:  # the polls queue up behind the lock
            polls = [asyncio.ensure_future(h.service.poll_user(u.user_id)) for u in users]
            await asyncio.sleep(0.5)
        await asyncio.gather(*polls)
        assert commits == [3]  # three results and three reads, one transaction
        assert all(h.status(cid) is S.ACCEPTED for cid in cids)
        await h.assert_memory_is_table()
        events = [e.type for e in await h.events()]
        assert sorted(events) == sorted(["OrderSubmitted", "OrderAccepted"] * 3)
    for user in users:
        assert len(sandbox.orders_of(user.opex_user_id)) == 1


async def test_intents_when_every_send_slot_busy_then_committed_ahead_and_sent_in_turn(
    make: Make, new_user: NewUser, sandbox: Sandbox
) -> None:
    """With one send slot and one intent of look-ahead, two intents are committed (both
    held as sending, so never given up) but one request is out at a time; the second
    leaves as soon as the first ends, and both are accepted."""
    user = await new_user()
    async with make(place_concurrency=1, lookahead=1) as h:
        h.gate = asyncio.Event()
        orders = [approved(user, price=str(25000 + i), quantity="0.01") for i in range(3)]
        await h.approve(orders)
        await h.service.submit_ready()
        cids = [_cid(o) for o in orders]
        await wait_for(lambda: len(h.calls) == 1, what="first request out")
        await asyncio.sleep(0.1)
        assert len(h.calls) == 1  # one slot
        assert len(h.service._sending) == 2  # and one intent committed ahead
        table = await h.table()
        submitted = [cid for cid in cids if table[cid][0]["submitted_at_ms"] is not None]
        assert len(submitted) == 2
        h.gate.set()
        h.start()
        await wait_for(
            lambda: all(h.status(cid) is S.ACCEPTED for cid in cids),
            timeout=15,
            what="all accepted",
        )
        await h.assert_memory_is_table()
    assert len(h.calls) == 3
    assert len(sandbox.orders_of(user.opex_user_id)) == 3
