"""The sandbox's state and OPEX's asynchronous order pipeline.

One `Sandbox` holds the engine, wallets, pairs, market maker, users and API keys, token
service, rate limiter, faults and the queues of accepted-but-not-yet-applied placements and
cancels. `run()` is the one background task: it applies what is due (placements in arrival
order, then cancels) and steps the market maker.

Placing (`submit`): every check OPEX makes before it answers runs now (`MatchingEngine.check`:
1020, 6038, 4002, 4003, 4001; the HTTP layer did 7002 / 6011 and the parameter checks); the
order then waits `listing_delay_ms` and goes to the engine. Until then it is in no listing and
has no id: OPEX answers before its matching engine has seen the order. Should the engine
refuse it then (funds spent meanwhile, the pair closed), the order is dropped, never listed,
and counted in `dropped`; MARKET+GTC and FOK are REJECTED by the engine and not listed either
(OPEX's market service only learns of orders the engine accepted).

Canceling (`cancel`): answered at once from the order as it is (already CANCELED: echoed;
FILLED / REJECTED / EXPIRED: 7006), applied `cancel_delay_ms` later; if the order filled
meanwhile, the cancel is void, as in OPEX.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .auth import TokenService
from .config import SandboxConfig
from .domain import (
    MarketMaker,
    MarketMakerConfig,
    MatchingEngine,
    OpexError,
    Order,
    OrderStatus,
    OrderType,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)
from .domain.clock import Clock, system_clock
from .domain.errors import CancelOrderNotAllowed, InvalidRequestParam
from .faults import Faults
from .ratelimit import RateLimiter, default_rules
from .users import User, UserStore

__all__ = ["ADMIN_UUID", "PendingCancel", "PendingPlacement", "Sandbox", "validate_new_order"]

log = logging.getLogger("opex_sandbox")

ADMIN_UUID = "00000000-0000-0000-0000-00000000ad01"
TICK_S = 0.005

# Which of price / quantity / stopPrice must be positive and whether timeInForce is needed
# (api `OrderController.validateNewOrderParams`); MARKET needs quantity or quoteOrderQty.
_NEEDS: dict[OrderType, tuple[bool, bool, bool, bool]] = {
    OrderType.LIMIT: (True, True, False, True),
    OrderType.STOP_LOSS: (False, True, True, False),
    OrderType.STOP_LOSS_LIMIT: (True, True, True, True),
    OrderType.TAKE_PROFIT: (False, True, True, False),
    OrderType.TAKE_PROFIT_LIMIT: (True, True, True, True),
    OrderType.LIMIT_MAKER: (True, True, False, False),
}


def _positive(value: Decimal | None, name: str) -> None:
    if value is None or value <= 0:
        raise InvalidRequestParam(name)


def validate_new_order(
    order_type: OrderType,
    price: Decimal | None,
    quantity: Decimal | None,
    time_in_force: TimeInForce | None,
    stop_price: Decimal | None,
    quote_order_qty: Decimal | None,
) -> None:
    """OPEX's per-type parameter checks (1020), run before the pair is looked up."""
    if order_type is OrderType.MARKET:
        if quantity is None:
            _positive(quote_order_qty, "quoteOrderQty")
        else:
            _positive(quantity, "quantity")
        return
    need_price, need_qty, need_stop, need_tif = _NEEDS[order_type]
    if need_price:
        _positive(price, "price")
    if need_qty:
        _positive(quantity, "quantity")
    if need_stop:
        _positive(stop_price, "stopPrice")
    if need_tif and time_in_force is None:
        raise InvalidRequestParam("timeInForce")


@dataclass(slots=True)
class PendingPlacement:
    due_ms: int
    user: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce | None
    quantity: Decimal | None
    price: Decimal | None
    quote_order_qty: Decimal | None
    stop_price: Decimal | None


@dataclass(slots=True)
class PendingCancel:
    due_ms: int
    user: str
    symbol: str
    order_id: int


