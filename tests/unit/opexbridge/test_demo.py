"""The demo's logic without a broker: its users, the script and the stream it publishes,
the terminal view's bookkeeping, the tokens it mints for the notifier's page, make
run's switch, and the page's routes."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import httpx
import pytest
from rich.console import Console
from starlette.applications import Starlette

from opexbridge.demo.runner import DemoOptions, DemoResult, user_token
from opexbridge.demo.scenario import (
    BASE_QUANTITY,
    DemoUser,
    Market,
    Stream,
    demo_users,
    full_script,
    script,
)
from opexbridge.demo.view import FlowView, fmt
from opexbridge.devrun import demo_enabled
from services.notifier.app import build_verifier
from services.notifier.config import NotifierSettings
from services.notifier.static import demo_routes
from shared.contracts import (
    BalancesUpdated,
    CancelApproved,
    CancelOrder,
    ClosePosition,
    Envelope,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PlaceOrder,
    PositionUpdated,
    Reservation,
    UserRegistered,
    caused_by,
    decode,
    encode,
    new_message,
)

MARKETS = {
    "BTC_USDT": Market(
        "BTC_USDT",
        Decimal("0.01"),
        Decimal("0.000001"),
        Decimal("29999.9"),
        Decimal("30000.1"),
        Decimal("30000.05"),
    ),
    "ETH_USDT": Market(
        "ETH_USDT", Decimal("0.01"), Decimal("0.0001"), Decimal("1999.9"), Decimal("2000.1")
    ),
}


def on_steps(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


# ----------------------------------------------------------------------- scenario


def test_demo_users_are_new_per_run_valid_and_spread_over_both_pairs() -> None:
    first, second = demo_users("abc123"), demo_users("def456")
    assert [u.name for u in first] == ["alice", "bob", "carol", "dave"]
    assert {u.user_id for u in first}.isdisjoint(u.user_id for u in second)
    assert {u.symbol for u in first} == {"BTC_USDT", "ETH_USDT"}
    for user in first:  # what user_sync will accept
        message = new_message(UserRegistered(email=user.email), user_id=user.user_id)
        assert decode(encode(message)).user_id == user.user_id
    with pytest.raises(ValueError, match="between"):
        demo_users("x", 0)


def test_market_prices_land_on_the_step_on_the_chosen_side() -> None:
    m = MARKETS["BTC_USDT"]
    assert m.reference == Decimal("30000.05")
    assert m.price("0.99") == Decimal("29700.04")  # 29700.0495 down
    assert m.price("0.99", up=True) == Decimal("29700.05")
    assert Market(
        "X_USDT", Decimal("0.5"), Decimal(1), Decimal(10), Decimal(11)
    ).reference == Decimal("10.5")
    quantity = m.quantity_for(Decimal(1_000_000))
    assert quantity * m.reference > 1_000_000
    assert on_steps(quantity, m.quantity_step)
    with pytest.raises(LookupError):
        _ = Market("X_USDT", Decimal(1), Decimal(1)).reference


@pytest.mark.parametrize("index", range(4))
def test_every_scripted_command_is_valid_and_says_what_it_is(index: int) -> None:
    user = demo_users("r1")[index]
    market = MARKETS[user.symbol]
    steps = script(user, "r1", index)
    commands = [step.command(market) for step in steps]
    for command in commands:  # what the contract accepts on orders.commands
        decode(encode(new_message(command, user_id=user.user_id)))
    places = [c for c in commands if isinstance(c, PlaceOrder)]
    assert {str(p.type) for p in places} >= {"limit", "market", "stop"}
    assert any(isinstance(c, ClosePosition) for c in commands)
    ids = [p.client_order_id for p in places]
    assert len(ids) == len(set(ids))
    for position, cancel in enumerate(commands):
        if isinstance(cancel, CancelOrder):  # an order placed before it
            earlier = [c.client_order_id for c in commands[:position] if isinstance(c, PlaceOrder)]
            assert cancel.client_order_id in earlier
    refusals = [s for s in steps if s.expect.startswith("rejected")]
    assert refusals, "every user has an order the risk engine must refuse"
    for step in refusals:
        order = step.command(market)
        assert isinstance(order, PlaceOrder)
        code = step.expect.split()[1]
        price = order.price or market.reference
        if code == "ORDER_VALUE_OUT_OF_BOUNDS":
            assert order.quantity * price > market.max_order_value
        elif code == "PRICE_STEP":
            assert not on_steps(price, market.price_step)
        elif code == "QUANTITY_STEP":
            assert not on_steps(order.quantity, market.quantity_step)
        elif code == "INSTRUMENT_UNKNOWN":
            assert order.symbol not in MARKETS
        elif code == "INSUFFICIENT_BALANCE":
            assert order.quantity * price > Decimal(100_000)
        else:
            pytest.fail(f"unexpected refusal {code}")
    for step in steps:
        if not step.expect.startswith("rejected"):
            order = step.command(market)
            if isinstance(order, PlaceOrder):
                assert on_steps(order.quantity, market.quantity_step)
                for level in (order.price, order.stop_price):
                    if level is not None:
                        assert on_steps(level, market.price_step)
                        assert abs(level / market.reference - 1) < Decimal("0.05")  # the collar


def test_the_full_script_interleaves_the_users_and_covers_every_refusal() -> None:
    users = demo_users("r2")
    steps = full_script(users, "r2")
    assert [s.user.name for s in steps[:4]] == ["alice", "bob", "carol", "dave"]
    assert {s.expect for s in steps if s.expect.startswith("rejected")} == {
        "rejected ORDER_VALUE_OUT_OF_BOUNDS",
        "rejected INSTRUMENT_UNKNOWN",
        "rejected PRICE_STEP",
        "rejected QUANTITY_STEP",
        "rejected INSUFFICIENT_BALANCE",
    }
    assert all(s.symbol for s in steps)


def test_the_stream_keeps_books_and_positions_small() -> None:
    users = demo_users("r3", 2)
    stream = Stream(users, "r3", random.Random(1))
    assert stream.next(lambda _s: None, lambda _u: [], lambda _u, _s: Decimal(0)) is None
    crowded = stream.next(MARKETS.get, lambda _u: ["a", "b", "c"], lambda _u, _s: Decimal(0))
    assert crowded is not None
    assert isinstance(crowded[2], CancelOrder)
    assert crowded[2].client_order_id == "a"
    loaded = stream.next(MARKETS.get, lambda _u: [], lambda _u, _s: Decimal(1000))
    assert loaded is not None
    assert isinstance(loaded[2], ClosePosition)
    seen = set()
    for _ in range(200):
        picked = stream.next(MARKETS.get, lambda _u: ["x"], lambda _u, _s: Decimal(0))
        assert picked is not None
        user, _label, command = picked
        decode(encode(new_message(command, user_id=user.user_id)))
        seen.add(
            type(command).__name__ if not isinstance(command, PlaceOrder) else str(command.type)
        )
        if isinstance(command, PlaceOrder):
            assert command.quantity <= BASE_QUANTITY[user.symbol] * 3
    assert seen == {"limit", "market", "CancelOrder"}


# --------------------------------------------------------------------------- view


def _place(user: str, coid: str, type_: str = "limit", **extra: Any) -> Envelope[PlaceOrder]:
    fields = {
        "client_order_id": coid,
        "symbol": "BTC_USDT",
        "side": "buy",
        "type": type_,
        "quantity": "0.01",
        **extra,
    }
    return new_message(PlaceOrder.model_validate(fields), user_id=user)


def _event(parent: Envelope[Any], kind: type[Any], coid: str, **extra: Any) -> Envelope[Any]:
    fields = {
        "client_order_id": coid,
        "symbol": "BTC_USDT",
        "side": "buy",
        "order_type": "limit",
        "quantity": Decimal("0.01"),
        **extra,
    }
    return caused_by(parent, kind(**fields))


def _approved(command: Envelope[PlaceOrder]) -> Envelope[OrderApproved]:
    return caused_by(
        command,
        OrderApproved(
            command=command.data, reservation=Reservation(asset="USDT", amount=Decimal("300.5"))
        ),
    )


def test_the_view_follows_an_order_from_command_to_fill() -> None:
    view = FlowView(names={"u1": "alice"})
    place = _place("u1", "c1", price="30000")
    lines = view.apply("orders.commands", place)
    assert "alice" in lines[0]
    assert "buy 0.01 BTC_USDT limit @ 30000" in lines[0]
    row = view.rows[str(place.id)]
    assert (row.outcome, row.settled) == ("pending", False)
    view.apply("orders.approved", _approved(place))
    assert (row.outcome, row.settled, row.is_open) == ("approved", False, True)
    view.apply("orders.events", _event(place, OrderSubmitted, "c1"))
    view.apply("orders.events", _event(place, OrderAccepted, "c1", order_id="77"))
    assert (row.outcome, row.settled) == ("open", True)
    assert view.open_orders("u1") == ["c1"]
    fill = Fill(
        trade_id="t1",
        price=Decimal("29999"),
        quantity=Decimal("0.01"),
        fee=Decimal(0),
        fee_asset="BTC",
        liquidity="maker",
    )
    view.apply(
        "orders.events",
        _event(
            place,
            OrderFilled,
            "c1",
            order_id="77",
            status="filled",
            filled_quantity=Decimal("0.01"),
            avg_price=Decimal("29999"),
            last_fill=fill,
        ),
    )
    assert (row.outcome, row.filled, row.avg_price) == ("filled", Decimal("0.01"), Decimal("29999"))
    assert view.open_orders("u1") == []
    assert row.events == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]
    view.apply(
        "positions.events",
        new_message(
            PositionUpdated(position_id="p", symbol="BTC_USDT", quantity=Decimal("0.01")),
            user_id="u1",
        ),
    )
    assert view.position("u1", "BTC_USDT") == Decimal("0.01")
    assert view.position("u1", "ETH_USDT") == 0
    assert view.counts["filled"] == 1
    assert view.counts["approved"] == 1


def test_the_view_shows_refusals_stops_cancels_and_closes() -> None:
    view = FlowView()
    refused = _place("u1", "big", price="30000")
    view.apply("orders.commands", refused)
    view.apply(
        "orders.events",
        _event(
            refused,
            OrderRejected,
            "big",
            price=Decimal(30000),
            source="risk",
            reason_code="ORDER_VALUE_OUT_OF_BOUNDS",
            reason="too big",
        ),
    )
    assert view.rows[str(refused.id)].outcome == "rejected ORDER_VALUE_OUT_OF_BOUNDS"
    assert view.rows[str(refused.id)].settled
    assert view.refusals == {"ORDER_VALUE_OUT_OF_BOUNDS": 1}

    stop = _place("u1", "stop", type_="stop", stop_price="29000", side="sell")
    view.apply("orders.commands", stop)
    view.apply("orders.approved", _approved(stop))
    assert (view.rows[str(stop.id)].outcome, view.rows[str(stop.id)].settled) == ("held", True)

    cancel = new_message(CancelOrder(symbol="BTC_USDT", client_order_id="stop"), user_id="u1")
    view.apply("orders.commands", cancel)
    view.apply("orders.approved", caused_by(cancel, CancelApproved(command=cancel.data)))
    assert (view.rows[str(cancel.id)].outcome, view.rows[str(cancel.id)].settled) == (
        "cancel passed",
        False,
    )
    view.apply(
        "orders.events",
        caused_by(
            cancel,
            OrderCanceled(
                client_order_id="stop",
                symbol="BTC_USDT",
                side="sell",
                order_type="stop",
                quantity=Decimal("0.01"),
            ),
        ),
    )
    assert view.rows[str(stop.id)].outcome == "canceled"
    assert (view.rows[str(cancel.id)].outcome, view.rows[str(cancel.id)].settled) == (
        "canceled",
        True,
    )

    # ClosePosition: the risk engine names the order; the view finds it by correlation
    close = new_message(ClosePosition(symbol="BTC_USDT"), user_id="u1")
    view.apply("orders.commands", close)
    order = PlaceOrder.model_validate(
        {
            "client_order_id": "close-1",
            "symbol": "BTC_USDT",
            "side": "sell",
            "type": "market",
            "quantity": "0.01",
            "reduce_only": True,
        }
    )
    view.apply(
        "orders.approved",
        caused_by(
            close,
            OrderApproved(
                command=order, reservation=Reservation(asset="BTC", amount=Decimal("0.01"))
            ),
        ),
    )
    row = view.rows[str(close.id)]
    assert row.text == "close: sell 0.01 BTC_USDT market"
    fill = Fill(
        trade_id="t2",
        price=Decimal(30000),
        quantity=Decimal("0.01"),
        fee=Decimal(0),
        fee_asset="USDT",
        liquidity="taker",
    )
    view.apply(
        "orders.events",
        caused_by(
            close,
            OrderFilled(
                client_order_id="close-1",
                symbol="BTC_USDT",
                side="sell",
                order_type="market",
                quantity=Decimal("0.01"),
                status="filled",
                filled_quantity=Decimal("0.01"),
                avg_price=Decimal(30000),
                last_fill=fill,
            ),
        ),
    )
    assert (row.outcome, row.settled) == ("filled", True)

    view.apply(
        "accounts.events",
        new_message(
            BalancesUpdated(balances=({"asset": "USDT", "free": Decimal(5)},), source="risk"),
            user_id="u1",
        ),
    )
    assert view.users["u1"].balances == {}  # the risk engine's view is shown, not kept
    view.apply(
        "accounts.events",
        new_message(
            BalancesUpdated(
                balances=({"asset": "USDT", "free": Decimal(7), "locked": Decimal(1)},),
                source="opex",
            ),
            user_id="u1",
        ),
    )
    assert view.users["u1"].balances == {"USDT": Decimal(8)}

    console = Console(record=True, width=160)
    console.print(view.render("[bold]header[/]"))
    text = console.export_text()
    for shown in (
        "header",
        "rejected ORDER_VALUE_OUT_OF_BOUNDS",
        "cancel stop",
        "close: sell",
        "USDT 8",
    ):
        assert shown in text


def test_fmt_is_plain_decimal() -> None:
    assert fmt(Decimal("30000.1000")) == "30000.1"
    assert fmt(Decimal("1E+3")) == "1000"
    assert fmt(None) == "-"


def test_demo_result_lists_mismatches() -> None:
    user = demo_users("r4", 1)[0]
    steps = script(user, "r4", 0)[:2]
    result = DemoResult([user], steps, [steps[0].expect, "failed"], None, [])
    assert result.mismatches == [(steps[1], "failed")]


# ------------------------------------------------------------------ tokens, switch


async def test_the_page_token_is_one_the_notifier_accepts() -> None:
    settings = NotifierSettings(jwt_secret="s" * 40, jwt_audience="aud", jwt_issuer="iss")
    options = DemoOptions(jwt_secret="s" * 40, jwt_audience="aud", jwt_issuer="iss")
    token = user_token("demo-x-alice", options)
    assert token is not None
    identity = await build_verifier(settings).verify(token)
    assert identity.user_id == "demo-x-alice"
    assert user_token("u", DemoOptions(jwt_secret=None)) is None


def test_make_run_runs_the_demo_unless_told_not_to() -> None:
    assert demo_enabled({})
    assert demo_enabled({"OPEXBRIDGE_DEMO": "1"})
    for off in ("0", "false", "No", " off "):
        assert not demo_enabled({"OPEXBRIDGE_DEMO": off})


async def test_the_page_is_served_with_its_script_and_a_strict_policy() -> None:
    transport = httpx.ASGITransport(app=Starlette(routes=demo_routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/demo")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/demo/demo.js" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script_ = await client.get("/demo/demo.js")
        assert script_.headers["content-type"].startswith("text/javascript")
        assert 'type: "auth"' in script_.text
        assert (await client.get("/demo/demo.css")).status_code == 200
        assert (await client.post("/demo")).status_code == 405


def test_demo_user_is_frozen() -> None:
    user = DemoUser("a", "u", "a@b.cd", "BTC_USDT")
    with pytest.raises(AttributeError):
        user.name = "b"  # type: ignore[misc]
