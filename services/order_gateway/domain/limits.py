"""Per-user request pacing that matches OPEX's limits, so requests wait instead of
drawing 429s (OPEX.md, Users and auth: "low impact", 10 requests per 60 s per user on
/opex/v1; /v3 has no limit; a user who keeps exceeding is blocked 60, 120, 180 s).

- `RequestLimiter`: at most ``max_requests`` per user in any ``window_ms`` (a sliding
  log, the strictest reading of OPEX's counter); ``max_requests=None`` turns it off
  (the /v3 surface).
- `RateLimitBackoff`: after a 429, the user waits max(Retry-After, the n-th block of
  ``blocks_s``) for their n-th consecutive 429; a success resets the count.
- `UserThrottle`: both, per surface: ``delay_ms`` says how long this user waits; other
  users are never affected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from services.order_gateway.config import GatewayConfig, Surface

__all__ = ["RateLimitBackoff", "RequestLimiter", "UserThrottle"]


class RequestLimiter:
    """A sliding-window limiter per user."""

    def __init__(self, max_requests: int | None, window_ms: int) -> None:
        if max_requests is not None and max_requests <= 0:
            raise ValueError("max_requests must be positive or None")
        if window_ms <= 0:
            raise ValueError("window_ms must be positive")
        self.max_requests = max_requests
        self.window_ms = window_ms
        self._sent: dict[str, deque[int]] = {}

    @property
    def enabled(self) -> bool:
        return self.max_requests is not None

    def delay_ms(self, user_id: str, now_ms: int) -> int:
        """How long ``user_id`` must wait before the next request (0: go)."""
        if self.max_requests is None:
            return 0
        sent = self._prune(user_id, now_ms)
        if len(sent) < self.max_requests:
            return 0
        return sent[len(sent) - self.max_requests] + self.window_ms - now_ms

    def try_acquire(self, user_id: str, now_ms: int) -> int:
        """Take a slot and return 0, or return the wait without taking one."""
        wait = self.delay_ms(user_id, now_ms)
        if wait == 0 and self.max_requests is not None:
            self._sent.setdefault(user_id, deque()).append(now_ms)
        return wait

    def restamp(self, user_id: str, taken_at_ms: int, now_ms: int) -> None:
        """A slot taken at ``taken_at_ms`` is used only now (the request left late): it
        counts from ``now_ms``, so late requests cannot bunch up with the next window's."""
        sent = self._sent.get(user_id)
        if sent is None or now_ms <= taken_at_ms:
            return
        try:
            sent.remove(taken_at_ms)
        except ValueError:
            return  # pruned already: the slot's window is over
        sent.append(now_ms)

    def _prune(self, user_id: str, now_ms: int) -> deque[int]:
        sent = self._sent.get(user_id)
        if sent is None:
            return deque()
        while sent and sent[0] <= now_ms - self.window_ms:
            sent.popleft()
        if not sent:
            del self._sent[user_id]
        return sent


class RateLimitBackoff:
    """429 blocks per user, escalating like OPEX's."""

    def __init__(self, blocks_s: tuple[int, ...] = (60, 120, 180)) -> None:
        if not blocks_s:
            raise ValueError("blocks_s must not be empty")
        self.blocks_s = blocks_s
        self._strikes: dict[str, int] = {}
        self._until: dict[str, int] = {}

    def on_rate_limited(self, user_id: str, now_ms: int, retry_after_s: float | None) -> int:
        """Record a 429; returns when the user may send again (epoch ms)."""
        strike = self._strikes.get(user_id, 0)
        self._strikes[user_id] = strike + 1
        block_ms = self.blocks_s[min(strike, len(self.blocks_s) - 1)] * 1000
        told_ms = int((retry_after_s or 0) * 1000)
        until = now_ms + max(block_ms, told_ms)
        self._until[user_id] = max(until, self._until.get(user_id, 0))
        return self._until[user_id]

    def on_success(self, user_id: str) -> None:
        """A request went through: the next 429 starts the escalation afresh."""
        self._strikes.pop(user_id, None)

    def delay_ms(self, user_id: str, now_ms: int) -> int:
        until = self._until.get(user_id)
        if until is None:
            return 0
        if now_ms >= until:
            del self._until[user_id]
            return 0
        return until - now_ms

    def strikes(self, user_id: str) -> int:
        return self._strikes.get(user_id, 0)


class UserThrottle:
    """Limiter and backoff per surface; the service asks before each OPEX request."""

    def __init__(self, config: GatewayConfig) -> None:
        self.limiters: Mapping[Surface, RequestLimiter] = {
            surface: RequestLimiter(config.max_requests(surface), config.rate_window_ms)
            for surface in Surface
        }
        self.backoffs: Mapping[Surface, RateLimitBackoff] = {
            surface: RateLimitBackoff(config.rate_limit_blocks_s) for surface in Surface
        }

    def restamp(self, surface: Surface, user_id: str, taken_at_ms: int, now_ms: int) -> None:
        """The request of a slot taken at ``taken_at_ms`` leaves now."""
        self.limiters[surface].restamp(user_id, taken_at_ms, now_ms)

    def try_acquire(self, surface: Surface, user_id: str, now_ms: int) -> int:
        """0 and a slot taken, or how long ``user_id`` waits (queue, don't send)."""
        blocked = self.backoffs[surface].delay_ms(user_id, now_ms)
        if blocked:
            return blocked
        return self.limiters[surface].try_acquire(user_id, now_ms)

    def on_rate_limited(
        self, surface: Surface, user_id: str, now_ms: int, retry_after_s: float | None
    ) -> int:
        return self.backoffs[surface].on_rate_limited(user_id, now_ms, retry_after_s)

    def on_success(self, surface: Surface, user_id: str) -> None:
        self.backoffs[surface].on_success(user_id)
