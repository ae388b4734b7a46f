from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from services.notifier.domain.events import (
    BalanceState,
    GlobalNotice,
    OrderState,
    PositionState,
    StreamItem,
    TickerFrame,
    TradingStateState,
    translate,
)
from services.notifier.domain.protocol import ACCOUNT, ORDERS, POSITIONS
from shared.contracts import (
    BalancesUpdated,
    CancelRejected,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    TickerUpdated,
    TradingStateChanged,
    new_message,
)
from shared.contracts.testing import example_envelope, examples

AT = datetime(2026, 1, 1, 12, 30, 15, 123000, tzinfo=UTC)


def user_item(data: object) -> StreamItem:
    item = translate(new_message(data, user_id="42", occurred_at=AT))
    assert isinstance(item, StreamItem)
    return item


def test_translate_when_order_filled_then_order_update_with_platform_fields() -> None:
    filled = examples(OrderFilled)[1]
    item = user_item(filled)
    assert (item.kind, item.channel, item.user_id) == ("order_update", ORDERS, "42")
    data = json.loads(item.data_json)
    assert data["id"] == "c-1"
    assert data["status"] == "filled"
    assert data["filled_quantity"] == "0.001"
    assert data["filled_price"] == "65000"
    assert data["remaining_quantity"] == "0"
    assert data["last_fill"]["trade_id"] == "t-9"
    assert data["last_fill"]["fee"] == "0.026"
    assert data["event"] == "OrderFilled"
    assert isinstance(item.state, OrderState)
    assert item.state.terminal
    assert item.state.status == "filled"


def test_translate_when_order_rejected_then_order_rejected_frame_with_reason() -> None:
    item = user_item(examples(OrderRejected)[0])
    data = json.loads(item.data_json)
    assert item.kind == "order_rejected"
    assert data["status"] == "rejected"
    assert data["reason_code"] == "INSUFFICIENT_BALANCE"
    assert data["source"] == "risk"


def test_translate_when_cancel_rejected_then_no_state_change() -> None:
    item = user_item(examples(CancelRejected)[0])
    assert item.kind == "cancel_rejected"
    assert item.state is None
    assert json.loads(item.data_json)["id"] == "1001"


def test_translate_when_position_then_signed_quantity_and_pnl_as_strings() -> None:
    item = user_item(examples(PositionUpdated)[1])
    data = json.loads(item.data_json)
    assert (item.kind, item.channel) == ("position_update", POSITIONS)
    assert data["id"] == "p-2"
    assert data["quantity"] == "-2.5"
    assert data["side"] == "sell"
    assert data["unrealized_pnl"] == "250"
    assert isinstance(item.state, PositionState)
    assert item.state.quantity == Decimal("-2.5")


def test_translate_when_balances_then_account_update_per_asset_state() -> None:
    item = user_item(examples(BalancesUpdated)[1])
    data = json.loads(item.data_json)
    assert (item.kind, item.channel) == ("account_update", ACCOUNT)
    assert data["kind"] == "balances"
    assert data["balances"][0] == {"asset": "USDT", "free": "1000.5", "locked": "65.0005"}
    assert isinstance(item.state, BalanceState)
    assert [b["asset"] for b in item.state.balances] == ["USDT", "BTC"]


def test_translate_when_trading_state_per_user_then_account_update() -> None:
    item = user_item(examples(TradingStateChanged)[0])
    assert item.kind == "account_update"
    assert isinstance(item.state, TradingStateState)
    assert item.state.data["state"] == "REDUCING"


def test_translate_when_global_trading_state_then_notice_outside_streams() -> None:
    notice = translate(example_envelope(examples(TradingStateChanged)[1]))
    assert isinstance(notice, GlobalNotice)
    frame = json.loads(notice.frame)
    assert frame["type"] == "trading_state"
    assert "seq" not in frame
    assert frame["data"]["scope"] == "global"


def test_translate_when_ticker_then_public_channel_frame() -> None:
    ticker = translate(example_envelope(examples(TickerUpdated)[1]))
    assert isinstance(ticker, TickerFrame)
    frame = json.loads(ticker.frame)
    assert frame["channel"] == "ticker:BTC_USDT"
    assert frame["data"]["last_price"] == "65000"
    assert frame["data"]["bid_price"] == "64999.99"


def test_frame_when_seq_known_then_valid_json_with_seq_and_timestamp() -> None:
    item = user_item(examples(OrderFilled)[0])
    frame = json.loads(item.frame(17))
    assert frame["type"] == "order_update"
    assert frame["channel"] == "orders"
    assert frame["seq"] == 17
    assert frame["timestamp"] == "2026-01-01T12:30:15.123Z"
    assert frame["data"] == json.loads(item.data_json)
