"""Pure helpers of the ops commands: selectors, the replay ledger, formatting, and
Prometheus text parsing."""

from __future__ import annotations

import json

import pytest
from aiokafka.structs import OffsetAndMetadata

from opexbridge._kafka import dlq_of, full_topic
from opexbridge.dlq import REPLAYED_FROM, DeadLetter, Ledger, Selector, format_ranges, parse_offsets
from opexbridge.publish import command, describe_error, envelope_from
from opexbridge.top import parse_metrics, parse_service_urls, rate, suite_figures
from shared.contracts import ContractError, PlaceOrder


def letter(offset: int, code: str = "POISON", error: str = "PermanentError: bad") -> DeadLetter:
    headers = (
        ("x-message-type", b"PlaceOrder"),
        ("x-dlq-error-code", code.encode()),
        ("x-dlq-error", error.encode()),
        ("x-dlq-original-topic", b"orders.commands"),
    )
    return DeadLetter("orders.commands.dlq", 0, offset, 0, b"42", b"{}", headers)


def test_parse_offsets_and_format_ranges_round_trip() -> None:
    assert parse_offsets("3, 5-7,9") == {3, 5, 6, 7, 9}
    assert format_ranges({9, 3, 5, 6, 7}) == "3,5-7,9"
    assert format_ranges([]) == ""
    for bad in ("", "x", "7-5", "1-", "-3"):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_offsets(bad)


def test_selector_combines_criteria_and_needs_one() -> None:
    with pytest.raises(ValueError, match="choose"):
        Selector()
    assert Selector(everything=True).matches(letter(1))
    by_code = Selector(error_code="POISON", offsets=frozenset({1, 2}))
    assert by_code.matches(letter(1))
    assert not by_code.matches(letter(3))
    assert not by_code.matches(letter(1, code="OTHER"))
    assert Selector(error_contains="BAD").matches(letter(1))


def test_ledger_advances_its_watermark_and_keeps_scattered_offsets() -> None:
    ledger = Ledger.from_commit(None)
    ledger.add([2, 3, 7])
    assert (ledger.watermark, ledger.above) == (0, {2, 3, 7})
    ledger.add([0, 1])
    assert (ledger.watermark, ledger.above) == (4, {7})
    again = Ledger.from_commit(ledger.to_commit())
    assert [o for o in range(9) if again.replayed(o)] == [0, 1, 2, 3, 7]
    assert Ledger.from_commit(OffsetAndMetadata(-1, "")).watermark == 0


def test_replay_headers_drop_dlq_headers_and_say_where_from() -> None:
    headers = dict(letter(5).replay_headers())
    assert headers == {"x-message-type": b"PlaceOrder", REPLAYED_FROM: b"orders.commands.dlq@5"}


def test_topic_names_take_the_prefix_once() -> None:
    assert full_topic("orders.commands", "t1.") == "t1.orders.commands"
    assert full_topic("t1.orders.commands", "t1.") == "t1.orders.commands"
    assert dlq_of("orders.commands", "") == "orders.commands.dlq"
    assert dlq_of("orders.commands.dlq", "p.") == "p.orders.commands.dlq"


def test_prometheus_text_gives_suite_figures_and_tolerates_missing_or_bad_text() -> None:
    text = (
        "# TYPE opexbridge_risk_decisions_total counter\n"
        'opexbridge_risk_decisions_total{outcome="approved",reason=""} 4\n'
        'opexbridge_risk_decisions_total{outcome="rejected",reason="X"} 1\n'
        'opexbridge_risk_decisions_total{outcome="cancel_passed",reason=""} 2\n'
        "# TYPE opexbridge_gateway_orders_in_flight gauge\n"
        "opexbridge_gateway_orders_in_flight 5\n"
    )
    figures = suite_figures(parse_metrics(text))
    assert (figures.decided, figures.approved, figures.rejected) == (7, 4, 1)
    assert figures.rejected_by_reason == {"X": 1}
    assert figures.in_flight == 5
    assert figures.notifier_connections is None
    assert parse_metrics("not { prometheus") == []
    assert suite_figures([]).decided is None


def test_rate_and_service_urls() -> None:
    assert rate(10, 30, 2.0) == 10.0
    assert rate(30, 10, 2.0) == 0.0
    assert rate(1, 2, 0) == 0.0
    assert parse_service_urls("a=http://x:1, b=http://y") == {"a": "http://x:1", "b": "http://y"}
    with pytest.raises(ValueError, match="name=url"):
        parse_service_urls(["nourl"])


def test_publish_bodies_and_envelopes_validate_with_field_errors() -> None:
    placed = envelope_from(
        {"type": "PlaceOrder", "user_id": 42, "client_order_id": "c", "symbol": "BTCUSDT",
         "side": "buy", "order_type": "limit", "quantity": 0.001, "price": "45000"}
    )  # fmt: skip
    order = placed.data_as(PlaceOrder)
    assert (placed.user_id, order.symbol, str(order.quantity)) == ("42", "BTC_USDT", "0.001")
    full = json.loads(placed.model_dump_json())
    assert envelope_from(full).id == placed.id
    with pytest.raises(ContractError) as refused:
        command("PlaceOrder", "42", client_order_id="c", symbol="BTCUSDT", side="buy",
                type="limit", quantity="0")  # fmt: skip
    lines = describe_error(refused.value)
    assert any(line.startswith("data.quantity") for line in lines)
