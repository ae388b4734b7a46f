"""Messages that set up a tradable market and funded users for risk engine tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.contracts import (
    Balance,
    BalancesUpdated,
    Envelope,
    InstrumentUpdated,
    PlaceOrder,
    TickerUpdated,
    UserProvisioned,
    Wallet,
    encode,
    new_message,
    partition_key,
)

SYMBOL = "BTC_USDT"
PRICE = Decimal("50000")


def keyed(envelope: Envelope[Any]) -> tuple[bytes, bytes]:
    return partition_key(envelope), encode(envelope)


def instrument() -> tuple[bytes, bytes]:
    return keyed(
        new_message(
            InstrumentUpdated(
                symbol=SYMBOL,
                base_asset="BTC",
                quote_asset="USDT",
                price_step=Decimal("0.01"),
                quantity_step=Decimal("0.000001"),
                min_order_value=Decimal(10),
                max_order_value=Decimal(1_000_000),
                is_available=True,
                order_types=("LIMIT", "MARKET"),
            ),
            user_id=None,
        )
    )


def ticker(price: Decimal = PRICE) -> tuple[bytes, bytes]:
    return keyed(
        new_message(
            TickerUpdated(
                symbol=SYMBOL,
                last_price=price,
                bid_price=price - 1,
                ask_price=price + 1,
                at=datetime.now(UTC),
            ),
            user_id=None,
        )
    )


def funded_user(user_id: str, usdt: Decimal = Decimal(100_000)) -> list[tuple[bytes, bytes]]:
    return [
        keyed(
            new_message(
                UserProvisioned(
                    opex_user_id=uuid.uuid4(), wallets=(Wallet(asset="USDT", free=Decimal(0)),)
                ),
                user_id=user_id,
            )
        ),
        keyed(
            new_message(
                BalancesUpdated(
                    balances=(
                        Balance(asset="USDT", free=usdt, locked=Decimal(0)),
                        Balance(asset="BTC", free=Decimal(0), locked=Decimal(0)),
                    ),
                    source="opex",
                ),
                user_id=user_id,
            )
        ),
    ]


def limit_buy(
    user_id: str, client_order_id: str, *, price: Decimal = PRICE, quantity: str = "0.001"
) -> Envelope[PlaceOrder]:
    return new_message(
        PlaceOrder(
            client_order_id=client_order_id,
            symbol=SYMBOL,
            side="buy",
            type="limit",
            quantity=Decimal(quantity),
            price=price,
            time_in_force="GTC",
        ),
        user_id=user_id,
    )