class Sandbox:
    def __init__(self, config: SandboxConfig, *, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self.faults = Faults(seed=config.seed, default_take_delay_s=config.take_no_answer_delay_s)
        self.tokens = TokenService(
            config.jwt_key(),
            lifetime_s=config.token_lifetime_s,
            refresh_lifetime_s=config.refresh_token_lifetime_s,
        )
        self.limiter = RateLimiter(
            default_rules(
                low_requests=config.rate_limit_requests,
                low_window_s=config.rate_limit_window_s,
                low_block_steps_s=config.rate_limit_block_steps_s,
                low_cooldown_s=config.rate_limit_cooldown_s,
                admin_requests=config.rate_limit_admin_requests,
                admin_window_s=config.rate_limit_admin_window_s,
                admin_block_steps_s=config.rate_limit_admin_block_steps_s,
                admin_cooldown_s=config.rate_limit_admin_cooldown_s,
            )
        )
        self._task: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        """Start over: a fresh engine, wallets, users (the admin re-created) and queues.
        Configuration and faults are kept."""
        config = self.config
        self.pairs = PairRegistry.with_defaults()
        self.wallets = Wallets()
        self.engine = MatchingEngine(self.pairs, self.wallets, self.clock)
        self.maker = MarketMaker(
            self.engine,
            [
                MarketMakerConfig(p.symbol, p.mid_price, p.level_quantity, levels=p.levels)
                for p in config.market_maker_pairs
                if p.symbol in self.pairs
            ],
            seed=config.seed,
            enabled=config.market_maker,
        )
        self.users = UserStore(
            otp_lifetime_s=config.otp_lifetime_s, on_created=self._on_user_created
        )
        self.admin = self.users.create_enabled(
            config.admin_username,
            config.admin_password.get_secret_value(),
            roles=("admin", "LEVEL_1"),
            user_uuid=ADMIN_UUID,
        )
        self.users.create_api_key(
            self.admin,
            label="sandbox admin",
            allowed_ips=None,
            allowed_endpoints=None,
            key_id=config.admin_api_key,
            secret=config.admin_api_secret.get_secret_value(),
        )
        self.limiter.reset()
        self.placements: deque[PendingPlacement] = deque()
        self.cancels: deque[PendingCancel] = deque()
        self.accepted = 0
        self.applied = 0
        self.rejected = 0
        self.dropped = 0
        self._next_maker_step = 0

    def _on_user_created(self, user: User) -> None:
        self.wallets.create_user(user.uuid)

    # -- settings that faults can override -----------------------------------------------

    @property
    def listing_delay_ms(self) -> int:
        override = self.faults.settings.listing_delay_ms
        return self.config.listing_delay_ms if override is None else override

    @property
    def rate_limit_enabled(self) -> bool:
        override = self.faults.settings.rate_limit_enabled
        return self.config.rate_limit_enabled if override is None else override

    # -- orders -----------------------------------------------------------------------------

    def submit(
        self,
        user: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce | None,
        quantity: Decimal | None,
        price: Decimal | None,
        quote_order_qty: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        """Check an order as OPEX does before answering, then queue it for the engine."""
        self.engine.check(
            user, symbol, side, order_type, time_in_force, quantity, price,
            quote_order_qty=quote_order_qty, stop_price=stop_price,
        )  # fmt: skip
        self.accepted += 1
        now = self.clock()
        pending = PendingPlacement(
            now + self.listing_delay_ms, user, symbol, side, order_type, time_in_force,
            quantity, price, quote_order_qty, stop_price,
        )  # fmt: skip
        if pending.due_ms <= now and not self.placements:
            self._place(pending)
        else:
            self.placements.append(pending)

    def _place(self, p: PendingPlacement) -> None:
        try:
            result = self.engine.place(
                p.user, p.symbol, p.side, p.order_type, p.time_in_force, p.quantity, p.price,
                quote_order_qty=p.quote_order_qty, stop_price=p.stop_price,
            )  # fmt: skip
        except OpexError as exc:
            self.dropped += 1
            log.info("order of %s on %s dropped by the engine: %s", p.user, p.symbol, exc)
            return
        self.applied += 1
        if result.rejected:
            self.rejected += 1

    def cancel(self, user: str, symbol: str, order_id: int) -> Order:
        """Answer a cancel as OPEX does (the order, to be shown CANCELED) and queue it."""
        order = self.engine.get_order(user, symbol, order_id)
        status = order.status
        if status is OrderStatus.CANCELED:
            return order
        if status is not OrderStatus.NEW and status is not OrderStatus.PARTIALLY_FILLED:
            raise CancelOrderNotAllowed()
        now = self.clock()
        pending = PendingCancel(now + self.config.cancel_delay_ms, user, symbol, order_id)
        if pending.due_ms <= now and not self.cancels:
            self._cancel(pending)
        else:
            self.cancels.append(pending)
        return order

    def _cancel(self, c: PendingCancel) -> None:
        try:
            self.engine.cancel(c.user, c.symbol, c.order_id)
        except OpexError as exc:  # filled meanwhile: the engine refuses, as OPEX's does
            log.info("cancel of %s#%s void: %s", c.symbol, c.order_id, exc)

    def apply_due(self, now: int | None = None) -> None:
        """Apply every placement and cancel that is due, in the order they fall due (each
        queue is in arrival order; a placement goes first on a tie)."""
        now = self.clock() if now is None else now
        placements = self.placements
        cancels = self.cancels
        while True:
            p_due = placements[0].due_ms if placements else None
            c_due = cancels[0].due_ms if cancels else None
            if p_due is not None and p_due <= now and (c_due is None or p_due <= c_due):
                self._place(placements.popleft())
            elif c_due is not None and c_due <= now:
                self._cancel(cancels.popleft())
            else:
                return

    def step_market_maker(self, now: int | None = None) -> None:
        now = self.clock() if now is None else now
        if self.maker.enabled and now >= self._next_maker_step:
            report = self.maker.step(now)
            for symbol, exc in report.errors:
                log.warning("market maker on %s: %s", symbol, exc)
            self._next_maker_step = now + self.config.market_maker_interval_ms

    def set_market_maker(self, on: bool) -> None:
        if on:
            self.maker.enable()
            self._next_maker_step = 0
            self.step_market_maker()
        else:
            self.maker.disable()
            for symbol in self.maker.configs:
                self.engine.cancel_open_orders(self.maker.user, symbol)

    # -- the background task --------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                now = self.clock()
                self.apply_due(now)
                self.step_market_maker(now)
            except Exception:  # never let one bad step stop the sandbox
                log.exception("sandbox background step failed")
            await asyncio.sleep(TICK_S)

    async def start(self) -> None:
        self.faults.stopping.clear()
        self.step_market_maker()
        self._task = asyncio.create_task(self.run(), name="opex-sandbox")

    async def stop(self) -> None:
        self.faults.stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def state(self) -> dict[str, Any]:
        return {
            "pendingPlacements": len(self.placements),
            "pendingCancels": len(self.cancels),
            "accepted": self.accepted,
            "applied": self.applied,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "users": len(self.users.by_uuid),
            "marketMaker": self.maker.enabled,
            "listingDelayMs": self.listing_delay_ms,
            "cancelDelayMs": self.config.cancel_delay_ms,
            "rateLimitEnabled": self.rate_limit_enabled,
        }
